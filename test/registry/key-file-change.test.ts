/**
 * A serving process must notice every change of its key file, also one that leaves the file's inode, mtime and
 * size as they were. An atomic rewrite (temp file, rename) frees the old inode and ext4 hands it to the next file
 * made in the directory; on a filesystem with whole-second timestamps two rewrites within a second (rotate-key
 * --prune: a key added, then one dropped) leave all three as a server last saw them (key-ring.ts, load()). Here
 * the file is rewritten in place (same inode) with bytes of the same length, and its mtime set back exactly.
 */
import { randomBytes } from "node:crypto";
import { closeSync, mkdtempSync, openSync, rmSync, statSync, utimesSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { formatKeyFile, KeyRing } from "../../host/registry/key-ring.js";

const T = 1_800_000_000_000;
/** A whole second, so utimes sets it back exactly (a double of seconds cannot carry every nanosecond). */
const MTIME = 1_700_000_000;

describe("a key file rewritten with the same inode, size and mtime", () => {
  let dir: string;
  let path: string;
  const k1 = { id: "k1", key: randomBytes(32) };
  const k2 = { id: "k2", key: randomBytes(32) };
  const sealedUnderK2 = KeyRing.fromKeys([k2]).seal("SN1", Buffer.from("seed of SN1"));

  beforeEach(() => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(T);
    dir = mkdtempSync(join(tmpdir(), "fobkit-kfchange-"));
    path = join(dir, "bank.kek");
    rewriteInPlace(formatKeyFile([k1]));
  });
  afterEach(() => {
    vi.useRealTimers();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Writes `text` into the file's own inode and sets its mtime back to MTIME. */
  function rewriteInPlace(text: string): void {
    const fd = openSync(path, "w", 0o600); // O_TRUNC on the existing inode
    try {
      writeSync(fd, text);
    } finally {
      closeSync(fd);
    }
    utimesSync(path, MTIME, MTIME);
  }

  /** The rewrite: k2 instead of k1, the same length, the same inode and mtime. */
  function rotateUnseen(): void {
    const before = statSync(path, { bigint: true });
    rewriteInPlace(formatKeyFile([k2]));
    const after = statSync(path, { bigint: true });
    expect([after.ino, after.size, after.mtimeNs], "inode, size and mtime as before").toEqual([before.ino, before.size, before.mtimeNs]);
  }

  it("the sealing key changes at the next look", () => {
    const ring = KeyRing.fromFile(path); // looks at most once a second (recheckMs 1000)
    expect(ring.currentId).toBe("k1");
    rotateUnseen();
    vi.setSystemTime(T + 1000);
    expect(ring.currentId, "the ring seals under the key the file no longer holds").toBe("k2");
  });

  it("a row sealed under the new key opens (the forced look for an unknown key id)", () => {
    const ring = KeyRing.fromFile(path);
    rotateUnseen();
    vi.setSystemTime(T + 1000);
    expect(ring.open("SN1", sealedUnderK2).toString()).toBe("seed of SN1");
  });

  it("between looks the file is not read again: at most one read a second, however many requests", () => {
    const ring = KeyRing.fromFile(path);
    rotateUnseen();
    vi.setSystemTime(T + 999);
    for (let i = 0; i < 100; i++) {
      expect(ring.currentId).toBe("k1");
      // A row under a key the ring lacks forces a look, but with the stat unchanged no read within the second.
      expect(() => ring.open("SN1", sealedUnderK2)).toThrow(/does not hold/);
    }
    vi.setSystemTime(T + 1000);
    expect(ring.currentId).toBe("k2");
  });
});
