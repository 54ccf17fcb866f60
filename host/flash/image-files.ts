/**
 * The files of the keyfob's image, as `make firmware` writes them
 * (tools/build-firmware.ts, tools/split-bundle.ts) and every install puts them
 * on a board (host/flash/flasher.ts, hil/install.ts, the tests' and benches'
 * boards): each uploaded and CRC-checked. init.lua boots the core
 * (init-lua.ts BOOT_FILE); the core loads the others (tools/split-bundle.ts).
 */
import { dirname, join } from "node:path";

/**
 * Modules of the image that go to files of their own, loaded by the core's
 * require on first use: the provisioning commands, which a locked keyfob
 * never loads (issue 10 item 5).
 */
export const LAZY_FILES: Readonly<Record<string, string>> = { "firmware.app.provision": "fobkit-prov" };

/** The core: what init.lua starts. */
export const CORE_FILE = "fobkit.lua";
export const PROV_FILE = "fobkit-prov.lua";

/** Every source file of the image, core first. */
export const IMAGE_FILES: readonly string[] = [CORE_FILE, ...new Set(Object.values(LAZY_FILES).map((b) => `${b}.lua`))];

/** NAME.lua -> NAME.lc: what node.compile writes (node.c:733-735). */
export function bytecodeName(source: string): string {
  if (!source.endsWith(".lua")) throw new RangeError(`not a .lua file: ${source}`);
  return source.slice(0, -4) + ".lc";
}

/**
 * The image's files on the host, from the path of its core (build/firmware/fobkit.lua):
 * the others sit beside it. name is the name on the board.
 */
export function imageFilePaths(corePath: string): { name: string; path: string }[] {
  return IMAGE_FILES.map((name) => ({ name, path: name === CORE_FILE ? corePath : join(dirname(corePath), name) }));
}
