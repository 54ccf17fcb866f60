/**
 * The bank's key-encryption-key file must reach the disk before anything is
 * sealed under a key it holds: rows sealed under a key a power cut then
 * takes away can never be opened again. KeyRing writes a temp file and
 * renames it over the key file; the temp file's data must be fsynced before
 * the rename, and the directory after it (fsync(2) leaves the new entry to
 * the directory's own fsync). Read from the process's system calls with
 * strace, as test/station/factory-record.test.ts does for the factory's key.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { NODE_BUILD } from "../support/paths.js";

describe("the bank's key file reaches the disk", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "fobkit-kek-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Runs `body` (with KeyRing and `path` in scope) under strace; returns the traced calls, pid prefixes removed. */
  function traced(body: string): string[] {
    const trace = join(dir, "strace.log");
    const script = `const { KeyRing } = await import(${JSON.stringify(join(NODE_BUILD, "host/registry/key-ring.js"))});
      const path = ${JSON.stringify(join(dir, "bank.kek"))};
      ${body}`;
    const r = spawnSync("strace", ["-f", "-qq", "-e", "trace=openat,fsync,fdatasync,close,rename,renameat,renameat2", "-o", trace, process.execPath, "--input-type=module", "-e", script], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    return readFileSync(trace, "utf8").split("\n").map((l) => l.replace(/^\d+\s+/, ""));
  }

  /** Each rename onto the key file: its temp file's data fsynced before it, the directory fsynced after it. */
  function expectDurableRenames(calls: string[], renames: number): void {
    const kek = join(dir, "bank.kek");
    const renameAt = calls.map((l, i) => (/^rename(at2?)?\(/.test(l) && l.includes(`"${kek}"`) ? i : -1)).filter((i) => i >= 0);
    expect(renameAt).toHaveLength(renames);
    for (const at of renameAt) {
      const tmp = /"([^"]+\.kek\.tmp)"/.exec(calls[at])![1];
      const open = calls.slice(0, at).map((l, i) => (l.startsWith("openat(") && l.includes(`"${tmp}"`) && !/= -1/.test(l) ? i : -1)).filter((i) => i >= 0).pop()!;
      expect(open, `no open of ${tmp}`).toBeGreaterThanOrEqual(0);
      const fd = /= (\d+)$/.exec(calls[open])![1];
      const synced = calls.slice(open + 1, at).findIndex((l) => new RegExp(`^f(data)?sync\\(${fd}[ )]`).test(l));
      expect(synced, `the temp file ${tmp} was renamed without an fsync of its data`).toBeGreaterThanOrEqual(0);
      const dirOpen = calls.slice(at + 1).findIndex((l) => l.startsWith("openat(") && l.includes(`"${dir}"`) && !/= -1/.test(l));
      expect(dirOpen, "the directory was never opened to be fsynced after the rename").toBeGreaterThanOrEqual(0);
      const dirFd = /= (\d+)$/.exec(calls[at + 1 + dirOpen])![1];
      expect(calls.slice(at + 1 + dirOpen).some((l) => new RegExp(`^fsync\\(${dirFd}[ )]`).test(l)), "the directory was not fsynced after the rename").toBe(true);
    }
  }

  it("when it is made", () => {
    expectDurableRenames(traced("KeyRing.create(path);"), 1);
  });

  it("when a key is added for a rotation", () => {
    expectDurableRenames(traced("const ring = KeyRing.create(path); ring.addNewestKey();"), 2);
  });
});
