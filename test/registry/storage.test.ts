/**
 * The storage layer itself: migrations (once, recorded, safe when two
 * processes start together), SQLite's group commit (a failing transaction
 * rolls back alone), and the key file (never echoes key material, reloads
 * when rewritten).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KeyFileError, KeyRing, parseKeyFile } from "../../host/registry/key-ring.js";
import { MIGRATIONS, migrate, splitStatements } from "../../host/registry/migrations.js";
import { openDatabase } from "../../host/registry/open-database.js";
import { Registry } from "../../host/registry/registry.js";
import { SqliteDatabase } from "../../host/registry/sqlite-database.js";
import { ENGINES, freshDb } from "./support.js";

describe.each(ENGINES)("migrations on $name", (engine) => {
  it("apply once, are recorded, and two concurrent runs do not collide", async () => {
    const f = await engine.fresh();
    const a = openDatabase(f.url);
    const b = openDatabase(f.url);
    try {
      // PostgreSQL: two servers starting at once. SQLite: one after the other
      // (two connections in one process would wait on each other's lock
      // synchronously; separate processes wait in their own threads).
      const [ra, rb] = engine.name === "postgres" ? await Promise.all([migrate(a), migrate(b)]) : [await migrate(a), await migrate(b)];
      expect([...ra, ...rb].sort((x, y) => x - y)).toEqual(MIGRATIONS.map((m) => m.version));
      expect(await migrate(a)).toEqual([]);
      expect(await a.all("SELECT version, name FROM schema_migrations")).toEqual(MIGRATIONS.map((m) => ({ version: m.version, name: m.name })));
      expect(await a.get<{ n: number }>("SELECT COUNT(*) AS n FROM tokens")).toEqual({ n: 0 });
    } finally {
      await a.close();
      await b.close();
      await f.drop();
    }
  });

  it("a store made before withdrawal existed upgrades in place: its tokens kept, withdrawn null, bad reasons refused", async () => {
    const f = await engine.fresh();
    const db = openDatabase(f.url);
    try {
      expect(await migrate(db, MIGRATIONS.filter((m) => m.version === 1))).toEqual([1]);
      const row = ["FK0001", "fobkit", "SHA1", 8, 60, 0, "k1", "active", "c1", "test", 0, 0];
      await db.tx((t) => t.run("INSERT INTO tokens (serial, manufacturer, algorithm, digits, period, t0, kek_id, state, customer, origin, created_at, updated_at, seed) " +
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [...row, Buffer.alloc(48)]));
      expect(await migrate(db, MIGRATIONS.filter((m) => m.version <= 2))).toEqual([2]);
      expect(await db.get("SELECT serial, state, customer, withdrawn FROM tokens")).toEqual({ serial: "FK0001", state: "active", customer: "c1", withdrawn: null });
      await expect(db.tx((t) => t.run("UPDATE tokens SET withdrawn = 'misplaced'"))).rejects.toThrow(/check/i);
      // Version 4 (PSKC StartDate/ExpiryDate): no dates for tokens imported before.
      expect(await migrate(db)).toContain(4);
      expect(await db.get("SELECT serial, not_before, not_after FROM tokens")).toEqual({ serial: "FK0001", not_before: null, not_after: null });
    } finally {
      await db.close();
      await f.drop();
    }
  });

  it("a store made before the seed index upgrades: its rows get their index on the next rotation pass, which reports shared seeds (issue 11, item 6a)", async () => {
    const f = await engine.fresh();
    const db = openDatabase(f.url);
    const keys = KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]);
    const actor = { name: "staff:test", source: "cli" };
    try {
      await migrate(db, MIGRATIONS.filter((m) => m.version <= 2));
      const shared = randomBytes(20);
      const seeds: [string, Buffer][] = [["FK0001", randomBytes(20)], ["FK0002", shared], ["FK0003", Buffer.from(shared)]];
      for (const [serial, seed] of seeds) {
        const sealed = keys.seal(serial, seed);
        await db.tx((t) => t.run("INSERT INTO tokens (serial, manufacturer, algorithm, digits, period, t0, kek_id, state, origin, created_at, updated_at, seed) VALUES (?, 'fobkit', 'SHA1', 8, 60, 0, ?, 'in_stock', 'old', 0, 0, ?)", [serial, sealed.kekId, sealed.blob]));
      }
      expect(await migrate(db)).toContain(3);
      expect(await db.get("SELECT COUNT(*) AS n FROM tokens WHERE seed_index IS NULL")).toEqual({ n: 3 });
      const registry = new Registry(db, { keys });
      // `bank rotate-key --no-new-key`: the key stays, the index is filled.
      const r = await registry.resealAll(actor);
      expect(r).toMatchObject({ kekId: "k1", resealed: 0, indexed: 2, duplicateSeeds: [["FK0003", "FK0002"]] });
      expect(await db.get("SELECT COUNT(*) AS n FROM tokens WHERE seed_index IS NULL")).toEqual({ n: 1 });
      // From now on the legacy seeds are refused under another serial.
      await expect(registry.register([{ serial: "FK0100", manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: seeds[0][1] }], actor, "t")).rejects.toMatchObject({ code: "duplicate_seed" });
    } finally {
      await db.close();
      await f.drop();
    }
  });

  it("one transaction's failure leaves the others of the same moment committed", async () => {
    const { db, drop } = await freshDb(engine);
    try {
      const insert = (id: string) => db.tx((t) => t.run("INSERT INTO api_keys (id, role, secret_hash, label, created_at) VALUES (?, 'staff', ?, NULL, 0)", [id, Buffer.alloc(32)]));
      const results = await Promise.allSettled([
        insert("aaaaaaaaaaaa"),
        db.tx(async (t) => {
          await t.run("INSERT INTO api_keys (id, role, secret_hash, label, created_at) VALUES (?, 'staff', ?, NULL, 0)", ["bbbbbbbbbbbb", Buffer.alloc(32)]);
          throw new Error("changed my mind");
        }),
        insert("cccccccccccc"),
        insert("aaaaaaaaaaaa"),
      ]);
      expect(results.map((r) => r.status)).toEqual(["fulfilled", "rejected", "fulfilled", "rejected"]);
      expect((await db.all<{ id: string }>("SELECT id FROM api_keys ORDER BY id")).map((r) => r.id)).toEqual(["aaaaaaaaaaaa", "cccccccccccc"]);
    } finally {
      await drop();
    }
  });
});

describe("SQLite group commit", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "fobkit-gc-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("answers each of 200 concurrent transactions only once it is committed (visible to another connection)", async () => {
    const path = join(dir, "g.sqlite");
    const db = new SqliteDatabase(path);
    const other = new SqliteDatabase(path);
    await db.script("CREATE TABLE t (x INTEGER)");
    const values = Array.from({ length: 200 }, (_, i) => i);
    await Promise.all(
      values.map((i) =>
        db
          .tx(async (t) => t.run("INSERT INTO t VALUES (?)", [i]))
          .then(async () => {
            // Answered means committed: another connection sees the row.
            expect(await other.get("SELECT x FROM t WHERE x = ?", [i])).toEqual({ x: i });
          }),
      ),
    );
    expect(await other.get("SELECT COUNT(*) AS n FROM t")).toEqual({ n: 200 });
    await db.close();
    await other.close();
  });
});

describe("key file", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "fobkit-kek-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it.each([
    ["k1 " + "ab".repeat(31), /64 hex digits/],
    ["k1 " + "zz".repeat(32), /expected/],
    ["k1 " + "ab".repeat(32) + "\nk1 " + "cd".repeat(32), /appears twice/],
    ["# only a comment\n", /no key/],
    ["k/1 " + "ab".repeat(32), /key id/],
  ])("refuses %j without quoting it", (text, message) => {
    let err: unknown;
    try {
      parseKeyFile(text, "test.kek");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KeyFileError);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toMatch(/abab|cdcd|zzzz/);
  });

  it("reloads when rewritten, opens under old and new keys, and refuses to overwrite on create", () => {
    const path = join(dir, "bank.kek");
    const ring = KeyRing.create(path);
    expect(() => KeyRing.create(path)).toThrow(/refusing to overwrite/);
    const first = ring.currentId;
    const sealed = ring.seal("FK1", Buffer.from("12345678901234567890"));
    // Another process (rotate-key) adds a key to the file.
    const other = KeyRing.fromFile(path);
    const second = other.addNewestKey();
    expect(readFileSync(path, "utf8").split("\n").filter((l) => /^k/.test(l))).toHaveLength(2);
    // Our ring sees it on the next look (forced by an unknown id here).
    const resealed = other.seal("FK1", ring.open("FK1", sealed));
    expect(resealed.kekId).toBe(second);
    expect(ring.open("FK1", resealed).toString()).toBe("12345678901234567890");
    expect(first).not.toBe(second);
    // The AAD binds the seed to its serial.
    expect(() => ring.open("FK2", sealed)).toThrow(/does not authenticate/);
    writeFileSync(join(dir, "x"), "");
  });

  it("a ring without keys fails any seed operation with the reason", () => {
    const ring = KeyRing.none("no --kek-file given");
    expect(() => ring.seal("FK1", randomBytes(20))).toThrow(/no --kek-file given/);
  });
});

describe("splitStatements", () => {
  it("keeps trigger and dollar-quoted bodies whole", () => {
    const s = splitStatements("CREATE TABLE a (x INT);\nCREATE TRIGGER t BEFORE UPDATE ON a BEGIN SELECT RAISE(ABORT, 'no'); END;\nCREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  RAISE EXCEPTION 'x';\nEND $$;\n");
    expect(s).toHaveLength(3);
    expect(s[1]).toMatch(/END;$/);
    expect(s[2]).toMatch(/RAISE EXCEPTION 'x';\nEND \$\$$/);
  });
});
