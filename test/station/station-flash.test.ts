/**
 * `fobkit station --flash`: factory-fresh boards (NodeMCU REPL, nothing in
 * flash) go through firmware install and provisioning in one pass; a board
 * that already runs the firmware is provisioned without a second install.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { EmuProcess } from "../../hil/emu-process.js";
import { ROOT } from "../support/paths.js";

const FOBKIT = join(ROOT, "bin", "fobkit.js");
const dir = mkdtempSync(join(tmpdir(), "fobkit-station-flash-"));
const boards: EmuProcess[] = [];
const stations: ChildProcess[] = [];

async function board(name: string, blank: boolean): Promise<string> {
  const b = new EmuProcess({ fobkit: FOBKIT, pty: join(dir, `tty-${name}`), state: join(dir, name), blank });
  boards.push(b);
  await b.ready();
  return b.pty;
}

afterAll(async () => {
  // A station still running (a failed or timed-out test) must not outlive the suite.
  for (const p of stations) if (p.exitCode === null) p.kill("SIGTERM");
  await Promise.all(boards.map((b) => b.stop()));
  rmSync(dir, { recursive: true, force: true });
});

test("two blank boards and one with firmware: all three end locked and recorded good", async () => {
  const ports = await Promise.all([board("blank1", true), board("blank2", true), board("ready", false)]);
  const run = () =>
    new Promise<{ status: number | null; out: string; err: string }>((resolve) => {
      const p: ChildProcess = spawn(process.execPath, [FOBKIT, "station", "--factory", join(dir, "line.sqlite"), "--line", "1", "--ports", ports.join(","), "--count", "3", "--flash", "--json"]);
      stations.push(p);
      let out = "";
      let err = "";
      p.stdout!.on("data", (d) => (out += d));
      p.stderr!.on("data", (d) => (err += d));
      p.on("close", (status) => resolve({ status, out, err }));
    });
  const r = await run();
  expect(r.status, r.err).toBe(0);
  const results = r.out.trim().split("\n").map((l) => JSON.parse(l));
  expect(results.map((x) => x.status)).toEqual(["good", "good", "good"]);
  for (const port of ports) {
    const info = spawnSync(process.execPath, [FOBKIT, "info", "--port", port, "--json"], { encoding: "utf8" });
    expect(info.status, info.stderr).toBe(0);
    expect(JSON.parse(info.stdout).state).toBe("locked");
  }
  // The progress lines show which boards needed the firmware.
  expect(r.err).toMatch(/installing firmware/);
}, 240_000);
