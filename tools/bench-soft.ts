/**
 * The software token's costs (issue 15, Bench): set-ups per second on one
 * bank process (the PAKE's cost on the bank's side) and the time the web app
 * takes to compute a code in Chromium. Writes bench/results/soft.json.
 *
 *   node build/node/tools/bench.js soft
 *
 * Set-ups: a fresh SQLite bank (temp directory) with soft-config run and
 * SETUPS tokens issued through the channel's two calls. For each set-up the
 * client's messages are computed outside the timed part (OPAQUE's client
 * runs argon2id, ~150 ms, which is the customer's phone's cost, not the
 * bank's): KE1 before, KE3 and the confirmation MAC between the bank's two
 * calls. The bank's time is the sum over both calls, each timed around an
 * in-process HTTP request (Fastify inject: routing, validation, the
 * registry's transaction, OPAQUE's server side, sealing), so
 * set-ups/s = SETUPS / total bank time. The client's own time per set-up
 * (startLogin + finishLogin + HKDF + MACs) is reported beside it.
 *
 * Codes in Chromium: Debian's Chromium (tools/chromium.ts) opens /app/, a
 * seed key is derived in the page with the app's own protocol.ts and stored
 * through its keystore.js, and the page times CODES calls of totpFromKey
 * (HMAC-SHA-256 under the non-extractable key) with performance.now, each
 * of the CODES samples the mean of BATCH codes in a row (the page's timer
 * is coarsened to 100 us); the median and 95th percentile are reported, and
 * the time from navigation to the first code on screen.
 */
import { randomBytes } from "node:crypto";
import { cpus, loadavg } from "node:os";
import Fastify from "fastify";
import { appPlugin } from "../host/app/app.js";
import { launchChromium } from "./chromium.js";

const CODES = 200;
const BATCH = 100;

export interface SoftBench {
  date: string;
  machine: { cpus: number; loadavg: number[]; node: string };
  setup?: { setups: number; bankMsPerSetup: { median: number; p95: number; mean: number }; setupsPerSecond: number; clientMsPerSetup: { median: number; mean: number } };
  chromiumCode: { codes: number; batch: number; medianMs: number; p95Ms: number; firstCodeMs: number; chromium: string };
}

export const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
};
const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

/** Code computation in the page: the web app's own modules, a stored non-extractable key, CODES timed calls. */
export async function runChromiumCodeBench(): Promise<SoftBench["chromiumCode"]> {
  const app = Fastify();
  await app.register(appPlugin, {});
  await app.listen({ host: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const browser = await launchChromium({ locale: "ja-JP" });
  try {
    const page = await browser.context.newPage();
    await page.goto(url + "/app/");
    await page.locator("html[data-ready]").waitFor();
    const arg = { session: randomBytes(64).toString("base64"), cn: randomBytes(32).toString("base64"), sn: randomBytes(32).toString("base64"), codes: CODES, batch: BATCH };
    const body = `
      const p = await import("@fobkit/soft/protocol.js");
      const ks = await import("/app/keystore.js");
      const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
      const t = { serviceId: "10112235", userId: "999800000009", startLoginRequest: "a", loginResponse: "b", finishLoginRequest: "c", clientNonce: b64(arg.cn), serverNonce: b64(arg.sn) };
      const key = await p.deriveSeedKey(await p.setupBase(b64(arg.session), t), t);
      await ks.saveToken({ params: JSON.stringify({ bank: "ベンチ信用金庫", serviceId: t.serviceId, userId: t.userId, algorithm: "SHA256", digits: 8, period: 60, t0: 0 }), key, savedAt: Date.now() });
      const stored = (await ks.loadToken()).key;
      for (let i = 0; i < 20; i++) await p.totpFromKey(stored, 1000 + i);
      // performance.now() is coarsened to 100 us in a page that is not cross-origin isolated
      // (HR-Time 3 §7.1): each sample times BATCH codes in a row and divides.
      const ms = [];
      for (let i = 0; i < arg.codes; i++) {
        const t0 = performance.now();
        for (let j = 0; j < arg.batch; j++) await p.totpFromKey(stored, 30000000 + i * arg.batch + j);
        ms.push((performance.now() - t0) / arg.batch);
      }
      return ms;`;
    const ms = (await page.evaluate(`(async (arg) => { ${body} })(${JSON.stringify(arg)})`)) as number[];
    // From navigation to the first code on screen (the customer opening the installed app).
    await page.reload();
    await page.locator("#code[data-code]").waitFor();
    const firstCodeMs = (await page.evaluate(`performance.now()`)) as number;
    const version = browser.context.browser()?.version() ?? "unknown";
    return { codes: CODES, batch: BATCH, medianMs: round(pct(ms, 50), 4), p95Ms: round(pct(ms, 95), 4), firstCodeMs: round(firstCodeMs, 1), chromium: version };
  } finally {
    await browser.close();
    await app.close();
  }
}

export async function runSoftBench(): Promise<SoftBench> {
  const chromiumCode = await runChromiumCodeBench();
  return { date: new Date().toISOString(), machine: { cpus: cpus().length, loadavg: loadavg(), node: process.version }, chromiumCode };
}

export function formatSoftBench(r: SoftBench): string {
  const lines: string[] = [];
  if (r.setup) {
    lines.push(
      `set-ups on one bank process (${r.setup.setups} set-ups; bank side = start + finish, client messages computed outside the timing):`,
      `  ${r.setup.setupsPerSecond.toFixed(1)} set-ups/s; bank ms per set-up: median ${r.setup.bankMsPerSetup.median}, p95 ${r.setup.bankMsPerSetup.p95}, mean ${r.setup.bankMsPerSetup.mean}`,
      `  the client's own time per set-up (OPAQUE start+finish incl. argon2id, HKDF, MACs): median ${r.setup.clientMsPerSetup.median} ms, mean ${r.setup.clientMsPerSetup.mean} ms`,
    );
  }
  const c = r.chromiumCode;
  lines.push(`a code in Chromium ${c.chromium} (web app's totpFromKey on the stored non-extractable key, ${c.codes} samples of ${c.batch} codes): median ${c.medianMs} ms, p95 ${c.p95Ms} ms; navigation to first code on screen ${c.firstCodeMs} ms`);
  return lines.join("\n");
}
