/** `fobkit flash`: install the firmware on a factory-fresh board through its Lua REPL. */
import { readFileSync, existsSync } from "node:fs";
import { resolve } from "node:path";
import { FLASH_TRANSPORTS, FlashError, flashBoard } from "../flash/flasher.js";
import { imageFilePaths } from "../flash/image-files.js";
import { progressBar } from "../flash/progress-bar.js";
import { CliError, EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, requirePortKind, type Command } from "./command.js";
import { requireString } from "./provision.js";

// build/node/host/cli -> build/firmware/fobkit.lua
const BUILT_IMAGE = resolve(import.meta.dirname, "..", "..", "..", "firmware", "fobkit.lua");

/** The image's core and its other files, as the flasher takes them. */
export interface ImageUpload {
  image: Buffer;
  files: { name: string; data: Buffer }[];
}

/**
 * The firmware image to install: FILE (its core; the other files of the
 * image, host/flash/image-files.ts, sit beside it), or the one `make firmware` built.
 */
export function readImage(path: unknown): ImageUpload {
  const imagePath = typeof path === "string" ? path : BUILT_IMAGE;
  const read = (name: string, p: string): Buffer => {
    if (!existsSync(p)) throw new CliError(`image file not found: ${p} (${name} of the image; build it first: make firmware)`);
    const data = readFileSync(p);
    if (data.length === 0) throw new CliError(`image file ${p} is empty`);
    return data;
  };
  const [core, ...rest] = imageFilePaths(imagePath);
  return { image: read(core.name, core.path), files: rest.map((f) => ({ name: f.name, data: read(f.name, f.path) })) };
}

export const flashCommand: Command = {
  name: "flash",
  summary: "install the firmware on a factory-fresh NodeMCU board (through its Lua REPL)",
  usage: "--port PATH [--image FILE] [--json]",
  transports: FLASH_TRANSPORTS,
  description: `A board whose flash has no init.lua boots into NodeMCU's Lua REPL. This
uploads the image (its core fobkit.lua and fobkit-prov.lua, which only a
keyfob not yet locked loads) and an init.lua that starts it, through that
REPL, in checked lines; the board computes a CRC-32 of each file it wrote and
it must equal the host's. An interrupted upload continues where the board's
verified copy ends when run again. Then the board restarts and must answer
INFO. A board that already runs fobkit (its UART no longer reaches Lua) is
refused: nothing to do.

example:
  fobkit flash --port /dev/ttyUSB0`,
  options: {
    port: { type: "string", placeholder: "PATH", help: "the board's serial port" },
    image: { type: "string", placeholder: "FILE", help: "the image's core; its other files sit beside it (default: build/firmware/fobkit.lua)" },
    json: { type: "boolean", help: "print the result as JSON" },
  },
  async run({ values }, io) {
    const port = requireString(values, "port");
    requirePortKind(flashCommand, port);
    const { image, files } = readImage(values.image);
    const bar = progressBar(io.stderr as NodeJS.WritableStream & { isTTY?: boolean });
    try {
      const r = await flashBoard({ port, image, files, onProgress: (p) => bar.update(p), signal: io.signal });
      bar.end();
      if (values.json) io.stdout.write(JSON.stringify({ ...r, info: { ...r.info, clock: r.info.clock ?? null } }) + "\n");
      else {
        io.stdout.write(`${port}: ${r.alreadyThere ? "image already on the board" : `wrote ${r.imageBytes} bytes${r.resumedFrom > 0 ? ` (resumed at ${r.resumedFrom})` : ""} in ${(r.uploadMs / 1000).toFixed(1)} s`}, CRC-32 ${r.crc} checked on the board\n`);
        io.stdout.write(`${port}: restarted; fobkit ${r.info.firmware} answers, state ${r.info.state}, hardware id ${r.info.hardwareId}\n`);
      }
      return EXIT_OK;
    } catch (e) {
      bar.end();
      if (e instanceof FlashError) {
        const refused = e.code === "locked" || e.code === "firmware";
        throw new CliError(e.message, refused ? EXIT_REFUSED : e.code === "transport" ? EXIT_USAGE : EXIT_FAILED, e.code);
      }
      throw e;
    }
  },
};
