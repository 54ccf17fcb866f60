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
import { compileChunk } from "./compile.js";
import { installFits, withPageMap, type SpiffsGeometry } from "./flash.js";
import { SpiffsFull } from "./spiffs-gc.js";

/** The image's core on the board (host/flash/image-files.ts). */
export const IMAGE_FILE = CORE_FILE;
export const INIT_FILE = "init.lua";
/** The boot script, fail-closed (host/flash/init-lua.ts, shared with fobkit flash). */
export const INIT_LUA = INIT_SOURCE;

/**
 * spiffs: the build's SPIFFS partition (hil/nodemcu-build.ts). The install's
 * writes go through SPIFFS's page map as well (withPageMap), so an install
 * over an earlier one consumes pages as the board's would. An image the
 * partition cannot take as a board's install would write it (sources and
 * bytecode at once, no garbage collection before LOCK's commit: flash.ts
 * installFits) is refused, naming the partition, before anything is written.
 */
export function installImage(stateDir: string, imagePath: string, freeHeap: number, spiffs: SpiffsGeometry): void {
  const files = imageFilePaths(imagePath);
  for (const f of files) if (!existsSync(f.path)) throw new Error(`image file not found: ${f.path} (build it first: make firmware)`);
  // A one-file image is a test's fixture app, not a keyfob image: it stays
  // source and init.lua boots that (a fixture may be too big for node.compile).
  const fixture = basename(imagePath) !== IMAGE_FILE;
  // Each file read once: the bytes the flasher would upload and the board check by CRC.
  const sources = files.map((f) => ({ name: f.name, source: readFileSync(f.path) }));
  const compiled = new Map<string, Uint8Array>();
  if (!fixture) {
    for (const f of sources) compiled.set(f.name, compileChunk(f.source, f.name, freeHeap));
    const sizes = sources.flatMap((f) => [f.source.length, compiled.get(f.name)!.length]);
    const why = installFits([...sizes, Buffer.byteLength(INIT_LUA)], spiffs);
    if (why !== undefined) throw new Error(`installImage: ${imagePath} does not fit the board's SPIFFS: ${why}`);
  }
  // The install's writes through SPIFFS's page map (hil/spiffs-gc.ts), in the flasher's order
  // (host/flash/flasher.ts): init.lua removed first; each source written, then node.compile's .lc;
  // the sources removed; init.lua.part written and renamed. On a partition that already holds an
  // install (no format between) this is where garbage collection, or SPIFFS_ERR_FULL, happens.
  try {
    withPageMap(stateDir, spiffs, (pages) => {
      pages.remove(INIT_FILE);
      for (const f of sources) {
        pages.writeWhole(f.name, f.source.length);
        if (!fixture) pages.writeWhole(bytecodeName(f.name), compiled.get(f.name)!.length);
      }
      if (!fixture) for (const f of sources) pages.remove(f.name);
      const init = Buffer.byteLength(fixture ? initSource(IMAGE_FILE) : INIT_LUA);
      pages.remove(`${INIT_FILE}.part`);
      pages.writeWhole(`${INIT_FILE}.part`, init);
      pages.rename(`${INIT_FILE}.part`, INIT_FILE);
    });
  } catch (e) {
    if (!(e instanceof SpiffsFull)) throw e;
    throw new Error(`installImage: ${imagePath}: the board's SPIFFS is full during the install (${e.message}); format it (a new state directory)`);
  }
  mkdirSync(stateDir, { recursive: true });
  for (const f of sources) {
    if (fixture) {
      writeFileSync(join(stateDir, f.name), f.source);
      continue;
    }
    writeFileSync(join(stateDir, bytecodeName(f.name)), compiled.get(f.name)!);
    // The flasher removes the source once its bytecode loads: the board boots bytecode or nothing.
    rmSync(join(stateDir, f.name), { force: true });
  }
  writeFileSync(join(stateDir, INIT_FILE), fixture ? initSource(IMAGE_FILE) : INIT_LUA);
}
