/**
 * safeNext: a redirect after sign-in or a language switch lands inside /console/, however the path is spelled.
 * Session 8 review (s8-rev-web): /console/%2e%2e/… was kept, and a browser resolves it outside /console/.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { safeNext } from "../../host/console/console.js";
import { startServer } from "../../host/server/serve.js";
import { ENGINES, freshDb } from "../registry/support.js";

/** Where a browser goes for a Location header of `kept` (WHATWG URL, as fetch and Chromium resolve it). */
const landing = (kept: string) => new URL(kept, "https://bank.example").pathname;

describe("safeNext", () => {
  it.each([
    "/console/%2e%2e/app/",
    "/console/%2E%2E/app/",
    "/console/.%2e/app/",
    "/console/%2e./v1/",
    "/console/keyfobs/%2e%2e/%2e%2e/app/?x=1",
    "/console/%2e%2e",
    "/console/../app/",
    "/console/./../app/",
  ])("sends %s home, since a browser would leave /console/", (next) => {
    const kept = safeNext(next);
    expect(kept).toBe("/console/");
    expect(landing(kept).startsWith("/console/")).toBe(true);
  });

  it.each(["/console/", "/console/keyfobs/FK0001", "/console/audit?serial=FK0001&from=2026-11-01", "/console/keyfobs/FK%2F1", "/console/%2e%2ehidden/"])("keeps %s, which stays in /console/", (next) => {
    expect(safeNext(next)).toBe(next);
    expect(landing(next).startsWith("/console/")).toBe(true);
  });
});

describe("the console's redirects", () => {
  let db: Database;
  let drop: () => Promise<void>;
  let server: Awaited<ReturnType<typeof startServer>>;
  beforeAll(async () => {
    ({ db, drop } = await freshDb(ENGINES[0]));
    server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0" });
  });
  afterAll(async () => {
    await server?.close();
    await drop?.();
  });

  it("a language switch with back=/console/%2e%2e/app/ goes to /console/", async () => {
    const r = await fetch(server.url + "/console/lang?to=en&back=" + encodeURIComponent("/console/%2e%2e/app/"), { redirect: "manual" });
    expect([r.status, r.headers.get("location")]).toEqual([303, "/console/"]);
  });
});
