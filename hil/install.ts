/**
 * Put a built image into an emulator state directory the way it goes onto a
 * real board: every file of the image (host/flash/image-files.ts: the core
 * fobkit.lua, fobkit-2.lua, fobkit-3.lua, and fobkit-prov.lua), each from the
 * image's directory and checked, each compiled as node.compile does on the
 * board (compile.ts: NAME.lc; a file too big for the board's heap is
 * refused), the source then removed as the flasher does, and an init.lua that NodeMCU runs at boot (Kconfig
 * LUA_INIT_STRING "@init.lua"), which boots fobkit.lc.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { INIT_SOURCE, initSource } from "../host/flash/init-lua.js";
import { bytecodeName, CORE_FILE, imageFilePaths } from "../host/flash/image-files.js";
import { compileChunk, DEFAULT_FREE_HEAP } from "./compile.js";

/** The image's core on the board (host/flash/image-files.ts). */
export const IMAGE_FILE = CORE_FILE;
export const INIT_FILE = "init.lua";
/** The boot script, fail-closed (host/flash/init-lua.ts, shared with fobkit flash). */
export const INIT_LUA = INIT_SOURCE;

export function installImage(stateDir: string, imagePath: string, freeHeap = DEFAULT_FREE_HEAP): void {
  const files = imageFilePaths(imagePath);
  for (const f of files) if (!existsSync(f.path)) throw new Error(`image file not found: ${f.path} (build it first: make firmware)`);
  mkdirSync(stateDir, { recursive: true });
  // A one-file image is a test's fixture app, not a keyfob image: it stays
  // source and init.lua boots that (a fixture may be too big for node.compile).
  const fixture = basename(imagePath) !== IMAGE_FILE;
  for (const f of files) {
    // The bytes the flasher would upload and check by CRC on the board: the file itself.
    const source = readFileSync(f.path);
    if (fixture) {
      writeFileSync(join(stateDir, f.name), source);
      continue;
    }
    writeFileSync(join(stateDir, bytecodeName(f.name)), compileChunk(source, f.name, freeHeap));
    // The flasher removes the source once its bytecode loads: the board boots bytecode or nothing.
    rmSync(join(stateDir, f.name), { force: true });
  }
  writeFileSync(join(stateDir, INIT_FILE), fixture ? initSource(IMAGE_FILE) : INIT_LUA);
}
