/**
 * One vector suite for the OTP core, run against every build of the same
 * source (otplib's createHOTPTests pattern): the tsc build in Node and the
 * Lua image on fengari (32-bit integers), wasmoon and lua5.3 (64-bit).
 *
 * Each test sends ONE batch of calls to the implementation and compares every
 * outcome with an expectation that comes from outside our code: the RFC/FIPS
 * vectors (test/vectors/rfc-test-vectors.ts), node:crypto, a BigInt TOTP
 * reference, and Date.UTC. Results must be exactly equal, so a float leaking
 * out of Lua ({ $float }) or a non-canonical word fails too.
 */
import { createHash, createHmac } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import { expect, it } from "vitest";
import {
  FIELD_NOTES_TOTP_60,
  FIPS180_DIGESTS,
  RFC2202_HMAC_SHA1,
  RFC4226_HOTP,
  RFC4226_SECRET,
  RFC4231_HMAC,
  RFC6238_SEEDS,
  RFC6238_TOTP,
  type VectorAlg,
} from "../../vectors/rfc-test-vectors.js";

export interface OtpCall {
  fn: string;
  args: unknown[];
}
export type OtpOutcome = { ok: true; value: unknown } | { ok: false; error: string };

export interface OtpImpl {
  name: string;
  /** Bits of the VM's integers: 32 (fengari, the device), 53 (JS doubles), 64 (C Lua). */
  intBits: number;
  run(calls: OtpCall[]): Promise<OtpOutcome[]>;
}

/**
 * Algorithms the core implements, with the ids of firmware/otp/hash.ts.
 * SHA-512 (id 3 on the wire) is not implemented: see "refuses SHA-512" below.
 */
export const ALGS: { name: VectorAlg; id: number }[] = [
  { name: "sha1", id: 1 },
  { name: "sha256", id: 2 },
];
const ALG_ID = (name: VectorAlg) => ALGS.find((a) => a.name === name)?.id;

// Status codes of core/status.ts, restated so a renumbering is noticed.
const ERR_ALG = -1;
const ERR_DIGITS = -2;
const ERR_PERIOD = -3;
const ERR_TIME = -4;
const ERR_BYTES = -5;
const ERR_CIVIL = -6;
const ERR_PREPARED = -7;

const TIME_LIMIT = 2 ** 47;

export const ascii = (s: string): number[] => Array.from(Buffer.from(s, "latin1"));
export const fromHex = (h: string): number[] => Array.from(Buffer.from(h, "hex"));
const toHex = (b: number[]): string => Buffer.from(b).toString("hex");

/** The UnixTime { hi, lo } of integer seconds (the representation of core/time.ts). */
export function unixTime(seconds: number): { hi: number; lo: number } {
  return { hi: Math.floor(seconds / 65536), lo: seconds % 65536 };
}

/** Reference TOTP/HOTP with BigInt and node:crypto, independent of the code under test. */
export function referenceHotp(seed: number[], counter: bigint, digits: number, alg: VectorAlg): string {
  const msg = Buffer.alloc(8);
  msg.writeBigUInt64BE(counter);
  const mac = createHmac(alg, Buffer.from(seed)).update(msg).digest();
  const o = mac[mac.length - 1] & 15;
  const snum = mac.readUInt32BE(o) & 0x7fffffff;
  return String(snum % 10 ** digits).padStart(digits, "0");
}

export function referenceStep(seconds: number, period: number): { hi: number; lo: number; elapsed: number } {
  const step = BigInt(seconds) / BigInt(period);
  return {
    hi: Number(step >> 32n),
    lo: Number(BigInt.asIntN(32, step)),
    elapsed: Number(BigInt(seconds) % BigInt(period)),
  };
}


/** A small seeded PRNG (mulberry32): the random cases are the same on every run and VM. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Case {
  label: string;
  /** One call, or a chain whose later calls take earlier results as { $ref: i } (i within the chain). */
  call: OtpCall | OtpCall[];
  want: unknown;
  /** Which call of a chain is compared (default: the last). */
  pick?: number;
  /** Compare only what the vector gives (e.g. a truncated MAC). */
  view?: (value: unknown) => unknown;
}

/** Run all cases in one batch and report every mismatch at once. */
async function check(impl: OtpImpl, cases: Case[]): Promise<void> {
  const flat: OtpCall[] = [];
  const at: number[] = [];
  for (const c of cases) {
    const chain = Array.isArray(c.call) ? c.call : [c.call];
    const base = flat.length;
    for (const k of chain) {
      flat.push({ fn: k.fn, args: k.args.map((a) => (a !== null && typeof a === "object" && "$ref" in a ? { $ref: base + (a as { $ref: number }).$ref } : a)) });
    }
    at.push(base + (c.pick ?? chain.length - 1));
  }
  const out = await impl.run(flat);
  expect(out.length).toBe(flat.length);
  const bad: string[] = [];
  cases.forEach((c, i) => {
    const o = out[at[i]];
    const got = o.ok ? (c.view ? c.view(o.value) : o.value) : { error: o.error };
    if (!o.ok || !isDeepStrictEqual(got, c.want)) {
      bad.push(`${c.label}: ${flat[at[i]].fn}(...) gave ${JSON.stringify(got)}, expected ${JSON.stringify(c.want)}`);
    }
  });
  expect(bad).toEqual([]);
}

const call = (fn: string, ...args: unknown[]): OtpCall => ({ fn: "otp." + fn, args });
const $ = (i: number) => ({ $ref: i });

/** The device's path to a code: prepare the key once, TOTP from the prepared key, then the display text. */
const totpChain = (seed: number[], t: { hi: number; lo: number }, period: number, digits: number, alg: number): OtpCall[] => [
  call("prepareKey", seed, alg),
  call("totp", $(0), t, period, digits),
  call("formatCode", $(1), digits),
];

/** HOTP at a counter 0..2^53-1, split here into the 8-byte counter's words (RFC 4226 §5.2) as the core takes it. */
const hotpChain = (seed: number[], counter: number, digits: number, alg: number): OtpCall[] => {
  const big = BigInt(counter);
  return [call("prepareKey", seed, alg), call("hotp", $(0), Number(big >> 32n), Number(BigInt.asIntN(32, big)), digits), call("formatCode", $(1), digits)];
};

export function createOtpTests(getImpl: () => OtpImpl): void {
  it("hashes the FIPS 180-4 example messages", async () => {
    const cases: Case[] = [];
    for (const v of FIPS180_DIGESTS) {
      for (const a of ALGS) {
        cases.push({ label: `${a.name} ${v.name}`, call: call("digest", ascii(v.message), a.id), want: fromHex(v[a.name]) });
      }
    }
    await check(getImpl(), cases);
  });

  it("computes the RFC 2202 and RFC 4231 HMAC vectors", async () => {
    const cases: Case[] = [...RFC2202_HMAC_SHA1, ...RFC4231_HMAC]
      .filter((v) => ALG_ID(v.alg) !== undefined)
      .map((v) => ({
        label: `${v.source} ${v.alg}`,
        call: call("hmac", fromHex(v.key), fromHex(v.data), ALG_ID(v.alg)),
        want: v.mac,
        view: (mac: unknown) => toHex(mac as number[]).slice(0, v.mac.length),
      }));
    await check(getImpl(), cases);
  });

  it("matches node:crypto on random keys and messages around the padding boundaries", async () => {
    const rnd = prng(0x0f0b);
    const bytes = (n: number) => Array.from({ length: n }, () => Math.floor(rnd() * 256));
    const pick = <T>(xs: T[]) => xs[Math.floor(rnd() * xs.length)];
    // 55/56 and 119/120 are where the length field stops fitting the last block.
    const MESSAGE_LENGTHS = [0, 1, 3, 8, 20, 54, 55, 56, 57, 63, 64, 65, 111, 112, 119, 120, 127, 128, 129, 191, 192];
    const KEY_LENGTHS = [0, 1, 16, 20, 32, 63, 64, 65, 100, 127, 128, 129, 200];
    const cases: Case[] = [];
    for (const a of ALGS) {
      for (let i = 0; i < 40; i++) {
        const msg = bytes(i < MESSAGE_LENGTHS.length ? MESSAGE_LENGTHS[i] : Math.floor(rnd() * 300));
        const key = bytes(i < KEY_LENGTHS.length ? KEY_LENGTHS[i] : pick([...KEY_LENGTHS, Math.floor(rnd() * 260)]));
        cases.push({
          label: `${a.name} digest #${i} (${msg.length} bytes)`,
          call: call("digest", msg, a.id),
          want: Array.from(createHash(a.name).update(Buffer.from(msg)).digest()),
        });
        cases.push({
          label: `${a.name} hmac #${i} (key ${key.length}, msg ${msg.length} bytes)`,
          call: call("hmac", key, msg, a.id),
          want: Array.from(createHmac(a.name, Buffer.from(key)).update(Buffer.from(msg)).digest()),
        });
      }
    }
    await check(getImpl(), cases);
  });

  it("computes RFC 4226 Appendix D (HMAC values and 6-digit HOTP), and 7/8 digits", async () => {
    const seed = ascii(RFC4226_SECRET);
    const cases: Case[] = [];
    for (const v of RFC4226_HOTP) {
      const counter = [0, 0, 0, 0, 0, 0, 0, v.counter];
      cases.push({ label: `HMAC count ${v.counter}`, call: call("hmac", seed, counter, 1), want: fromHex(v.hmac) });
      cases.push({ label: `HOTP count ${v.counter}`, call: hotpChain(seed, v.counter, 6, 1), want: v.code });
      for (const digits of [7, 8]) {
        cases.push({
          label: `HOTP count ${v.counter}, ${digits} digits`,
          call: hotpChain(seed, v.counter, digits, 1),
          want: referenceHotp(seed, BigInt(v.counter), digits, "sha1"),
        });
      }
    }
    // Counters whose high word is in use (the 8-byte counter of §5.2), on every VM: the core takes two words.
    for (const c of [2 ** 32 - 1, 2 ** 32, 2 ** 40 + 12345, 2 ** 53 - 1]) {
      cases.push({ label: `HOTP count ${c}`, call: hotpChain(seed, c, 8, 1), want: referenceHotp(seed, BigInt(c), 8, "sha1") });
    }
    await check(getImpl(), cases);
  });

  it("computes every RFC 6238 Appendix B row and its T, incl. t = 20000000000", async () => {
    const cases: Case[] = [];
    for (const v of RFC6238_TOTP) {
      const alg = ALG_ID(v.alg);
      if (alg === undefined) continue;
      const label = `${v.alg} t=${v.time}`;
      cases.push({ label, call: totpChain(ascii(RFC6238_SEEDS[v.alg]), unixTime(v.time), 30, 8, alg), want: v.code });
      const step = BigInt("0x" + v.stepHex);
      cases.push({
        label: label + " T",
        call: call("totpStep", unixTime(v.time), 30),
        want: { hi: Number(step >> 32n), lo: Number(BigInt.asIntN(32, step)), elapsed: v.time % 30 },
      });
    }
    expect(cases.length).toBe(2 * 6 * ALGS.length);
    await check(getImpl(), cases);
  });

  it("computes the 60 s / 8-digit rows of FIELD-NOTES.md (both sides of 2^31 s)", async () => {
    const cases: Case[] = [];
    for (const v of FIELD_NOTES_TOTP_60) {
      const alg = ALG_ID(v.alg);
      if (alg === undefined) continue;
      const seed = ascii(RFC6238_SEEDS[v.alg]);
      cases.push({ label: `${v.alg} t=${v.time}`, call: totpChain(seed, unixTime(v.time), 60, 8, alg), want: v.code });
    }
    await check(getImpl(), cases);
  });

  it("prepares keys once, serialises them, and computes codes from the prepared form", async () => {
    const impl = getImpl();
    const seeds = ALGS.map((a) => ({ ...a, seed: ascii(RFC6238_SEEDS[a.name]) }));
    // Two batches: the second feeds back the keys this same VM prepared.
    const prepared = await impl.run(seeds.map((s) => call("prepareKey", s.seed, s.id)));
    const cases: Case[] = [];
    seeds.forEach((s, i) => {
      const o = prepared[i];
      expect(o.ok).toBe(true);
      const pk = (o as { value: { alg: number; inner: number[]; outer: number[] } }).value;
      const words = s.name === "sha1" ? 5 : 8;
      expect(pk.alg).toBe(s.id);
      for (const w of [...pk.inner, ...pk.outer]) expect(Number.isInteger(w) && w >= -(2 ** 31) && w < 2 ** 31).toBe(true);
      expect([pk.inner.length, pk.outer.length]).toEqual([words, words]);
      // The flash layout, restated: alg byte, inner then outer state big-endian.
      const flash = [s.id];
      for (const w of [...pk.inner, ...pk.outer]) flash.push((w >>> 24) & 255, (w >>> 16) & 255, (w >>> 8) & 255, w & 255);
      cases.push({ label: `${s.name} serialise`, call: call("serializePreparedKey", pk), want: flash });
      cases.push({ label: `${s.name} parse`, call: call("parsePreparedKey", flash), want: pk });
      cases.push({ label: `${s.name} parse truncated`, call: call("parsePreparedKey", flash.slice(0, -1)), want: ERR_PREPARED });
      for (const v of [...RFC6238_TOTP, ...FIELD_NOTES_TOTP_60].filter((r) => r.alg === s.name)) {
        cases.push({ label: `${s.name} totp t=${v.time}/${v.period}`, call: call("totp", pk, unixTime(v.time), v.period, 8), want: Number(v.code) });
      }
      if (s.name === "sha1") {
        for (const v of RFC4226_HOTP) {
          cases.push({ label: `hotp count ${v.counter}`, call: call("hotp", pk, 0, v.counter, 6), want: Number(v.code) });
        }
      }
    });
    await check(impl, cases);
  });

  it("matches a BigInt TOTP reference for random seeds, times up to 2^47 s and periods up to 2^31-1", async () => {
    const rnd = prng(6238);
    const int = (n: number) => Math.floor(rnd() * n);
    const PERIODS = [1, 2, 30, 60, 3600, 32767, 32768, 65536, 86400, 1000003, 2 ** 31 - 1];
    const TIMES = [0, 1, 59, 2 ** 16 - 1, 2 ** 16, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 35, TIME_LIMIT - 1];
    const cases: Case[] = [];
    for (let i = 0; i < 120; i++) {
      const a = ALGS[i % ALGS.length];
      const seed = Array.from({ length: 10 + int(60) }, () => int(256));
      const period = i < PERIODS.length ? PERIODS[i] : rnd() < 0.5 ? 1 + int(32767) : 1 + int(2 ** 31 - 1);
      let t = i < TIMES.length ? TIMES[i] : rnd() < 0.3 ? int(2 ** 36) : int(2 ** 15) * 2 ** 32 + int(2 ** 32);
      if (i % 7 === 0) t = Math.max(0, Math.min(TIME_LIMIT - 1, Math.floor(t / period) * period - (i % 2))); // step edges
      const digits = 6 + (i % 3);
      cases.push({
        label: `#${i} ${a.name} t=${t} X=${period} ${digits}d`,
        call: totpChain(seed, unixTime(t), period, digits, a.id),
        want: referenceHotp(seed, BigInt(t) / BigInt(period), digits, a.name),
      });
      cases.push({ label: `#${i} step t=${t} X=${period}`, call: call("totpStep", unixTime(t), period), want: referenceStep(t, period) });
    }
    await check(getImpl(), cases);
  });

  it("converts civil UTC date-times 1970..2199 both ways like Date.UTC (leap days, 2100 not leap)", async () => {
    const rnd = prng(2100);
    const int = (n: number) => Math.floor(rnd() * n);
    const dates: number[][] = [
      [1970, 1, 1, 0, 0, 0],
      [1999, 12, 31, 23, 59, 59],
      [2000, 1, 1, 0, 0, 0],
      [2000, 2, 29, 12, 0, 0],
      [2000, 3, 1, 0, 0, 0],
      [2004, 2, 29, 23, 59, 59],
      [2038, 1, 19, 3, 14, 7],
      [2038, 1, 19, 3, 14, 8],
      [2096, 2, 29, 0, 0, 0],
      [2100, 2, 28, 23, 59, 59],
      [2100, 3, 1, 0, 0, 0],
      [2104, 2, 29, 6, 30, 0],
      [2106, 2, 7, 6, 28, 15],
      [2106, 2, 7, 6, 28, 16],
      [2199, 12, 31, 23, 59, 59],
    ];
    for (let i = 0; i < 250; i++) {
      const y = 2000 + int(200);
      const m = 1 + int(12);
      const dim = new Date(Date.UTC(y, m, 0)).getUTCDate();
      dates.push([y, m, rnd() < 0.2 ? dim : 1 + int(dim), int(24), int(60), int(60)]);
    }
    const cases: Case[] = [];
    for (const [y, mo, d, h, mi, s] of dates) {
      const seconds = Date.UTC(y, mo - 1, d, h, mi, s) / 1000;
      const label = `${y}-${mo}-${d} ${h}:${mi}:${s}`;
      cases.push({ label, call: call("timeFromCivil", y, mo, d, h, mi, s), want: unixTime(seconds) });
      cases.push({
        label,
        call: call("civilFromTime", unixTime(seconds)),
        want: { year: y, month: mo, day: d, hour: h, minute: mi, second: s, weekday: new Date(seconds * 1000).getUTCDay() },
      });
    }
    // Calendar and range errors.
    for (const bad of [
      [2100, 2, 29, 0, 0, 0],
      [2001, 2, 29, 0, 0, 0],
      [2000, 4, 31, 0, 0, 0],
      [2000, 13, 1, 0, 0, 0],
      [2000, 0, 1, 0, 0, 0],
      [2000, 1, 0, 0, 0, 0],
      [2000, 1, 1, 24, 0, 0],
      [2000, 1, 1, 0, 60, 0],
      [2000, 1, 1, 0, 0, 60],
      [2000, 1, 1, 0, 0, -1],
      [1969, 12, 31, 23, 59, 59],
      [2200, 1, 1, 0, 0, 0],
      [2000, 1, 1.5, 0, 0, 0],
    ]) {
      cases.push({ label: `invalid ${bad.join(",")}`, call: call("timeFromCivil", ...bad), want: ERR_CIVIL });
    }
    cases.push({ label: "past 2199", call: call("civilFromTime", unixTime(Date.UTC(2200, 0, 1) / 1000)), want: ERR_CIVIL });
    cases.push({ label: "2^47-1 s", call: call("civilFromTime", unixTime(TIME_LIMIT - 1)), want: ERR_CIVIL });
    cases.push({ label: "malformed time", call: call("civilFromTime", { hi: 0, lo: 65536 }), want: ERR_TIME });
    await check(getImpl(), cases);
  });

  it("adds and subtracts seconds across digit and range boundaries, and compares times", async () => {
    const rnd = prng(35);
    const cases: Case[] = [];
    const pairs: [number, number][] = [
      [0, 0],
      [65535, 1],
      [65536, -1],
      [2 ** 31 - 1, 1],
      [2 ** 31, -(2 ** 31 - 1)],
      [2 ** 35, 2 ** 31 - 1],
      [2 ** 35, -(2 ** 31 - 1)],
      [TIME_LIMIT - 1, 0],
      [TIME_LIMIT - 2, 1],
      [5, -5],
    ];
    for (let i = 0; i < 60; i++) {
      const t = Math.floor(rnd() * 2 ** 36);
      const n = Math.floor(rnd() * 2 ** 32) - 2 ** 31 + 1;
      pairs.push([Math.max(t, Math.max(0, -n)), n]);
    }
    for (const [t, n] of pairs) {
      cases.push({ label: `${t} + ${n}`, call: call("addSeconds", unixTime(t), n), want: unixTime(t + n) });
    }
    cases.push({ label: "before 1970", call: call("addSeconds", unixTime(5), -6), want: ERR_TIME });
    cases.push({ label: "past 2^47", call: call("addSeconds", unixTime(TIME_LIMIT - 1), 1), want: ERR_TIME });
    cases.push({ label: "seconds too large", call: call("addSeconds", unixTime(0), 2 ** 31), want: ERR_TIME });
    cases.push({ label: "fractional seconds", call: call("addSeconds", unixTime(0), 1.5), want: ERR_TIME });
    const order = [0, 1, 65535, 65536, 2 ** 31, 2 ** 32 + 7, 2 ** 40];
    for (const a of order) {
      for (const b of order) {
        cases.push({ label: `compare ${a} ${b}`, call: call("compareTime", unixTime(a), unixTime(b)), want: Math.sign(a - b) });
      }
    }
    await check(getImpl(), cases);
  });

  it("formats codes zero-padded and rejects what it cannot format", async () => {
    const cases: Case[] = [
      { label: "0/8", call: call("formatCode", 0, 8), want: "00000000" },
      { label: "42/6", call: call("formatCode", 42, 6), want: "000042" },
      { label: "3964845/8", call: call("formatCode", 3964845, 8), want: "03964845" },
      { label: "9999999/7", call: call("formatCode", 9999999, 7), want: "9999999" },
      { label: "too many digits", call: call("formatCode", 10000000, 7), want: "" },
      { label: "negative", call: call("formatCode", -1, 6), want: "" },
      { label: "digits 5", call: call("formatCode", 1, 5), want: "" },
      { label: "digits 9", call: call("formatCode", 1, 9), want: "" },
      { label: "digits 6.5", call: call("formatCode", 1, 6.5), want: "" },
      { label: "fractional code", call: call("formatCode", 1.5, 6), want: "" },
    ];
    await check(getImpl(), cases);
  });

  it("answers bad input with a status code, never a code", async () => {
    const impl = getImpl();
    const seed = ascii(RFC4226_SECRET);
    const t = unixTime(59);
    const cases: Case[] = [
      { label: "unknown alg", call: call("prepareKey", seed, 4), want: ERR_ALG },
      // SHA-512 is not in the keyfob (firmware/otp/hash.ts): refused, never hashed as something else.
      { label: "SHA-512 prepareKey", call: call("prepareKey", ascii(RFC6238_SEEDS.sha512), 3), want: ERR_ALG },
      { label: "SHA-512 digest", call: call("digest", [1, 2, 3], 3), want: ERR_ALG },
      { label: "SHA-512 TOTP", call: totpChain(ascii(RFC6238_SEEDS.sha512), t, 60, 8, 3), pick: 0, want: ERR_ALG },
      { label: "alg 0", call: call("hmac", seed, [1], 0), want: ERR_ALG },
      { label: "byte 256", call: call("prepareKey", [1, 2, 256], 1), want: ERR_BYTES },
      { label: "byte -1", call: call("digest", [-1], 1), want: ERR_BYTES },
      { label: "byte 1.5", call: call("hmac", seed, [1.5], 1), want: ERR_BYTES },
      { label: "digits 5", call: hotpChain(seed, 0, 5, 1), pick: 1, want: ERR_DIGITS },
      { label: "digits 9", call: totpChain(seed, t, 30, 9, 1), pick: 1, want: ERR_DIGITS },
      { label: "digits 7.5", call: totpChain(seed, t, 30, 7.5, 1), pick: 1, want: ERR_DIGITS },
      { label: "period 0", call: totpChain(seed, t, 0, 8, 1), pick: 1, want: ERR_PERIOD },
      { label: "period -30", call: call("totpStep", t, -30), want: ERR_PERIOD },
      { label: "period 2^31", call: call("totpStep", t, 2 ** 31), want: ERR_PERIOD },
      { label: "lo 65536", call: totpChain(seed, { hi: 0, lo: 65536 }, 30, 8, 1), pick: 1, want: ERR_TIME },
      { label: "hi -1", call: call("totpStep", { hi: -1, lo: 0 }, 30), want: ERR_TIME },
      { label: "fractional time", call: totpChain(seed, { hi: 0, lo: 1.5 }, 30, 8, 1), pick: 1, want: ERR_TIME },
      { label: "bad prepared alg", call: call("hotp", { alg: 9, inner: [1, 2, 3, 4, 5], outer: [1, 2, 3, 4, 5] }, 0, 0, 6), want: ERR_PREPARED },
      { label: "short prepared state", call: call("totp", { alg: 1, inner: [1, 2, 3, 4], outer: [1, 2, 3, 4, 5] }, t, 30, 6), want: ERR_PREPARED },
      { label: "parse unknown alg", call: call("parsePreparedKey", [9, ...new Array(40).fill(0)]), want: ERR_PREPARED },
      { label: "parse empty", call: call("parsePreparedKey", []), want: ERR_PREPARED },
      { label: "message", call: call("statusMessage", ERR_DIGITS), want: "digits must be 6..8" },
    ];
    await check(impl, cases);
  });
}
