/**
 * Security review of the staff console (issue 13): each test here is an
 * attack that worked before its fix (see the commit that added it), run on
 * the real server over loopback HTTP, on SQLite and PostgreSQL where the
 * engines differ.
 */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createApiKey } from "../../host/registry/api-keys.js";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { addStaff } from "../../host/registry/staff.js";
import { unlockUnderRule, withdrawUnderRule } from "../../host/registry/approvals.js";
import { startServer } from "../../host/server/serve.js";
import { ENGINES, TestClock, freshDb } from "../registry/support.js";
import { call } from "../server/support.js";
import { Client } from "./support.js";
import { backendPid, connectInSchema, waitQueuedBehind } from "../support/pg-locks.js";

const START = 1_800_000_040_000 - (1_800_000_040_000 % 60_000) + 10_000;
const CLI = { name: "staff:test", source: "cli" };
const PASSWORDS = { alice: "alice-correct-horse", bob: "bob-battery-staple" };

describe.each(ENGINES)("console security review on $name", (engine) => {
  let db: Database;
  let url: string;
  let drop: () => Promise<void>;
  let clock: TestClock;
  let server: Awaited<ReturnType<typeof startServer>>;
  let base: string;
  let staffKey: string;
  let channelKey: string;

  beforeEach(async () => {
    ({ db, url, drop } = await freshDb(engine));
    clock = new TestClock(START);
    server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0", now: clock.now });
    base = server.url;
    staffKey = (await createApiKey(db, "staff")).key;
    channelKey = (await createApiKey(db, "channel")).key;
  });
  afterEach(async () => {
    await server.close();
    await drop();
  });

  const register = (serial: string) =>
    server.registry.registerOne({ serial, manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: randomBytes(20) }, CLI, "test");
  const lockWithWrongCodes = async (customer: string) => {
    for (let i = 0; i < 5; i++) await call(base, "POST", `/v1/customers/${customer}/activate`, { key: channelKey, body: { code: "00000000" } });
  };
  const unlockViaApi = (customer: string) => call(base, "POST", `/v1/customers/${customer}/unlock`, { key: staffKey });
  async function signedIn(name: keyof typeof PASSWORDS): Promise<Client> {
    const c = new Client(base);
    expect((await c.post("/console/sign-in", { staff: name, password: PASSWORDS[name] })).status).toBe(303);
    return c;
  }

  it.runIf(engine.name === "postgres")("counts a teller's unlocks under the keyfob's row lock: two unlocks racing a re-lock do not make a third without a supervisor", async () => {
    await register("FK0001");
    await server.registry.issue("FK0001", "C1", CLI);
    await lockWithWrongCodes("C1");
    expect((await unlockViaApi("C1")).status).toBe(200); // the first unlock of the day
    await lockWithWrongCodes("C1");
    const holder = await connectInSchema(url);
    const relocker = await connectInSchema(url);
    const watcher = await connectInSchema(url);
    const holderPid = await backendPid(holder);
    const waiting = (n: number) => waitQueuedBehind(watcher, holderPid, n, "the keyfob's row");
    try {
      // Hold the row so the requests queue behind it in a known order: unlock A, a re-lock (five more wrong codes), unlock B.
      await holder.query("BEGIN");
      await holder.query("SELECT serial FROM tokens WHERE serial = 'FK0001' FOR UPDATE");
      clock.advance(1); // the unlock below is a change of its own (wrong codes after it, as the re-lock stands for, would be too)
      const a = unlockViaApi("C1");
      await waiting(1);
      const relock = relocker.query("UPDATE tokens SET state = 'locked', fail_count = 5 WHERE serial = 'FK0001'");
      await waiting(2);
      const b = unlockViaApi("C1");
      await waiting(3);
      await holder.query("COMMIT");
      expect((await a).status).toBe(200); // the second unlock of the day
      await relock;
      // The third: before the fix it had counted one unlock before queueing, and went through.
      expect(await b).toMatchObject({ status: 409, body: { error: { code: "needs_approval" } } });
      expect((await server.registry.status("FK0001")).state).toBe("locked");
    } finally {
      await holder.end();
      await relocker.end();
      await watcher.end();
    }
  });
  it("an action from a keyfob's page acts on that keyfob only: a page opened on FK0001 never withdraws or unlocks the FK0002 the customer got since", async () => {
    await register("FK0001");
    await register("FK0002");
    await server.registry.issue("FK0001", "C1", CLI);
    // The teller's page showed FK0001 (the handler read C1 from it); meanwhile FK0001 came back and C1 got FK0002, locked.
    await server.registry.withdraw("C1", "returned", CLI);
    await server.registry.issue("FK0002", "C1", CLI);
    await lockWithWrongCodes("C1");
    const teller = { name: "console:alice", source: "127.0.0.1" };
    await expect(withdrawUnderRule(server.registry, "C1", "lost", teller, "teller", clock.now(), "FK0001")).rejects.toMatchObject({ code: "serial_changed" });
    await expect(unlockUnderRule(server.registry, "C1", teller, "supervisor", clock.now(), "FK0001")).rejects.toMatchObject({ code: "serial_changed" });
    await expect(unlockUnderRule(server.registry, "C1", teller, "teller", clock.now(), "FK0001")).rejects.toMatchObject({ code: "serial_changed" });
    const fk2 = await server.registry.status("FK0002");
    expect(fk2).toMatchObject({ state: "locked", customer: "C1" });
    expect(fk2.withdrawn ?? null).toBeNull();
    // Named right, the same calls act.
    expect((await unlockUnderRule(server.registry, "C1", teller, "teller", clock.now(), "FK0002")).state).toBe("issued");
    expect((await withdrawUnderRule(server.registry, "C1", "lost", teller, "teller", clock.now(), "FK0002")).state).toBe("retired");
  });

  it("a supervisor's approval unlocks only the keyfob that was locked when the teller asked, not the customer's next one or its next lock", async () => {
    await addStaff(db, "bob", "supervisor", PASSWORDS.bob, CLI);
    await register("FK0001");
    await register("FK0002");
    await server.registry.issue("FK0001", "C1", CLI);
    for (let i = 0; i < 2; i++) {
      await lockWithWrongCodes("C1");
      expect((await unlockViaApi("C1")).status).toBe(200);
    }
    await lockWithWrongCodes("C1");
    const asked = await unlockViaApi("C1");
    expect(asked).toMatchObject({ status: 409, body: { error: { code: "needs_approval", detail: { serial: "FK0001" } } } });
    const approval = (asked.body as { error: { detail: { approval: string } } }).error.detail.approval;
    // Meanwhile FK0001 comes back and C1 gets FK0002, which five wrong codes lock.
    expect((await call(base, "POST", "/v1/customers/C1/withdraw", { key: staffKey, body: { reason: "returned" } })).status).toBe(200);
    await server.registry.issue("FK0002", "C1", CLI);
    await lockWithWrongCodes("C1");
    const bob = await signedIn("bob");
    const token = await bob.csrf();
    expect((await bob.post(`/console/approvals/${approval}/approve`, { _csrf: token })).status).toBe(409);
    expect((await server.registry.status("FK0002")).state).toBe("locked");
    // A request whose lock a supervisor already lifted is spent: approving it later does not lift the next lock.
    await register("FK0003");
    await server.registry.issue("FK0003", "C2", CLI);
    for (let i = 0; i < 2; i++) {
      await lockWithWrongCodes("C2");
      expect((await unlockViaApi("C2")).status).toBe(200);
    }
    await lockWithWrongCodes("C2");
    const again = await unlockViaApi("C2");
    const second = (again.body as { error: { detail: { approval: string } } }).error.detail.approval;
    expect((await bob.post("/console/keyfobs/FK0003/unlock", { _csrf: token })).status).toBe(303);
    await lockWithWrongCodes("C2");
    expect((await bob.post(`/console/approvals/${second}/approve`, { _csrf: token })).status).toBe(409);
    expect((await server.registry.status("FK0003")).state).toBe("locked");
  });
  it("unauthenticated sign-ins cannot queue unbounded scrypt work: past the gate they get 503 and Retry-After at once, and staff still sign in after", async () => {
    await addStaff(db, "alice", "teller", PASSWORDS.alice, CLI);
    const flood = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const r = await fetch(base + "/console/sign-in", { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded" }, body: "staff=mallory&password=guess-guess-guess" });
        await r.text();
        return { status: r.status, retryAfter: r.headers.get("retry-after") };
      }),
    );
    const busy = flood.filter((r) => r.status === 503);
    expect(busy.length).toBeGreaterThan(0);
    expect(busy.every((r) => r.retryAfter === "1")).toBe(true);
    expect(flood.filter((r) => r.status !== 503).every((r) => r.status === 401)).toBe(true);
    // The refused ones cost no scrypt and wrote nothing; the gate opens again.
    const tried = await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM audit WHERE action = 'signin'");
    expect(Number(tried?.n)).toBe(40 - busy.length);
    expect((await new Client(base).post("/console/sign-in", { staff: "alice", password: PASSWORDS.alice })).status).toBe(303);
  });
  it("the audit CSV holds every matching record, newest included, past 100,000 rows", async () => {
    await addStaff(db, "alice", "teller", PASSWORDS.alice, CLI);
    const n = 100_005;
    await db.run(
      `WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ${n})
       INSERT INTO audit (at, actor, source, action, outcome, serial, customer, detail) SELECT ${START} + i, 'staff:bulk', 'test', 'verify', 'ok', 'FKBULK', NULL, NULL FROM k`,
    );
    const alice = await signedIn("alice");
    const r = await alice.get("/console/audit.csv?serial=FKBULK");
    expect(r.status).toBe(200);
    const lines = r.text.trim().split("\r\n");
    expect(lines).toHaveLength(1 + n);
    expect(lines[n].split(",")[1]).toBe(new Date(START + n).toISOString()); // the newest, last
  });
  it("sort keys are the whitelist's own: names from Object's prototype do not reach the SQL", async () => {
    await addStaff(db, "alice", "teller", PASSWORDS.alice, CLI);
    const alice = await signedIn("alice");
    for (const sort of ["constructor", "__proto__", "toString"]) expect((await alice.get(`/console/keyfobs?sort=${sort}`)).status, sort).toBe(200);
  });

  it("a redirect target with characters a header cannot hold goes home instead of failing the sign-in", async () => {
    await addStaff(db, "alice", "teller", PASSWORDS.alice, CLI);
    const c = new Client(base);
    const r = await c.post("/console/sign-in", { staff: "alice", password: PASSWORDS.alice, next: "/console/\u3042" });
    expect(r.status).toBe(303);
    expect(r.location).toBe("/console/");
    expect(c.cookies.get("fobkit_console")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const lang = await c.get(`/console/lang?to=en&back=${encodeURIComponent("/console/\u3042")}`);
    expect(lang.status).toBe(303);
  });
  it("a staff ID that differs from an existing one only in case is refused, so the audit's console:<ID> names one person", async () => {
    await addStaff(db, "yamada", "teller", PASSWORDS.alice, CLI);
    await expect(addStaff(db, "Yamada", "supervisor", PASSWORDS.bob, CLI)).rejects.toMatchObject({ code: "staff_exists" });
    expect((await db.all("SELECT name FROM staff")).length).toBe(1);
  });
  it("a sign-in flood from one address leaves room for staff signing in from another", async () => {
    await addStaff(db, "alice", "teller", PASSWORDS.alice, CLI);
    const proxied = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0", now: clock.now, trustProxy: ["127.0.0.1"] });
    const post = (from: string, body: string) =>
      fetch(proxied.url + "/console/sign-in", { method: "POST", redirect: "manual", headers: { "content-type": "application/x-www-form-urlencoded", "x-forwarded-for": from }, body }).then(async (r) => (await r.text(), r.status));
    let firstBusy!: () => void;
    const busy = new Promise<void>((r) => (firstBusy = r));
    const flood = Array.from({ length: 40 }, () => post("10.0.0.66", "staff=mallory&password=guess-guess-guess").then((s) => (s === 503 && firstBusy(), s)));
    await busy; // the flood has filled what it may of the gate
    const alice = await post("10.0.0.7", `staff=alice&password=${PASSWORDS.alice}`);
    const statuses = await Promise.all(flood);
    await proxied.close();
    expect(alice).toBe(303);
    expect(statuses.filter((s) => s === 503).length).toBeGreaterThan(0);
  });
  it("a password typed into the Staff ID field never reaches the audit that every teller reads", async () => {
    await addStaff(db, "alice", "teller", PASSWORDS.alice, CLI);
    const c = new Client(base);
    expect((await c.post("/console/sign-in", { staff: PASSWORDS.alice, password: "" })).status).toBe(401);
    expect((await c.post("/console/sign-in", { staff: "alice", password: PASSWORDS.alice })).status).toBe(303);
    const audit = JSON.stringify(await db.all("SELECT * FROM audit"));
    expect(audit).toContain("unknown_staff");
    expect(audit).not.toContain(PASSWORDS.alice);
    expect((await c.get("/console/audit")).text).not.toContain(PASSWORDS.alice);
  });
});
