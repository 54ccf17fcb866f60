/**
 * `bank serve --console-listen HOST:PORT`: the staff console on a listener of its own (its own origin), the public
 * listener refusing /console/; and the session cookie's name and attributes by scheme (__Host- over HTTPS).
 * Session 8 review (s8-rev-web): the console and the public app shared one origin. The Chromium proof that a script
 * in /app/ can no longer act as a teller is console-origin-browser.test.ts.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer, type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { addStaff } from "../../host/registry/staff.js";
import { checkListen, startServer } from "../../host/server/serve.js";
import { Client } from "./support.js";
import { ENGINES, freshDb } from "../registry/support.js";
import { selfSignedCert } from "../server/support.js";
import { runFobkit, startServeProcess } from "../server/spawn.js";

const CLI = { name: "staff:test", source: "cli" };
const PASSWORD = "alice-correct-horse";

let db: Database | undefined;
let drop: (() => Promise<void>) | undefined;
let server: Awaited<ReturnType<typeof startServer>> | undefined;

afterEach(async () => {
  await server?.close();
  await drop?.();
  server = undefined;
  drop = undefined;
});

async function boot(extra: { tlsCert?: string; tlsKey?: string; consoleListen?: string } = {}) {
  ({ db, drop } = await freshDb(ENGINES[0]));
  server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0", ...extra });
  await addStaff(db, "alice", "teller", PASSWORD, CLI);
  return server;
}

/** One HTTPS request to a self-signed listener: status, Location, Set-Cookie and the page's language (<html lang>). */
function httpsCall(base: string, method: string, path: string, o: { body?: string; cookie?: string } = {}) {
  const u = new URL(base + path);
  return new Promise<{ status: number; location?: string; setCookie: string[]; lang?: string }>((resolve, reject) => {
    const headers: Record<string, string | number> = {};
    if (o.body !== undefined) Object.assign(headers, { "content-type": "application/x-www-form-urlencoded", "content-length": Buffer.byteLength(o.body) });
    if (o.cookie) headers.cookie = o.cookie;
    const req = request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method, rejectUnauthorized: false, headers }, (res) => {
      const body: Buffer[] = [];
      res.on("data", (b: Buffer) => body.push(b));
      res.on("error", reject);
      res.on("end", () => {
        const lang = /<html lang="([^"]*)"/.exec(Buffer.concat(body).toString("utf8"))?.[1];
        resolve({ status: res.statusCode!, location: res.headers.location, setCookie: res.headers["set-cookie"] ?? [], lang });
      });
    });
    req.on("error", reject);
    req.end(o.body);
  });
}

describe("the console on its own listener (--console-listen)", () => {
  it("serves the console only there; the public listener answers 404 under /console/ and still serves the app and API", async () => {
    const s = await boot({ consoleListen: "127.0.0.1:0" });
    expect(s.consoleUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(s.consoleUrl).not.toBe(s.url);
    for (const path of ["/console/", "/console/sign-in", "/console/assets/console.css"]) {
      expect((await fetch(s.url + path, { redirect: "manual" })).status, path).toBe(404);
    }
    const publicSignIn = await fetch(s.url + "/console/sign-in", { method: "POST", body: new URLSearchParams({ staff: "alice", password: PASSWORD }) });
    expect(publicSignIn.status).toBe(404);
    expect((await fetch(s.url + "/app/")).status).toBe(200);
    expect((await fetch(s.url + "/healthz")).status).toBe(200);
    // The console's origin serves the console and nothing public.
    const root = await fetch(s.consoleUrl + "/", { redirect: "manual" });
    expect([root.status, root.headers.get("location")]).toEqual([303, "/console/"]);
    expect((await fetch(s.consoleUrl + "/app/")).status).toBe(404);
    expect((await fetch(s.consoleUrl + "/healthz")).status).toBe(404);
    const alice = new Client(s.consoleUrl!);
    const signIn = await alice.signIn("alice", PASSWORD);
    expect(signIn.status).toBe(303);
    expect((await alice.get("/console/")).status).toBe(200);
    // A form posted from the public app's origin names that origin: refused, as from any other site.
    const token = await alice.csrf();
    expect((await alice.post("/console/sign-out", { _csrf: token }, { origin: s.url })).status).toBe(403);
    expect((await alice.post("/console/sign-out", { _csrf: token }, { origin: s.consoleUrl! })).status).toBe(303);
  });

  it("without --console-listen the console stays on the one listener", async () => {
    const s = await boot();
    expect(s.consoleUrl).toBeUndefined();
    expect((await fetch(s.url + "/console/sign-in")).status).toBe(200);
  });

  it("is checked before anything starts: the same address as --listen, plain HTTP off loopback, a malformed address", () => {
    expect(() => checkListen({ listen: "127.0.0.1:8700", consoleListen: "127.0.0.1:8700" })).toThrow(/--console-listen .* port of its own/);
    expect(() => checkListen({ listen: "127.0.0.1:8700", consoleListen: "192.0.2.10:8701" })).toThrow(/plain HTTP on 192\.0\.2\.10 for --console-listen/);
    expect(() => checkListen({ listen: "127.0.0.1:8700", consoleListen: "8701" })).toThrow(/^--console-listen must be HOST:PORT/);
    expect(checkListen({ listen: "127.0.0.1:8700", consoleListen: "127.0.0.1:8701" }).console).toEqual({ host: "127.0.0.1", port: 8701 });
  });

  it("bank serve --workers 2 --console-listen: every worker serves both listeners, and the console's URL is printed", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fobkit-console-listen-"));
    const env = { FOBKIT_BANK_DB: `sqlite:${join(dir, "bank.sqlite")}`, FOBKIT_BANK_KEK_FILE: join(dir, "bank.kek") };
    try {
      expect((await runFobkit(["bank", "init-kek"], env)).code).toBe(0);
      writeFileSync(join(dir, "pw"), PASSWORD + "\n", { mode: 0o600 });
      expect((await runFobkit(["bank", "add-staff", "--name", "alice", "--role", "teller", "--password-file", join(dir, "pw")], env)).code).toBe(0);
      const serve = await startServeProcess(["--workers", "2", "--console-listen", "127.0.0.1:0"], env);
      try {
        const consoleUrl = String(serve.info.console);
        expect(consoleUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/console\/$/);
        expect(new URL(consoleUrl).origin).not.toBe(new URL(serve.url).origin);
        expect((await fetch(serve.url + "/console/sign-in")).status).toBe(404);
        const alice = new Client(new URL(consoleUrl).origin);
        expect((await alice.signIn("alice", PASSWORD)).status).toBe(303);
        // Several requests: the round-robin reaches both workers, each with both listeners.
        for (let i = 0; i < 4; i++) expect((await alice.get("/console/")).status).toBe(200);
      } finally {
        await serve.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});

describe("bank serve --console-listen on a taken port", () => {
  it("fails (exit 3) naming the console's address, not --listen's", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fobkit-console-listen-"));
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const env = { FOBKIT_BANK_DB: `sqlite:${join(dir, "bank.sqlite")}`, FOBKIT_BANK_KEK_FILE: join(dir, "bank.kek") };
      expect((await runFobkit(["bank", "init-kek"], env)).code).toBe(0);
      const r = await runFobkit(["bank", "serve", "--listen", "127.0.0.1:0", "--console-listen", `127.0.0.1:${port}`], env);
      expect(r.code).toBe(3);
      expect(r.stderr).toContain(`cannot listen on 127.0.0.1:${port} (--console-listen): EADDRINUSE`);
    } finally {
      await new Promise<void>((resolve) => taken.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});

describe("the session cookie over HTTPS", () => {
  it.each([{ consoleListen: "127.0.0.1:0" }, {}])("is __Host-fobkit_console, Secure, Path=/ (%o), and only that name opens a session", async (extra) => {
    const tls = selfSignedCert();
    try {
      const s = await boot({ tlsCert: tls.cert, tlsKey: tls.key, ...extra });
      const base = s.consoleUrl ?? s.url;
      expect(base).toMatch(/^https:/);
      const signIn = await httpsCall(base, "POST", "/console/sign-in", { body: new URLSearchParams({ staff: "alice", password: PASSWORD }).toString() });
      expect(signIn.status).toBe(303);
      const cookie = signIn.setCookie.join("\n");
      expect(cookie).toMatch(/^__Host-fobkit_console=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Secure$/);
      const sid = /^__Host-fobkit_console=([^;]+)/.exec(cookie)![1];
      expect((await httpsCall(base, "GET", "/console/", { cookie: `__Host-fobkit_console=${sid}` })).status).toBe(200);
      // The unprefixed name (which a sibling host or a plain-HTTP page could set) is not read over HTTPS.
      const unprefixed = await httpsCall(base, "GET", "/console/", { cookie: `fobkit_console=${sid}` });
      expect([unprefixed.status, unprefixed.location]).toEqual([303, "/console/sign-in?next=%2Fconsole%2F"]);
    } finally {
      rmSync(tls.dir, { recursive: true, force: true });
    }
  });
});

describe("the language cookie over HTTPS", () => {
  it.each([{ consoleListen: "127.0.0.1:0" }, {}])("is __Host-fobkit_lang, Secure, Path=/ (%o); the old fobkit_lang still chooses the language, and is moved to the new name", async (extra) => {
    const tls = selfSignedCert();
    try {
      const s = await boot({ tlsCert: tls.cert, tlsKey: tls.key, ...extra });
      const base = s.consoleUrl ?? s.url;
      expect(base).toMatch(/^https:/);
      // The switch sets the prefixed name (no Domain: the prefix forbids one) and expires the old one at its own Path.
      const sw = await httpsCall(base, "GET", "/console/lang?to=en&back=%2Fconsole%2Fsign-in");
      expect([sw.status, sw.location]).toEqual([303, "/console/sign-in"]);
      expect(sw.setCookie).toEqual(["__Host-fobkit_lang=en; Path=/; Max-Age=31536000; SameSite=Strict; Secure", "fobkit_lang=; Path=/console/; Max-Age=0; SameSite=Strict; Secure"]);
      expect((await httpsCall(base, "GET", "/console/sign-in", { cookie: "__Host-fobkit_lang=en" })).lang).toBe("en");
      expect((await httpsCall(base, "GET", "/console/sign-in")).lang).toBe("ja");
      // A browser with only the old cookie keeps its language, and is given the new name for it.
      const old = await httpsCall(base, "GET", "/console/sign-in", { cookie: "fobkit_lang=en" });
      expect(old.lang).toBe("en");
      expect(old.setCookie).toEqual(["__Host-fobkit_lang=en; Path=/; Max-Age=31536000; SameSite=Strict; Secure", "fobkit_lang=; Path=/console/; Max-Age=0; SameSite=Strict; Secure"]);
      // Once moved, nothing more is set; an unprefixed cookie (which a sibling host or a plain-HTTP page could plant) does not outrank the prefixed one.
      const both = await httpsCall(base, "GET", "/console/sign-in", { cookie: "fobkit_lang=en; __Host-fobkit_lang=ja" });
      expect([both.lang, both.setCookie]).toEqual(["ja", []]);
    } finally {
      rmSync(tls.dir, { recursive: true, force: true });
    }
  });

  it("over plain HTTP (loopback) stays fobkit_lang, Path=/console/ (no __Host- without TLS)", async () => {
    const s = await boot();
    const c = new Client(s.url);
    const sw = await c.get("/console/lang?to=en&back=%2Fconsole%2Fsign-in");
    expect(sw.setCookie).toEqual(["fobkit_lang=en; Path=/console/; Max-Age=31536000; SameSite=Strict"]);
    const page = await c.get("/console/sign-in");
    expect([page.text.includes('<html lang="en">'), page.setCookie]).toEqual([true, []]);
  });
});
