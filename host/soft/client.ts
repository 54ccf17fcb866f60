/**
 * The software token's protocol client: the customer's side of issuance
 * (OPAQUE registration, RFC 9807 §5.2) and the app's set-up (OPAQUE login,
 * §6.4, then the seed derived from the session key and both nonces, with key
 * confirmation both ways: host/soft/protocol.ts). WebCrypto and
 * @serenity-kit/opaque only, no Node module: the web app at /app/ loads this
 * very file in the browser (the bare specifier mapped by an import map),
 * `fobkit app` and the tests run it in Node.
 *
 *   // the channel's page (customer's browser) or `fobkit bank soft-issue`:
 *   const { serviceId, userId } = await issueOnCustomerSide({ bankUrl, apiKey, customer, mail, password });
 *   // the app:
 *   const { params, seedKey } = await setUp({ bankUrl, serviceId, userId, password, seed: "key" });
 *   const code = await totpFromKey(seedKey, stepAt(Date.now()).step);
 *
 * A bank that does not hold this user ID's record (another deployment, an
 * impostor) cannot answer KE1 so that finishLogin succeeds: the client stops
 * with `wrong_password_local` and never sends a finish. The bank counts each
 * start as one guess; SETUP_TRIES starts without a finished set-up void the
 * issuance.
 */
import * as opaque from "@serenity-kit/opaque";
import {
  SERVICE_ID_PATTERN,
  SETUP_FINISH_PATH,
  SETUP_START_PATH,
  SoftParamsError,
  confirmTag,
  deriveSeedBytes,
  deriveSeedKey,
  fromB64u,
  issuePath,
  opaqueIdentifiers,
  parseSoftTokenParams,
  randomNonce,
  registrationPath,
  sameTag,
  setupBase,
  toB64u,
  validUserId,
  type IssueRequest,
  type RegistrationRequest,
  type RegistrationResponse,
  type SetupFinishRequest,
  type SetupFinishResponse,
  type SetupStartRequest,
  type SetupStartResponse,
  type SetupTranscript,
  type SoftTokenParams,
} from "./protocol.js";

/**
 * The activation password (利用開始パスワード) rule: 8-64 printable ASCII
 * characters, no spaces. The manual gives no rule. 8 is the usual floor for
 * a password a person types once and that only has to resist online guesses,
 * of which the bank allows 5 per issuance (NIST SP 800-63B §5.1.1.2 sets 8 as
 * the minimum for a memorized secret); ASCII because the same password is
 * typed into the bank's page and, days later, into the app on a phone, whose
 * keyboard may compose kana differently (Unicode normalisation).
 */
export const ACTIVATION_PASSWORD_PATTERN = "^[\\x21-\\x7e]{8,64}$";
export const ACTIVATION_PASSWORD_RULE = "8-64 printable ASCII characters (letters, digits and symbols; no spaces)";

/** Why a password breaks the rule, or undefined when it keeps it (never quotes the password). */
export function activationPasswordProblem(password: unknown): string | undefined {
  if (typeof password !== "string") return "the activation password must be text";
  if (password.length < 8) return `the activation password is too short (${password.length} characters); it must be ${ACTIVATION_PASSWORD_RULE}`;
  if (password.length > 64) return `the activation password is too long (${password.length} characters); it must be ${ACTIVATION_PASSWORD_RULE}`;
  if (!new RegExp(ACTIVATION_PASSWORD_PATTERN).test(password)) return `the activation password has a space or a character outside printable ASCII; it must be ${ACTIVATION_PASSWORD_RULE}`;
  return undefined;
}

/** OPAQUE's key stretching on the client (argon2id, opaque-ke's "memory-constrained"; serenity's default). Both sides of one password must use the same. */
export const KEY_STRETCHING = "memory-constrained" as const;

/**
 * A set-up or issuance that did not complete. `code`: the bank's refusal
 * (unknown_user, already_set_up, setup_expired, setup_not_yet, voided,
 * wrong_password, ticket_expired, customer_has_token, ...), or the client's
 * own: wrong_password_local (finishLogin failed: wrong activation password,
 * or a bank without this user's record; no finish was sent), bad_confirmation
 * (the bank's MAC was wrong: nothing kept), bad_input (checked before any
 * request), network, bad_response.
 */
export class SoftSetupError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly detail: Record<string, unknown> = {},
    /** HTTP status of the bank's answer, when it was one. */
    readonly status?: number,
  ) {
    super(message);
    this.name = "SoftSetupError";
  }
}

type Fetch = (url: string, init: { method: string; headers: Record<string, string>; body?: string }) => Promise<{ status: number; text(): Promise<string> }>;

async function post<T>(fetchFn: Fetch | undefined, url: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
  const f = fetchFn ?? (globalThis.fetch as unknown as Fetch);
  let res: { status: number; text(): Promise<string> };
  try {
    res = await f(url, { method: "POST", headers: { "content-type": "application/json", ...headers }, body: JSON.stringify(body) });
  } catch (e) {
    throw new SoftSetupError("network", `cannot reach the bank at ${new URL(url).origin}: ${(e as Error).message}`);
  }
  const text = await res.text();
  let parsed: any;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new SoftSetupError("bad_response", `the bank answered HTTP ${res.status} with something other than JSON`, {}, res.status);
  }
  if (res.status >= 200 && res.status < 300) return parsed as T;
  const err = parsed?.error;
  throw new SoftSetupError(typeof err?.code === "string" ? err.code : "bad_response", typeof err?.message === "string" ? err.message : `HTTP ${res.status}`, err?.detail ?? {}, res.status);
}

const join = (base: string, path: string) => base.replace(/\/+$/, "") + path;

// ------------------------------------------------------------------ issuance, the customer's side

/** Issuance step 1 on the customer's side: the registration request to send (registrationPath), and the state for step 2 (keep it in memory only). */
export async function startCustomerRegistration(password: string): Promise<{ clientRegistrationState: string; request: RegistrationRequest }> {
  const problem = activationPasswordProblem(password);
  if (problem) throw new SoftSetupError("bad_password", problem);
  await opaque.ready;
  const { clientRegistrationState, registrationRequest } = opaque.client.startRegistration({ password });
  return { clientRegistrationState, request: { registrationRequest } };
}

/** Issuance step 2 on the customer's side: the record and the mail address to send (issuePath). */
export async function finishCustomerRegistration(clientRegistrationState: string, password: string, response: RegistrationResponse, mail: string): Promise<IssueRequest> {
  if (!new RegExp(SERVICE_ID_PATTERN).test(response?.serviceId ?? "") || !validUserId(response?.userId ?? "")) {
    throw new SoftSetupError("bad_response", "the bank's registration answer has no valid service ID and user ID");
  }
  await opaque.ready;
  const { registrationRecord } = opaque.client.finishRegistration({
    clientRegistrationState,
    registrationResponse: response.registrationResponse,
    password,
    identifiers: opaqueIdentifiers(response.serviceId, response.userId),
    keyStretching: KEY_STRETCHING,
  });
  return { mail, ticket: response.ticket, registrationRecord };
}

export interface IssueAnswer {
  serviceId: string;
  userId: string;
  state: "issued";
  setUp: boolean;
  setupFrom: string | null;
  setupBefore: string;
  mailSent: boolean;
}

/**
 * Both issuance calls as the channel makes them (role channel API key), the
 * password used only here: what the channel's page does in the customer's
 * browser, and what tests and scripts use.
 */
export async function issueOnCustomerSide(o: { bankUrl: string; apiKey: string; customer: string; mail: string; password: string; fetch?: Fetch }): Promise<IssueAnswer> {
  const auth = { authorization: `Bearer ${o.apiKey}` };
  const { clientRegistrationState, request } = await startCustomerRegistration(o.password);
  const response = await post<RegistrationResponse>(o.fetch, join(o.bankUrl, registrationPath(o.customer)), request, auth);
  const issue = await finishCustomerRegistration(clientRegistrationState, o.password, response, o.mail);
  return post<IssueAnswer>(o.fetch, join(o.bankUrl, issuePath(o.customer)), issue, auth);
}

// ------------------------------------------------------------------ the app's set-up

export interface SetUpOptions {
  /** The bank's base URL (the app's origin for the web app). */
  bankUrl: string;
  serviceId: string;
  userId: string;
  password: string;
  fetch?: Fetch;
  /** "key": a non-extractable WebCrypto HMAC key (the web app); "bytes": the 32 seed bytes (`fobkit app`, which seals them at rest). */
  seed: "bytes" | "key";
  /** Told after the start with the starts left (for the app's warning). */
  onAttemptsLeft?(n: number): void;
}

export interface SetUpResult {
  params: SoftTokenParams;
  /** The params exactly as the bank's MAC covered them. */
  paramsText: string;
  seedBytes?: Uint8Array;
  seedKey?: CryptoKey;
}

/**
 * The app's initial set-up (アプリの初期設定). The seed (or key) is returned
 * only after the bank's confirmation MAC over the params checks; it is never
 * logged or sent.
 */
export async function setUp(o: SetUpOptions): Promise<SetUpResult> {
  if (!new RegExp(SERVICE_ID_PATTERN).test(o.serviceId ?? "")) throw new SoftSetupError("bad_input", "the service ID must be 8 digits (see the mail トークン発行のご案内)");
  if (!validUserId(o.userId ?? "")) throw new SoftSetupError("bad_input", "the user ID must be 12 digits and its last digit does not match: check it against the mail (トークン発行のご案内)");
  if (typeof o.password !== "string" || o.password.length === 0) throw new SoftSetupError("bad_input", "enter the activation password");
  await opaque.ready;
  const { clientLoginState, startLoginRequest } = opaque.client.startLogin({ password: o.password });
  const clientNonce = randomNonce();
  const startReq: SetupStartRequest = { serviceId: o.serviceId, userId: o.userId, startLoginRequest, clientNonce: toB64u(clientNonce) };
  const start = await post<SetupStartResponse>(o.fetch, join(o.bankUrl, SETUP_START_PATH), startReq);
  o.onAttemptsLeft?.(start.attemptsLeft);
  const serverNonce = fromB64u(start.serverNonce ?? "");
  if (!serverNonce || typeof start.loginResponse !== "string" || typeof start.ticket !== "string") throw new SoftSetupError("bad_response", "the bank's set-up answer is malformed");
  const ids = opaqueIdentifiers(o.serviceId, o.userId);
  const finished = opaque.client.finishLogin({ clientLoginState, loginResponse: start.loginResponse, password: o.password, identifiers: ids, keyStretching: KEY_STRETCHING });
  if (!finished) {
    throw new SoftSetupError(
      "wrong_password_local",
      `the activation password is wrong, or this is not the bank that issued the token (nothing was sent); ${start.attemptsLeft} tries left before the issuance is void`,
      { attemptsLeft: start.attemptsLeft },
    );
  }
  const sessionKey = fromB64u(finished.sessionKey)!;
  const transcript: SetupTranscript = { serviceId: o.serviceId, userId: o.userId, startLoginRequest, loginResponse: start.loginResponse, finishLoginRequest: finished.finishLoginRequest, clientNonce, serverNonce };
  let base: CryptoKey;
  try {
    base = await setupBase(sessionKey, transcript);
  } catch {
    throw new SoftSetupError("bad_response", "the bank's nonce is malformed");
  } finally {
    sessionKey.fill(0);
  }
  const clientConfirm = toB64u(await confirmTag(base, transcript, "client"));
  const finishReq: SetupFinishRequest = { serviceId: o.serviceId, userId: o.userId, ticket: start.ticket, finishLoginRequest: finished.finishLoginRequest, clientConfirm };
  const done = await post<SetupFinishResponse>(o.fetch, join(o.bankUrl, SETUP_FINISH_PATH), finishReq);
  if (typeof done.params !== "string" || !sameTag(await confirmTag(base, transcript, "server", done.params), fromB64u(done.serverConfirm ?? ""))) {
    throw new SoftSetupError("bad_confirmation", "the bank's confirmation does not check: the set-up is not kept; try again or contact the bank");
  }
  let params: SoftTokenParams;
  try {
    params = parseSoftTokenParams(done.params, { serviceId: o.serviceId, userId: o.userId });
  } catch (e) {
    if (!(e instanceof SoftParamsError)) throw e;
    throw new SoftSetupError("bad_response", `the bank's token parameters are not this token's: ${e.message}`, { field: e.field });
  }
  if (o.seed === "key") return { params, paramsText: done.params, seedKey: await deriveSeedKey(base, transcript) };
  return { params, paramsText: done.params, seedBytes: await deriveSeedBytes(base, transcript) };
}
