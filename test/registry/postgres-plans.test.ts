/**
 * The token store's statements are planned once per connection on
 * PostgreSQL, not once per call (PostgresDatabase.generic). Before, the
 * decision statement got a fresh custom plan on every execution: 0.4-0.6 ms
 * of planning for 0.1-0.2 ms of execution (bench-bank.js --one-at-a-time).
 * PostgreSQL counts, per prepared statement of a session, how many times it
 * used the generic plan and how many custom plans it made
 * (pg_prepared_statements.generic_plans / custom_plans, PostgreSQL 14+), so
 * the test reads those counts on the connection the store used. One
 * decision at a time: the store's pool then opens only one connection, and
 * the query below is answered on it.
 */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KeyRing } from "../../host/registry/key-ring.js";
import type { PostgresDatabase } from "../../host/registry/postgres-database.js";
import { Registry } from "../../host/registry/registry.js";
import { RegistryError } from "../../host/registry/types.js";
import { ROW_SELECT } from "../../host/registry/token-store.js";
import { ENGINES, RFC_SEED_SHA1, TestClock, freshDb, oathtool } from "./support.js";

const STAFF = { name: "staff:alice", source: "cli" };
const CHANNEL = { name: "channel:key-0001", source: "10.0.0.7" };
const START = 1_800_000_000_000 + 10_000;
const postgres = ENGINES.find((e) => e.name === "postgres")!;

describe("plans of the token store's statements on PostgreSQL", () => {
  let db: PostgresDatabase;
  let drop: () => Promise<void>;
  let clock: TestClock;
  let reg: Registry;

  beforeEach(async () => {
    const f = await freshDb(postgres);
    db = f.db as PostgresDatabase;
    drop = f.drop;
    clock = new TestClock(START);
    reg = new Registry(db, { keys: KeyRing.fromKeys([{ id: "k-one", key: randomBytes(32) }]), now: clock.now });
    await reg.register([{ serial: "PL1", manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: RFC_SEED_SHA1 }], STAFF, "test");
    await reg.issue("PL1", "cust-pl", STAFF);
  });
  afterEach(async () => {
    await drop();
  });

  it("plans the decision statement and the read once (a generic plan), and never again per call", async () => {
    // A registry that has not read the row: its first verification reads it (the read statement), then decides.
    const fresh = new Registry(db, { keys: reg.keys, now: clock.now });
    await reg.activate({ customer: "cust-pl" }, oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL);
    const outcomes: string[] = [];
    for (let i = 0; i < 12; i++) {
      clock.advance(60);
      // Accepted, then a wrong code: more than the 5 executions after which PostgreSQL would choose for itself.
      await fresh.verify("cust-pl", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL).then(() => outcomes.push("ok"));
      await fresh.verify("cust-pl", "00000000", CHANNEL).catch((e: RegistryError) => outcomes.push(e.code));
      // A new registry every few rounds, so the read statement runs more than 5 times too.
      if (i % 2 === 1) await new Registry(db, { keys: reg.keys, now: clock.now }).verify("cust-pl", oathtool(RFC_SEED_SHA1, clock.seconds), CHANNEL).catch((e: RegistryError) => outcomes.push(e.code));
    }
    expect(outcomes.filter((o) => o === "ok")).toHaveLength(12);
    const plans = await db.generic.all<{ statement: string; generic_plans: number; custom_plans: number }>(
      "SELECT statement, generic_plans::int AS generic_plans, custom_plans::int AS custom_plans FROM pg_prepared_statements WHERE NOT from_sql",
    );
    const decision = plans.find((p) => p.statement.startsWith("WITH input AS (SELECT * FROM unnest("));
    const read = plans.find((p) => p.statement.startsWith(`SELECT ${ROW_SELECT} FROM tokens WHERE customer = ANY(`));
    expect(decision, JSON.stringify(plans.map((p) => p.statement.slice(0, 60)))).toBeDefined();
    expect(read, JSON.stringify(plans.map((p) => p.statement.slice(0, 60)))).toBeDefined();
    // Every execution used the one generic plan: no custom plan was made for any of them.
    expect({ generic: decision!.generic_plans, custom: decision!.custom_plans }).toEqual({ generic: expect.any(Number), custom: 0 });
    expect(decision!.generic_plans).toBeGreaterThanOrEqual(24);
    expect({ generic: read!.generic_plans, custom: read!.custom_plans }).toEqual({ generic: expect.any(Number), custom: 0 });
    expect(read!.generic_plans).toBeGreaterThanOrEqual(7);
  });
});

describe("plans of an import's lookups on PostgreSQL, as the table grows", () => {
  let db: PostgresDatabase;
  let drop: () => Promise<void>;
  let reg: Registry;
  const token = (serial: string) => ({ serial, manufacturer: "fobkit", algorithm: "SHA1" as const, digits: 8, period: 60, t0: 0, secret: randomBytes(20) });
  const batch = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => token(`${prefix}${String(i).padStart(5, "0")}`));
  /** Rows straight into the table, as a bulk load by another process would put them: no statement of the registry's runs. */
  const bulkRows = (n: number) =>
    db.run(
      `INSERT INTO tokens (serial, manufacturer, algorithm, digits, period, t0, kek_id, seed, seed_index, state, issuance, drift, fail_count, origin, created_at, updated_at)
       SELECT 'BULK' || lpad(i::text, 6, '0'), 'fobkit', 'SHA1', 8, 60, 0, 'k-one', decode(md5(i::text), 'hex'), decode(md5('ix' || i::text), 'hex'), 'in_stock', 0, 0, 0, 'test', 0, 0
       FROM generate_series(1, ?) AS i`,
      [n],
    );

  beforeEach(async () => {
    const f = await freshDb(postgres);
    db = f.db as PostgresDatabase;
    drop = f.drop;
    reg = new Registry(db, { keys: KeyRing.fromKeys([{ id: "k-one", key: randomBytes(32) }]), now: () => START });
  });
  afterEach(async () => {
    await drop();
  });

  it("plans the serial list of an import for the table as it is, not as it was when the list was first sent", async () => {
    // The same 100 serials sent seven times while the table holds only them (the first registers them, the others are
    // refused as duplicates after the lookup): more than the 5 executions after which a named statement keeps its
    // generic plan, made for the small table.
    for (let k = 0; k < 7; k++) await reg.register(batch("SMALL-", 100), STAFF, "test").catch((e: RegistryError) => expect(e.code).toBe("duplicate_serial"));
    // The table grows by 60,000 rows with no ANALYZE (this server's autovacuum may be off; it is on the CI's).
    await bulkRows(60_000);
    await reg.register(batch("LATER-", 100), STAFF, "test");
    // The plan PostgreSQL uses for that lookup on the connection that ran it (one at a time: the pool reuses its
    // most recently released connection, pg-pool's idle list): the prepared statement's cached plan if the text is
    // named there, else a plan made at the call, for the same text and a list of that length.
    const serials = batch("PLAN-", 100).map((t) => t.serial);
    const c = await db.tx(async (t) => {
      const prepared = await t.all<{ name: string; statement: string }>("SELECT name, statement FROM pg_prepared_statements WHERE NOT from_sql AND statement LIKE 'SELECT serial, staged FROM tokens WHERE serial IN (%'");
      const lines = prepared.length
        ? await t.all<{ "QUERY PLAN": string }>(`EXPLAIN EXECUTE ${prepared[0].name}(${serials.map((s) => `'${s}'`).join(", ")})`)
        : await t.all<{ "QUERY PLAN": string }>(`EXPLAIN SELECT serial, staged FROM tokens WHERE serial IN (${serials.map(() => "?").join(", ")})`, serials);
      return { prepared: prepared.length, plan: lines.map((l) => l["QUERY PLAN"]).join("\n") };
    });
    // An index scan of tokens_pkey (plain or bitmap), never a scan of the whole table.
    expect(c.plan, `prepared: ${c.prepared}`).toMatch(/Index (Only )?Scan (using|on) tokens_pkey/);
    expect(c.plan).not.toMatch(/Seq Scan on tokens/);
  });

  it("refreshes the table's statistics after a staged import (bulk load), whatever the server's autovacuum does", async () => {
    const before = await db.get<{ reltuples: number }>("SELECT reltuples::float8 AS reltuples FROM pg_class WHERE oid = 'tokens'::regclass");
    // Never analyzed: PostgreSQL 14+ says -1 (this server's autovacuum is off; a fresh schema in any case).
    expect(before!.reltuples).toBeLessThan(1);
    await reg.register(batch("STAGED-", 600), STAFF, "test");
    const after = await db.get<{ reltuples: number }>("SELECT reltuples::float8 AS reltuples FROM pg_class WHERE oid = 'tokens'::regclass");
    expect(after!.reltuples).toBe(600);
  });
});
