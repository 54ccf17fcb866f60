/**
 * The staff console over real HTTP (a loopback listener, fetch with a cookie
 * jar), on SQLite and PostgreSQL: sessions, cookie flags, CSRF, the sign-in
 * throttle under parallel tries, roles enforced by the server, maker-checker
 * shared with the API, escaping, redirects, language, lists and the audit.
 * The browser suite (console-browser.test.ts) drives the same pages in Chromium.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { request } from "node:https";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createApiKey } from "../../host/registry/api-keys.js";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { addStaff, getStaff } from "../../host/registry/staff.js";
import { AUDIT_PAGE_SIZE, auditPage } from "../../host/console/queries.js";
import { startServer } from "../../host/server/serve.js";
import { Client } from "./support.js";
import { ENGINES, RFC_SEED_SHA1, TestClock, freshDb, oathtool } from "../registry/support.js";
import { call, selfSignedCert } from "../server/support.js";

const START = 1_800_000_040_000 - (1_800_000_040_000 % 60_000) + 10_000;
const CLI = { name: "staff:test", source: "cli" };
const PASSWORDS = { alice: "alice-correct-horse", bob: "bob-battery-staple", carol: "carol-teller-password" };

describe.each(ENGINES)("staff console over HTTP on $name", (engine) => {
  let db: Database;
  let drop: () => Promise<void>;
  let clock: TestClock;
  let server: Awaited<ReturnType<typeof startServer>>;
  let base: string;
  let staffKey: string;
  let channelKey: string;

  beforeEach(async () => {
    ({ db, drop } = await freshDb(engine));
    clock = new TestClock(START);
    server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0", now: clock.now });
    base = server.url;
    staffKey = (await createApiKey(db, "staff")).key;
    channelKey = (await createApiKey(db, "channel")).key;
    await addStaff(db, "alice", "teller", PASSWORDS.alice, CLI);
    await addStaff(db, "bob", "supervisor", PASSWORDS.bob, CLI);
  });
  afterEach(async () => {
    await server.close();
    await drop();
  });

  const register = (serial: string, seed: Buffer = randomBytes(20)) =>
    server.registry.registerOne({ serial, manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: seed }, CLI, "test");
  const lockWithWrongCodes = async (customer: string) => {
    for (let i = 0; i < 5; i++) await call(base, "POST", `/v1/customers/${customer}/activate`, { key: channelKey, body: { code: "00000000" } });
  };
  async function signedIn(name: keyof typeof PASSWORDS): Promise<Client> {
    const c = new Client(base);
    const r = await c.signIn(name, PASSWORDS[name]);
    expect(r.status, r.text).toBe(303);
    return c;
  }

  it("nothing works without a session: pages redirect to sign-in, changes and partial lists answer 401", async () => {
    await register("FK0001");
    const c = new Client(base);
    for (const path of ["/console/", "/console/keyfobs/FK0001", "/console/audit", "/console/audit.csv", "/console/staff", "/console/approvals"]) {
      const r = await c.get(path);
      expect(r.status, path).toBe(303);
      expect(r.location).toBe(`/console/sign-in?next=${encodeURIComponent(path)}`);
    }
    expect((await c.get("/console/keyfobs?partial=1")).status).toBe(401);
    const issue = await c.post("/console/keyfobs/FK0001/issue", { customer: "C1", _csrf: "x".repeat(43) });
    expect(issue.status).toBe(401);
    // A made-up session cookie is no session.
    c.cookies.set("fobkit_console", randomBytes(32).toString("base64url"));
    expect((await c.get("/console/")).status).toBe(303);
    expect((await server.registry.status("FK0001")).state).toBe("in_stock");
  });

  it("the audit pages by cursor: Next and Previous walk every record once, and a deep page's query starts at its cursor instead of skipping the pages before it", async () => {
    await addStaff(db, "carol", "teller", PASSWORDS.carol, CLI);
    const n = 1050;
    await db.run(
      `WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ${n})
       INSERT INTO audit (at, actor, source, action, outcome, serial, customer, detail) SELECT ${START} + i, 'staff:bulk', 'test', 'verify', 'ok', 'FKBULK', NULL, '{"n":' || i || '}' FROM k`,
    );
    if (db.dialect === "postgres") await db.run("ANALYZE audit");
    const carol = await signedIn("carol");
    const numbers = (text: string) => [...text.matchAll(/n(?:&quot;|&#34;|")\s*:\s*(\d+)/g)].map((m) => Number(m[1]));
    const link = (text: string, rel: string) => [...text.matchAll(/<a href="([^"]+)" rel="(next|prev)"/g)].find((m) => m[2] === rel)?.[1].replace(/&amp;/g, "&");
    const walk = async (from: string, rel: string) => {
      const pages: { path: string; numbers: number[] }[] = [];
      for (let path: string | undefined = from; path; ) {
        const r = await carol.get(path);
        expect(r.status, path).toBe(200);
        pages.push({ path, numbers: numbers(r.text) });
        path = link(r.text, rel);
      }
      return pages;
    };
    const forward = await walk("/console/audit?serial=FKBULK", "next");
    expect(forward).toHaveLength(Math.ceil(n / AUDIT_PAGE_SIZE));
    expect(forward.flatMap((p) => p.numbers)).toEqual(Array.from({ length: n }, (_, i) => n - i));
    const back = await walk(forward.at(-1)!.path, "prev");
    expect(back.map((p) => p.numbers)).toEqual(forward.map((p) => p.numbers).reverse());

    // The last page's query, as the console runs it, and the engine's plan for it.
    const q = new URL(forward.at(-1)!.path, base).searchParams;
    const seen: [string, unknown[]][] = [];
    const recording = Object.create(db, { all: { value: (sql: string, params: unknown[] = []) => (seen.push([sql, params]), db.all(sql, params)) } }) as Database;
    const cursor = (k: string) => (q.get(k) === null ? undefined : Number(q.get(k)));
    const last = await auditPage(recording, { serial: "FKBULK", page: cursor("page"), before: cursor("before"), after: cursor("after") });
    expect(last.records.map((r) => r.detail!.n)).toEqual(forward.at(-1)!.numbers);
    const [sql, params] = seen[0];
    if (db.dialect === "postgres") {
      const [{ "QUERY PLAN": plan }] = await db.all<{ "QUERY PLAN": any }>("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params);
      const read: number[] = [];
      const visit = (node: any) => (node["Relation Name"] === "audit" && read.push(node["Actual Rows"]), (node.Plans ?? []).forEach(visit));
      visit(plan[0].Plan);
      expect(read.length, JSON.stringify(plan)).toBeGreaterThan(0);
      // Rows the scan of audit produced: the page and the one that says whether another follows, not the pages before it.
      expect(Math.max(...read), JSON.stringify(plan)).toBeLessThanOrEqual(AUDIT_PAGE_SIZE + 1);
    } else {
      const plan = (await db.all<{ detail: string }>("EXPLAIN QUERY PLAN " + sql, params)).map((r) => r.detail).join("; ");
      // The search starts at the cursor (a range on id, which the filter's index ends in), not at the newest record.
      expect(plan).toMatch(/^SEARCH audit USING .*\bid<\?/);
    }
  });

  it("an audit cursor that is not one record number (malformed, repeated, or before= with after=) is a 400 naming the parameter, in Japanese and English, on the page and the CSV", async () => {
    await register("FK0001");
    const ja = await signedIn("alice");
    const en = new Client(base, { "accept-language": "en" });
    expect((await en.signIn("bob", PASSWORDS.bob)).status).toBe(303);
    const cases: [string, RegExp, RegExp][] = [
      ["before=12&after=3", /before.*after|after.*before/, /before.*after.*同時に指定できません/],
      ["before=abc", /before: .*record number/, /before: .*記録番号/],
      ["after=-5", /after: .*record number/, /after: .*記録番号/],
      ["before=1e3", /before: .*record number/, /before: .*記録番号/],
      ["after=9999999999999999999", /after: .*record number/, /after: .*記録番号/],
      ["before=5&before=6", /before: .*record number/, /before: .*記録番号/],
    ];
    for (const [query, english, japanese] of cases) {
      for (const path of [`/console/audit?${query}`, `/console/audit.csv?${query}`]) {
        const e = await en.get(path);
        expect(e.status, `${path} (en)`).toBe(400);
        expect(e.text, path).toMatch(/<p class="error" role="alert" tabindex="-1" autofocus>/);
        expect(e.text, path).toMatch(english);
        expect(e.text, path).toContain('<html lang="en">');
        const j = await ja.get(path);
        expect(j.status, `${path} (ja)`).toBe(400);
        expect(j.text, path).toMatch(japanese);
        expect(j.text, path).toContain('<html lang="ja">');
      }
    }
    // One good cursor still pages; the pager's own links carry one cursor each.
    expect((await ja.get("/console/audit?before=999999")).status).toBe(200);
    expect((await ja.get("/console/audit?after=0&page=2")).status).toBe(200);
    expect((await ja.get("/console/audit?before=")).status).toBe(200); // an empty field is no cursor, as for from= and to=
  });

  it("every refusal a supervisor or teller can meet on the approvals and withdraw forms is in the page's language, and says what to do", async () => {
    await register("FK0001");
    await server.registry.issue("FK0001", "C1", CLI);
    const bob = await signedIn("bob"); // Japanese: the default
    for (const [id, status] of [["abc", 400], ["0123456789ab", 404]] as const) {
      const r = await bob.post(`/console/approvals/${id}/approve`, { _csrf: await bob.csrf() });
      expect(r.status, id).toBe(status);
      expect(r.text, id).toContain('<html lang="ja">');
      expect(r.text, id).toMatch(/<p class="error"[^>]*>[^<]*承認依頼[^<]*<\/p>/);
      expect(r.text, id).not.toMatch(/approval id|no approval request/);
    }
    // A withdraw sent without its confirmation: the error asks for it (it was the checkbox's own label, a statement).
    for (const [client, lang, wanted] of [
      [bob, "ja", /チェックを入れて/],
      [await (async () => {
        const c = new Client(base, { "accept-language": "en" });
        expect((await c.signIn("alice", PASSWORDS.alice)).status).toBe(303);
        return c;
      })(), "en", /tick/i],
    ] as const) {
      const r = await client.post("/console/keyfobs/FK0001/withdraw", { reason: "lost", _csrf: await client.csrf() });
      expect(r.status, lang).toBe(400);
      expect(r.text, lang).toMatch(new RegExp(`<p class="error"[^>]*>[^<]*${wanted.source}`, "i"));
    }
    expect((await server.registry.status("FK0001")).state).toBe("issued");
  });

  it("every console answer, page, redirect or asset, carries the page headers: no-store, nosniff, DENY, same-origin referrer, the CSP", async () => {
    for (const path of ["/console/sign-in", "/console/", "/console/assets/console.css"]) {
      const r = await fetch(base + path, { redirect: "manual" });
      expect([200, 303], path).toContain(r.status);
      expect(r.headers.get("cache-control"), path).toBe("no-store");
      expect(r.headers.get("x-content-type-options"), path).toBe("nosniff");
      expect(r.headers.get("x-frame-options"), path).toBe("DENY");
      expect(r.headers.get("referrer-policy"), path).toBe("same-origin");
      expect(r.headers.get("content-security-policy"), path).toMatch(/^default-src 'none'; script-src 'self';.*frame-ancestors 'none'/);
    }
  });

  it("signing in makes a new session (a planted cookie is never adopted), with HttpOnly, SameSite=Strict and no Secure on loopback; 15 idle minutes or sign-out end it", async () => {
    // Fixation: an attacker signs in and plants their own, valid, session id in alice's browser.
    const attacker = await signedIn("bob");
    const planted = attacker.cookies.get("fobkit_console")!;
    const c = new Client(base);
    c.cookies.set("fobkit_console", planted);
    const r = await c.signIn("alice", PASSWORDS.alice, "/console/keyfobs?state=locked");
    expect(r.status).toBe(303);
    expect(r.location).toBe("/console/keyfobs?state=locked");
    const cookie = r.setCookie.find((s) => s.startsWith("fobkit_console="))!;
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Strict/);
    expect(cookie).toMatch(/; Path=\/console\//);
    expect(cookie).not.toMatch(/Secure/);
    const sid = c.cookies.get("fobkit_console")!;
    expect(sid).not.toBe(planted);
    expect((await c.get("/console/")).text).toContain("alice (");
    // The planted session ended with the new sign-in: it is nobody's now.
    expect((await attacker.get("/console/")).status).toBe(303);
    // Idle: 14 minutes is fine (and restarts the clock), 15 more is not.
    clock.advance(14 * 60);
    expect((await c.get("/console/")).status).toBe(200);
    clock.advance(15 * 60 + 1);
    expect((await c.get("/console/")).status).toBe(303);
    // Sign out ends the session on the server, not only in the browser.
    const c2 = await signedIn("alice");
    const kept = c2.cookies.get("fobkit_console")!;
    expect((await c2.post("/console/sign-out", { _csrf: await c2.csrf() })).status).toBe(303);
    const replay = new Client(base);
    replay.cookies.set("fobkit_console", kept);
    expect((await replay.get("/console/")).status).toBe(303);
    // The password never appears in the audit.
    expect(JSON.stringify(await server.registry.auditTrail())).not.toContain(PASSWORDS.alice);
  });

  it("five wrong passwords lock a staff account, even tried in parallel; the sixth try finds it locked, the right password too, until a supervisor unlocks it", async () => {
    const attacker = new Client(base);
    const tries = await Promise.all(Array.from({ length: 12 }, () => attacker.signIn("alice", "wrong-password-guess")));
    expect(tries.every((t) => t.status === 401)).toBe(true);
    const audit = (await server.registry.auditTrail()).filter((a) => a.action === "signin");
    expect(audit.filter((a) => a.outcome === "bad_password")).toHaveLength(5);
    expect(audit.filter((a) => a.outcome === "locked")).toHaveLength(7);
    const right = await new Client(base, { "accept-language": "en" }).signIn("alice", PASSWORDS.alice);
    expect(right.status).toBe(401);
    expect(right.text).toContain("This staff account is locked after five wrong passwords from this address");
    // An unknown ID answers exactly as a wrong password does.
    const unknown = await new Client(base, { "accept-language": "en" }).signIn("mallory", "whatever-password");
    const wrong = await new Client(base, { "accept-language": "en" }).signIn("bob", "wrong-password-guess");
    expect(unknown.status).toBe(401);
    expect(unknown.text.replace(/mallory/g, "ID")).toBe(wrong.text.replace(/bob/g, "ID"));
    // A teller may not unlock staff; a supervisor may.
    await addStaff(db, "carol", "teller", PASSWORDS.carol, CLI);
    const carol = await signedIn("carol");
    expect((await carol.post("/console/staff/alice/unlock", { _csrf: await carol.csrf() })).status).toBe(403);
    const bob = await signedIn("bob");
    // The supervisor's staff page says until when, and from which address, in either language.
    const until = (await getStaff(db, "alice", clock.now()))!.lockedUntil!;
    const shown = (lang: string) => new Intl.DateTimeFormat(lang, { timeZone: "Asia/Tokyo", dateStyle: "medium", timeStyle: "medium" }).format(new Date(until));
    expect((await bob.get("/console/staff")).text).toContain(`<span class="state state-locked">停止中</span> ${shown("ja-JP")} まで<ul class="locked-from"><li>送信元 127.0.0.1: ${shown("ja-JP")} まで</li></ul>`);
    const bobEn = new Client(base, { "accept-language": "en" });
    expect((await bobEn.signIn("bob", PASSWORDS.bob)).status).toBe(303);
    expect((await bobEn.get("/console/staff")).text).toContain(`<span class="state state-locked">Locked</span> until ${shown("en-GB")}<ul class="locked-from"><li>from 127.0.0.1: until ${shown("en-GB")}</li></ul>`);
    expect((await bob.post("/console/staff/alice/unlock", { _csrf: await bob.csrf("/console/staff") })).status).toBe(303);
    expect((await new Client(base).signIn("alice", PASSWORDS.alice)).status).toBe(303);
  });

  it("marks the session cookie Secure when the console is served over HTTPS", async () => {
    const tls = selfSignedCert();
    const https = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0", tlsCert: tls.cert, tlsKey: tls.key, now: clock.now });
    try {
      const body = new URLSearchParams({ staff: "alice", password: PASSWORDS.alice }).toString();
      const u = new URL(https.url + "/console/sign-in");
      const cookie = await new Promise<string>((resolve, reject) => {
        const req = request({ host: u.hostname, port: u.port, path: u.pathname, method: "POST", rejectUnauthorized: false, headers: { "content-type": "application/x-www-form-urlencoded", "content-length": Buffer.byteLength(body) } }, (res) => {
          res.resume();
          resolve(String(res.headers["set-cookie"] ?? ""));
        });
        req.on("error", reject);
        req.end(body);
      });
      // __Host- (Secure, Path=/, no Domain): see console-listener.test.ts.
      expect(cookie).toMatch(/^__Host-fobkit_console=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Secure$/);
    } finally {
      await https.close();
      rmSync(tls.dir, { recursive: true, force: true });
    }
  });

  it("refuses a change without the session's CSRF token, with another session's token, or from another origin, and changes nothing", async () => {
    await register("FK0001");
    const alice = await signedIn("alice");
    const bob = await signedIn("bob");
    const bobToken = await bob.csrf();
    expect((await alice.post("/console/keyfobs/FK0001/issue", { customer: "C1" })).status).toBe(403);
    expect((await alice.post("/console/keyfobs/FK0001/issue", { customer: "C1", _csrf: bobToken })).status).toBe(403);
    const token = await alice.csrf();
    expect((await alice.post("/console/keyfobs/FK0001/issue", { customer: "C1", _csrf: token }, { origin: "http://evil.example" })).status).toBe(403);
    expect((await alice.post("/console/sign-out", {})).status).toBe(403);
    expect((await server.registry.status("FK0001")).state).toBe("in_stock");
    const ok = await alice.post("/console/keyfobs/FK0001/issue", { customer: "C1", _csrf: token }, { origin: base });
    expect(ok.status).toBe(303);
    expect(await server.registry.status("FK0001")).toMatchObject({ state: "issued", customer: "C1" });
    const record = (await server.registry.auditTrail({ serial: "FK0001" })).find((a) => a.action === "issue" && a.outcome === "ok")!;
    expect(record).toMatchObject({ actor: "console:alice", source: "127.0.0.1" });
  });

  it("roles are checked by the server: a teller cannot withdraw as stolen, see approvals or staff, or approve; the maker-checker rule is the API's too", async () => {
    await register("FK0001");
    await server.registry.issue("FK0001", "C1", CLI);
    const alice = await signedIn("alice");
    const token = await alice.csrf();
    const stolen = await alice.post("/console/keyfobs/FK0001/withdraw", { reason: "stolen", confirmed: "yes", _csrf: token });
    expect(stolen.status).toBe(403);
    expect((await server.registry.status("FK0001")).state).toBe("issued");
    expect((await alice.get("/console/approvals")).status).toBe(403);
    expect((await alice.get("/console/staff")).status).toBe(403);
    // The same rule through the API: an API staff key has a teller's authority.
    expect(await call(base, "POST", "/v1/customers/C1/withdraw", { key: staffKey, body: { reason: "stolen" } })).toMatchObject({ status: 409, body: { error: { code: "needs_supervisor" } } });
    // Maker-checker: two unlocks in 24 hours (API, then console), the third is a request.
    await lockWithWrongCodes("C1");
    expect((await call(base, "POST", "/v1/customers/C1/unlock", { key: staffKey })).status).toBe(200);
    await lockWithWrongCodes("C1");
    expect((await alice.post("/console/keyfobs/FK0001/unlock", { _csrf: token })).status).toBe(303);
    await lockWithWrongCodes("C1");
    const third = await alice.post("/console/keyfobs/FK0001/unlock", { _csrf: token });
    expect(third.status).toBe(409);
    const approval = /([0-9a-f]{12})<\/p>/.exec(third.text)![1];
    const viaApi = await call(base, "POST", "/v1/customers/C1/unlock", { key: staffKey });
    expect(viaApi).toMatchObject({ status: 409, body: { error: { code: "needs_approval", detail: { approval } } } });
    expect((await server.registry.status("FK0001")).state).toBe("locked");
    expect((await alice.post(`/console/approvals/${approval}/approve`, { _csrf: token })).status).toBe(403);
    expect((await server.registry.status("FK0001")).state).toBe("locked");
    const bob = await signedIn("bob");
    const pending = await bob.get("/console/approvals");
    expect(pending.text).toContain(approval);
    expect((await bob.post(`/console/approvals/${approval}/approve`, { _csrf: await bob.csrf() })).status).toBe(303);
    expect((await server.registry.status("FK0001")).state).toBe("issued");
    // Each refusal its status: decided already is a conflict (409), a malformed id 400, an id no request has 404.
    const refusal = async (path: string) => {
      const r = await bob.post(path, { _csrf: await bob.csrf() });
      return [r.status, /role="alert"[^>]*>([^<]*)/.exec(r.text)?.[1] ?? r.text.slice(0, 200)];
    };
    expect(await refusal(`/console/approvals/${approval}/approve`)).toEqual([409, expect.stringMatching(/既に処理|already decided/)]);
    expect(await refusal(`/console/approvals/${approval}/reject`)).toEqual([409, expect.stringMatching(/既に処理|already decided/)]);
    expect(await refusal("/console/approvals/NOT-AN-ID/approve")).toEqual([400, expect.stringMatching(/12文字|12 characters/)]);
    expect(await refusal("/console/approvals/0123456789ab/reject")).toEqual([404, expect.stringMatching(/該当する承認依頼はありません|no such approval/)]);
    const trail = await server.registry.auditTrail({ customer: "C1" });
    expect(trail.find((a) => a.action === "approve")).toMatchObject({ actor: "console:bob", detail: { approval, maker: "console:alice" } });
    expect(trail.filter((a) => a.action === "unlock").map((a) => `${a.actor}:${a.outcome}`)).toEqual([
      `staff:${staffKey.slice(4, 16)}:ok`,
      "console:alice:ok",
      "console:alice:needs_approval",
      `staff:${staffKey.slice(4, 16)}:needs_approval`,
      "console:bob:ok",
    ]);
    // A day later a teller may unlock alone again.
    clock.advance(24 * 3600 + 60);
    await lockWithWrongCodes("C1");
    expect((await call(base, "POST", "/v1/customers/C1/unlock", { key: staffKey })).status).toBe(200);
    // A supervisor withdraws as stolen.
    const bob2 = await signedIn("bob");
    expect((await bob2.post("/console/keyfobs/FK0001/withdraw", { reason: "stolen", confirmed: "yes", _csrf: await bob2.csrf() })).status).toBe(303);
    expect(await server.registry.status("FK0001")).toMatchObject({ state: "retired", withdrawn: "stolen" });
  });

  it("resyncs a keyfob from two consecutive codes and refuses codes that are not", async () => {
    await register("FK0001", RFC_SEED_SHA1);
    await server.registry.issue("FK0001", "C1", CLI);
    const alice = await signedIn("alice");
    const token = await alice.csrf();
    const form = await alice.get("/console/keyfobs/FK0001/resync");
    expect(form.text).toContain('pattern="[0-9]{8}"');
    // The keyfob runs 10 minutes fast: its next two codes.
    const fast = clock.seconds + 600;
    const bad = await alice.post("/console/keyfobs/FK0001/resync", { code1: oathtool(RFC_SEED_SHA1, fast), code2: oathtool(RFC_SEED_SHA1, fast + 120), _csrf: token });
    expect(bad.status).toBe(409);
    expect((await alice.post("/console/keyfobs/FK0001/resync", { code1: "1234", code2: "5678", _csrf: token })).status).toBe(400);
    const ok = await alice.post("/console/keyfobs/FK0001/resync", { code1: oathtool(RFC_SEED_SHA1, fast), code2: oathtool(RFC_SEED_SHA1, fast + 60), _csrf: token });
    expect(ok.status).toBe(303);
    expect(await server.registry.status("FK0001")).toMatchObject({ drift: 11 });
    const record = (await server.registry.auditTrail({ serial: "FK0001" })).filter((a) => a.action === "resync").map((a) => `${a.actor}:${a.outcome}`);
    expect(record).toEqual(["console:alice:resync_failed", "console:alice:ok"]);
  });

  it("escapes markup in serials everywhere and defuses formulas in the CSV", async () => {
    const evil = `<svg/onload=alert(1)>"'`;
    await register(evil);
    await register("=1+1");
    await server.registry.issue(evil, "C-evil", CLI);
    const c = await signedIn("bob");
    for (const path of [`/console/keyfobs/${encodeURIComponent(evil)}`, "/console/keyfobs", "/console/audit", "/console/customers/C-evil", `/console/search?q=${encodeURIComponent("<svg")}`]) {
      const r = await c.get(path);
      expect(r.status, path).toBe(200);
      expect(r.text, path).not.toContain("<svg");
      expect(r.text, path).toContain("&lt;svg/onload=alert(1)&gt;");
    }
    const csv = await c.get("/console/audit.csv");
    expect(csv.status).toBe(200);
    expect(csv.text).toContain(",'=1+1,");
    expect(csv.text).not.toMatch(/,=1\+1/);
  });

  it("after sign-in or a language switch redirects only inside the console", async () => {
    for (const next of ["//evil.example/", "https://evil.example/", "/console/../../x", "/\\evil.example", "javascript:alert(1)"]) {
      const r = await new Client(base).signIn("alice", PASSWORDS.alice, next);
      expect(r.location, next).toBe("/console/");
    }
    expect((await new Client(base).get(`/console/lang?to=en&back=${encodeURIComponent("//evil.example")}`)).location).toBe("/console/");
    expect((await new Client(base).signIn("alice", PASSWORDS.alice, "/console/audit?serial=FK1")).location).toBe("/console/audit?serial=FK1");
  });

  it("speaks Japanese by default, English when the browser prefers it, and switches on every page", async () => {
    const ja = await new Client(base).get("/console/sign-in");
    expect(ja.text).toContain('<html lang="ja">');
    expect(ja.text).toContain(">ログイン</button>");
    const en = await new Client(base, { "accept-language": "en-GB,en;q=0.9,ja;q=0.5" }).get("/console/sign-in");
    expect(en.text).toContain('<html lang="en">');
    for (const name of ["Staff ID", "Password", "Sign in"]) expect(en.text).toContain(`>${name}<`);
    expect((await new Client(base, { "accept-language": "ja,en;q=0.8" }).get("/console/sign-in")).text).toContain('lang="ja"');
    const c = await signedIn("alice");
    const sw = await c.get("/console/lang?to=en&back=%2Fconsole%2Faudit");
    expect(sw.location).toBe("/console/audit");
    const audit = await c.get("/console/audit");
    expect(audit.text).toContain('<html lang="en">');
    expect(audit.text).toContain('href="/console/lang?to=ja&amp;back=%2Fconsole%2Faudit"');
  });

  it("falls back to Japanese, the bank's language, whenever the browser names no language it accepts: error pages too, and an unexpected error's text", async () => {
    const langOf = async (acceptLanguage: string | undefined, path = "/console/sign-in") =>
      /<html lang="([^"]*)"/.exec((await new Client(base, acceptLanguage === undefined ? {} : { "accept-language": acceptLanguage }).get(path)).text)?.[1];
    // English named as not acceptable (q=0), a weight that is not a qvalue, nothing, or only other languages.
    for (const al of ["en;q=0", "en;q=0, fr", "en;q=abc", "en;q=1.5", "fr, de;q=0.5", "*", undefined]) expect([al, await langOf(al)]).toEqual([al, "ja"]);
    expect(await langOf("en;q=0", "/console/assets/nope.css")).toBe("ja");
    // A path the router cannot read (a bad % escape) under /console/: the console's page, not the API's English JSON.
    for (const [al, lang] of [[undefined, "ja"], ["fr", "ja"], ["en", "en"]] as const) {
      const r = await fetch(base + "/console/keyfobs/%zz", { headers: al ? { "accept-language": al } : {} });
      expect([al, r.status, r.headers.get("content-type"), r.headers.get("cache-control"), /frame-ancestors 'none'/.test(r.headers.get("content-security-policy") ?? "")]).toEqual([al, 400, "text/html; charset=utf-8", "no-store", true]);
      expect(/<html lang="([^"]*)"/.exec(await r.text())?.[1]).toBe(lang);
    }
    const api = await fetch(base + "/v1/tokens/%zz");
    expect([api.status, ((await api.json()) as { error: { code: string } }).error.code]).toEqual([400, "bad_url"]);
    // Explicit English still gets English, weighted or not.
    for (const al of ["en", "en-US,en;q=0.9", "fr;q=1, en;q=0.001", "en;q=1.000"]) expect([al, await langOf(al)]).toEqual([al, "en"]);
    // An unexpected error's page says what happened in the page's language (it was English on Japanese pages).
    const ja = await signedIn("alice");
    const broken = server.registry.countByState;
    server.registry.countByState = () => Promise.reject(new TypeError("a fault the test injects"));
    const stderr = process.stderr.write;
    process.stderr.write = (() => true) as typeof process.stderr.write;
    try {
      const home = await ja.get("/console/");
      expect(home.status).toBe(500);
      expect(home.text).toContain('<html lang="ja">');
      expect(home.text).toContain("サーバーで問題が起きました。");
      expect(home.text).not.toContain("internal error");
    } finally {
      server.registry.countByState = broken;
      process.stderr.write = stderr;
    }
  });

  it("lists keyfobs paged, sorted and filtered on the server; searches by customer ID or serial, exact or prefix", async () => {
    await server.registry.register(
      Array.from({ length: 120 }, (_, i) => ({ serial: `FK${String(i).padStart(4, "0")}`, manufacturer: "fobkit", algorithm: "SHA1" as const, digits: 8, period: 60, t0: 0, secret: randomBytes(20) })),
      CLI,
      "test",
    );
    await server.registry.issue("FK0007", "C-7", CLI);
    await lockWithWrongCodes("C-7");
    await server.registry.issue("FK0008", "C-8", CLI);
    const c = new Client(base, { "accept-language": "en" });
    expect((await c.signIn("alice", PASSWORDS.alice)).status).toBe(303);
    const first = await c.get("/console/keyfobs");
    expect(first.text).toContain("120 keyfobs — Page 1 of 3");
    expect(first.text).toContain(">FK0049<");
    expect(first.text).not.toContain(">FK0050<");
    const last = await c.get("/console/keyfobs?sort=serial&dir=desc&page=3");
    expect(last.text).toContain(">FK0019<");
    expect(last.text).not.toContain(">FK0020<");
    const locked = await c.get("/console/keyfobs?state=locked&partial=1");
    expect(locked.text).toContain("1 keyfobs");
    expect(locked.text).toContain(">FK0007<");
    expect(locked.text).not.toContain("<html");
    const prefix = await c.get("/console/keyfobs?q=C-&sort=customer");
    expect(prefix.text).toContain("2 keyfobs");
    expect(prefix.text.indexOf(">C-7<")).toBeLessThan(prefix.text.indexOf(">C-8<"));
    expect((await c.get("/console/search?q=FK0008")).location).toBe("/console/keyfobs/FK0008");
    expect((await c.get("/console/search?q=C-7")).location).toBe("/console/customers/C-7");
    const some = await c.get("/console/search?q=FK011");
    expect(some.text).toContain(">FK0119<");
    expect(some.text).not.toContain(">FK0100<");
  });

  it("filters the audit by keyfob, customer, staff member and date, on the page and in the CSV", async () => {
    await register("FK0001");
    await register("FK0002");
    const alice = await signedIn("alice");
    expect((await alice.post("/console/keyfobs/FK0001/issue", { customer: "C1", _csrf: await alice.csrf() })).status).toBe(303);
    clock.advance(2 * 86400);
    await server.registry.issue("FK0002", "C2", CLI);
    // Two days idle ended the first session.
    expect((await alice.get("/console/audit")).status).toBe(303);
    expect((await alice.signIn("alice", PASSWORDS.alice)).status).toBe(303);
    const day = (ms: number) => new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Tokyo" }).format(new Date(ms));
    const csv = (q: string) => alice.get("/console/audit.csv?" + q).then((r) => r.text.trim().split("\r\n").slice(1));
    const byStaff = await csv("staff=alice");
    expect(byStaff.some((l) => l.includes(",issue,ok,FK0001,C1,"))).toBe(true);
    expect(byStaff.some((l) => l.includes("FK0002"))).toBe(false);
    const today = await csv(`from=${day(clock.ms)}&to=${day(clock.ms)}`);
    expect(today.every((l) => !l.includes("FK0001"))).toBe(true);
    expect(today.some((l) => l.includes(",issue,ok,FK0002,C2,"))).toBe(true);
    expect((await csv("customer=C2")).every((l) => l.includes(",C2,"))).toBe(true);
    const page = await alice.get("/console/audit?serial=FK0001");
    expect(page.text).toContain("console:alice");
    expect(page.text).not.toContain(">FK0002<");
    expect((await alice.get("/console/audit?from=2026-13-01")).status).toBe(400);
  });
});
