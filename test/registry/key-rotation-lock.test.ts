/**
 * Two key changes at once must never lose a key. Every `fobkit bank rotate-key` (also --stage, --prune) reads the
 * whole key file, changes it and writes it back; two at once on one file used to both read the old file, and the
 * later rename dropped the other's new key while that process went on sealing rows under it: seeds nobody could
 * open again. Now a run holds the key file's lock (FILE.lock, created O_EXCL) and the database's rotation lease for
 * its whole read-change-reseal, and a second run is refused at once, naming the holder.
 *
 * The interleaving is forced on real CLI processes with no hook in the product: process A runs under strace, whose
 * fault injection (strace(1), "-e inject=SET:delay_enter=DELAY") holds A's rename of its temp file over the key file
 * for a few seconds; A has read the file by then (the temp file exists). B runs meanwhile, unhindered. Afterwards
 * every row's seed must open with the final key file(s) and the one refused must have been refused cleanly.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { rotateUnderLock } from "../../host/cli/bank-keys.js";
import type { Database } from "../../host/registry/database.js";
import { KeyFileLock, KeyFileLockedError, KeyRing, newLockHolder, parseKeyFile } from "../../host/registry/key-ring.js";
import { takeRotationLease } from "../../host/registry/rotation-lock.js";
import { Registry } from "../../host/registry/registry.js";
import { processOwner } from "../../host/process-owner.js";
import { lastJson, runFobkit } from "../server/spawn.js";
import { ENGINES, freshDb } from "./support.js";

const ACTOR = { name: "staff:test", source: "cli" };
const ROWS = 12;
/**
 * How long strace holds A's rename: longer than B needs to start, rotate and exit. On a loaded machine B can take
 * longer (it once did, in a run beside five other test files), so B's end is checked to fall inside the hold
 * (heldNow, forced), and only that check is retried, with the hold doubled each time (FORCED).
 */
const HOLD_US = 4_000_000;
let holdUs = HOLD_US;
const NOT_FORCED = "interleaving not forced";
/** Retry a race test only when the interleaving it forces did not happen (never on a wrong outcome). */
const FORCED = { timeout: 120_000, retry: { count: 2, condition: new RegExp(NOT_FORCED) } };

type Run = Awaited<ReturnType<typeof runFobkit>>;

/** The CLI as a real process; with holdRename, under strace holding its renames holdUs (the interleaving's hold). */
function run(args: string[], env: NodeJS.ProcessEnv, opts: { holdRename?: boolean } = {}): Promise<Run> {
  const strace = ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=rename,renameat,renameat2", "-e", `inject=rename,renameat,renameat2:delay_enter=${holdUs}`];
  return runFobkit(args, env, opts.holdRename ? strace : []);
}

/** Whether A's rename is still held now: A's temp file is still there. */
function heldNow(dir: string): boolean {
  return readdirSync(dir).some((f) => f.endsWith(".kek.tmp"));
}

/**
 * Fails the attempt as not forced when B did not end inside A's hold (B ran after A, so the test forced nothing);
 * FORCED retries only that, with the hold doubled.
 */
function forced(heldWhenBEnded: boolean): void {
  if (heldWhenBEnded) return;
  holdUs *= 2;
  throw new Error(`${NOT_FORCED}: B ended after A's rename, held ${holdUs / 2e6} s; the next try holds it ${holdUs / 1e6} s`);
}

/** Waits until A has read the key file and written its temp file (its rename is then held by strace). */
async function tempFileIn(dir: string, a: Promise<Run>): Promise<void> {
  let done = false;
  void a.then(() => (done = true));
  for (let i = 0; i < 3000 && !done; i++) {
    if (readdirSync(dir).some((f) => f.endsWith(".kek.tmp"))) return;
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new Error(`process A never wrote its temp key file: ${JSON.stringify(await a)}`);
}

const token = (serial: string, secret: Buffer) => ({ serial, manufacturer: "fobkit", algorithm: "SHA1" as const, digits: 8, period: 60, t0: 0, secret });
const json = (r: Run) => lastJson(r.stdout);

describe.each(ENGINES)("two key changes at once on $name", (engine) => {
  let db: Database;
  let drop: () => Promise<void>;
  let dir: string;
  let file: string;
  let env: NodeJS.ProcessEnv;
  const seeds = new Map<string, Buffer>();

  beforeEach(async () => {
    let url: string;
    ({ db, url, drop } = await freshDb(engine));
    dir = mkdtempSync(join(tmpdir(), "fobkit-rotlock-"));
    file = join(dir, "bank.kek");
    KeyRing.create(file);
    env = { FOBKIT_BANK_DB: url, FOBKIT_BANK_KEK_FILE: file, USER: "alice" };
    seeds.clear();
    const reg = new Registry(db, { keys: KeyRing.fromFile(file) });
    const tokens = Array.from({ length: ROWS }, (_, i) => token(`RL${String(i).padStart(3, "0")}`, randomBytes(20)));
    for (const t of tokens) seeds.set(t.serial, t.secret);
    await reg.register(tokens, ACTOR, "test");
  });
  afterEach(async () => {
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Every token's seed and the registry's secrets open with the key file at `path` as it is now. */
  async function everyRowOpensWith(path: string): Promise<void> {
    const ring = KeyRing.fromFile(path);
    const rows = await db.all<{ serial: string; kek_id: string; seed: Uint8Array }>("SELECT serial, kek_id, seed FROM tokens ORDER BY serial");
    expect(rows).toHaveLength(ROWS);
    const unopenable = rows.filter((r) => {
      try {
        return !ring.open(r.serial, { kekId: r.kek_id, blob: Buffer.from(r.seed) }).equals(seeds.get(r.serial)!);
      } catch {
        return true;
      }
    });
    expect(unopenable.map((r) => `${r.serial} under ${r.kek_id}`), `rows the key file ${path} (keys ${ring.ids.join(", ")}) cannot open`).toEqual([]);
    for (const s of await db.all<{ name: string; kek_id: string; sealed: Uint8Array }>("SELECT name, kek_id, sealed FROM registry_secrets")) {
      expect(() => ring.openSecret(s.name, { kekId: s.kek_id, blob: Buffer.from(s.sealed) }), `registry secret ${s.name}`).not.toThrow();
    }
  }

  /**
   * A runs `a` with its rename held; once A has read the file (its temp file exists), B runs `b` (with `bEnv`, default
   * the same) to its end. Fails as not forced (retried by FORCED) unless B ended inside A's hold. Returns both runs.
   */
  async function race(a: string[], b: string[], bEnv: NodeJS.ProcessEnv = env): Promise<{ ra: Run; b: Run }> {
    const pa = run([...a, "--json"], env, { holdRename: true });
    await tempFileIn(dir, pa);
    const rb = await run([...b, "--json"], bEnv);
    const held = heldNow(dir);
    const ra = await pa;
    forced(held);
    return { ra, b: rb };
  }

  function refusedAsBusy(r: Run): void {
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toMatch(/refused: rotation_in_progress: .*locked by bank rotate-key \(pid \d+ on \S+, since \d{4}-/);
    expect(json(r)).toMatchObject({ ok: false, error: { code: "rotation_in_progress" } });
  }

  it("rotate-key while another rotate-key is between reading and writing the file: the second is refused, no key lost", FORCED, async () => {
    const { ra, b } = await race(["bank", "rotate-key"], ["bank", "rotate-key"]);
    await everyRowOpensWith(file);
    expect(ra.code, ra.stderr).toBe(0);
    refusedAsBusy(b);
    const kA = json(ra).kekId as string;
    expect(parseKeyFile(readFileSync(file, "utf8"), file)[0].id).toBe(kA);
    expect(Object.keys(json(ra).after)).toEqual([kA]);
    expect(existsSync(file + ".lock"), "the lock file is removed when the rotation ends").toBe(false);
  });

  it("rotate-key while --stage is between reading and writing the file: the rotation is refused, its key never lost", FORCED, async () => {
    const { ra, b } = await race(["bank", "rotate-key", "--stage"], ["bank", "rotate-key"]);
    await everyRowOpensWith(file);
    expect(ra.code, ra.stderr).toBe(0);
    refusedAsBusy(b);
    const keys = parseKeyFile(readFileSync(file, "utf8"), file);
    expect(keys[0]).toMatchObject({ id: json(ra).staged, staged: true });
  });

  it("rotate-key while --prune is dropping retired keys from the file: the rotation is refused, its key never lost", FORCED, async () => {
    // A rotation done, so the file holds a retired key for --prune to drop.
    const first = await run(["bank", "rotate-key", "--json"], env);
    expect(first.code, first.stderr).toBe(0);
    const { ra, b } = await race(["bank", "rotate-key", "--no-new-key", "--prune"], ["bank", "rotate-key"]);
    await everyRowOpensWith(file);
    expect(ra.code, ra.stderr).toBe(0);
    refusedAsBusy(b);
    expect(parseKeyFile(readFileSync(file, "utf8"), file).map((k) => k.id)).toEqual([json(first).kekId]);
  });

  it("two servers, each with its own copy of the key file, rotate at once: the database refuses the second", FORCED, async () => {
    const other = join(dir, "other.kek");
    copyFileSync(file, other);
    const { ra, b } = await race(["bank", "rotate-key"], ["bank", "rotate-key"], { ...env, FOBKIT_BANK_KEK_FILE: other });
    expect(ra.code, ra.stderr).toBe(0);
    refusedAsBusy(b);
    expect(b.stderr).toMatch(/another server/);
    await everyRowOpensWith(file);
    // The refused run changed nothing: its copy still holds only the old key, and nothing was sealed under a key of it alone.
    expect(parseKeyFile(readFileSync(other, "utf8"), other)).toHaveLength(1);
  });

  it("two databases sharing one key file rotate at once: the key file's lock refuses the second", FORCED, async () => {
    // The databases' leases cannot see each other; only the key file's lock keeps the two runs apart.
    const second = await freshDb(engine);
    try {
      const reg2 = new Registry(second.db, { keys: KeyRing.fromFile(file) });
      const other = token("RL900", randomBytes(20));
      await reg2.register([other], ACTOR, "test");
      const { ra, b } = await race(["bank", "rotate-key"], ["bank", "rotate-key"], { ...env, FOBKIT_BANK_DB: second.url });
      await everyRowOpensWith(file);
      const row = (await second.db.get<{ kek_id: string; seed: Uint8Array }>("SELECT kek_id, seed FROM tokens WHERE serial = 'RL900'"))!;
      const ring = KeyRing.fromFile(file);
      expect(ring.ids, `the second database's row is under ${row.kek_id}`).toContain(row.kek_id);
      expect(ring.open("RL900", { kekId: row.kek_id, blob: Buffer.from(row.seed) }).equals(other.secret)).toBe(true);
      expect(ra.code, ra.stderr).toBe(0);
      refusedAsBusy(b);
      expect(b.stderr).toContain(`the key file ${file} is locked`);
    } finally {
      await second.drop();
    }
  });

  it("a lock left by a run that died is named, refused, and cleared with --clear-lock", async () => {
    // A run killed mid-way (SIGKILL, power cut) leaves its lock: here one of a pid that is not running.
    const dead = spawn(process.execPath, ["-e", ""]);
    await new Promise((r) => dead.on("close", r));
    const owner = processOwner()!.replace(/:\d+:(\d+)$/, `:${dead.pid}:$1`);
    const holder = { token: "0123456789abcdef0123", pid: dead.pid, host: hostname(), owner, since: "2026-11-30T10:00:00.000Z", command: "bank rotate-key" };
    writeFileSync(file + ".lock", JSON.stringify(holder) + "\n", { mode: 0o600 });
    await db.run("INSERT INTO key_rotation_lease (id, token, holder, taken_at) VALUES (1, ?, ?, ?)", [holder.token, JSON.stringify(holder), Date.now()]);
    const before = readFileSync(file, "utf8");
    const r = await run(["bank", "rotate-key", "--json"], env);
    refusedAsBusy(r);
    expect(r.stderr).toContain(`pid ${dead.pid} no longer runs on this host`);
    expect(r.stderr).toContain(`--clear-lock ${holder.token}`);
    expect(readFileSync(file, "utf8")).toBe(before);

    // A wrong id clears nothing.
    const wrong = await run(["bank", "rotate-key", "--clear-lock", "ffffffffffffffffffff"], env);
    expect(wrong.code, wrong.stderr).toBe(1);
    expect(existsSync(file + ".lock")).toBe(true);

    // The key file's lock alone gone, the database's lease still refuses, naming the same dead run.
    rmSync(file + ".lock");
    const byLease = await run(["bank", "rotate-key", "--json"], env);
    refusedAsBusy(byLease);
    expect(byLease.stderr).toContain(`--clear-lock ${holder.token}`);
    writeFileSync(file + ".lock", JSON.stringify(holder) + "\n", { mode: 0o600 });

    const cleared = await run(["bank", "rotate-key", "--clear-lock", holder.token, "--json"], env);
    expect(cleared.code, cleared.stderr).toBe(0);
    expect(json(cleared)).toMatchObject({ cleared: { keyFileLock: true, databaseLease: true } });
    expect(existsSync(file + ".lock")).toBe(false);
    expect(await db.get("SELECT token FROM key_rotation_lease")).toBeUndefined();
    const again = await run(["bank", "rotate-key", "--json"], env);
    expect(again.code, again.stderr).toBe(0);
    await everyRowOpensWith(file);
  }, 60_000);

  it("a run whose lock and lease an operator cleared (its holder on another host) stops before its next step", async () => {
    // R1 (rotate-key --prune) runs in one container; from another, an operator clears R1's lock and lease on their word
    // (--clear-lock: a holder on another host cannot be judged) and starts R2, which adds K3 and re-seals under it.
    // R1 must not go on to prune and rewrite the file under R2's lock.
    const io = { stdout: new PassThrough(), stderr: new PassThrough(), stdin: new PassThrough(), env: {}, signal: new AbortController().signal };
    const reg = new Registry(db, { keys: KeyRing.fromFile(file) });
    let k3 = "";
    let r2: { release(): Promise<void> } | undefined;
    let r2Lock: KeyFileLock | undefined;
    const realReseal = reg.resealAll.bind(reg);
    vi.spyOn(reg, "resealAll").mockImplementationOnce(async (actor) => {
      const r = await realReseal(actor);
      rmSync(file + ".lock");
      await db.run("DELETE FROM key_rotation_lease");
      const ring2 = KeyRing.fromFile(file);
      const h2 = newLockHolder("bank rotate-key");
      r2Lock = ring2.lock(h2);
      r2 = await takeRotationLease(db, h2, file);
      k3 = ring2.addNewestKey();
      return r;
    });
    const prune = vi.spyOn(reg, "pruneRetiredKeys");
    await expect(rotateUnderLock({ prune: true }, db, reg, ACTOR, io)).rejects.toMatchObject({
      code: "rotation_lock_lost",
      message: expect.stringMatching(/rotation lease, taken by this run \(bank rotate-key .*\), was cleared .* held now by bank rotate-key/),
    });
    expect(prune).not.toHaveBeenCalled();
    expect(parseKeyFile(readFileSync(file, "utf8"), file)[0].id).toBe(k3);
    // R1's ending left R2's lock and lease alone.
    expect(JSON.parse(readFileSync(file + ".lock", "utf8")).token).toBe(r2Lock!.holder.token);
    expect(await db.get("SELECT token FROM key_rotation_lease")).toEqual({ token: r2Lock!.holder.token });
    await r2!.release();
    r2Lock!.release();
  });

  it("a live holder's lock is never cleared", async () => {
    const holder = { token: "abcdefabcdefabcdefab", pid: process.pid, host: hostname(), owner: processOwner(), since: new Date().toISOString(), command: "bank rotate-key" };
    writeFileSync(file + ".lock", JSON.stringify(holder) + "\n", { mode: 0o600 });
    const r = await run(["bank", "rotate-key", "--clear-lock", holder.token], env);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stderr).toContain(`pid ${process.pid}`);
    expect(r.stderr).toMatch(/is running/);
    expect(existsSync(file + ".lock")).toBe(true);
  });
});

describe("the key file's lock", () => {
  let dir: string;
  let file: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "fobkit-kflock-"));
    file = join(dir, "bank.kek");
    KeyRing.create(file);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("refuses every change of another ring while one holds it, and changes nothing", () => {
    const a = KeyRing.fromFile(file);
    const b = KeyRing.fromFile(file);
    const before = readFileSync(file, "utf8");
    const lock = a.lock(newLockHolder("bank rotate-key"))!;
    for (const change of [() => b.addNewestKey(), () => b.stageKey(), () => b.dropKeys(b.ids)]) {
      expect(change).toThrow(KeyFileLockedError);
      expect(change).toThrow(new RegExp(`locked by bank rotate-key \\(pid ${process.pid} on `));
    }
    expect(() => b.lock(newLockHolder("bank rotate-key"))).toThrow(/running on this key file; run this again once it has finished/);
    expect(readFileSync(file, "utf8")).toBe(before);
    // The holder's own changes go on under it.
    const id = a.addNewestKey();
    expect(existsSync(file + ".lock")).toBe(true);
    lock.release();
    expect(existsSync(file + ".lock")).toBe(false);
    expect(b.addNewestKey()).not.toBe(id);
    expect(parseKeyFile(readFileSync(file, "utf8"), file)).toHaveLength(3);
  });

  it("re-reads the file when taken, whatever its last look saw", () => {
    const a = KeyRing.fromFile(file, { recheckMs: 3_600_000 });
    expect(a.ids).toHaveLength(1); // its throttled look, now
    const added = KeyRing.fromFile(file).addNewestKey();
    expect(a.ids).not.toContain(added); // the throttled look has not come round yet
    a.lock(newLockHolder("bank rotate-key"))!.release();
    expect(a.ids[0]).toBe(added);
  });

  it("a release leaves a lock that is not its own (cleared, then taken by another run) in place", () => {
    const a = KeyRing.fromFile(file);
    const lock = a.lock(newLockHolder("bank rotate-key"))!;
    rmSync(file + ".lock");
    const b = KeyRing.fromFile(file).lock(newLockHolder("bank rotate-key"))!;
    lock.release();
    expect(existsSync(file + ".lock")).toBe(true);
    b.release();
    expect(existsSync(file + ".lock")).toBe(false);
  });

  it("a ring whose lock was cleared (and taken by another run) writes nothing", () => {
    const a = KeyRing.fromFile(file);
    a.lock(newLockHolder("bank rotate-key"));
    rmSync(file + ".lock"); // an operator's --clear-lock
    const before = readFileSync(file, "utf8");
    expect(() => a.addNewestKey()).toThrow(/lock, taken by this run \(bank rotate-key .*\), was cleared .* no run holds it now: stopped, the file was not written/);
    const b = KeyRing.fromFile(file);
    const lockB = b.lock(newLockHolder("bank rotate-key"))!;
    for (const change of [() => a.addNewestKey(), () => a.stageKey(), () => a.dropKeys(a.ids)]) {
      expect(change).toThrow(KeyFileLockedError);
      expect(change).toThrow(/was cleared .* held now by bank rotate-key/);
    }
    expect(readFileSync(file, "utf8")).toBe(before);
    expect(readdirSync(dir).filter((f) => f.endsWith(".kek.tmp")), "no temp file left").toEqual([]);
    b.addNewestKey();
    lockB.release();
  });

  it("--clear-lock never removes a lock taken by another run between its read and its removal", () => {
    const dead = { token: "0123456789abcdef0123", pid: 1, host: "other-container", owner: null, since: "2026-11-30T10:00:00.000Z", command: "bank rotate-key" };
    writeFileSync(file + ".lock", JSON.stringify(dead) + "\n", { mode: 0o600 });
    const fresh = newLockHolder("bank rotate-key");
    const holderOf = KeyFileLock.holderOf.bind(KeyFileLock);
    // Right after clearStale has read the dead run's lock: another operator clears it and a new run takes the lock.
    const spy = vi.spyOn(KeyFileLock, "holderOf").mockImplementationOnce((f) => {
      const seen = holderOf(f);
      rmSync(file + ".lock");
      writeFileSync(file + ".lock", JSON.stringify(fresh) + "\n", { mode: 0o600 });
      return seen;
    });
    try {
      expect(KeyFileLock.clearStale(file, dead.token)).toBe(false);
    } finally {
      spy.mockRestore();
    }
    expect(JSON.parse(readFileSync(file + ".lock", "utf8")).token).toBe(fresh.token);
    expect(readdirSync(dir).filter((f) => f.includes(".lock."))).toEqual([]);
    // Without a race, the named lock is cleared.
    writeFileSync(file + ".lock", JSON.stringify(dead) + "\n", { mode: 0o600 });
    expect(KeyFileLock.clearStale(file, dead.token)).toBe(true);
    expect(existsSync(file + ".lock")).toBe(false);
  });

  it("a key file reached through a symlink: the write replaces the target, and both names share one lock", () => {
    const real = join(dir, "keys");
    mkdirSync(real);
    const target = join(real, "bank.kek");
    KeyRing.create(target);
    const link = join(dir, "link.kek");
    symlinkSync(target, link);
    const viaLink = KeyRing.fromFile(link);
    expect(viaLink.path).toBe(realpathSync(target));
    const added = viaLink.addNewestKey();
    expect(lstatSync(link).isSymbolicLink(), "the symlink is still a symlink").toBe(true);
    expect(parseKeyFile(readFileSync(target, "utf8"), target)[0].id).toBe(added);
    const lock = viaLink.lock(newLockHolder("bank rotate-key"))!;
    expect(() => KeyRing.fromFile(target).addNewestKey()).toThrow(KeyFileLockedError);
    lock.release();
    // init-kek through a symlinked directory locks and writes in the real one; a dangling symlink is not overwritten.
    const linkDir = join(dir, "linkdir");
    symlinkSync(real, linkDir);
    expect(KeyRing.create(join(linkDir, "second.kek")).path).toBe(join(realpathSync(real), "second.kek"));
    symlinkSync(join(real, "missing.kek"), join(dir, "dangling.kek"));
    expect(() => KeyRing.create(join(dir, "dangling.kek"))).toThrow(/already exists/);
    expect(lstatSync(join(dir, "dangling.kek")).isSymbolicLink()).toBe(true);
  });

  it("init-kek refuses while the lock is held (two at once both saw no file, and the later replaced the first's key)", () => {
    const path = join(dir, "new.kek");
    writeFileSync(path + ".lock", JSON.stringify(newLockHolder("bank init-kek")));
    expect(() => KeyRing.create(path)).toThrow(KeyFileLockedError);
    expect(existsSync(path)).toBe(false);
  });
});
