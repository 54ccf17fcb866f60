/**
 * In Chromium: what a non-extractable seed key does NOT promise, as README's security model says. A script that runs
 * once in /app/ cannot read the key out (exportKey rejects), but it can use it: in under a second it computes every
 * code of the next 30 days, and the bank will accept them. So a script that ever ran in the page means re-issuing the
 * soft token used in that browser. Session 8 review (s8-rev-web), moved from test/review/s8-web-browser.test.ts and
 * turned round: it guards README's statement (if it ever failed, README would overstate the risk).
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { oathtool } from "../registry/support.js";
import { useBankAndBrowser } from "../support/bank-browser.js";

const bb = useBankAndBrowser({ locale: "en-US" });

describe("a non-extractable seed key", () => {
  it("cannot be read out, yet a script that runs once computes 30 days of codes the bank accepts", async () => {
    const seed = randomBytes(32);
    const page = await bb.browser.context.newPage();
    await page.goto(bb.server.url + "/app/");
    await page.locator("html[data-ready]").waitFor();
    const nowMs = Date.now();
    // The same kind of key deriveSeedKey stores in IndexedDB (HMAC-SHA-256, 32 bytes, extractable false), made from a
    // seed this test knows so the bank's codes can be computed independently (oathtool). The app's own module computes.
    // As a string: vitest would rewrite a dynamic import written in this file.
    const script = `(async () => {
      const p = await import("/app/soft/protocol.js");
      const raw = new Uint8Array("${seed.toString("hex")}".match(/../g).map((h) => parseInt(h, 16)));
      const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
      raw.fill(0);
      const exportRefused = await crypto.subtle.exportKey("raw", key).then(() => false, () => true);
      const first = Math.floor(${nowMs} / 60000);
      const t0 = performance.now();
      const codes = [];
      for (let s = first; s < first + 30 * 1440; s++) codes.push(await p.totpFromKey(key, s, 8));
      return { exportRefused, count: codes.length, ms: Math.round(performance.now() - t0), last: codes[codes.length - 1], lastStep: first + 30 * 1440 - 1 };
    })()`;
    const out = (await page.evaluate(script)) as { exportRefused: boolean; count: number; ms: number; last: string; lastStep: number };
    console.log(`app-key-limits: ${out.count} future codes (30 days) from a non-extractable key in ${out.ms} ms`);
    expect(out.exportRefused).toBe(true);
    expect(out.count).toBe(43_200);
    expect(out.last).toBe(oathtool(seed, out.lastStep * 60, { algorithm: "SHA256", digits: 8, period: 60 }));
    await page.close();
  }, 120_000);
});
