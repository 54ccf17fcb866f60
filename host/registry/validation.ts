/**
 * Input checks shared by the registry and the HTTP routes: one pattern per
 * input, used by the registry's checks (a RegistryError "bad_input" naming
 * what was wrong, before anything is read or written) and by the routes'
 * JSON schemas (host/server/routes.ts), so the API and the CLI can never
 * accept different serials, customer ids or codes.
 */
import { isMistypedFobkitSerial } from "../serial/serial-number.js";
import type { Algorithm } from "./totp.js";
import { RegistryError, TOKEN_STATES, WITHDRAW_REASONS, type NewToken, type TokenState, type WithdrawReason } from "./types.js";

/**
 * A serial as printed: 1-64 printable ASCII characters, no spaces (vendors' serials are taken as they are), but not
 * "." or "..": the API and the console name a token in a URL path (/v1/tokens/:serial, /console/keyfobs/:serial),
 * and a URL parser (WHATWG URL, in every browser and in fetch) removes those segments, percent-encoded too ("%2e"),
 * so no link or request could reach such a token.
 */
export const SERIAL_PATTERN = "^(?!\\.\\.?$)[\\x21-\\x7e]{1,64}$";
/** The bank's customer id; not "." or ".." (as for serials: a URL path segment). */
export const CUSTOMER_PATTERN = "^(?!\\.\\.?$)[A-Za-z0-9._@:+-]{1,64}$";
const DOT_SEGMENT = /^\.\.?$/;
/** An API request's id, its X-Request-Id (host/server/app.ts): letters, digits and . _ : -, at most 64, safe in logs and CSV. */
export const REQUEST_ID_PATTERN = "^[A-Za-z0-9._:-]{1,64}$";
/** A code of any token (6-10 digits); the token's own digit count is checked once it is read. */
export const CODE_PATTERN = "^[0-9]{6,10}$";

const SERIAL_RE = new RegExp(SERIAL_PATTERN);
const CUSTOMER_RE = new RegExp(CUSTOMER_PATTERN);
export const ALGORITHMS: Algorithm[] = ["SHA1", "SHA256", "SHA512"];
/** RFC 4226 §4 R6: at least 128 bits of shared secret; 160 recommended. */
export const MIN_SECRET_BYTES = 16;
export const MAX_SECRET_BYTES = 128;

export function checkSerial(serial: unknown): string {
  if (typeof serial === "string" && DOT_SEGMENT.test(serial)) {
    throw new RegistryError("bad_serial", `serial may not be "${serial}": a URL path cannot name it (browsers and fetch remove "." and ".." segments)`, "bad_input");
  }
  if (typeof serial !== "string" || !SERIAL_RE.test(serial)) {
    throw new RegistryError("bad_serial", "serial must be 1-64 printable ASCII characters without spaces", "bad_input");
  }
  return serial;
}

export function checkCustomer(customer: unknown): string {
  if (typeof customer === "string" && DOT_SEGMENT.test(customer)) {
    throw new RegistryError("bad_customer", `customer id may not be "${customer}": a URL path cannot name it (browsers and fetch remove "." and ".." segments)`, "bad_input");
  }
  if (typeof customer !== "string" || !CUSTOMER_RE.test(customer)) {
    throw new RegistryError("bad_customer", "customer id must be 1-64 of A-Z a-z 0-9 . _ @ : + -", "bad_input");
  }
  return customer;
}

/**
 * A code's format: exactly the token's digit count of decimal digits;
 * anything else is bad input, not a wrong code (and never counts toward the
 * lock). Whether it is the right code is code-window.ts's question.
 */
export function checkCodeFormat(code: unknown, digits: number): string {
  if (typeof code !== "string" || code.length !== digits || !/^[0-9]+$/.test(code)) {
    throw new RegistryError("bad_code", `code must be exactly ${digits} decimal digits`, "bad_input", { digits });
  }
  return code;
}

export function checkWithdrawReason(reason: unknown): WithdrawReason {
  if (!WITHDRAW_REASONS.includes(reason as WithdrawReason)) {
    throw new RegistryError("bad_reason", `reason must be one of ${WITHDRAW_REASONS.join(", ")}`, "bad_input");
  }
  return reason as WithdrawReason;
}

export function checkState(state: unknown): TokenState {
  if (!TOKEN_STATES.includes(state as TokenState)) throw new RegistryError("bad_state", `state must be one of ${TOKEN_STATES.join(", ")}`, "bad_input");
  return state as TokenState;
}

/**
 * The refusal for a serial no token has. A fobkit serial (FK + 14 digits, or a legacy 12)
 * whose check digits are wrong was mistyped: say so, so staff look at the
 * label again instead of searching for a token that cannot exist. Other
 * vendors' serials are taken as they are.
 */
export function unknownSerial(serial: string): RegistryError {
  if (isMistypedFobkitSerial(serial)) {
    return new RegistryError("bad_serial", `${serial}: the check digits do not match, so this is not a fobkit serial (mistyped?)`, "bad_input", { serial });
  }
  return new RegistryError("unknown_serial", `no token with serial ${serial}`, "not_found", { serial });
}

/** Serials of software tokens (protocol.ts softSerial: SW and a 12-digit user ID); the factory may not register one. */
export const SOFT_SERIAL_RE = /^SW[0-9]{12}$/;

export function checkNewToken(t: NewToken): void {
  checkSerial(t.serial);
  if (SOFT_SERIAL_RE.test(t.serial)) {
    throw new RegistryError("bad_serial", `${t.serial}: serials SW and 12 digits are software tokens' (made at issuance), not a keyfob's`, "bad_input", { serial: t.serial });
  }
  const bad = (what: string) => {
    throw new RegistryError("bad_token", `token ${t.serial}: ${what}`, "bad_input", { serial: t.serial });
  };
  // RFC 6030 §4.3.1 makes Manufacturer optional (python-pskc's csv2pskc writes none): "" when unknown.
  if (typeof t.manufacturer !== "string" || t.manufacturer.length > 128) bad("manufacturer must be at most 128 characters");
  if (!ALGORITHMS.includes(t.algorithm)) bad(`algorithm must be one of ${ALGORITHMS.join(", ")}`);
  if (!Number.isInteger(t.digits) || t.digits < 6 || t.digits > 10) bad("digits must be an integer 6-10");
  if (!Number.isInteger(t.period) || t.period < 1 || t.period > 3600) bad("period must be an integer 1-3600 seconds");
  if (!Number.isSafeInteger(t.t0) || t.t0 < 0) bad("t0 must be a non-negative integer of unix seconds");
  if (t.timeDrift !== undefined && (!Number.isInteger(t.timeDrift) || Math.abs(t.timeDrift) > 100_000)) bad("timeDrift must be an integer number of steps");
  for (const [name, v] of [["notBefore", t.notBefore], ["notAfter", t.notAfter]] as const) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) bad(`${name} must be unix milliseconds`);
  }
  if (t.notBefore !== undefined && t.notAfter !== undefined && t.notAfter < t.notBefore) bad("notAfter is before notBefore");
  if (!Buffer.isBuffer(t.secret) || t.secret.length < MIN_SECRET_BYTES || t.secret.length > MAX_SECRET_BYTES) {
    bad(`secret must be ${MIN_SECRET_BYTES}-${MAX_SECRET_BYTES} bytes`);
  }
}

/** Serials (or pairs) a refusal's message names; the rest are counted: "and N more" (a 60,000-key file sent twice named all 60,000). */
export const MESSAGE_SERIALS = 10;
/** Serials a refusal's detail (API, --json, its audit record) lists at most; `count` says how many there were. */
export const DETAIL_SERIALS = 1000;

/** The first MESSAGE_SERIALS items joined by `sep`, then "and N more" when there are more. */
export function someOf(items: string[], sep = ", "): string {
  const shown = items.slice(0, MESSAGE_SERIALS).join(sep);
  return items.length > MESSAGE_SERIALS ? `${shown}${sep}and ${items.length - MESSAGE_SERIALS} more` : shown;
}

/** A refusal's detail list, bounded: the first DETAIL_SERIALS items, and how many there were in all. */
export function boundedList<T>(name: string, items: T[]): Record<string, unknown> {
  return { [name]: items.slice(0, DETAIL_SERIALS), count: items.length, ...(items.length > DETAIL_SERIALS ? { truncated: true } : {}) };
}
