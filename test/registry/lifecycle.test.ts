/**
 * The lifecycle table (host/registry/lifecycle.ts) drives the registry, the
 * API's refusal lists and the README's diagram: here the registry is put in
 * every state and every action is tried from it, and the answer must be the
 * table's; the README must hold the diagram the table generates.
 */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { LIFECYCLE, refusalsOf, stateRefusal, updateLifecycleDiagram, type Action } from "../../host/registry/lifecycle.js";
import { Registry } from "../../host/registry/registry.js";
import { RegistryError, TOKEN_STATES, type TokenState } from "../../host/registry/types.js";
import { ROUTES } from "../../host/server/routes.js";
import { ROOT } from "../support/paths.js";
import { ENGINES, TestClock, freshDb, oathtool } from "./support.js";

const STAFF = { name: "staff:alice", source: "cli" };
const CHANNEL = { name: "channel:key-0001", source: "10.0.0.7" };
const START = 1_800_000_000_000 + 10_000;

it("the README's lifecycle diagram is the one lifecycle.ts generates (node build/node/tools/lifecycle-diagram.js --write)", () => {
  const readme = readFileSync(join(ROOT, "host", "registry", "README.md"), "utf8");
  expect(readme).toBe(updateLifecycleDiagram(readme));
});

it("every state an action does not start from has a refusal, and the API documents each route's", () => {
  for (const t of LIFECYCLE) {
    // lock and void: the registry's own moves; withdraw finds only live tokens; soft-issue makes a new row (no "from").
    if (t.action === "lock" || t.action === "withdraw" || t.action === "void" || t.action === "soft-issue") continue;
    for (const s of TOKEN_STATES) if (!t.from.includes(s)) expect(stateRefusal(t.action, s)?.code, `${t.action} from ${s}`).toBeTruthy();
  }
  const verify = ROUTES.find((r) => r.operationId === "verifyCode")!;
  expect(verify.refusals).toEqual(refusalsOf("verify", { byCustomer: true }));
  expect(verify.refusals).toEqual(["no_token", "not_active", "locked", "not_yet_valid", "expired", "wrong_code", "replayed"]);
});

describe("the registry refuses as the table says, from every state (SQLite)", () => {
  let db: Database;
  let drop: () => Promise<void>;
  const clock = new TestClock(START);
  let reg: Registry;
  const seeds = new Map<TokenState, Buffer>();

  /** A token in each state, serial S-<state>, customer c-<state> (in stock: none). */
  beforeAll(async () => {
    ({ db, drop } = await freshDb(ENGINES[0]));
    reg = new Registry(db, { keys: KeyRing.fromKeys([{ id: "k", key: randomBytes(32) }]), now: clock.now, policy: { lockAfter: 1 } });
    for (const s of TOKEN_STATES) {
      const seed = randomBytes(20);
      seeds.set(s, seed);
      await reg.register([{ serial: `S-${s}`, manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: seed }], STAFF, "test");
      if (s === "in_stock") continue;
      await reg.issue(`S-${s}`, `c-${s}`, STAFF);
      if (s === "issued") continue;
      await reg.activate({ serial: `S-${s}` }, oathtool(seed, clock.seconds), CHANNEL);
      if (s === "locked") await reg.verify(`c-${s}`, "00000000", CHANNEL).catch(() => undefined);
      if (s === "retired") await reg.withdraw(`c-${s}`, "returned", STAFF);
    }
    clock.advance(60);
    for (const s of TOKEN_STATES) expect((await reg.status(`S-${s}`)).state).toBe(s);
  });
  afterAll(async () => {
    await drop();
  });

  const attempts: Record<Exclude<Action, "lock" | "withdraw" | "soft-issue" | "setup" | "void">, (s: TokenState) => Promise<unknown>> = {
    issue: (s) => reg.issue(`S-${s}`, `other-${s}`, STAFF),
    activate: (s) => reg.activate({ serial: `S-${s}` }, oathtool(seeds.get(s)!, clock.seconds), CHANNEL),
    verify: (s) => reg.verify(`c-${s}`, oathtool(seeds.get(s)!, clock.seconds), CHANNEL),
    deactivate: (s) => reg.deactivate(`c-${s}`, oathtool(seeds.get(s)!, clock.seconds), CHANNEL),
    unlock: (s) => reg.unlock(`c-${s}`, STAFF),
    resync: (s) => reg.resync(`S-${s}`, [oathtool(seeds.get(s)!, clock.seconds - 60), oathtool(seeds.get(s)!, clock.seconds)], STAFF),
  };
  for (const [action, attempt] of Object.entries(attempts) as [Action, (s: TokenState) => Promise<unknown>][]) {
    it(`${action}: refused with the table's code from each state it does not start from`, async () => {
      for (const s of TOKEN_STATES) {
        const expected = stateRefusal(action, s);
        if (!expected) continue;
        // By customer, a token in stock or retired is not the customer's: no_token.
        const byCustomer = action === "verify" || action === "deactivate" || action === "unlock";
        const code = byCustomer && (s === "in_stock" || s === "retired") ? "no_token" : expected.code;
        const e = await attempt(s).then(() => undefined, (x) => x);
        expect(e, `${action} from ${s}`).toBeInstanceOf(RegistryError);
        expect((e as RegistryError).code, `${action} from ${s}`).toBe(code);
        expect((await reg.status(`S-${s}`)).state, `${action} from ${s} changed nothing`).toBe(s);
      }
    });
  }
});

describe("software tokens follow the table too: setup refused by state, keyfob-only actions refused (SQLite)", () => {
  it("setup from each state answers the table's refusal; activate before set-up answers not_set_up; the table names both kinds", async () => {
    const { KeyRing: Ring } = await import("../../host/registry/key-ring.js");
    const { startServer } = await import("../../host/server/serve.js");
    const { finishCustomerRegistration, setUp, startCustomerRegistration } = await import("../../host/soft/client.js");
    const { softSerial, stepAt, totpFromKey } = await import("../../host/soft/protocol.js");
    const { db, drop } = await freshDb(ENGINES[0]);
    const clock = new TestClock(START);
    const server = await startServer({ db, keys: Ring.fromKeys([{ id: "k", key: randomBytes(32) }]), listen: "127.0.0.1:0", now: clock.now, policy: { lockAfter: 1 } });
    const reg = server.registry;
    try {
      await reg.soft.configure({ serviceId: "10112235", bankName: "B", appUrl: "https://b.example/app/" }, STAFF);
      const pw = "Correct-horse9";
      const issue = async (customer: string) => {
        const s = await startCustomerRegistration(pw);
        const r = await reg.soft.startIssuance(customer, s.request.registrationRequest, CHANNEL);
        await reg.soft.issue(customer, await finishCustomerRegistration(s.clientRegistrationState, pw, r, "a@example.jp"), CHANNEL);
        return r.userId;
      };
      const users = new Map<TokenState, string>();
      for (const s of ["issued", "active", "locked", "retired"] as TokenState[]) {
        const userId = await issue(`soft-${s}`);
        users.set(s, userId);
        if (s === "issued") {
          await expect(reg.activate({ customer: `soft-${s}` }, "12345678", CHANNEL)).rejects.toMatchObject({ code: "not_set_up" });
          continue;
        }
        const app = await setUp({ bankUrl: server.url, serviceId: "10112235", userId, password: pw, seed: "key" });
        await reg.activate({ customer: `soft-${s}` }, await totpFromKey(app.seedKey!, stepAt(clock.ms).step), CHANNEL);
        if (s === "locked") await reg.verify(`soft-${s}`, "00000000", CHANNEL).catch(() => undefined);
        if (s === "retired") await reg.withdraw(`soft-${s}`, "returned", STAFF);
        expect((await reg.status(softSerial(userId))).state).toBe(s);
      }
      for (const [s, userId] of users) {
        const expected = stateRefusal("setup", s);
        const got = await setUp({ bankUrl: server.url, serviceId: "10112235", userId, password: pw, seed: "bytes" }).then(
          () => undefined,
          (e) => e.code,
        );
        expect(got, `setup from ${s}`).toBe(expected?.code);
      }
      expect(stateRefusal("setup", "in_stock")?.code).toBe("unknown_user");
      expect(LIFECYCLE.find((t) => t.action === "resync")?.kinds).toEqual(["keyfob"]);
      expect(LIFECYCLE.find((t) => t.action === "setup")?.kinds).toEqual(["soft"]);
      expect(refusalsOf("activate", { byCustomer: true })).toContain("not_set_up");
    } finally {
      await server.close();
      await drop();
    }
  });
});
