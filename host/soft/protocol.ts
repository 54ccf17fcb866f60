/**
 * The software token's set-up protocol, version 1: written once for the
 * bank (host/soft on the server), `fobkit app` (Node) and the web app at
 * /app/ (browser). WebCrypto only (globalThis.crypto.subtle, in Node 20 and
 * every browser), and no Node module, so the browser loads this very file.
 *
 * The design (README "Software token"; docs/soft-token.md):
 * - The activation password never leaves the customer's side. Issuance runs
 *   OPAQUE registration (RFC 9807; @serenity-kit/opaque, opaque-ke compiled
 *   to WebAssembly) on the customer's side: the bank keeps only the
 *   registration record, which cannot be turned into the password without
 *   the bank's OPRF key, and then only by guessing.
 * - Set-up is an OPAQUE login (KE1, KE2, KE3). Each start costs one guess,
 *   counted by the bank before it answers; five in a row without a finished
 *   set-up void the issuance.
 * - The seed never crosses the network, not even encrypted: both sides derive
 *   it from OPAQUE's session key with HKDF-SHA-256, salted with a nonce from
 *   each side (RFC 6063 DSKPP's R_C and R_S), and confirm they hold the same
 *   keys with MACs over the whole transcript, each side with its own key
 *   (DSKPP's MAC in KeyProvServerFinished, here in both directions).
 * - A server without the record cannot answer KE1 in a way the client
 *   accepts: the client's finishLogin fails and no finish is ever sent.
 */

/** The token a set-up makes: 8 digits, 60-second steps (the manual), HMAC-SHA-256 with a 32-byte seed (RFC 6238 §1.2). */
export const SOFT_TOKEN = { algorithm: "SHA256", digits: 8, period: 60, t0: 0, seedBytes: 32 } as const;
export const PROTOCOL_VERSION = "fobkit-soft-token-v1";
export const NONCE_BYTES = 32;
/** Wrong activation passwords in a row that void an issuance. */
export const SETUP_TRIES = 5;

export const SERVICE_ID_PATTERN = "^[0-9]{8}$";
/** A binary field of a wire message: base64url without padding, at least one character (the routes' schemas and the registry check it). */
export const B64U_PATTERN = "^[A-Za-z0-9_-]+$";
export const USER_ID_PATTERN = "^[0-9]{12}$";

/** Where the app talks to the bank (public: the app holds no API key). */
export const SETUP_START_PATH = "/app/v1/setup/start";
export const SETUP_FINISH_PATH = "/app/v1/setup/finish";
/** The channel's issuance calls (role channel): OPAQUE registration, then the record. */
export const registrationPath = (customer: string): string => `/v1/customers/${encodeURIComponent(customer)}/soft-tokens/registration`;
export const issuePath = (customer: string): string => `/v1/customers/${encodeURIComponent(customer)}/soft-tokens`;

// ------------------------------------------------------------------ wire messages (JSON; binary as base64url without padding)

/** Issuance, step 1: the customer's side started OPAQUE registration. */
export interface RegistrationRequest {
  registrationRequest: string;
}
/** The bank allotted a user ID and answered the registration; `ticket` carries the allotment to step 2 (sealed by the bank). */
export interface RegistrationResponse {
  serviceId: string;
  userId: string;
  registrationResponse: string;
  ticket: string;
}
/** Issuance, step 2: the record the customer's side computed, and where to mail the IDs. */
export interface IssueRequest {
  mail: string;
  ticket: string;
  registrationRecord: string;
}

export interface SetupStartRequest {
  serviceId: string;
  userId: string;
  /** OPAQUE KE1. */
  startLoginRequest: string;
  /** NONCE_BYTES random bytes (DSKPP R_C). */
  clientNonce: string;
}
export interface SetupStartResponse {
  /** OPAQUE KE2. */
  loginResponse: string;
  /** NONCE_BYTES random bytes (DSKPP R_S). */
  serverNonce: string;
  /** The bank's state for finish, sealed by the bank; opaque to the app. */
  ticket: string;
  /** Starts left after this one before the issuance is void, if this one fails. */
  attemptsLeft: number;
}
export interface SetupFinishRequest {
  serviceId: string;
  userId: string;
  ticket: string;
  /** OPAQUE KE3. */
  finishLoginRequest: string;
  /** confirmTag(..., "client"): proves the app derived the same keys. */
  clientConfirm: string;
}
export interface SetupFinishResponse {
  /** JSON text of SoftTokenParams; the server's MAC covers these exact bytes. */
  params: string;
  /** confirmTag(..., "server", params). */
  serverConfirm: string;
}
export interface SoftTokenParams {
  bank: string;
  serviceId: string;
  userId: string;
  algorithm: typeof SOFT_TOKEN.algorithm;
  digits: number;
  period: number;
  t0: number;
}

/** The token's parameters did not parse, or are not what a set-up makes; `field` names the one that is wrong ("params": not a JSON object). */
export class SoftParamsError extends Error {
  constructor(
    readonly field: keyof SoftTokenParams | "params",
    message: string,
  ) {
    super(message);
    this.name = "SoftParamsError";
  }
}

/**
 * The token's parameters from their text (SetupFinishResponse.params, the bytes the bank's MAC covered): the one
 * parser for the app's set-up (client.ts), `fobkit app`'s store (host/app/store.ts) and the web app's keystore.
 * Every field is checked against what a set-up makes (SOFT_TOKEN), so a caller never needs a fallback; `expected`
 * binds the IDs the set-up was for. Throws SoftParamsError naming the first wrong field.
 */
export function parseSoftTokenParams(text: string, expected?: { serviceId: string; userId: string }): SoftTokenParams {
  let p: Record<string, unknown>;
  try {
    p = JSON.parse(text);
  } catch {
    throw new SoftParamsError("params", "the token's parameters are not JSON");
  }
  if (typeof p !== "object" || p === null || Array.isArray(p)) throw new SoftParamsError("params", "the token's parameters are not a JSON object");
  const wrong = (field: keyof SoftTokenParams, want: string): never => {
    throw new SoftParamsError(field, `the token's ${field} is ${JSON.stringify(p[field]) ?? "missing"}, expected ${want}`);
  };
  if (typeof p.bank !== "string" || p.bank.trim() === "") wrong("bank", "the bank's name");
  if (typeof p.serviceId !== "string" || !new RegExp(SERVICE_ID_PATTERN).test(p.serviceId)) wrong("serviceId", "8 digits");
  if (expected && p.serviceId !== expected.serviceId) wrong("serviceId", JSON.stringify(expected.serviceId));
  if (typeof p.userId !== "string" || !validUserId(p.userId)) wrong("userId", "12 digits with a valid check digit");
  if (expected && p.userId !== expected.userId) wrong("userId", JSON.stringify(expected.userId));
  for (const field of ["algorithm", "digits", "period", "t0"] as const) {
    if (p[field] !== SOFT_TOKEN[field]) wrong(field, JSON.stringify(SOFT_TOKEN[field]));
  }
  return p as unknown as SoftTokenParams;
}

/** OPAQUE's identities (RFC 9807 §4.1.2): bind the key exchange to this user ID at this bank. */
export function opaqueIdentifiers(serviceId: string, userId: string): { client: string; server: string } {
  return { client: userId, server: `fobkit-service:${serviceId}` };
}

/** The registry's serial for a software token: SW and its user ID (keyfob serials never start with SW). */
export function softSerial(userId: string): string {
  return `SW${userId}`;
}

// ------------------------------------------------------------------ user ID check digit (Damm: every single-digit error and every adjacent transposition)

const DAMM = [
  [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
  [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
  [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
  [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
  [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
  [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
  [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
  [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
  [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
  [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

/** Damm's check digit of a string of decimal digits. */
export function dammDigit(digits: string): number {
  let interim = 0;
  for (const ch of digits) interim = DAMM[interim][ch.charCodeAt(0) - 48];
  return interim;
}

/** A well-formed user ID: 12 digits, the last Damm's check digit of the first 11. */
export function validUserId(userId: string): boolean {
  return new RegExp(USER_ID_PATTERN).test(userId) && dammDigit(userId.slice(0, 11)) === userId.charCodeAt(11) - 48;
}

/** A fresh user ID: 11 random digits (rejection-sampled, no bias) and the check digit. */
export function newUserId(): string {
  let body = "";
  const buf = new Uint8Array(16);
  while (body.length < 11) {
    crypto.getRandomValues(buf);
    for (const b of buf) if (b < 250 && body.length < 11) body += String(b % 10);
  }
  return body + String(dammDigit(body));
}

// ------------------------------------------------------------------ bytes

export function toB64u(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** base64url (no padding) to bytes; undefined when it is not base64url. */
export function fromB64u(text: string): Uint8Array | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return undefined;
  const s = atob(text.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((text.length + 3) % 4));
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

export function randomNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
}

const utf8 = (s: string): Uint8Array => new TextEncoder().encode(s);

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Length-prefixed (4 bytes, big-endian) so no two different part lists encode alike. */
function framed(parts: Uint8Array[]): Uint8Array {
  return concat(
    parts.flatMap((p) => {
      const len = new Uint8Array(4);
      new DataView(len.buffer).setUint32(0, p.length);
      return [len, p];
    }),
  );
}

/** What both sides saw, in order; the MACs and the HKDF context cover it. */
export interface SetupTranscript {
  serviceId: string;
  userId: string;
  startLoginRequest: string;
  loginResponse: string;
  finishLoginRequest: string;
  clientNonce: Uint8Array;
  serverNonce: Uint8Array;
}

function context(t: { serviceId: string; userId: string }): Uint8Array {
  return framed([utf8(PROTOCOL_VERSION), utf8(t.serviceId), utf8(t.userId)]);
}

export async function transcriptHash(t: SetupTranscript): Promise<Uint8Array> {
  const bytes = framed([context(t), utf8(t.startLoginRequest), utf8(t.loginResponse), utf8(t.finishLoginRequest), t.clientNonce, t.serverNonce]);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as BufferSource));
}

/**
 * The HKDF key both sides derive everything from: OPAQUE's session key,
 * salted with both nonces (RFC 5869; salt R_C || R_S). Non-extractable.
 */
export async function setupBase(sessionKey: Uint8Array, t: SetupTranscript): Promise<CryptoKey> {
  if (t.clientNonce.length !== NONCE_BYTES || t.serverNonce.length !== NONCE_BYTES) throw new RangeError(`nonces must be ${NONCE_BYTES} bytes`);
  return crypto.subtle.importKey("raw", sessionKey as BufferSource, "HKDF", false, ["deriveBits", "deriveKey"]);
}

function hkdfParams(t: SetupTranscript, label: string): HkdfParams {
  return { name: "HKDF", hash: "SHA-256", salt: concat([t.clientNonce, t.serverNonce]) as BufferSource, info: framed([context(t), utf8(label)]) as BufferSource };
}

/** The seed as bytes: for the bank (which seals it at once) and `fobkit app` (which seals it at rest). */
export async function deriveSeedBytes(base: CryptoKey, t: SetupTranscript): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.deriveBits(hkdfParams(t, "seed"), base, SOFT_TOKEN.seedBytes * 8));
}

/** The seed as a non-extractable HMAC-SHA-256 key (the web app: its own script cannot read it back). */
export async function deriveSeedKey(base: CryptoKey, t: SetupTranscript): Promise<CryptoKey> {
  return crypto.subtle.deriveKey(hkdfParams(t, "seed"), base, { name: "HMAC", hash: "SHA-256", length: SOFT_TOKEN.seedBytes * 8 }, false, ["sign"]);
}

/**
 * Key confirmation: HMAC-SHA-256 under a key of this side's own label over
 * the transcript hash (and, from the server, the params it sends).
 */
export async function confirmTag(base: CryptoKey, t: SetupTranscript, side: "client" | "server", params = ""): Promise<Uint8Array> {
  const key = await crypto.subtle.deriveKey(hkdfParams(t, `confirm ${side}`), base, { name: "HMAC", hash: "SHA-256", length: 256 }, false, ["sign"]);
  const data = framed([utf8(side), await transcriptHash(t), utf8(params)]);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, data as BufferSource));
}

/** Constant-time comparison of a received tag with the expected one. */
export function sameTag(a: Uint8Array, b: Uint8Array | undefined): boolean {
  if (!b || a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

// ------------------------------------------------------------------ TOTP on a WebCrypto key (RFC 6238 over RFC 4226)

/** The code for time-step `step` from an HMAC key (SHA-256 by SOFT_TOKEN). */
export async function totpFromKey(key: CryptoKey, step: number, digits: number = SOFT_TOKEN.digits): Promise<string> {
  const counter = new Uint8Array(8);
  const view = new DataView(counter.buffer);
  view.setUint32(0, Math.floor(step / 0x1_0000_0000));
  view.setUint32(4, step >>> 0);
  const mac = new Uint8Array(await crypto.subtle.sign("HMAC", key, counter as BufferSource));
  const offset = mac[mac.length - 1] & 0x0f;
  const bin = ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) | (mac[offset + 2] << 8) | mac[offset + 3];
  return String(bin % 10 ** digits).padStart(digits, "0");
}

/** The time step at unix milliseconds `nowMs`, and ms until the next one. */
export function stepAt(nowMs: number, period: number = SOFT_TOKEN.period, t0: number = SOFT_TOKEN.t0): { step: number; msLeft: number } {
  const ms = nowMs - t0 * 1000;
  const step = Math.floor(ms / (period * 1000));
  return { step, msLeft: (step + 1) * period * 1000 - ms };
}
