/**
 * Put a built image into an emulator state directory the way it goes onto a
 * real board: every file of the image (host/flash/image-files.ts: the core
 * fobkit.lua, fobkit-2.lua, fobkit-3.lua, and fobkit-prov.lua), each from the
 * image's directory and checked, each compiled as node.compile does on the
 * board (compile.ts: NAME.lc; a file too big for the board's heap is
 * refused), the source then removed as the flasher does, and an init.lua that NodeMCU runs at boot (Kconfig
 * LUA_INIT_STRING "@init.lua"), which boots fobkit.lc.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { INIT_SOURCE, initSource } from "../host/flash/init-lua.js";
import { bytecodeName, imageFilePaths } from "../host/flash/image-files.js";
import { compileChunk, DEFAULT_FREE_HEAP } from "./compile.js";
import { installFits, spiffsGeometry, NODEMCU_SPIFFS_PARTITION_BYTES, type SpiffsGeometry } from "./flash.js";

export const IMAGE_FILE = "fobkit.lua";
export const INIT_FILE = "init.lua";
/** The boot script, fail-closed (host/flash/init-lua.ts, shared with fobkit flash). */
export const INIT_LUA = INIT_SOURCE;

/**
 * spiffs: the build's SPIFFS partition (hil/nodemcu-build.ts). An image the
 * partition cannot take as a board's install would write it (sources and
 * bytecode at once, no garbage collection before LOCK's commit: flash.ts
 * installFits) is refused, naming the partition, before anything is written.
 */
export function installImage(stateDir: string, imagePath: string, freeHeap = DEFAULT_FREE_HEAP, spiffs: SpiffsGeometry = spiffsGeometry(NODEMCU_SPIFFS_PARTITION_BYTES)): void {
  const files = imageFilePaths(imagePath);
  for (const f of files) if (!existsSync(f.path)) throw new Error(`image file not found: ${f.path} (build it first: make firmware)`);
  // A one-file image is a test's fixture app, not a keyfob image: it stays
  // source and init.lua boots that (a fixture may be too big for node.compile).
  const fixture = basename(imagePath) !== IMAGE_FILE;
  const compiled = new Map<string, Uint8Array>();
  if (!fixture) {
    for (const f of files) compiled.set(f.name, compileChunk(readFileSync(f.path), f.name, freeHeap));
    const sizes = files.flatMap((f) => [statSync(f.path).size, compiled.get(f.name)!.length]);
    const why = installFits([...sizes, Buffer.byteLength(INIT_LUA)], spiffs);
    if (why !== undefined) throw new Error(`installImage: ${imagePath} does not fit the board's SPIFFS: ${why}`);
  }
  mkdirSync(stateDir, { recursive: true });
  for (const f of files) {
    copyFileSync(f.path, join(stateDir, f.name));
    // As the flasher checks every file by CRC on the board: the copy is the image.
    const source = readFileSync(join(stateDir, f.name));
    if (!source.equals(readFileSync(f.path))) throw new Error(`installImage: ${f.name} in ${stateDir} differs from ${f.path}`);
    if (fixture) continue;
    writeFileSync(join(stateDir, bytecodeName(f.name)), compiled.get(f.name)!);
    // The flasher removes the source once its bytecode loads: the board boots bytecode or nothing.
    rmSync(join(stateDir, f.name));
  }
  writeFileSync(join(stateDir, INIT_FILE), fixture ? initSource(IMAGE_FILE) : INIT_LUA);
}
