/**
 * FOBKIT_CLOCK_OFFSET (host/clock.ts) moves every fobkit command's clock
 * for demos, the station's included: the keyfob's clock is set from the
 * shifted time and locked so, for good. Left over on a station PC, it makes
 * keyfobs the bank finds a day off; provision and station say so on stderr
 * before they touch a keyfob. Emulated keyfobs on real PTYs.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attachKeyfob, type EmulatedKeyfob } from "./emulated-keyfob.js";
import { fobkit } from "./cli-io.js";

const DAY = 86_400;
let dir: string;
const fobs: EmulatedKeyfob[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-clkoff-"));
});

afterAll(async () => {
  while (fobs.length) await fobs.pop()!.unplug();
  rmSync(dir, { recursive: true, force: true });
});

describe("FOBKIT_CLOCK_OFFSET on a station", () => {
  for (const command of ["provision", "station"] as const) {
    it(`${command} warns that the keyfob's clock is set ${DAY} s ahead of UTC, for good`, async () => {
      const fob = await attachKeyfob(join(dir, `tty-${command}`));
      fobs.push(fob);
      const args = command === "provision" ? ["--port", fob.path] : ["--ports", fob.path, "--count", "1", "--poll-ms", "20"];
      const r = await fobkit([command, "--factory", join(dir, `${command}.sqlite`), "--line", "2", "--json", ...args], { FOBKIT_CLOCK_OFFSET: String(DAY) });
      expect(r.code, r.stderr).toBe(0);
      expect(JSON.parse(r.stdout.trim())).toMatchObject({ status: "good" });
      expect(r.stderr).toContain(`fobkit: warning: FOBKIT_CLOCK_OFFSET=${DAY} sets each keyfob's clock ${DAY} s ahead of UTC, and a locked keyfob's clock cannot be set again; this is for demos: unset it on a production station`);
      // What it warns of: the locked keyfob's clock is a day ahead.
      const info = JSON.parse((await fobkit(["info", "--port", fob.path, "--json"])).stdout);
      expect(info.state).toBe("locked");
      expect(Math.abs(info.clock - (Math.floor(Date.now() / 1000) + DAY))).toBeLessThan(60);
    });
  }

  it("says nothing without it", async () => {
    const fob = await attachKeyfob(join(dir, "tty-plain"));
    fobs.push(fob);
    const r = await fobkit(["provision", "--port", fob.path, "--factory", join(dir, "plain.sqlite"), "--line", "2", "--json"], { FOBKIT_CLOCK_OFFSET: "" });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).not.toMatch(/FOBKIT_CLOCK_OFFSET/);
  });
});
