/**
 * The software token (issue 15; SOFT-DESIGN.md), the bank's side: the
 * deployment's settings, issuance in two steps, the app's set-up in two
 * steps, and the registration status the channel shows. The wire messages,
 * the HKDF derivation and the key confirmation are host/soft/protocol.ts,
 * shared with the app; this module only decides, and hands each decision to
 * the TokenStore (token-store.ts) like the keyfob's decisions in registry.ts.
 *
 * - Issuance step 1 (startIssuance) is stateless: OPAQUE's registration
 *   response (RFC 9807 §5.2.2) for a fresh user ID, and a ticket sealed by
 *   the key ring carrying {customer, userId, exp} to step 2. An abandoned
 *   registration leaves nothing behind.
 * - Issuance step 2 (issue) opens the ticket and inserts the row, state
 *   issued, kind soft, setup_at NULL, seed := the sealed registration record.
 *   A soft token the customer never started to use is superseded (retired)
 *   in the same transaction; any other live token refuses customer_has_token.
 * - Set-up start (setupStart) is OPAQUE's KE1 -> KE2 (§6.4). It is the
 *   password-guessing oracle, so every start counts one guess before it is
 *   answered, and SETUP_TRIES starts without a finished set-up void the
 *   issuance. Its ticket, sealed for the serial, carries the server's login
 *   state and the row's updated_at after this start: only the latest start
 *   can finish, and a finish is single use.
 * - Set-up finish (setupFinish) checks KE3 (a wrong one: wrong_password),
 *   then the client's confirmation MAC, derives the seed as the app did, and
 *   in one change replaces the record with the sealed seed.
 *
 * Set-up decisions run under the row lock (decide with `locked`): the seed
 * they write is beyond the columns of PostgreSQL's batched compare-and-set,
 * and set-ups are rare. The decision still rests only on the row it read.
 */
import * as opaque from "@serenity-kit/opaque";
import { TICKET_PATTERN, type KeyRing, type TicketPurpose } from "./key-ring.js";
import type { SqlTokenStore } from "./sql-token-store.js";
import { iso } from "./sql-token-store.js";
import { tokenHoldsSeed, type AuditEntry, type Decision, type RowChange, type TokenRow } from "./token-store.js";
import { checkCustomer } from "./validation.js";
import { RegistryError, type Actor, type TokenKind } from "./types.js";
import { checkMailAddress, maskMail, type IssuanceMailer } from "../soft/mail.js";
import {
  B64U_PATTERN,
  NONCE_BYTES,
  SERVICE_ID_PATTERN,
  SETUP_TRIES,
  SOFT_TOKEN,
  confirmTag,
  deriveSeedBytes,
  fromB64u,
  newUserId,
  opaqueIdentifiers,
  randomNonce,
  sameTag,
  setupBase,
  softSerial,
  toB64u,
  validUserId,
  type IssueRequest,
  type RegistrationResponse,
  type SetupFinishRequest,
  type SetupFinishResponse,
  type SetupStartRequest,
  type SetupStartResponse,
  type SetupTranscript,
  type SoftTokenParams,
} from "../soft/protocol.js";

/** The deployment's soft-token settings (the settings table, `fobkit bank soft-config`). */
export interface SoftConfig {
  /** 8 digits, one per deployment: shown in the mail and typed into the app. */
  serviceId: string;
  /** Shown by the app after set-up (the manual asks the customer to check it). */
  bankName: string;
  /** The app's address, in the mail. */
  appUrl: string;
  /** IANA zone of the bank's calendar (the next-day rule, dates in the mail). */
  timeZone: string;
  /** Days an issuance may wait for its set-up. */
  issuanceDays: number;
}

export const SOFT_DEFAULTS = { timeZone: "Asia/Tokyo", issuanceDays: 7 } as const;
const SETTING: Record<keyof SoftConfig, string> = {
  serviceId: "soft.service_id",
  bankName: "soft.bank_name",
  appUrl: "soft.app_url",
  timeZone: "soft.time_zone",
  issuanceDays: "soft.issuance_days",
};
/** The OPAQUE server setup (opaque.server.createSetup(): OPRF seed and the server's key pair), a registry secret. */
export const OPAQUE_SETUP_SECRET = "opaque-server-setup";

/** How long step 1's answer may wait for step 2 (the customer computes the record: ~0.2 s, and may hesitate). */
export const REGISTRATION_TICKET_MS = 10 * 60_000;
/** How long a set-up start may wait for its finish. */
export const SETUP_TICKET_MS = 5 * 60_000;
const DAY_MS = 86_400_000;

/** The registration status the channel shows the customer (and staff see). */
export type RegistrationStatus = "not_registered" | "issued" | "in_use" | "locked";
export const REGISTRATION_LABELS: Record<RegistrationStatus, { en: string; ja: string }> = {
  not_registered: { en: "not registered", ja: "未登録" },
  issued: { en: "issued", ja: "発行済" },
  in_use: { en: "in use", ja: "利用中" },
  locked: { en: "locked", ja: "停止中" },
};
export const KIND_LABELS: Record<TokenKind, { en: string; ja: string }> = {
  keyfob: { en: "keyfob", ja: "キーホルダー型" },
  soft: { en: "software token", ja: "ソフトウェアトークン" },
};

export interface Registration {
  customer: string;
  status: RegistrationStatus;
  /** Japanese label (未登録 / 発行済 / 利用中 / 停止中). */
  label: string;
  kind: TokenKind | null;
  /** Issued soft token: its app set-up is done. Keyfobs: true. Not registered: false. */
  setUp: boolean;
  /** Must the customer give a code to log in? False when not registered (manual flow 4: after 利用解除, no OTP) or not yet in use. */
  otpRequired: boolean;
  serial: string | null;
  /** Soft tokens: the IDs the app is set up with. */
  serviceId?: string;
  userId?: string;
  setupFrom?: string | null;
  setupBefore?: string | null;
  /**
   * Soft tokens: the issuance is past setupBefore without a set-up, so it can no longer be set up (the next start
   * voids it). The status stays issued (the row is, until voided or superseded), but for the channel it is spent:
   * the customer must be issued a new token (a new issuance supersedes this one); login needs no code meanwhile.
   */
  expired?: boolean;
}

/** The status of a customer's live token (undefined: none). */
export function registrationOf(customer: string, row: Pick<TokenRow, "serial" | "state" | "kind" | "setup_at" | "setup_from" | "setup_before"> | undefined, serviceId?: string, now?: number): Registration {
  if (!row) return { customer, status: "not_registered", label: REGISTRATION_LABELS.not_registered.ja, kind: null, setUp: false, otpRequired: false, serial: null };
  const status: RegistrationStatus = row.state === "active" ? "in_use" : row.state === "locked" ? "locked" : "issued";
  const kind = row.kind ?? "keyfob";
  const soft = kind === "soft";
  const setUp = tokenHoldsSeed(row);
  // Past setup_before and never set up: setupStart refuses (and voids) it: report it as spent, not as usable.
  const expired = soft && !setUp && status === "issued" && row.setup_before !== null && now !== undefined && now >= Number(row.setup_before);
  return {
    customer,
    status,
    label: expired ? `${REGISTRATION_LABELS.issued.ja}（有効期限切れ・再発行が必要）` : REGISTRATION_LABELS[status].ja,
    kind,
    setUp,
    otpRequired: status !== "issued",
    serial: row.serial,
    ...(soft ? { userId: row.serial.slice(2), ...(serviceId ? { serviceId } : {}), setupFrom: setUp ? null : iso(row.setup_from), setupBefore: setUp ? null : iso(row.setup_before), expired } : {}),
  };
}

/**
 * Unix ms of the start of the calendar day after `ms` in `timeZone`: the first instant whose local date there is
 * later than the date of `ms`. That is not always 00:00 local: where the clocks jump at midnight (America/Havana,
 * America/Santiago, America/Asuncion on their spring-forward days) 00:00 does not exist and the day begins at
 * 01:00, and a computation by offsets alone lands an hour early, on the same day (review R2). So: a candidate
 * from the zone's offset, then a search over whole seconds (zone rules change on whole seconds; IANA tzdata)
 * for the instant where the local date flips.
 */
export function startOfNextDay(ms: number, timeZone: string): number {
  const f = new Intl.DateTimeFormat("en-US", { timeZone, year: "numeric", month: "numeric", day: "numeric", hour: "numeric", minute: "numeric", second: "numeric", hourCycle: "h23" });
  const parts = (t: number) => Object.fromEntries(f.formatToParts(new Date(t)).map((p) => [p.type, Number(p.value)])) as Record<string, number>;
  /** The local date at instant t as a sortable number yyyymmdd. */
  const dateAt = (t: number) => {
    const p = parts(t);
    return p.year * 10_000 + p.month * 100 + p.day;
  };
  /** The zone's offset from UTC at instant t, ms. */
  const offset = (t: number) => {
    const p = parts(t);
    return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) - Math.floor(t / 1000) * 1000;
  };
  const d = parts(ms);
  const today = d.year * 10_000 + d.month * 100 + d.day;
  const wall = Date.UTC(d.year, d.month - 1, d.day + 1); // next midnight, as if the zone were UTC
  const candidate = wall - offset(wall - offset(wall));
  // Bracket the flip: lo on `today` (ms itself is), hi on a later day; no zone moves its clock by 6 h at once.
  const HOURS6 = 6 * 3_600_000;
  let lo = Math.floor(Math.max(ms, candidate - HOURS6) / 1000); // seconds, local date == today
  let hi = Math.ceil((candidate + HOURS6) / 1000); // seconds, local date > today
  while (dateAt(hi * 1000) <= today) hi += 6 * 3600; // never taken in tzdata; keeps the invariant regardless
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (dateAt(mid * 1000) > today) hi = mid;
    else lo = mid;
  }
  return hi * 1000;
}

export function checkTimeZone(tz: unknown): string {
  try {
    if (typeof tz !== "string" || !tz) throw new Error();
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return tz;
  } catch {
    throw new RegistryError("bad_time_zone", `time zone must be an IANA name such as Asia/Tokyo, got ${JSON.stringify(String(tz)).slice(0, 60)}`, "bad_input");
  }
}

const B64U_RE = new RegExp(B64U_PATTERN);
const TICKET_RE = new RegExp(TICKET_PATTERN);
/** A protocol message field: base64url, 1..max characters. */
function message(value: unknown, name: string, max: number): string {
  if (typeof value !== "string" || value.length === 0 || value.length > max || !(name === "ticket" ? TICKET_RE : B64U_RE).test(value)) {
    throw new RegistryError(`bad_${name.replace(/[A-Z]/g, (c) => "_" + c.toLowerCase())}`, name === "ticket" ? "ticket must be the bank's ticket from the previous step, unchanged" : `${name} must be base64url (no padding), 1-${max} characters`, "bad_input");
  }
  return value;
}
/** Sizes of OPAQUE's messages for ristretto255 (RFC 9807 §6.1, Appendix C): KE1 96, KE2 320, KE3 64, registration request 32, record 192 bytes; generous bounds. */
export const MAX_MESSAGE = 1024;
/** KE1's size for OPAQUE-3DH over ristretto255 (RFC 9807 §6.1): Noe + Nn + Npk = 32 + 32 + 32. */
const KE1_BYTES = 96;
export const MAX_TICKET = 4096;

function checkServiceIdFormat(serviceId: unknown): string {
  if (typeof serviceId !== "string" || !new RegExp(SERVICE_ID_PATTERN).test(serviceId)) throw new RegistryError("bad_service_id", "service ID must be 8 digits", "bad_input");
  return serviceId;
}
function checkUserIdFormat(userId: unknown): string {
  if (typeof userId !== "string" || !validUserId(userId)) {
    throw new RegistryError("bad_user_id", "user ID must be 12 digits whose last is the check digit; check it against the mail (トークン発行のご案内)", "bad_input");
  }
  return userId;
}

/**
 * The updated_at a change to `row` writes: now, but always past the row's own, so a change made within the
 * millisecond of the last one (or under a clock that stepped back) still moves it, and a set-up ticket bound to
 * the old value (SetupTicket.updatedAt) can never match again.
 */
function nextUpdatedAt(row: Pick<TokenRow, "updated_at">, now: number): number {
  return Math.max(now, Number(row.updated_at) + 1);
}

const unknownUser = () => new RegistryError("unknown_user", "no software token with this service ID and user ID; check both against the mail (トークン発行のご案内)", "not_found");

interface SetupTicket {
  serverLoginState: string;
  startLoginRequest: string;
  loginResponse: string;
  clientNonce: string;
  serverNonce: string;
  updatedAt: number;
  exp: number;
}

/**
 * What became of a mail that failed, for the audit and the server's log: the error's code (nodemailer's EENVELOPE,
 * ECONNECTION, ...) or its class name, never its message, which may quote the address. A mailer may throw anything
 * (a string, a plain object, null): that is named by its type, `non_error_<type>`, and nothing of it is read but
 * that. A code or name that is not one short word (it could hold the address) is not used either.
 */
export function mailFailureKind(e: unknown): string {
  const word = (v: unknown) => (typeof v === "string" && /^[A-Za-z][A-Za-z0-9_.-]{0,39}$/.test(v) ? v : undefined);
  if (!(e instanceof Error)) return `non_error_${e === null ? "null" : typeof e}`;
  try {
    return word((e as { code?: unknown }).code) ?? word(e.name) ?? "Error";
  } catch {
    return "Error"; // a getter that throws
  }
}

export class SoftTokens {
  constructor(
    private readonly store: SqlTokenStore,
    private readonly keys: KeyRing,
    private readonly now: () => number,
  ) {}

  private get db() {
    return this.store.db;
  }

  // ---------------------------------------------------------------- settings

  /** The settings as stored (defaults filled in), whether complete or not: one query. */
  private async storedSettings(): Promise<Partial<SoftConfig> & Pick<SoftConfig, "timeZone" | "issuanceDays">> {
    const rows = await this.db.all<{ name: string; value: string }>("SELECT name, value FROM settings WHERE name LIKE 'soft.%'");
    const v = new Map(rows.map((r) => [r.name, r.value]));
    const out: Partial<SoftConfig> = {};
    for (const [k, name] of Object.entries(SETTING) as [keyof SoftConfig, string][]) {
      const value = v.get(name);
      if (value !== undefined) (out as Record<string, unknown>)[k] = k === "issuanceDays" ? Number(value) : value;
    }
    return { ...out, timeZone: out.timeZone ?? SOFT_DEFAULTS.timeZone, issuanceDays: out.issuanceDays ?? SOFT_DEFAULTS.issuanceDays };
  }

  /** The settings, or undefined until soft-config has set the required ones. */
  async config(): Promise<SoftConfig | undefined> {
    const s = await this.storedSettings();
    if (!s.serviceId || !s.bankName || !s.appUrl) return undefined;
    return { serviceId: s.serviceId, bankName: s.bankName, appUrl: s.appUrl, timeZone: s.timeZone, issuanceDays: s.issuanceDays };
  }

  /** What is set so far (for `soft-config` with no values), whether complete or not. */
  async settings(): Promise<Partial<SoftConfig> & { opaqueSetup: boolean }> {
    return { opaqueSetup: await this.hasOpaqueSetup(), ...(await this.storedSettings()) };
  }

  private async hasOpaqueSetup(): Promise<boolean> {
    return (await this.db.get("SELECT 1 AS x FROM registry_secrets WHERE name = ?", [OPAQUE_SETUP_SECRET])) !== undefined;
  }

  /**
   * Sets the given settings (checked first: nothing is written if one is
   * bad) and makes the OPAQUE server setup if there is none. The service ID
   * never changes once set: every app set up holds it, and every record was
   * registered under it (opaqueIdentifiers).
   */
  async configure(values: Partial<SoftConfig>, actor: Actor): Promise<SoftConfig | undefined> {
    const set: [string, string][] = [];
    if (values.serviceId !== undefined) set.push([SETTING.serviceId, checkServiceIdFormat(values.serviceId)]);
    if (values.bankName !== undefined) {
      const b = values.bankName;
      if (typeof b !== "string" || b.trim().length === 0 || b.length > 64 || /[\x00-\x1f\x7f]/.test(b)) throw new RegistryError("bad_bank_name", "bank name must be 1-64 characters, no control characters", "bad_input");
      set.push([SETTING.bankName, b.trim()]);
    }
    if (values.appUrl !== undefined) {
      let ok = false;
      try {
        const u = new URL(values.appUrl);
        ok = (u.protocol === "https:" || u.protocol === "http:") && values.appUrl.length <= 512;
      } catch {
        ok = false;
      }
      if (!ok) throw new RegistryError("bad_app_url", "app URL must be an http(s) URL of at most 512 characters, e.g. https://bank.example.jp/app/", "bad_input");
      set.push([SETTING.appUrl, values.appUrl]);
    }
    if (values.timeZone !== undefined) set.push([SETTING.timeZone, checkTimeZone(values.timeZone)]);
    if (values.issuanceDays !== undefined) {
      if (!Number.isInteger(values.issuanceDays) || values.issuanceDays < 1 || values.issuanceDays > 90) throw new RegistryError("bad_issuance_days", "issuance days must be an integer 1-90", "bad_input");
      set.push([SETTING.issuanceDays, String(values.issuanceDays)]);
    }
    const now = this.now();
    const current = await this.db.get<{ value: string }>("SELECT value FROM settings WHERE name = ?", [SETTING.serviceId]);
    if (values.serviceId !== undefined && current && current.value !== values.serviceId) {
      throw new RegistryError("service_id_set", `the service ID is ${current.value} and never changes: every app set up and every issued token is bound to it`, "refused", { serviceId: current.value });
    }
    await opaque.ready;
    const setup = (await this.hasOpaqueSetup()) ? undefined : Buffer.from(opaque.server.createSetup(), "utf8");
    try {
      await this.store.sealing(() =>
        this.db.tx(async (t) => {
          for (const [name, value] of set) {
            await t.run("INSERT INTO settings (name, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at", [name, value, now]);
          }
          if (setup) {
            const sealed = this.keys.sealSecret(OPAQUE_SETUP_SECRET, setup);
            await t.run("INSERT INTO registry_secrets (name, kek_id, sealed, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (name) DO NOTHING", [OPAQUE_SETUP_SECRET, sealed.kekId, sealed.blob, now]);
          }
          const insert = this.store.auditInsert(actor, [{ action: "soft_config", outcome: "ok", serial: null, customer: null, detail: { set: Object.fromEntries(set), ...(setup ? { opaqueSetup: "created" } : {}) } }]);
          await t.run(insert.sql, insert.params);
        }),
      );
    } finally {
      setup?.fill(0);
    }
    return this.config();
  }

  private setupCache?: { kekId: string; setup: string };

  /** The OPAQUE server setup, opened (kept in memory like the seed-index key; re-read after a re-seal). */
  private async serverSetup(): Promise<string> {
    const row = await this.db.get<{ kek_id: string; sealed: Uint8Array }>("SELECT kek_id, sealed FROM registry_secrets WHERE name = ?", [OPAQUE_SETUP_SECRET]);
    if (!row) throw notConfigured();
    if (this.setupCache?.kekId === row.kek_id) return this.setupCache.setup;
    const opened = this.keys.openSecret(OPAQUE_SETUP_SECRET, { kekId: row.kek_id, blob: Buffer.from(row.sealed) });
    const setup = opened.toString("utf8");
    opened.fill(0);
    this.setupCache = { kekId: row.kek_id, setup };
    return setup;
  }

  private async requireConfig(): Promise<SoftConfig> {
    const c = await this.config();
    if (!c) throw notConfigured();
    await opaque.ready;
    return c;
  }

  /** A ticket of ours (KeyRing.openTicket), parsed; undefined when it does not open or is not JSON. */
  private openTicket<T>(purpose: TicketPurpose, name: string, ticket: string): T | undefined {
    const opened = this.keys.openTicket(purpose, name, ticket);
    if (!opened) return undefined;
    try {
      return JSON.parse(opened.toString("utf8")) as T;
    } catch {
      return undefined;
    } finally {
      opened.fill(0);
    }
  }

  /** The customer's live token (issued, active or locked; at most one, index tokens_one_per_customer), the columns issuance and the status read. */
  private liveToken(customer: string): Promise<TokenRow | undefined> {
    return this.db.get<TokenRow>("SELECT serial, state, kind, activated_at, setup_at, setup_from, setup_before FROM tokens WHERE customer = ? AND state IN ('issued', 'active', 'locked')", [customer]);
  }

  // ---------------------------------------------------------------- issuance (channel)

  /** Can this live token give way to a new soft issuance? A soft token never started to use (awaiting set-up, or set up, not yet activated). */
  private static supersedable(holder: TokenRow): boolean {
    return holder.kind === "soft" && holder.activated_at === null && (holder.state === "issued" || holder.state === "locked");
  }

  private holderRefusal(customer: string, holder: TokenRow): RegistryError {
    const what = holder.kind === "soft" ? "software token" : "keyfob";
    return new RegistryError(
      "customer_has_token",
      `customer ${customer} holds ${what} ${holder.serial} (${holder.state}); ${holder.kind === "soft" ? "deactivate it (利用解除) first" : "deactivate it with its code, or staff withdraw it, first"}`,
      "refused",
      { heldSerial: holder.serial, heldKind: holder.kind ?? "keyfob" },
    );
  }

  /**
   * Issuance step 1: allots a fresh user ID and answers the customer's OPAQUE
   * registration request. Writes nothing but refuses early (audited) what
   * step 2 would refuse.
   */
  async startIssuance(customer: string, registrationRequest: string, actor: Actor): Promise<RegistrationResponse> {
    checkCustomer(customer);
    message(registrationRequest, "registrationRequest", MAX_MESSAGE);
    const config = await this.requireConfig();
    const holder = await this.liveToken(customer);
    if (holder && !SoftTokens.supersedable(holder)) {
      const refusal = this.holderRefusal(customer, holder);
      await this.store.note(actor, "soft-issue", refusal.code, { step: "registration", ...refusal.detail }, null, customer);
      throw refusal;
    }
    let userId = newUserId();
    while (await this.store.serialTaken(softSerial(userId))) userId = newUserId();
    let registrationResponse: string;
    try {
      ({ registrationResponse } = opaque.server.createRegistrationResponse({ serverSetup: await this.serverSetup(), userIdentifier: softSerial(userId), registrationRequest }));
    } catch {
      throw new RegistryError("bad_registration_request", "registrationRequest is not an OPAQUE registration request (RFC 9807 §5.2.1)", "bad_input");
    }
    const ticket = this.keys.sealTicket("fobkit-soft-ticket", customer, Buffer.from(JSON.stringify({ customer, userId, exp: this.now() + REGISTRATION_TICKET_MS })));
    return { serviceId: config.serviceId, userId, registrationResponse, ticket };
  }

  /**
   * Issuance step 2: the record the customer's side made. Inserts the soft
   * token (issued, awaiting set-up), superseding a soft token the customer
   * never used, and returns what the channel shows and the mail says.
   */
  async issue(customer: string, req: IssueRequest, actor: Actor): Promise<IssueResult> {
    checkCustomer(customer);
    const mail = checkMailAddress(req?.mail);
    if (!mail) throw new RegistryError("bad_mail", "mail must be a plain e-mail address (ASCII, at most 254 characters)", "bad_input");
    message(req.ticket, "ticket", MAX_TICKET);
    message(req.registrationRecord, "registrationRecord", MAX_MESSAGE);
    const record = fromB64u(req.registrationRecord);
    // RFC 9807 §5.1.2: the record is the client's public key (32), masking key (64) and envelope (nonce 32, auth tag 64).
    if (!record || record.length !== 192) throw new RegistryError("bad_registration_record", "registrationRecord is not an OPAQUE registration record (192 bytes for ristretto255)", "bad_input");
    const config = await this.requireConfig();
    const t = this.openTicket<{ customer: string; userId: string; exp: number }>("fobkit-soft-ticket", customer, req.ticket);
    const now = this.now();
    if (!t || t.customer !== customer || !validUserId(t.userId) || !(now < t.exp)) {
      const refusal = new RegistryError("ticket_expired", "the registration ticket is not this customer's, or it expired (10 minutes): start the issuance again", "refused");
      await this.store.note(actor, "soft-issue", refusal.code, { step: "issue" }, null, customer);
      throw refusal;
    }
    const serial = softSerial(t.userId);
    const lastOff = await this.store.lastDeactivation(customer);
    const nextDay = lastOff === null ? null : startOfNextDay(lastOff, config.timeZone);
    const setupFrom = nextDay !== null && now < nextDay ? nextDay : null;
    const setupBefore = now + config.issuanceDays * DAY_MS;
    const masked = maskMail(mail);
    const secret = Buffer.from(record);
    try {
      await this.store.issueSoft(customer, actor, secret, (holder) => {
        const audit: AuditEntry[] = [];
        let supersede: RowChange | undefined;
        if (holder) {
          if (!SoftTokens.supersedable(holder)) {
            const refusal = this.holderRefusal(customer, holder);
            return { audit: [{ action: "soft-issue", outcome: refusal.code, serial, customer, detail: refusal.detail }], outcome: refusal };
          }
          supersede = { state: "retired", fail_count: 0, updated_at: nextUpdatedAt(holder, now) };
          audit.push({ action: "supersede", outcome: "ok", serial: holder.serial, customer, detail: { by: serial, from: holder.state, setUp: tokenHoldsSeed(holder) } });
        }
        audit.push({
          action: "soft-issue",
          outcome: "ok",
          serial,
          customer,
          detail: { mail: masked, setupBefore: iso(setupBefore), ...(setupFrom !== null ? { setupFrom: iso(setupFrom) } : {}), ...(holder ? { superseded: holder.serial } : {}) },
        });
        return {
          supersede,
          insert: { serial, issuer: config.bankName, algorithm: SOFT_TOKEN.algorithm, digits: SOFT_TOKEN.digits, period: SOFT_TOKEN.period, t0: SOFT_TOKEN.t0, origin: `soft:${actor.name}`, now, setupFrom, setupBefore },
          audit,
          outcome: undefined,
        };
      });
    } finally {
      secret.fill(0);
    }
    return { customer, serviceId: config.serviceId, userId: t.userId, serial, state: "issued", setUp: false, setupFrom: iso(setupFrom), setupBefore: iso(setupBefore)!, mail, config, setupFromMs: setupFrom, setupBeforeMs: setupBefore };
  }

  /**
   * Sends the issuance mail (トークン発行のご案内) for `r` and audits what became of it: mail ok, failed (the error's
   * kind only: a message may quote the address) or not_configured (no mailer). The issuance stands either way:
   * the caller shows the IDs when the mail was not sent.
   */
  async mailIssuance(r: IssueResult, mailer: IssuanceMailer | undefined, actor: Actor): Promise<{ sent: true } | { sent: false; error?: string }> {
    const detail = { kind: "soft-issue", mail: maskMail(r.mail) };
    if (!mailer) {
      await this.store.note(actor, "mail", "not_configured", detail, r.serial, r.customer);
      return { sent: false };
    }
    try {
      await mailer.send({ to: r.mail, bankName: r.config.bankName, serviceId: r.serviceId, userId: r.userId, appUrl: r.config.appUrl, setupBefore: r.setupBeforeMs, setupFrom: r.setupFromMs, timeZone: r.config.timeZone });
    } catch (e) {
      const error = mailFailureKind(e);
      await this.store.note(actor, "mail", "failed", { ...detail, error }, r.serial, r.customer);
      return { sent: false, error };
    }
    await this.store.note(actor, "mail", "ok", detail, r.serial, r.customer);
    return { sent: true };
  }

  // ---------------------------------------------------------------- set-up (the app; public)

  private async checkIds(serviceId: unknown, userId: unknown): Promise<{ config: SoftConfig; serial: string }> {
    checkServiceIdFormat(serviceId);
    const id = checkUserIdFormat(userId);
    const config = await this.requireConfig();
    // Another deployment's service ID: the same answer as an unknown user ID (nothing learned about which exist).
    if (serviceId !== config.serviceId) throw unknownUser();
    return { config, serial: softSerial(id) };
  }

  /** The refusal (audited) of a set-up on this row, or undefined when it may go on; voids the issuance when it expired. */
  private setupRefusal(action: "setup_start" | "setup", row: TokenRow | undefined, now: number): Decision<never> | undefined {
    if (!row || row.kind !== "soft") throw unknownUser();
    const refuse = (code: string, msg: string, detail: Record<string, unknown> = {}, change?: RowChange, extra: AuditEntry[] = []): Decision<never> => ({
      change,
      audit: [{ action, outcome: code, serial: row.serial, customer: row.customer, ...(Object.keys(detail).length ? { detail } : {}) }, ...extra],
      outcome: new RegistryError(code, msg, "refused", { serial: row.serial, ...detail }),
    });
    // By state first, as the lifecycle table's setup row says (retired: voided; active, locked: already_set_up).
    if (row.state === "retired") return refuse("voided", "this user ID is no longer valid (too many wrong activation passwords, expired, replaced by a newer issuance, or deactivated); apply for a new issuance");
    if (row.setup_at !== null || row.state !== "issued") return refuse("already_set_up", "this user ID was set up already; a user ID sets up once (ask the bank for a new issuance to set up another phone)");
    if (row.setup_before !== null && now >= Number(row.setup_before)) {
      return refuse("setup_expired", `this issuance expired at ${iso(row.setup_before)}; apply for a new issuance`, { setupBefore: iso(row.setup_before) }, { state: "retired", updated_at: nextUpdatedAt(row, now) }, [
        { action: "void", outcome: "ok", serial: row.serial, customer: row.customer, detail: { reason: "expired" } },
      ]);
    }
    if (row.setup_from !== null && now < Number(row.setup_from)) {
      return refuse("setup_not_yet", `set-up is possible from ${iso(row.setup_from)} (the day after the last deactivation, 利用解除の翌日以降)`, { setupFrom: iso(row.setup_from) });
    }
    // Only a start is a new guess: the finish of the last allowed start may still succeed.
    if (action === "setup_start" && row.fail_count >= SETUP_TRIES) {
      return refuse("voided", `this issuance is void after ${row.fail_count} set-ups without the right activation password; apply for a new issuance`, { failures: row.fail_count }, { state: "retired", updated_at: nextUpdatedAt(row, now) }, [
        { action: "void", outcome: "ok", serial: row.serial, customer: row.customer, detail: { reason: "wrong_passwords", failures: row.fail_count } },
      ]);
    }
    return undefined;
  }

  /** Set-up step 1: KE1 in, KE2 out; counts one guess before answering. */
  async setupStart(req: SetupStartRequest, actor: Actor): Promise<SetupStartResponse> {
    const { serial } = await this.checkIds(req?.serviceId, req?.userId);
    const ke1 = message(req.startLoginRequest, "startLoginRequest", MAX_MESSAGE);
    const clientNonce = fromB64u(message(req.clientNonce, "clientNonce", 64));
    if (!clientNonce || clientNonce.length !== NONCE_BYTES) throw new RegistryError("bad_client_nonce", `clientNonce must be ${NONCE_BYTES} bytes, base64url`, "bad_input");
    const serverSetup = await this.serverSetup();
    const ids = opaqueIdentifiers(req.serviceId, req.userId);
    // KE1's form is checked BEFORE the row is looked up (review R5): were it checked against the row only, a
    // malformed KE1 would answer 400 for a live user ID and 404 for a missing one, uncounted and unaudited, a free
    // existence probe. KE1 for ristretto255 is 96 bytes (RFC 9807 §6.1: blinded element Noe 32, client nonce Nn 32,
    // client key share Npk 32); its two group elements must decode, which only opaque-ke's own parser decides, so it
    // runs startLogin against its built-in dummy record (registrationRecord null: opaque-ke's fake record for unknown
    // users, RFC 9807 §10.9) and discards the answer. Costs one KE2 computation; the rate limit on the route bounds it.
    const ke1Bytes = fromB64u(ke1);
    let ke1Ok = ke1Bytes?.length === KE1_BYTES;
    if (ke1Ok) {
      try {
        opaque.server.startLogin({ serverSetup, registrationRecord: null, startLoginRequest: ke1, userIdentifier: serial, identifiers: ids });
      } catch {
        ke1Ok = false;
      }
    }
    if (!ke1Ok) throw new RegistryError("bad_start_login_request", `startLoginRequest is not an OPAQUE KE1 message (${KE1_BYTES} bytes, RFC 9807 §6.1, §6.4.1)`, "bad_input");
    const started = await this.store.decide<{ serverLoginState: string; loginResponse: string; updatedAt: number; failures: number }>(
      { serial },
      actor,
      (row) => {
        const now = this.now();
        const refused = this.setupRefusal("setup_start", row, now);
        if (refused) return refused;
        const r = row!;
        let login: { serverLoginState: string; loginResponse: string };
        const record = this.keys.open(r.serial, { kekId: r.kek_id, blob: Buffer.from(r.seed) });
        try {
          login = opaque.server.startLogin({ serverSetup, registrationRecord: toB64u(record), startLoginRequest: ke1, userIdentifier: r.serial, identifiers: ids });
        } catch {
          throw new RegistryError("bad_start_login_request", "startLoginRequest is not an OPAQUE KE1 message (RFC 9807 §6.4.1)", "bad_input");
        } finally {
          record.fill(0);
        }
        const failures = r.fail_count + 1;
        const updatedAt = nextUpdatedAt(r, now);
        return {
          change: { fail_count: failures, updated_at: updatedAt },
          audit: [{ action: "setup_start", outcome: "ok", serial: r.serial, customer: r.customer, detail: { attempt: failures, of: SETUP_TRIES } }],
          outcome: { ...login, updatedAt, failures },
        };
      },
      { locked: true },
    );
    const serverNonce = randomNonce();
    const ticket: SetupTicket = {
      serverLoginState: started.serverLoginState,
      startLoginRequest: ke1,
      loginResponse: started.loginResponse,
      clientNonce: req.clientNonce,
      serverNonce: toB64u(serverNonce),
      updatedAt: started.updatedAt,
      exp: this.now() + SETUP_TICKET_MS,
    };
    return {
      loginResponse: started.loginResponse,
      serverNonce: ticket.serverNonce,
      ticket: this.keys.sealTicket("fobkit-setup-ticket", serial, Buffer.from(JSON.stringify(ticket))),
      attemptsLeft: SETUP_TRIES - started.failures,
    };
  }

  /** Set-up step 2: KE3 and the client's confirmation in; the seed derived, sealed and stored; the params and the server's confirmation out. */
  async setupFinish(req: SetupFinishRequest, actor: Actor): Promise<SetupFinishResponse> {
    const { config, serial } = await this.checkIds(req?.serviceId, req?.userId);
    message(req.ticket, "ticket", MAX_TICKET);
    const ke3 = message(req.finishLoginRequest, "finishLoginRequest", MAX_MESSAGE);
    const clientConfirm = fromB64u(message(req.clientConfirm, "clientConfirm", 128));
    const t = this.openTicket<SetupTicket>("fobkit-setup-ticket", serial, req.ticket);
    if (!t || !(this.now() < t.exp)) {
      // Audited only when the ticket is the bank's own (it names a token that exists); a forged one is
      // bad input from anyone on the network, and must not let them write audit records at will.
      if (t) await this.store.note(actor, "setup", "ticket_expired", { reason: "expired" }, serial);
      throw new RegistryError("ticket_expired", "the set-up ticket is invalid or expired (5 minutes); start the set-up again", "refused", { serial });
    }
    const transcript: SetupTranscript = {
      serviceId: req.serviceId,
      userId: req.userId,
      startLoginRequest: t.startLoginRequest,
      loginResponse: t.loginResponse,
      finishLoginRequest: ke3,
      clientNonce: fromB64u(t.clientNonce)!,
      serverNonce: fromB64u(t.serverNonce)!,
    };
    // OPAQUE's server finish (RFC 9807 §6.4.4): throws when KE3's MAC is wrong (wrong password, or not the KE2 it answers).
    let seed: Buffer | undefined;
    let serverConfirm: Uint8Array | undefined;
    const params: SoftTokenParams = { bank: config.bankName, serviceId: config.serviceId, userId: req.userId, algorithm: SOFT_TOKEN.algorithm, digits: SOFT_TOKEN.digits, period: SOFT_TOKEN.period, t0: SOFT_TOKEN.t0 };
    const paramsText = JSON.stringify(params);
    try {
      let sessionKey: Uint8Array | undefined;
      try {
        sessionKey = fromB64u(opaque.server.finishLogin({ serverLoginState: t.serverLoginState, finishLoginRequest: ke3, identifiers: opaqueIdentifiers(req.serviceId, req.userId) }).sessionKey);
      } catch {
        sessionKey = undefined;
      }
      if (sessionKey) {
        const base = await setupBase(sessionKey, transcript);
        sessionKey.fill(0);
        const expected = await confirmTag(base, transcript, "client");
        if (sameTag(expected, clientConfirm)) {
          seed = Buffer.from(await deriveSeedBytes(base, transcript));
          serverConfirm = await confirmTag(base, transcript, "server", paramsText);
        }
      }
      const index = seed ? await this.store.seedIndexOf(seed) : null;
      await this.store.sealing(() => {
        const sealed = seed ? this.keys.seal(serial, seed) : undefined;
        return this.store.decide<void>(
          { serial },
          actor,
          (row) => {
            const now = this.now();
            const refused = this.setupRefusal("setup", row, now);
            if (refused) return refused;
            const r = row!;
            const updatedAt = nextUpdatedAt(r, now);
            if (Number(r.updated_at) !== t!.updatedAt) {
              return {
                audit: [{ action: "setup", outcome: "ticket_expired", serial, customer: r.customer, detail: { reason: "superseded" } }],
                outcome: new RegistryError("ticket_expired", "this set-up ticket was used, or a newer set-up start replaced it; start the set-up again", "refused", { serial }),
              };
            }
            if (!sealed) {
              const voids = r.fail_count >= SETUP_TRIES;
              const audit: AuditEntry[] = [{ action: "setup", outcome: "wrong_password", serial, customer: r.customer, detail: { failures: r.fail_count, voided: voids } }];
              if (voids) audit.push({ action: "void", outcome: "ok", serial, customer: r.customer, detail: { reason: "wrong_passwords", failures: r.fail_count } });
              return {
                change: { updated_at: updatedAt, ...(voids ? { state: "retired" as const } : {}) },
                audit,
                outcome: new RegistryError("wrong_password", `wrong activation password${voids ? `; the issuance is void after ${r.fail_count} tries, apply for a new one` : ` (${SETUP_TRIES - r.fail_count} tries left)`}`, "refused", {
                  serial,
                  attemptsLeft: SETUP_TRIES - r.fail_count,
                  voided: voids,
                }),
              };
            }
            return {
              change: { seed: sealed.blob, kek_id: sealed.kekId, seed_index: index, setup_at: now, setup_before: null, fail_count: 0, updated_at: updatedAt },
              audit: [{ action: "setup", outcome: "ok", serial, customer: r.customer, detail: { tries: r.fail_count } }],
              outcome: undefined,
            };
          },
          { locked: true },
        );
      });
    } finally {
      seed?.fill(0);
    }
    return { params: paramsText, serverConfirm: toB64u(serverConfirm!) };
  }

  // ---------------------------------------------------------------- status (channel, staff)

  async registration(customer: string): Promise<Registration> {
    checkCustomer(customer);
    const row = await this.liveToken(customer);
    const config = row?.kind === "soft" ? await this.config() : undefined;
    return registrationOf(customer, row, config?.serviceId, this.now());
  }
}

export interface IssueResult {
  customer: string;
  serviceId: string;
  userId: string;
  serial: string;
  state: "issued";
  setUp: false;
  setupFrom: string | null;
  setupBefore: string;
  mail: string;
  config: SoftConfig;
  setupFromMs: number | null;
  setupBeforeMs: number;
}

function notConfigured(): RegistryError {
  return new RegistryError("not_configured", "software tokens are not configured: run `fobkit bank soft-config --service-id NNNNNNNN --bank-name NAME --app-url URL` first", "unavailable");
}
