/**
 * Put a built image into an emulator state directory the way it goes onto a
 * real board: every file of the image (host/flash/image-files.ts: the core
 * fobkit.lua, fobkit-prov.lua), each from the image's directory, and an
 * init.lua that NodeMCU runs at boot (Kconfig LUA_INIT_STRING "@init.lua").
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { INIT_SOURCE } from "../host/flash/init-lua.js";
import { imageFilePaths } from "../host/flash/image-files.js";

export const IMAGE_FILE = "fobkit.lua";
export const INIT_FILE = "init.lua";
/** The boot script, fail-closed (host/flash/init-lua.ts, shared with fobkit flash). */
export const INIT_LUA = INIT_SOURCE;

export function installImage(stateDir: string, imagePath: string): void {
  const files = imageFilePaths(imagePath);
  for (const f of files) if (!existsSync(f.path)) throw new Error(`image file not found: ${f.path} (build it first: make firmware)`);
  mkdirSync(stateDir, { recursive: true });
  for (const f of files) {
    copyFileSync(f.path, join(stateDir, f.name));
    // As the flasher checks every file by CRC on the board: the copy is the image.
    if (!readFileSync(join(stateDir, f.name)).equals(readFileSync(f.path))) throw new Error(`installImage: ${f.name} in ${stateDir} differs from ${f.path}`);
  }
  writeFileSync(join(stateDir, INIT_FILE), INIT_LUA);
}
