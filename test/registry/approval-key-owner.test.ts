/**
 * Maker-checker when the maker is an API key (attack review follow-up, migration 17): a request asked through the
 * HTTP API has maker `staff:<key id>`, so the person behind the key could approve it in the console as
 * `console:<name>`. A staff key may name its owner (`fobkit bank add-key --owner NAME`); the owner is then refused as
 * the checker (own_request), and the approvals list names the key's label and owner instead of a bare id.
 */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createApiKey, listApiKeys } from "../../host/registry/api-keys.js";
import { decideApproval, listApprovals, unlockUnderRule } from "../../host/registry/approvals.js";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { Registry } from "../../host/registry/registry.js";
import { addStaff, disableStaff } from "../../host/registry/staff.js";
import { RegistryError, type Actor } from "../../host/registry/types.js";
import { ENGINES, TestClock, freshDb } from "./support.js";

const START = 1_800_000_000_000 + 10_000;
const CLI = { name: "staff:test", source: "cli" };
const CHANNEL = { name: "channel:key-0001", source: "10.0.0.7" };
const ALICE = { name: "console:alice", source: "127.0.0.1" };
const SUZUKI = { name: "console:suzuki", source: "127.0.0.1" };
const BOB = { name: "console:bob", source: "127.0.0.1" };
const PW = "owner-case-password-1";

async function relock(reg: Registry, customer: string): Promise<void> {
  for (let i = 0; i < 5; i++) await reg.activate({ customer }, "00000000", CHANNEL).catch((e) => expect(e).toBeInstanceOf(RegistryError));
  expect((await reg.statusOfCustomer(customer)).state).toBe("locked");
}

/** A request for customer's third unlock today, asked by `maker`. */
async function requestBy(reg: Registry, clock: TestClock, serial: string, customer: string, maker: Actor): Promise<string> {
  await reg.registerOne({ serial, manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: randomBytes(20) }, CLI, "test");
  await reg.issue(serial, customer, CLI);
  await relock(reg, customer);
  for (let i = 0; i < 2; i++) {
    clock.advance(1);
    await unlockUnderRule(reg, customer, ALICE, "teller", clock.now());
    await relock(reg, customer);
  }
  const e = await unlockUnderRule(reg, customer, maker, "teller", clock.now()).catch((x) => x);
  expect(e).toMatchObject({ code: "needs_approval" });
  return (e as RegistryError).detail!.approval as string;
}

describe.each(ENGINES)("an approval asked through an API key on $name", (engine) => {
  let db: Database;
  let drop: () => Promise<void>;
  let clock: TestClock;
  let reg: Registry;

  beforeEach(async () => {
    ({ db, drop } = await freshDb(engine));
    clock = new TestClock(START);
    reg = new Registry(db, { keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), now: clock.now });
    await addStaff(db, "suzuki", "supervisor", PW, CLI);
    await addStaff(db, "bob", "supervisor", PW, CLI);
  });
  afterEach(async () => {
    await drop();
  });

  it("the key's owner may neither approve nor reject it (own_request, nothing changed); another supervisor approves", async () => {
    const k = await createApiKey(db, "staff", "branch 12 teller app", Date.now(), { owner: "suzuki" });
    const id = await requestBy(reg, clock, "KO1", "C1", { name: "staff:" + k.id, source: "10.0.0.9" });
    for (const approve of [true, false]) {
      await expect(decideApproval(reg, id, approve, SUZUKI, clock.now())).rejects.toMatchObject({ code: "own_request", message: expect.stringContaining(k.id) });
    }
    expect((await listApprovals(db, "pending")).map((a) => a.id)).toEqual([id]);
    expect((await reg.statusOfCustomer("C1")).state).toBe("locked");
    expect(await db.all("SELECT action FROM audit WHERE action IN ('approve', 'reject')")).toEqual([]);
    const done = await decideApproval(reg, id, true, BOB, clock.now());
    expect(done.approval).toMatchObject({ state: "approved", checker: "console:bob" });
    expect((await reg.statusOfCustomer("C1")).state).toBe("issued");
    // The approval's audit names the maker key's owner, so the record shows who stood behind the request.
    const a = await db.get<{ detail: string }>("SELECT detail FROM audit WHERE action = 'approve'");
    expect(JSON.parse(a!.detail)).toMatchObject({ approval: id, maker: "staff:" + k.id, makerKeyOwner: "suzuki" });
  });

  it("the approvals list names the maker key: its label and owner (none recorded for a key without one)", async () => {
    const owned = await createApiKey(db, "staff", "branch 12 teller app", Date.now(), { owner: "suzuki" });
    const bare = await createApiKey(db, "staff", undefined);
    const a1 = await requestBy(reg, clock, "KO1", "C1", { name: "staff:" + owned.id, source: "10.0.0.9" });
    const a2 = await requestBy(reg, clock, "KO2", "C2", { name: "staff:" + bare.id, source: "10.0.0.9" });
    const a3 = await requestBy(reg, clock, "KO3", "C3", ALICE);
    const byId = new Map((await listApprovals(db)).map((a) => [a.id, a]));
    expect(byId.get(a1)!.makerKey).toEqual({ id: owned.id, label: "branch 12 teller app", owner: "suzuki", revoked: false });
    expect(byId.get(a2)!.makerKey).toEqual({ id: bare.id, label: null, owner: null, revoked: false });
    expect(byId.get(a3)!.makerKey).toBeUndefined();
    // With no owner recorded, the rule can only compare names: bob, suzuki may both decide it.
    expect((await decideApproval(reg, a2, false, SUZUKI, clock.now())).approval.state).toBe("rejected");
  });

  it("an owner is an active staff member, and only a staff key has one; refused otherwise, with no key made", async () => {
    await disableStaff(db, "bob", CLI);
    const refusals = [
      [() => createApiKey(db, "staff", "x", Date.now(), { owner: "nobody" }), "unknown_staff"],
      [() => createApiKey(db, "staff", "x", Date.now(), { owner: "bob" }), "unknown_staff"],
      [() => createApiKey(db, "staff", "x", Date.now(), { owner: "not a name" }), "bad_staff_name"],
      [() => createApiKey(db, "channel", "x", Date.now(), { owner: "suzuki" }), "bad_owner"],
    ] as const;
    for (const [make, code] of refusals) await expect(make()).rejects.toMatchObject({ code });
    expect(await listApiKeys(db)).toEqual([]);
    const k = await createApiKey(db, "staff", "x", Date.now(), { owner: "suzuki" });
    expect(await listApiKeys(db)).toMatchObject([{ id: k.id, role: "staff", owner: "suzuki" }]);
  });
});
