/**
 * Shared set-up for the HIL tests: the tsc build of hil/ (FOBKIT_BUILD
 * honoured) and the fixture image (test/hil/fixtures/echo-app.ts over the
 * real firmware/board code), built once per build tree with TSTL.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, renameSync, rmSync, statSync, readdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BUILD, ROOT, nodeBuild } from "../support/paths.js";

export const FIXTURE_IMAGE = resolve(BUILD, "hil-fixtures", "echo-app.lua");

function newestMtime(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newestMtime(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Build the fixture image unless it is newer than its sources. Safe to run from parallel workers. */
export function buildFixture(): string {
  const sources = Math.max(newestMtime(join(ROOT, "firmware", "board")), newestMtime(join(ROOT, "test", "hil", "fixtures")), newestMtime(join(ROOT, "firmware", "otp")));
  if (existsSync(FIXTURE_IMAGE) && statSync(FIXTURE_IMAGE).mtimeMs >= sources) return FIXTURE_IMAGE;
  const out = mkdtempSync(join(tmpdir(), "hil-fixture-"));
  try {
    execFileSync(join(ROOT, "node_modules", ".bin", "tstl"), ["-p", join(ROOT, "test", "hil", "fixtures", "tsconfig.lua.json"), "--outDir", out], { cwd: ROOT, stdio: "pipe" });
    execFileSync("mkdir", ["-p", resolve(BUILD, "hil-fixtures")]);
    renameSync(join(out, "echo-app.lua"), FIXTURE_IMAGE); // atomic: parallel workers never see half a file
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
  return FIXTURE_IMAGE;
}

export type EmulatorModule = typeof import("../../hil/emulator.js");

export async function loadHil(): Promise<{
  Emulator: EmulatorModule["Emulator"];
  Ds3231: typeof import("../../hil/ds3231.js").Ds3231;
  Max7219: typeof import("../../hil/max7219.js").Max7219;
  FlashStore: typeof import("../../hil/flash.js").FlashStore;
  PtyLink: typeof import("../../hil/pty.js").PtyLink;
  installImage: typeof import("../../hil/install.js").installImage;
}> {
  const emulator = await nodeBuild<EmulatorModule>("hil/emulator.js");
  const ds = await nodeBuild<typeof import("../../hil/ds3231.js")>("hil/ds3231.js");
  const max = await nodeBuild<typeof import("../../hil/max7219.js")>("hil/max7219.js");
  const flash = await nodeBuild<typeof import("../../hil/flash.js")>("hil/flash.js");
  const pty = await nodeBuild<typeof import("../../hil/pty.js")>("hil/pty.js");
  const install = await nodeBuild<typeof import("../../hil/install.js")>("hil/install.js");
  return { Emulator: emulator.Emulator, Ds3231: ds.Ds3231, Max7219: max.Max7219, FlashStore: flash.FlashStore, PtyLink: pty.PtyLink, installImage: install.installImage };
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
