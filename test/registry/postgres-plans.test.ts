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
    const read = plans.find((p) => p.statement.startsWith("SELECT * FROM tokens WHERE customer = ANY("));
    expect(decision, JSON.stringify(plans.map((p) => p.statement.slice(0, 60)))).toBeDefined();
    expect(read, JSON.stringify(plans.map((p) => p.statement.slice(0, 60)))).toBeDefined();
    // Every execution used the one generic plan: no custom plan was made for any of them.
    expect({ generic: decision!.generic_plans, custom: decision!.custom_plans }).toEqual({ generic: expect.any(Number), custom: 0 });
    expect(decision!.generic_plans).toBeGreaterThanOrEqual(24);
    expect({ generic: read!.generic_plans, custom: read!.custom_plans }).toEqual({ generic: expect.any(Number), custom: 0 });
    expect(read!.generic_plans).toBeGreaterThanOrEqual(7);
  });
});
