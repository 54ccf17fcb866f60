/**
 * A fobkit process holds seeds, keys and passwords in memory: it turns its
 * core dumps off at start (host/cli/core-dumps.ts), so a crash cannot write
 * them to a core file. The test starts `bank serve` with core dumps allowed
 * (prlimit raises the limit for the child, as a shell with `ulimit -c
 * unlimited` or a service manager's default might) and reads the running
 * process's limits from /proc.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyRing } from "../../host/registry/key-ring.js";
import { NODE_BUILD } from "../support/paths.js";
import { runFobkit } from "./spawn.js";

const MAIN = resolve(NODE_BUILD, "host", "cli", "main.js");
const ENTRY = `const { runCli } = await import(${JSON.stringify(pathToFileURL(MAIN).href)}); process.exitCode = await runCli(process.argv.slice(1));`;
/** "Max core file size" of a live process: [soft, hard], from /proc/<pid>/limits. */
const coreLimit = (pid: number) => {
  const line = readFileSync(`/proc/${pid}/limits`, "utf8").split("\n").find((l) => l.startsWith("Max core file size"))!;
  return line.replace("Max core file size", "").trim().split(/\s+/).slice(0, 2);
};

describe("core dumps", () => {
  let dir: string;
  let kek: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "fobkit-cores-"));
    kek = join(dir, "bank.kek");
    KeyRing.create(kek);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("bank serve, started with core dumps allowed, turns them off for itself (soft and hard limit 0)", async () => {
    // prlimit(1) runs the command in its own process with the limit raised (root here, so the hard limit too).
    const proc = spawn("prlimit", ["--core=unlimited:unlimited", process.execPath, "--input-type=module", "-e", ENTRY, "bank", "serve", "--db", join(dir, "bank.db"), "--kek-file", kek, "--listen", "127.0.0.1:0", "--json"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    proc.stderr!.on("data", (d) => (stderr += d));
    try {
      await new Promise<void>((res, rej) => {
        let out = "";
        const timer = setTimeout(() => rej(new Error("bank serve did not start in 20 s: " + stderr)), 20_000);
        proc.stdout!.on("data", (d) => {
          out += d;
          if (out.includes('"listening"')) {
            clearTimeout(timer);
            res();
          }
        });
        proc.on("exit", (c) => rej(new Error(`bank serve exited ${c}: ${stderr}`)));
      });
      expect(coreLimit(proc.pid!)).toEqual(["0", "0"]);
      expect(stderr).not.toMatch(/core dumps/);
    } finally {
      proc.kill("SIGTERM");
      await new Promise((r) => proc.once("exit", r));
    }
  });

  it("warns, naming the cause and the fix, when it cannot turn them off", async () => {
    // A PATH of one empty directory: no prlimit (node itself is started by its full path).
    const empty = mkdtempSync(join(dir, "path-"));
    const r = await runFobkit(["bank", "tokens", "--db", join(dir, "bank.db")], { PATH: empty });
    expect(r.code).toBe(0);
    expect(r.stderr).toContain("warning: could not turn core dumps off (prlimit (util-linux) is not installed)");
    expect(r.stderr).toContain("ulimit -c 0");
  });
});
