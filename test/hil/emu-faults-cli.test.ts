/** `fobkit emu --fault NAME`: the faults HIL runs use, named and documented in --help, checked before anything starts. */
import { describe, expect, it } from "vitest";
import { FAULT_NAMES } from "../../hil/faults.js";
import { fobkit } from "../station/cli-io.js";
import { tempDir } from "./support.js";

describe("fobkit emu --fault", () => {
  it("--help names every fault and what it models", async () => {
    const r = await fobkit(["emu", "--help"]);
    expect(r.code).toBe(0);
    for (const f of FAULT_NAMES) expect(r.stdout).toMatch(new RegExp(`^  ${f} +\\S`, "m"));
    expect(r.stdout).toMatch(/--fault NAME/);
  });

  it("an unknown fault is a usage error naming it and the known ones; nothing starts", async () => {
    const dir = tempDir("emu-fault-cli-");
    const r = await fobkit(["emu", "--pty", `${dir}/tty`, "--state", `${dir}/state`, "--fault", "i2c-timeout,disk-on-fire"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--fault "disk-on-fire" is not a fault; known: i2c-timeout, no-spi/);
    expect(r.stdout).toBe("");
  });
});
