/**
 * Put a built image into an emulator state directory the way it goes onto a
 * real board: the bundle as fobkit.lua and an init.lua that NodeMCU runs at
 * boot (Kconfig LUA_INIT_STRING "@init.lua").
 */
import { copyFileSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { INIT_SOURCE } from "../host/flash/init-lua.js";

export const IMAGE_FILE = "fobkit.lua";
export const INIT_FILE = "init.lua";
/** The boot script, fail-closed (host/flash/init-lua.ts, shared with fobkit flash). */
export const INIT_LUA = INIT_SOURCE;

export function installImage(stateDir: string, imagePath: string): void {
  if (!existsSync(imagePath)) throw new Error(`image not found: ${imagePath} (build it first: make firmware)`);
  mkdirSync(stateDir, { recursive: true });
  copyFileSync(imagePath, join(stateDir, IMAGE_FILE));
  writeFileSync(join(stateDir, INIT_FILE), INIT_LUA);
}
