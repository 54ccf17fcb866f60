/**
 * Registering good tokens with the bank directly (issue 5): POST /v1/tokens
 * with the factory role's API key, right after a keyfob is locked. The seed
 * travels in the request body, so only HTTPS is allowed, except to a
 * loopback address (a bank on the same machine, or tests), and never with
 * NODE_TLS_REJECT_UNAUTHORIZED=0 (a private CA goes in NODE_EXTRA_CA_CERTS). A registration
 * that fails leaves the token good but unregistered; `fobkit register`
 * retries the outstanding ones.
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { MANUFACTURER, MODEL } from "./export.js";
import type { FactoryRecord, TokenRow } from "./factory-record.js";

export const REGISTER_TIMEOUT_MS = 10_000;

export class BankConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BankConfigError";
  }
}

export interface BankTarget {
  /** Base URL, e.g. https://bank.example/ */
  url: URL;
  /** The factory role's API key. */
  key: string;
  timeoutMs?: number;
}

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  if (h === "localhost") return true;
  if (isIP(h) === 4) return h.startsWith("127.");
  return h === "::1";
}

/** The bank to register with: an https URL (http only to loopback) and a file holding the API key. */
export function bankTarget(url: string, keyFile: string | undefined): BankTarget {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new BankConfigError(`--bank '${url}' is not a URL`);
  }
  if (u.protocol !== "https:" && !(u.protocol === "http:" && isLoopbackHost(u.hostname))) {
    throw new BankConfigError(`--bank ${u.origin}: seeds travel only over HTTPS (plain HTTP is allowed to loopback only)`);
  }
  if (u.username || u.password) throw new BankConfigError("--bank must not carry credentials; put the API key in --bank-key-file");
  // Node's TLS reads this variable itself (lib/tls.js: exactly "0" disables verification), for every connection
  // of the process: HTTPS would then hand the seeds to whoever answers at the bank's address.
  if (u.protocol === "https:" && process.env.NODE_TLS_REJECT_UNAUTHORIZED === "0") {
    throw new BankConfigError(`--bank ${u.origin}: NODE_TLS_REJECT_UNAUTHORIZED=0 turns off the check of the bank's certificate, so seeds could go to anyone; unset it (for a bank whose certificate comes from a private CA, name that CA's PEM file in NODE_EXTRA_CA_CERTS)`);
  }
  if (!keyFile) throw new BankConfigError("--bank needs --bank-key-file (the factory role's API key)");
  let key: string;
  try {
    key = readFileSync(keyFile, "utf8").replace(/\r?\n$/, "");
  } catch (e) {
    throw new BankConfigError(`cannot read --bank-key-file ${keyFile}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (!/^[\x21-\x7e]+$/.test(key)) throw new BankConfigError(`--bank-key-file ${keyFile} must hold one API key on one line`);
  return { url: u, key };
}

/** `collision`: the bank holds this serial as another token (another seed): another record issued it. */
export type RegisterOutcome = { ok: true } | { ok: false; error: string; collision?: true };

/** Register one token. Never throws for bank or network failures: they are the outcome. */
export async function registerToken(target: BankTarget, row: TokenRow, seed: Buffer): Promise<RegisterOutcome> {
  const body = JSON.stringify({
    serial: row.serial, manufacturer: MANUFACTURER, model: MODEL, algorithm: row.algorithm, digits: row.digits,
    period: row.period, t0: 0, seed: seed.toString("hex"),
  });
  // A duplicate answer may come from a twin of this very registration (the station's, and `fobkit register`
  // catching up, at the same moment: the bank looked for the serial in both, found none, kept one insert and
  // refused the other). Sent once more, it meets the token the twin registered, which the bank answers with
  // 201 when it is the same token; only a duplicate answered again is another token.
  for (let attempt = 0; ; attempt++) {
    const r = await postToken(target, body);
    if (!("code" in r) || attempt > 0 || (r.code !== "duplicate_serial" && r.code !== "duplicate_seed")) return outcome(r, row.serial);
  }
}

type BankAnswer = { ok: true } | { ok: false; error: string } | { status: number; code: string; message: string };

async function postToken(target: BankTarget, body: string): Promise<BankAnswer> {
  let res: Response;
  try {
    res = await fetch(new URL("v1/tokens", target.url.href.endsWith("/") ? target.url : target.url.href + "/"), {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${target.key}` },
      body,
      redirect: "error",
      signal: AbortSignal.timeout(target.timeoutMs ?? REGISTER_TIMEOUT_MS),
    });
  } catch (e) {
    const cause = (e as { cause?: { code?: string; message?: string } }).cause;
    return { ok: false, error: `bank unreachable: ${cause?.code ?? cause?.message ?? (e as Error).message}` };
  }
  if (res.status === 201) return { ok: true };
  let code = "";
  let message = "";
  try {
    const j = (await res.json()) as { error?: { code?: string; message?: string } };
    code = j.error?.code ?? "";
    message = j.error?.message ?? "";
  } catch {
    // not the bank's JSON error shape
  }
  return { status: res.status, code, message };
}

/**
 * A string the bank sent, safe to print: control characters written as JSON.stringify writes them (\n, \t,
 * \u001b), so a hostile or broken server cannot move the cursor, clear the screen, retitle the terminal or
 * hide text on the operator's screen (ESC sequences, CR, BS); C1 controls, DEL and the bidirectional overrides
 * (U+202A-202E, U+2066-2069: text shown in another order than it reads) too. These strings reach the
 * station's and `fobkit register`'s lines and the factory record. A backslash is doubled, as JSON writes it, so
 * a server's literal "\u001b" text cannot pass for an escape.
 */
export function printable(text: string): string {
  return text.replace(/[\\\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g, (c) => {
    const json = JSON.stringify(c).slice(1, -1);
    return json.length > 1 ? json : "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0");
  });
}

function outcome(r: BankAnswer, serial: string): RegisterOutcome {
  if (!("code" in r)) return r;
  // The bank answers a retry of the same token (serial, parameters and seed) with 201, so a lost answer
  // is healed by `fobkit register`. duplicate_serial therefore means another token under this serial
  // (a PSKC import, or another factory record that reused the batch number): never taken as success.
  if (r.code === "duplicate_serial") {
    return { ok: false, collision: true, error: `the bank already holds another token as ${serial} (another factory record issued this serial: it uses the same line number); check with bank staff` };
  }
  return { ok: false, error: `bank refused (HTTP ${r.status}${r.code ? " " + printable(r.code) : ""}${r.message ? ": " + printable(r.message) : ""})` };
}

/**
 * Register a good token of the record and note the outcome there. Never
 * throws: it runs after the keyfob is locked and recorded good, so a record
 * that cannot be read or written now (locked by another process past its busy
 * timeout, disk full) is a registration outcome, not the end of the station
 * (nor of the label's serial). An answer the record could not take is
 * reported failed; `fobkit register` sends it again, which the bank answers
 * as it did the first time.
 */
export async function registerRecorded(record: FactoryRecord, target: BankTarget, serial: string): Promise<RegisterOutcome> {
  let row: TokenRow | undefined;
  let seed: Buffer;
  try {
    row = record.token(serial);
    if (!row || row.state !== "good") return { ok: false, error: `${serial} is not a good token` };
    seed = record.openSeed(serial);
  } catch (e) {
    return { ok: false, error: `cannot read ${serial} from the factory record: ${(e as Error).message}` };
  }
  let r: RegisterOutcome;
  try {
    r = await registerToken(target, row, seed);
  } finally {
    seed.fill(0);
  }
  try {
    record.setRegistration(serial, r.ok, r.ok ? undefined : r.error);
    // Every later serial of this line would collide the same way: the record stops issuing them.
    if (!r.ok && r.collision) record.noteLineConflict(`the bank holds ${serial} as another token`);
  } catch (e) {
    const why = `the factory record could not note it (${(e as Error).message}); fobkit register sends it again`;
    return r.ok ? { ok: false, error: `the bank registered ${serial}, but ${why}` } : { ...r, error: `${r.error}; ${why}` };
  }
  return r;
}

/** Every good token not yet registered (never tried, or failed), optionally of one batch. */
export async function registerOutstanding(record: FactoryRecord, target: BankTarget, batch?: number, onEach?: (serial: string, r: RegisterOutcome) => void): Promise<{ registered: number; failed: number }> {
  const rows = record.tokens({ batch, state: "good" }).filter((r) => r.registration !== "registered");
  let registered = 0, failed = 0;
  for (const row of rows) {
    const r = await registerRecorded(record, target, row.serial);
    if (r.ok) registered++;
    else failed++;
    onEach?.(row.serial, r);
  }
  return { registered, failed };
}
