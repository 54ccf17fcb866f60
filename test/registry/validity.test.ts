/**
 * A key's StartDate and ExpiryDate from its PSKC file (RFC 6030 §5): the
 * keyfob is unusable before and after them, and activation, verification,
 * deactivation, resync and issue say why (issue 11, item 9). And a token
 * without a manufacturer, which RFC 6030 allows (item 8). Both engines.
 */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { Registry, STAGE_ABOVE } from "../../host/registry/registry.js";
import { RegistryError, type NewToken } from "../../host/registry/types.js";
import { ENGINES, RFC_SEED_SHA1, TestClock, freshDb, oathtool } from "./support.js";

const STAFF = { name: "staff:alice", source: "cli" };
const CHANNEL = { name: "channel:key-0001", source: "10.0.0.7" };
const FACTORY = { name: "factory:key-0002", source: "10.0.0.9" };
/** Ten seconds into a 60-s step, in 2027. */
const START = 1_800_000_010_000 - (1_800_000_010_000 % 60_000) + 10_000;
const DAY = 86_400;

function token(serial: string, extra: Partial<NewToken> = {}): NewToken {
  return { serial, manufacturer: "Feitian", algorithm: "SHA1", digits: 6, period: 60, t0: 0, secret: RFC_SEED_SHA1, ...extra };
}

async function refusal(p: Promise<unknown>): Promise<RegistryError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof RegistryError) return e;
    throw e;
  }
  throw new Error("expected a refusal, got success");
}

describe.each(ENGINES)("validity dates on $name", (engine) => {
  let db: Database;
  let drop: () => Promise<void>;
  let clock: TestClock;
  let reg: Registry;
  const code = () => oathtool(RFC_SEED_SHA1, clock.seconds, { digits: 6 });

  beforeEach(async () => {
    ({ db, drop } = await freshDb(engine));
    clock = new TestClock(START);
    reg = new Registry(db, { keys: KeyRing.fromKeys([{ id: "k-one", key: randomBytes(32) }]), now: clock.now });
  });
  afterEach(async () => {
    await drop();
  });

  it("before StartDate: issued, but activation is refused with the date, uncounted and audited; from StartDate on it activates", async () => {
    const notBefore = START + 2 * DAY * 1000;
    await reg.register([token("F-100", { notBefore })], FACTORY, "pskc:feitian.xml");
    await reg.issue("F-100", "cust-1", STAFF);
    const err = await refusal(reg.activate({ customer: "cust-1" }, code(), CHANNEL));
    expect(err.code).toBe("not_yet_valid");
    expect(err.message).toBe(`token F-100 may not be used before ${new Date(notBefore).toISOString()} (the StartDate its PSKC file gave)`);
    expect((await reg.status("F-100")).failCount).toBe(0);
    const audit = await reg.auditTrail({ serial: "F-100" });
    expect(audit.at(-1)).toMatchObject({ action: "activate", outcome: "not_yet_valid", actor: CHANNEL.name, detail: { notBefore: new Date(notBefore).toISOString() } });
    expect(audit[0].detail).toMatchObject({ notBefore: new Date(notBefore).toISOString() });
    clock.advance(2 * DAY);
    expect((await reg.activate({ customer: "cust-1" }, code(), CHANNEL)).state).toBe("active");
  });

  it("after ExpiryDate: verify, deactivate and resync are refused with the date, and an expired keyfob is not issued", async () => {
    const notAfter = START + 30 * DAY * 1000;
    await reg.register([token("F-200", { notAfter }), token("F-201", { notAfter, secret: randomBytes(20) })], FACTORY, "pskc:feitian.xml");
    await reg.issue("F-200", "cust-2", STAFF);
    await reg.activate({ customer: "cust-2" }, code(), CHANNEL);
    clock.advance(29 * DAY);
    expect((await reg.verify("cust-2", code(), CHANNEL)).state).toBe("active");
    clock.advance(DAY + 60);
    const expiredAt = new Date(notAfter).toISOString();
    for (const [action, call] of [
      ["verify", () => reg.verify("cust-2", code(), CHANNEL)],
      ["deactivate", () => reg.deactivate("cust-2", code(), CHANNEL)],
      ["resync", () => reg.resync("F-200", [code(), code()], STAFF)],
      ["issue", () => reg.issue("F-201", "cust-3", STAFF)],
    ] as const) {
      const err = await refusal(call());
      expect(err.code, action).toBe("expired");
      expect(err.message).toMatch(new RegExp(`expired at ${expiredAt.replace(/\./g, "\\.")} \\(the ExpiryDate its PSKC file gave\\)`));
    }
    const status = await reg.status("F-200");
    expect([status.state, status.failCount]).toEqual(["active", 0]);
    const outcomes = (await reg.auditTrail()).filter((a) => a.outcome === "expired").map((a) => a.action);
    expect(outcomes).toEqual(["verify", "deactivate", "resync", "issue"]);
    // Staff can still take it out of use (withdraw needs no code and no validity).
    expect((await reg.withdraw("cust-2", "returned", STAFF)).state).toBe("retired");
  });

  it("a token without a manufacturer (RFC 6030 makes it optional) registers; dates out of order do not", async () => {
    await reg.register([token("F-300", { manufacturer: "" })], FACTORY, "pskc:csv2pskc.xml");
    expect((await reg.status("F-300")).manufacturer).toBe("");
    const err = await refusal(reg.register([token("F-301", { notBefore: START + 1000, notAfter: START })], FACTORY, "x"));
    expect([err.code, err.message]).toEqual(["bad_token", "token F-301: notAfter is before notBefore"]);
  });
  it("a large import, written in staged chunks, keeps each key's dates too", async () => {
    const notBefore = START + 2 * DAY * 1000;
    const seeds = Array.from({ length: STAGE_ABOVE + 1 }, () => randomBytes(20));
    const batch = seeds.map((secret, i) => token(`F-4${String(i).padStart(3, "0")}`, { secret, notBefore }));
    await reg.register(batch, FACTORY, "pskc:feitian-large.xml");
    await reg.issue("F-4500", "cust-4", STAFF);
    const err = await refusal(reg.activate({ customer: "cust-4" }, oathtool(seeds[500], clock.seconds, { digits: 6 }), CHANNEL));
    expect(err.code).toBe("not_yet_valid");
  });
});
