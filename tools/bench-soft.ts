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
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import Fastify from "fastify";
import { appPlugin } from "../host/app/app.js";
import { KeyRing } from "../host/registry/key-ring.js";
import { openMigrated } from "../host/registry/open-database.js";
import { Registry } from "../host/registry/registry.js";
import { buildApp } from "../host/server/app.js";
import { finishCustomerRegistration, setUp, startCustomerRegistration } from "../host/soft/client.js";
import { launchChromium } from "./chromium.js";

const ACTOR = { name: "staff:bench", source: "bench" };
/** Set-ups measured ($FOBKIT_BENCH_SOFT_SETUPS); each issuance before them costs the client's argon2 too. */
const SETUPS = Number(process.env.FOBKIT_BENCH_SOFT_SETUPS ?? 60);
const CODES = 200;
const BATCH = 100;

export interface SoftBench {
  date: string;
  machine: { cpus: number; loadavg: number[]; node: string };
  setup?: { setups: number; bankMsPerSetup: { median: number; p95: number; mean: number }; setupsPerSecond: number; clientMsPerSetup: { median: number; mean: number } };
  chromiumCode: { codes: number; batch: number; medianMs: number; p95Ms: number; meanMs: number; firstCodeMs: number; chromium: string };
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
    return { codes: CODES, batch: BATCH, medianMs: round(pct(ms, 50), 4), p95Ms: round(pct(ms, 95), 4), meanMs: round(ms.reduce((a, b) => a + b, 0) / ms.length, 4), firstCodeMs: round(firstCodeMs, 1), chromium: version };
  } finally {
    await browser.close();
    await app.close();
  }
}

/** Set-ups on one bank process: the bank's time inside its two calls, timed around Fastify inject; the client's time is the rest. */
export async function runSetupBench(setups = SETUPS): Promise<NonNullable<SoftBench["setup"]>> {
  const dir = mkdtempSync(join(tmpdir(), "fobkit-bench-soft-"));
  const db = await openMigrated("sqlite:" + join(dir, "bank.sqlite"));
  try {
    const registry = new Registry(db, { keys: KeyRing.fromKeys([{ id: "bench", key: randomBytes(32) }]) });
    // No per-IP limit: every set-up comes from inject's one address, and the limiter is not what is measured.
    const app = buildApp({ registry, setupRate: false });
    await app.ready();
    await registry.soft.configure({ serviceId: "10112235", bankName: "ベンチ信用金庫", appUrl: "https://bank.example.jp/app/" }, ACTOR);
    const password = "Bench-pass-1";
    const userIds: string[] = [];
    for (let i = 0; i < setups; i++) {
      const customer = `BENCH-${String(i).padStart(5, "0")}`;
      const { clientRegistrationState, request } = await startCustomerRegistration(password);
      const response = await registry.soft.startIssuance(customer, request.registrationRequest, ACTOR);
      const issue = await finishCustomerRegistration(clientRegistrationState, password, response, `c${i}@example.jp`);
      userIds.push((await registry.soft.issue(customer, issue, ACTOR)).userId);
    }
    // The bank's side: every call the client makes, timed around the in-process request (routing, validation,
    // the registry's transaction, OPAQUE's server side, sealing). The client computes between the calls, untimed.
    let bankMs = 0;
    const injectFetch = async (url: string, init: { method: string; headers: Record<string, string>; body?: string }) => {
      const t0 = performance.now();
      const res = await app.inject({ method: init.method as "POST", url: new URL(url).pathname, headers: init.headers, payload: init.body });
      bankMs += performance.now() - t0;
      return { status: res.statusCode, text: async () => res.body };
    };
    const bank: number[] = [];
    const client: number[] = [];
    for (const userId of userIds) {
      bankMs = 0;
      const t0 = performance.now();
      const r = await setUp({ bankUrl: "http://bench.invalid", serviceId: "10112235", userId, password, seed: "bytes", fetch: injectFetch });
      const total = performance.now() - t0;
      r.seedBytes?.fill(0);
      bank.push(bankMs);
      client.push(total - bankMs);
    }
    await app.close();
    const sum = bank.reduce((a, b) => a + b, 0);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    return {
      setups,
      bankMsPerSetup: { median: round(pct(bank, 50), 2), p95: round(pct(bank, 95), 2), mean: round(mean(bank), 2) },
      setupsPerSecond: round((setups * 1000) / sum, 1),
      clientMsPerSetup: { median: round(pct(client, 50), 1), mean: round(mean(client), 1) },
    };
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function runSoftBench(): Promise<SoftBench> {
  const setup = await runSetupBench();
  const chromiumCode = await runChromiumCodeBench();
  return { date: new Date().toISOString(), machine: { cpus: cpus().length, loadavg: loadavg(), node: process.version }, setup, chromiumCode };
}

export function formatSoftBench(r: SoftBench): string {
  const lines: string[] = [];
  if (r.setup) {
    lines.push(
      `set-ups on one bank process (${r.setup.setups} set-ups; bank side = start + finish, client messages computed outside the timing):`,
      `  ${r.setup.setupsPerSecond.toFixed(1)} set-ups/s (total bank time; ${(1000 / r.setup.bankMsPerSetup.median).toFixed(0)}/s at the median); bank ms per set-up: median ${r.setup.bankMsPerSetup.median}, p95 ${r.setup.bankMsPerSetup.p95}, mean ${r.setup.bankMsPerSetup.mean}`,
      `  the client's own time per set-up (OPAQUE start+finish incl. argon2id, HKDF, MACs): median ${r.setup.clientMsPerSetup.median} ms, mean ${r.setup.clientMsPerSetup.mean} ms`,
    );
  }
  const c = r.chromiumCode;
  lines.push(`a code in Chromium ${c.chromium} (web app's totpFromKey on the stored non-extractable key, ${c.codes} samples of ${c.batch} codes): median ${c.medianMs} ms, p95 ${c.p95Ms} ms, mean ${c.meanMs} ms; navigation to first code on screen ${c.firstCodeMs} ms`);
  return lines.join("\n");
}
