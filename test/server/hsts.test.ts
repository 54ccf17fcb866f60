/**
 * Strict-Transport-Security (RFC 6797) on every answer over HTTPS, of both listeners, and never over plain HTTP.
 * Session 8 review (s8-rev-web): a TLS listener sent none. Moved from test/review/s8-web-http.test.ts.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { request } from "node:https";
import { afterEach, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { startServer } from "../../host/server/serve.js";
import { ENGINES, freshDb } from "../registry/support.js";
import { selfSignedCert } from "./support.js";

let db: Database | undefined;
let drop: (() => Promise<void>) | undefined;
let server: Awaited<ReturnType<typeof startServer>> | undefined;

afterEach(async () => {
  await server?.close();
  await drop?.();
  server = undefined;
  drop = undefined;
});

const keys = () => KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]);

/** Status and Strict-Transport-Security of one HTTPS GET to a self-signed listener. */
const overTls = (base: string, path: string) =>
  new Promise<{ status: number; hsts: string | undefined }>((resolve, reject) => {
    const u = new URL(base + path);
    request({ host: u.hostname, port: u.port, path: u.pathname, rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve({ status: res.statusCode!, hsts: res.headers["strict-transport-security"] as string | undefined });
    })
      .on("error", reject)
      .end();
  });

describe("Strict-Transport-Security", () => {
  it("is max-age of one year, without includeSubDomains, on every answer of both HTTPS listeners", async () => {
    ({ db, drop } = await freshDb(ENGINES[0]));
    const tls = selfSignedCert();
    try {
      server = await startServer({ db, keys: keys(), listen: "127.0.0.1:0", tlsCert: tls.cert, tlsKey: tls.key, consoleListen: "127.0.0.1:0" });
      const shared = await startServer({ db, keys: keys(), listen: "127.0.0.1:0", tlsCert: tls.cert, tlsKey: tls.key });
      try {
        const seen: Record<string, unknown> = {};
        for (const [name, base, path] of [
          ["app", server.url, "/app/"],
          ["api without a key", server.url, "/v1/tokens/FK1"],
          ["health", server.url, "/healthz"],
          ["no such route", server.url, "/nowhere"],
          ["bad % escape (a router error)", server.url, "/v1/tokens/%zz"],
          ["bad % escape in the console", server.consoleUrl!, "/console/keyfobs/%zz"],
          ["console listener", server.consoleUrl!, "/console/sign-in"],
          ["console listener root", server.consoleUrl!, "/"],
          ["console on the shared listener", shared.url, "/console/sign-in"],
        ] as const) {
          seen[name] = (await overTls(base, path)).hsts ?? null;
        }
        expect(Object.values(seen).every((h) => h === "max-age=31536000"), JSON.stringify(seen)).toBe(true);
      } finally {
        await shared.close();
      }
    } finally {
      rmSync(tls.dir, { recursive: true, force: true });
    }
  });

  it("is not sent over plain HTTP, nor for an X-Forwarded-Proto from a peer that is not a trusted proxy; it is behind one", async () => {
    ({ db, drop } = await freshDb(ENGINES[0]));
    server = await startServer({ db, keys: keys(), listen: "127.0.0.1:0" });
    const plain = await fetch(server.url + "/app/");
    expect(plain.status).toBe(200);
    expect(plain.headers.get("strict-transport-security")).toBeNull();
    expect((await fetch(server.url + "/app/", { headers: { "x-forwarded-proto": "https" } })).headers.get("strict-transport-security")).toBeNull();
    const proxied = await startServer({ db, keys: keys(), listen: "127.0.0.1:0", trustProxy: ["127.0.0.1"] });
    try {
      const r = await fetch(proxied.url + "/console/sign-in", { headers: { "x-forwarded-proto": "https", "x-forwarded-for": "198.51.100.7" } });
      expect(r.headers.get("strict-transport-security")).toBe("max-age=31536000");
    } finally {
      await proxied.close();
    }
  });
});
