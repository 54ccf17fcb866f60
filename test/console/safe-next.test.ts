/**
 * safeNext: a redirect after sign-in or a language switch lands inside /console/, however the path is spelled.
 * Session 8 review (s8-rev-web): /console/%2e%2e/… was kept, and a browser resolves it outside /console/.
 */
import { describe, expect, it } from "vitest";
import { useBank } from "../support/bank-browser.js";
import { safeNext } from "../../host/console/console.js";

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
  const bank = useBank();

  it("a language switch with back=/console/%2e%2e/app/ goes to /console/", async () => {
    const r = await fetch(bank.server.url + "/console/lang?to=en&back=" + encodeURIComponent("/console/%2e%2e/app/"), { redirect: "manual" });
    expect([r.status, r.headers.get("location")]).toEqual([303, "/console/"]);
  });
});
