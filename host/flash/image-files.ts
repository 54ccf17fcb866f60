/**
 * The files of the keyfob's image, as `make firmware` writes them
 * (tools/build-firmware.ts, tools/split-bundle.ts) and every install puts them
 * on a board (host/flash/flasher.ts, hil/install.ts, the tests' and benches'
 * boards): each uploaded and CRC-checked. init.lua boots the core
 * (init-lua.ts BOOT_FILE); the core loads the others (tools/split-bundle.ts).
 */
import { basename, dirname, join } from "node:path";

/**
 * Modules of the image that go to files of their own, loaded by the core's
 * require on first use: the provisioning commands, which a locked keyfob
 * never loads, with the board drivers only they use, and SHA-256, which only a SHA-256 record needs (issue 10 item 5).
 */
export const LAZY_FILES: Readonly<Record<string, string>> = {
  "firmware.app.provision": "fobkit-prov",
  // The board's write side (firmware/board/board.ts ProvisioningBoard): only provisioning writes.
  "firmware.board.nodemcu-provisioning-board": "fobkit-prov",
  "firmware.otp.sha256": "fobkit-sha256",
};

/** The core's first file, the loader alone: what init.lua starts; it loads the others. */
export const CORE_FILE = "fobkit.lua";
/**
 * The core in files of about equal size (tools/split-bundle.ts), each small
 * enough for node.compile on the board: compiling holds a whole file's
 * prototypes in RAM, about 8 bytes per byte of source (hil/nodemcu/node.ts
 * COMPILE_HEAP_PER_SOURCE_BYTE; bench/results/memory.json compilePeakKB).
 * Three module files after the loader: each further file costs the install
 * its own round trips (CRC, open, close, rename, compile, check), and a
 * fourth lowered no peak once the image lost its unused exports (72.8 KB
 * with three, 72.9 with four; compiling the largest peaks at 78.8 KB, in a
 * REPL power-on of its own).
 */
export const CORE_FILES: readonly string[] = [CORE_FILE, "fobkit-2.lua", "fobkit-3.lua", "fobkit-4.lua"];
export const PROV_FILE = "fobkit-prov.lua";

/** Every source file of the image, core first. */
export const IMAGE_FILES: readonly string[] = [...CORE_FILES, ...new Set(Object.values(LAZY_FILES).map((b) => `${b}.lua`))];

/** NAME.lua -> NAME.lc: what node.compile writes (node.c:733-735). */
export function bytecodeName(source: string): string {
  if (!source.endsWith(".lua")) throw new RangeError(`not a .lua file: ${source}`);
  return source.slice(0, -4) + ".lc";
}

/**
 * The image's files on the host, from the path of its core (build/firmware/fobkit.lua):
 * the others sit beside it; name is the name on the board. A core under
 * another name is a one-file image (the emulator tests' fixture apps) and
 * is installed alone, as fobkit.lua.
 */
export function imageFilePaths(corePath: string): { name: string; path: string }[] {
  if (basename(corePath) !== CORE_FILE) return [{ name: CORE_FILE, path: corePath }];
  return IMAGE_FILES.map((name) => ({ name, path: join(dirname(corePath), name) }));
}
