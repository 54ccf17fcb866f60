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

describe("fobkit emu --spiffs-worn", () => {
  it("starts the board on a worn SPIFFS: the page map it leaves in DIR has at most 3 blocks wholly free, where every write collects garbage first", async () => {
    const { readFileSync } = await import("node:fs");
    const { SpiffsPageMap, SPIFFS_PAGE_MAP_FILE } = await import("../../hil/spiffs-gc.js");
    const { loadNodemcuBuild } = await import("../../hil/nodemcu-build.js");
    const { IMAGE } = await import("../support/paths.js");
    const dir = tempDir("emu-worn-cli-");
    const { runEmuCli } = await import("../../hil/cli.js");
    const { PassThrough } = await import("node:stream");
    // The board runs until its stdin ends: end it once it is ready.
    const stdin = new PassThrough();
    const out: string[] = [];
    const err: string[] = [];
    const code = await runEmuCli(["--pty", `${dir}/tty`, "--state", `${dir}/state`, "--image", IMAGE, "--spiffs-worn"], {
      stdout: (l) => {
        out.push(l);
        if (l.includes('"ready"')) stdin.end();
      },
      stderr: (l) => err.push(l),
      stdin,
    });
    expect(err).toEqual([]);
    expect(code).toBe(0);
    expect(out.some((l) => l.includes('"ready"'))).toBe(true);
    const map = SpiffsPageMap.fromJSON(readFileSync(`${dir}/state/${SPIFFS_PAGE_MAP_FILE}`, "utf8"), loadNodemcuBuild().spiffs.blocks)!;
    expect(map.stats().freeBlocks).toBeLessThanOrEqual(3);
    // The image is there as installed: the worn map holds its files.
    expect(map.names()).toContain("init.lua");
    expect(map.names()).toContain("fobkit.lc");
  }, 60_000);

  it("on an empty DIR with nothing to wear it says so and does not start", async () => {
    const dir = tempDir("emu-worn-cli-");
    const r = await fobkit(["emu", "--pty", `${dir}/tty`, "--state", `${dir}/state`, "--blank", "--spiffs-worn"]);
    expect(r.code).toBe(3);
    expect(r.stderr).toMatch(/SPIFFS wear: the partition holds no file to write again/);
    expect(r.stdout).toBe("");
  });
});
