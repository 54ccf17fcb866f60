/**
 * `fobkit flash` on an emulated factory-fresh board, in real time at 115200
 * baud: the emulator's UART paces bytes at the line rate, its console buffers
 * and SPIFFS take the time hil/ models (realtime mode, as strict as for the
 * tests). Writes bench/results/flash.json:
 *   {imageBytes, files, totalS, uploadS, wireS, wireBytesOut, wireBytesIn, bytecode, goalS}
 * wireS is the floor: every byte both ways at 10 bits per byte.
 *
 *   node build/node/tools/bench-flash.js   (after make firmware)
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Emulator } from "../hil/emulator.js";
import { PtyLink } from "../hil/pty.js";
import { flashBoard } from "../host/flash/flasher.js";
import { imageFilePaths } from "../host/flash/image-files.js";
import { LINK_BAUD } from "../protocol/codes.js";

const BUILD = process.env.FOBKIT_BUILD ? resolve(process.env.FOBKIT_BUILD) : resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const IMAGE = join(BUILD, "firmware", "fobkit.lua");
/** Issue 10 item 6. */
export const FLASH_GOAL_S = 5;

export interface FlashBench {
  baud: number;
  imageBytes: number;
  files: Record<string, number>;
  totalS: number;
  uploadS: number;
  wireS: number;
  wireBytesOut: number;
  wireBytesIn: number;
  lines: number;
  bytecode: Record<string, number>;
  goalS: number;
}

const s = (ms: number) => Math.round(ms / 100) / 10;

export async function runFlashBench(imagePath = IMAGE): Promise<FlashBench> {
  const [core, ...rest] = imageFilePaths(imagePath);
  const image = readFileSync(core.path);
  const files = rest.map((f) => ({ name: f.name, data: readFileSync(f.path) }));
  const dir = mkdtempSync(join(tmpdir(), "fobkit-bench-flash-"));
  const emu = new Emulator({ stateDir: join(dir, "state"), time: 1_764_000_000, realtime: true, countInstructions: false });
  const link = await PtyLink.open(emu, { path: join(dir, "tty") });
  try {
    emu.boot();
    const r = await flashBoard({ port: link.path, image, files, baudRate: LINK_BAUD });
    return {
      baud: LINK_BAUD,
      imageBytes: r.imageBytes,
      files: Object.fromEntries([[core.name, image.length], ...files.map((f) => [f.name, f.data.length] as const)]),
      totalS: s(r.totalMs),
      uploadS: s(r.uploadMs),
      wireS: s(((r.wireBytesOut + r.wireBytesIn) * 10 * 1000) / LINK_BAUD),
      wireBytesOut: r.wireBytesOut,
      wireBytesIn: r.wireBytesIn,
      lines: r.lines,
      bytecode: Object.fromEntries(r.bytecode.map((b) => [b.name, b.bytes])),
      goalS: FLASH_GOAL_S,
    };
  } finally {
    await link.close();
    emu.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatFlashBench(b: FlashBench): string {
  return [
    `fobkit flash at ${b.baud} baud, ${b.imageBytes} bytes in ${Object.keys(b.files).length} files: ${b.totalS} s in total (${b.totalS <= b.goalS ? "ok" : `over the ${b.goalS} s goal`}), upload ${b.uploadS} s`,
    `wire: ${b.wireBytesOut} B out, ${b.wireBytesIn} B in = ${b.wireS} s at 10 bits per byte; ${b.lines} REPL data lines`,
    `bytecode node.compile wrote: ${Object.entries(b.bytecode).map(([n, v]) => `${n} ${v} B`).join(", ")}`,
  ].join("\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  runFlashBench().then((b) => process.stdout.write(formatFlashBench(b) + "\n"), (e) => {
    process.stderr.write(`bench-flash: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
