/** The registry's vocabulary: token states, inputs, results, refusals. */
import type { Algorithm } from "./totp.js";

export type TokenState = "in_stock" | "issued" | "active" | "locked" | "retired";
export const TOKEN_STATES: TokenState[] = ["in_stock", "issued", "active", "locked", "retired"];

export type Role = "factory" | "staff" | "channel";

/** A hardware keyfob, or the software token of issue 15 (an app holding a seed both sides derived). */
export type TokenKind = "keyfob" | "soft";
export const TOKEN_KINDS: TokenKind[] = ["keyfob", "soft"];

/** Why staff took a keyfob out of use without its code (Registry.withdraw). */
export type WithdrawReason = "lost" | "stolen" | "returned" | "faulty";
export const WITHDRAW_REASONS: WithdrawReason[] = ["lost", "stolen", "returned", "faulty"];
/**
 * After these a keyfob is never issued again: it was out of the bank's and
 * the customer's hands, and whoever had it may have read its key from flash
 * (README, security model).
 */
export const BARRING_REASONS: WithdrawReason[] = ["lost", "stolen"];
export const ROLES: Role[] = ["factory", "staff", "channel"];

/** A token as it arrives from the factory (PSKC import or registration call). */
export interface NewToken {
  serial: string;
  manufacturer: string;
  model?: string;
  issuer?: string;
  keyId?: string;
  algorithm: Algorithm;
  digits: number;
  period: number;
  /** RFC 6238 T0, unix seconds. */
  t0: number;
  /** Known drift in steps (PSKC TimeDrift counts intervals, RFC 6030 §4.3.4). */
  timeDrift?: number;
  /** Unix ms before which the keyfob must not be used (PSKC StartDate). */
  notBefore?: number;
  /** Unix ms after which the keyfob must not be used (PSKC ExpiryDate). */
  notAfter?: number;
  secret: Buffer;
}

/** Who did it and from where; every audit record carries both. */
export interface Actor {
  /** e.g. "staff:alice" (CLI), "channel:key-3f9a0c" (API key id). */
  name: string;
  /** Client IP for the API, "cli" for the staff CLI. */
  source: string;
  /**
   * The API request's id (its X-Request-Id, or one the server made), kept
   * in every audit record the request wrote (audit.request_id): a client
   * answered 503 outcome_unknown, or never answered, finds out from the
   * audit whether its change was made (GET /v1/audit?customer=..&request=..).
   */
  request?: string;
}

/** What anyone may see of a token: never the seed. */
export interface TokenStatus {
  serial: string;
  kind: TokenKind;
  /** A soft token's app set-up is done (it holds its seed); always true for a keyfob. */
  setUp: boolean;
  manufacturer: string;
  model: string | null;
  issuer: string | null;
  algorithm: Algorithm;
  digits: number;
  period: number;
  state: TokenState;
  customer: string | null;
  issuance: number;
  /** Learned clock offset of the keyfob, in steps (keyfob ahead is positive). */
  drift: number;
  lastStep: number | null;
  failCount: number;
  activatedAt: string | null;
  /** Set when staff withdrew it (retired without its code), until it is issued again. */
  withdrawn: WithdrawReason | null;
  kekId: string;
  origin: string;
  createdAt: string;
  updatedAt: string;
  /** Soft tokens awaiting set-up: not before (the next-day rule) and the issuance's expiry; null otherwise. */
  setupFrom?: string | null;
  setupBefore?: string | null;
}

export interface AuditRecord {
  id: number;
  at: string;
  actor: string;
  source: string;
  action: string;
  outcome: string;
  serial: string | null;
  customer: string | null;
  detail: Record<string, unknown> | null;
  /** The API request that wrote it (Actor.request); null for the CLI, the console and records from before migration 8. */
  requestId: string | null;
}

/** Accepted code: which step it was and what the registry learned. */
export interface Acceptance {
  serial: string;
  customer: string | null;
  state: TokenState;
  step: number;
  drift: number;
}

/**
 * refused: understood, and the answer is no (CLI exit 1, HTTP 409).
 * bad_input: malformed or impossible request, nothing changed (exit 2, HTTP 400).
 * not_found: names a serial that does not exist (exit 2, HTTP 404).
 * unavailable: could not be done now, nothing changed; try again later or
 * fix the set-up named in the message (exit 3, HTTP 503 with Retry-After).
 */
export type ErrorKind = "refused" | "bad_input" | "not_found" | "unavailable";

export class RegistryError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly kind: ErrorKind = "refused",
    readonly detail: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = "RegistryError";
  }
}
