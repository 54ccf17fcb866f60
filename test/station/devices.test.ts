/** `fobkit devices`: named ports (an emulator's PTY has no USB id) with --probe reading state and serial. */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { attachKeyfob, type EmulatedKeyfob } from "./emulated-keyfob.js";
import { fobkit } from "./cli-io.js";

let dir: string;
let fob: EmulatedKeyfob;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-dev-"));
  fob = await attachKeyfob(join(dir, "ttyE"));
});

afterAll(async () => {
  await fob.unplug();
  rmSync(dir, { recursive: true, force: true });
});

describe("fobkit devices", () => {
  it("lists a named port that exists, skips one that does not, and probes state and serial", async () => {
    const plain = await fobkit(["devices", "--json", "--port", fob.path, "--port", join(dir, "absent")]);
    expect(plain.code).toBe(0);
    const rows = JSON.parse(plain.stdout);
    expect(rows.filter((r: any) => r.named)).toEqual([{ path: fob.path, kind: "serial", named: true }]);

    const probed = JSON.parse((await fobkit(["devices", "--json", "--probe", "--port", fob.path])).stdout);
    expect(probed.find((r: any) => r.path === fob.path)).toMatchObject({ state: "blank", serial: "", hardwareId: expect.stringMatching(/^[0-9a-f]{16}$/) });

    expect((await fobkit(["provision", "--port", fob.path, "--factory", join(dir, "f.sqlite"), "--line", "1"])).code).toBe(0);
    const text = await fobkit(["devices", "--probe", "--port", fob.path]);
    expect(text.stdout).toMatch(new RegExp(`^${fob.path}  serial  \\(named\\)  locked FK\\d{14}$`, "m"));
  });
});
