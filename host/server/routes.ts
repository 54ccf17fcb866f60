/**
 * The bank API's routes: one table drives both Fastify (schemas validate
 * every request) and the OpenAPI document, so they cannot disagree.
 */
import type { Registry } from "../registry/registry.js";
import { refusalsOf } from "../registry/lifecycle.js";
import { MAX_LIST } from "../registry/registry.js";
import { unlockUnderRule, withdrawUnderRule } from "../registry/approvals.js";
import { CODE_PATTERN, CUSTOMER_PATTERN, REQUEST_ID_PATTERN, SERIAL_PATTERN } from "../registry/validation.js";

import { BARRING_REASONS, TOKEN_KINDS, TOKEN_STATES, WITHDRAW_REASONS, type Actor, type NewToken, type Role } from "../registry/types.js";
import { MAX_MESSAGE, MAX_TICKET, REGISTRATION_LABELS } from "../registry/soft-tokens.js";
import { TICKET_PATTERN } from "../registry/key-ring.js";
import { B64U_PATTERN, NONCE_BYTES, SERVICE_ID_PATTERN, SETUP_FINISH_PATH, SETUP_START_PATH, SETUP_TRIES, USER_ID_PATTERN } from "../soft/protocol.js";
import { ApiError } from "./api-error.js";
import { MAIL_PATTERN, type IssuanceMailer } from "../soft/mail.js";

export interface RouteContext {
  registry: Registry;
  actor: Actor;
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: any;
  /** Unix ms, the server's clock (maker-checker's 24 hours). */
  now: number;
  /** Sends the issuance mail (トークン発行のご案内); none: issuances answer mailSent false. */
  mailer?: IssuanceMailer;
}

export interface RouteDef {
  method: "GET" | "POST";
  /** Fastify style, `:name` parameters. */
  url: string;
  /** Roles whose API keys may call it; [] with `public`: no key (the app's set-up). */
  roles: Role[];
  public?: boolean;
  /** Largest body, bytes, if smaller than the server's. */
  bodyLimit?: number;
  /** Refusals answered 404 rather than 409 (for the document). */
  notFound?: string[];
  operationId: string;
  summary: string;
  params?: Record<string, object>;
  query?: object;
  body?: object;
  /** Success status and the response schema (for the document). */
  ok: { status: number; schema: object; description: string };
  /** Registry refusal codes this route may answer with (409 unless noted). */
  refusals: string[];
  handler(ctx: RouteContext): Promise<unknown>;
}

const SERIAL = { type: "string", pattern: SERIAL_PATTERN, description: "The serial printed on the keyfob." };
const CUSTOMER = { type: "string", pattern: CUSTOMER_PATTERN, description: "The bank's customer id." };
const CODE = { type: "string", pattern: CODE_PATTERN, description: "The code the keyfob shows: exactly its digit count of decimal digits, as a string." };
const STATE = { type: "string", enum: TOKEN_STATES };

export const TOKEN_STATUS_SCHEMA = {
  type: "object",
  properties: {
    serial: { type: "string" },
    kind: { type: "string", enum: TOKEN_KINDS, description: "keyfob, or soft: a software token (serial SW + its user ID)." },
    setUp: { type: "boolean", description: "A software token's app set-up is done (it holds its seed); always true for a keyfob." },
    setupFrom: { type: ["string", "null"], format: "date-time", description: "Software token awaiting set-up: not before (the day after a deactivation)." },
    setupBefore: { type: ["string", "null"], format: "date-time", description: "Software token awaiting set-up: the issuance expires then." },
    manufacturer: { type: "string" },
    model: { type: ["string", "null"] },
    issuer: { type: ["string", "null"] },
    algorithm: { type: "string", enum: ["SHA1", "SHA256", "SHA512"] },
    digits: { type: "integer" },
    period: { type: "integer" },
    state: STATE,
    customer: { type: ["string", "null"] },
    issuance: { type: "integer", description: "How many times it has been issued." },
    drift: { type: "integer", description: "Learned clock offset of the keyfob in steps (positive: keyfob ahead)." },
    lastStep: { type: ["integer", "null"] },
    failCount: { type: "integer", description: "Consecutive wrong codes." },
    activatedAt: { type: ["string", "null"], format: "date-time" },
    withdrawn: { type: ["string", "null"], enum: [...WITHDRAW_REASONS, null], description: "Why staff withdrew it without its code; null otherwise (cleared when it is issued again)." },
    kekId: { type: "string" },
    origin: { type: "string" },
    createdAt: { type: "string", format: "date-time" },
    updatedAt: { type: "string", format: "date-time" },
  },
};

const ACCEPTANCE_SCHEMA = {
  type: "object",
  properties: {
    result: { type: "string", enum: ["accepted"] },
    serial: { type: "string" },
    customer: { type: ["string", "null"] },
    state: STATE,
    drift: { type: "integer" },
  },
};

const B64U = (what: string, max: number) => ({ type: "string", pattern: B64U_PATTERN, minLength: 1, maxLength: max, description: `${what}, base64url without padding.` });
const TICKET = { type: "string", pattern: TICKET_PATTERN, minLength: 1, maxLength: MAX_TICKET, description: "The bank's sealed ticket from the previous step, returned unchanged." };
const SERVICE_ID = { type: "string", pattern: SERVICE_ID_PATTERN, description: "The deployment's service ID (8 digits), from the issuance mail." };
const USER_ID = { type: "string", pattern: USER_ID_PATTERN, description: "The user ID (12 digits, the last a Damm check digit), from the issuance mail." };
/** Set-up bodies: OPAQUE messages of a few hundred bytes and a ticket of ~1 KiB. */
const SETUP_BODY_LIMIT = 8 * 1024;

export const REGISTRATION_SCHEMA = {
  type: "object",
  properties: {
    customer: { type: "string" },
    status: { type: "string", enum: Object.keys(REGISTRATION_LABELS), description: "not_registered (未登録), issued (発行済), in_use (利用中), locked (停止中)." },
    label: { type: "string", description: "The status in Japanese, as the manual names it." },
    kind: { type: ["string", "null"], enum: [...TOKEN_KINDS, null] },
    setUp: { type: "boolean", description: "Issued software token: the app's set-up is done (start of use may follow). Keyfobs: true." },
    otpRequired: { type: "boolean", description: "Whether the customer's login needs a code: true when in use or locked; false when not registered (after 利用解除) or not yet in use." },
    serial: { type: ["string", "null"] },
    serviceId: { type: "string" },
    userId: { type: "string" },
    setupFrom: { type: ["string", "null"], format: "date-time", description: "Set-up possible only from then (the day after a deactivation, bank time zone)." },
    expired: { type: "boolean", description: "Software tokens: the issuance passed setupBefore without a set-up and can no longer be set up; the customer must be issued a new token (a new issuance supersedes it). status stays issued, label says 有効期限切れ." },
    setupBefore: { type: ["string", "null"], format: "date-time", description: "The issuance expires then unless set up." },
  },
};

const CODE_BODY = { type: "object", required: ["code"], additionalProperties: false, properties: { code: CODE } };

function accepted(a: { serial: string; customer: string | null; state: string; drift: number }) {
  return { result: "accepted", serial: a.serial, customer: a.customer, state: a.state, drift: a.drift };
}

export const ROUTES: RouteDef[] = [
  {
    method: "POST",
    url: "/v1/tokens",
    roles: ["factory"],
    operationId: "registerToken",
    summary:
      "Register a token the factory made (in stock). Seeds travel only over HTTPS or loopback. Idempotent: repeating a registration with the same serial, parameters and seed answers 201 again (alreadyRegistered: true); the same serial with anything else is duplicate_serial.",
    body: {
      type: "object",
      required: ["serial", "algorithm", "digits", "period", "t0", "seed"],
      additionalProperties: false,
      properties: {
        serial: SERIAL,
        manufacturer: { type: "string", minLength: 1, maxLength: 128, default: "fobkit" },
        model: { type: "string", minLength: 1, maxLength: 128 },
        issuer: { type: "string", minLength: 1, maxLength: 128 },
        algorithm: { type: "string", enum: ["SHA1", "SHA256", "SHA512"] },
        digits: { type: "integer", minimum: 6, maximum: 10 },
        period: { type: "integer", minimum: 1, maximum: 3600 },
        t0: { type: "integer", minimum: 0, description: "RFC 6238 T0, unix seconds." },
        timeDrift: { type: "integer", description: "Known clock offset in steps." },
        seed: { type: "string", pattern: "^([0-9a-fA-F]{2}){16,128}$", description: "The shared secret, hex." },
      },
    },
    ok: {
      status: 201,
      description: "Registered, in stock (or registered before with identical content).",
      schema: { type: "object", properties: { registered: { type: "array", items: { type: "string" } }, alreadyRegistered: { type: "boolean" } } },
    },
    refusals: ["duplicate_serial", "being_imported", "duplicate_seed"],
    async handler({ registry, actor, body }) {
      const tok: NewToken = {
        serial: body.serial,
        manufacturer: body.manufacturer ?? "fobkit",
        model: body.model,
        issuer: body.issuer,
        algorithm: body.algorithm,
        digits: body.digits,
        period: body.period,
        t0: body.t0,
        timeDrift: body.timeDrift,
        secret: Buffer.from(body.seed, "hex"),
      };
      try {
        const r = await registry.registerOne(tok, actor, "api:" + actor.name);
        return { registered: r.registered, alreadyRegistered: r.alreadyRegistered };
      } finally {
        tok.secret.fill(0);
      }
    },
  },
  {
    method: "GET",
    url: "/v1/tokens",
    roles: ["staff"],
    operationId: "listTokens",
    summary: "Tokens in serial order, of one state if asked (e.g. every locked one); page with after = the last serial seen.",
    query: {
      type: "object",
      additionalProperties: false,
      properties: {
        state: STATE,
        after: SERIAL,
        limit: { type: "string", pattern: "^[0-9]{1,5}$", description: `At most this many (default 100, max ${MAX_LIST}).` },
      },
    },
    ok: {
      status: 200,
      description: "A page of tokens; next is the serial to pass as after for the following page, null at the end.",
      schema: { type: "object", properties: { tokens: { type: "array", items: TOKEN_STATUS_SCHEMA }, next: { type: ["string", "null"] } } },
    },
    refusals: [],
    handler: ({ registry, query }) =>
      registry.listTokens({ state: query.state as never, afterSerial: query.after as string | undefined, limit: query.limit === undefined ? undefined : Number(query.limit) }),
  },
  {
    method: "GET",
    url: "/v1/token-counts",
    roles: ["staff"],
    operationId: "countTokens",
    summary: "How many tokens are in each state (in stock, issued, active, locked, retired).",
    ok: {
      status: 200,
      description: "Counts per state.",
      schema: { type: "object", properties: { counts: { type: "object", properties: Object.fromEntries(TOKEN_STATES.map((s) => [s, { type: "integer" }])) } } },
    },
    refusals: [],
    handler: async ({ registry }) => ({ counts: await registry.countByState() }),
  },
  {
    method: "GET",
    url: "/v1/tokens/:serial",
    roles: ["staff"],
    operationId: "tokenStatus",
    summary: "A token's state, customer, drift and failure count (never the seed).",
    params: { serial: SERIAL },
    ok: { status: 200, description: "The token.", schema: TOKEN_STATUS_SCHEMA },
    refusals: [],
    handler: ({ registry, params }) => registry.status(params.serial),
  },
  {
    method: "POST",
    url: "/v1/tokens/:serial/issue",
    roles: ["staff"],
    operationId: "issueToken",
    summary: "Issue a token in stock (or a retired one, again) to a customer.",
    params: { serial: SERIAL },
    body: { type: "object", required: ["customer"], additionalProperties: false, properties: { customer: CUSTOMER } },
    ok: { status: 200, description: "Issued.", schema: TOKEN_STATUS_SCHEMA },
    refusals: refusalsOf("issue"),
    handler: ({ registry, actor, params, body }) => registry.issue(params.serial, body.customer, actor),
  },
  {
    method: "POST",
    url: "/v1/tokens/:serial/resync",
    roles: ["staff"],
    operationId: "resyncToken",
    summary: "Re-learn the clock of a keyfob drifted beyond the window, from two consecutive codes.",
    params: { serial: SERIAL },
    body: { type: "object", required: ["codes"], additionalProperties: false, properties: { codes: { type: "array", items: CODE, minItems: 2, maxItems: 2 } } },
    ok: { status: 200, description: "Resynchronised.", schema: ACCEPTANCE_SCHEMA },
    refusals: refusalsOf("resync"),
    handler: async ({ registry, actor, params, body }) => accepted(await registry.resync(params.serial, [body.codes[0], body.codes[1]], actor)),
  },
  {
    method: "GET",
    url: "/v1/customers/:customer/token",
    roles: ["staff"],
    operationId: "customerToken",
    summary: "The customer's issued, active or locked token.",
    params: { customer: CUSTOMER },
    ok: { status: 200, description: "The token.", schema: TOKEN_STATUS_SCHEMA },
    refusals: ["no_token"],
    handler: ({ registry, params }) => registry.statusOfCustomer(params.customer),
  },
  {
    method: "POST",
    url: "/v1/customers/:customer/unlock",
    roles: ["staff"],
    operationId: "unlockToken",
    summary:
      "Lift the lock after repeated wrong codes (the manual's 停止状態の解除). Maker-checker: a third unlock of one customer within 24 hours is not done; it becomes a request a supervisor approves in the staff console (409 needs_approval, detail.approval).",
    params: { customer: CUSTOMER },
    ok: { status: 200, description: "Unlocked.", schema: TOKEN_STATUS_SCHEMA },
    refusals: [...refusalsOf("unlock", { byCustomer: true }), "needs_approval"],
    // API staff keys have a teller's authority (host/registry/approvals.ts).
    handler: ({ registry, actor, params, now }) => unlockUnderRule(registry, params.customer, actor, "teller", now),
  },
  {
    method: "POST",
    url: "/v1/customers/:customer/withdraw",
    roles: ["staff"],
    operationId: "withdrawToken",
    summary: `Take the customer's keyfob out of use without its code (lost, stolen, returned, faulty); the customer may be issued another at once. A keyfob withdrawn as ${BARRING_REASONS.join(" or ")} is never issued again. Only a supervisor (staff console) records stolen: an API key gets needs_supervisor; withdraw as lost to block the keyfob now.`,
    params: { customer: CUSTOMER },
    body: { type: "object", required: ["reason"], additionalProperties: false, properties: { reason: { type: "string", enum: WITHDRAW_REASONS } } },
    ok: { status: 200, description: "Retired.", schema: TOKEN_STATUS_SCHEMA },
    refusals: [...refusalsOf("withdraw", { byCustomer: true }), "needs_supervisor"],
    handler: ({ registry, actor, params, body, now }) => withdrawUnderRule(registry, params.customer, body.reason, actor, "teller", now),
  },
  {
    method: "POST",
    url: "/v1/customers/:customer/activate",
    roles: ["channel"],
    operationId: "activateToken",
    summary: "Start of use (利用開始): the first code the issued keyfob shows.",
    params: { customer: CUSTOMER },
    body: CODE_BODY,
    ok: { status: 200, description: "Active.", schema: ACCEPTANCE_SCHEMA },
    refusals: refusalsOf("activate", { byCustomer: true }),
    handler: async ({ registry, actor, params, body }) => accepted(await registry.activate({ customer: params.customer }, body.code, actor)),
  },
  {
    method: "POST",
    url: "/v1/customers/:customer/verify",
    roles: ["channel"],
    operationId: "verifyCode",
    summary: "Check a code: accepted at most once; wrong codes in a row lock the token.",
    params: { customer: CUSTOMER },
    body: CODE_BODY,
    ok: { status: 200, description: "Accepted.", schema: ACCEPTANCE_SCHEMA },
    refusals: refusalsOf("verify", { byCustomer: true }),
    handler: async ({ registry, actor, params, body }) => accepted(await registry.verify(params.customer, body.code, actor)),
  },
  {
    method: "POST",
    url: "/v1/customers/:customer/deactivate",
    roles: ["channel"],
    operationId: "deactivateToken",
    summary: "Deactivation (利用解除) with a current code; call after checking the transaction password.",
    params: { customer: CUSTOMER },
    body: CODE_BODY,
    ok: { status: 200, description: "Retired.", schema: ACCEPTANCE_SCHEMA },
    refusals: refusalsOf("deactivate", { byCustomer: true }),
    handler: async ({ registry, actor, params, body }) => accepted(await registry.deactivate(params.customer, body.code, actor)),
  },
  {
    method: "POST",
    url: "/v1/customers/:customer/soft-tokens/registration",
    roles: ["channel"],
    operationId: "softTokenRegistration",
    summary:
      "Software token issuance (トークン発行), step 1 of 2: the OPAQUE registration request (RFC 9807 §5.2) the customer's side computed from the activation password it chose (host/soft/client.ts). The bank allots a user ID and answers; nothing is stored. `ticket` (10 minutes) goes back with step 2. Refused early when the customer holds a token step 2 would refuse.",
    params: { customer: CUSTOMER },
    body: { type: "object", required: ["registrationRequest"], additionalProperties: false, properties: { registrationRequest: B64U("OPAQUE RegistrationRequest", MAX_MESSAGE) } },
    bodyLimit: SETUP_BODY_LIMIT,
    ok: {
      status: 200,
      description: "The registration response; finish registration on the customer's side with it.",
      schema: { type: "object", properties: { serviceId: { type: "string" }, userId: { type: "string" }, registrationResponse: { type: "string" }, ticket: { type: "string" } } },
    },
    refusals: ["customer_has_token", "not_configured (503)"],
    handler: ({ registry, actor, params, body }) => registry.soft.startIssuance(params.customer, body.registrationRequest, actor),
  },
  {
    method: "POST",
    url: "/v1/customers/:customer/soft-tokens",
    roles: ["channel"],
    operationId: "issueSoftToken",
    summary:
      "Software token issuance, step 2 of 2: the OPAQUE registration record and the customer's mail address. The token is issued (発行済), awaiting the app's set-up; a software token of the customer's never used is replaced (superseded). Then the mail トークン発行のご案内 goes out with the service ID, user ID and app URL; if it cannot be sent the issuance stands and mailSent is false (show the IDs on screen).",
    params: { customer: CUSTOMER },
    body: {
      type: "object",
      required: ["mail", "ticket", "registrationRecord"],
      additionalProperties: false,
      properties: { mail: { type: "string", maxLength: 254, pattern: MAIL_PATTERN }, ticket: TICKET, registrationRecord: B64U("OPAQUE RegistrationRecord", MAX_MESSAGE) },
    },
    bodyLimit: SETUP_BODY_LIMIT,
    ok: {
      status: 201,
      description: "Issued.",
      schema: {
        type: "object",
        properties: {
          serviceId: { type: "string" },
          userId: { type: "string" },
          state: { type: "string", enum: ["issued"] },
          setUp: { type: "boolean" },
          setupFrom: { type: ["string", "null"], format: "date-time" },
          setupBefore: { type: "string", format: "date-time" },
          mailSent: { type: "boolean" },
        },
      },
    },
    refusals: refusalsOf("soft-issue").map((c) => (c === "not_configured" ? "not_configured (503)" : c)),
    async handler({ registry, actor, params, body, mailer }) {
      const r = await registry.soft.issue(params.customer, body, actor);
      const mail = await registry.soft.mailIssuance(r, mailer, actor);
      // The issuance stands: the channel shows the IDs on screen. The error's kind only (a message may quote the address).
      if (!mail.sent && mail.error) process.stderr.write(`fobkit bank serve: issuance mail for ${r.serial} failed: ${mail.error}\n`);
      return { serviceId: r.serviceId, userId: r.userId, state: r.state, setUp: r.setUp, setupFrom: r.setupFrom, setupBefore: r.setupBefore, mailSent: mail.sent };
    },
  },
  {
    method: "GET",
    url: "/v1/customers/:customer/registration",
    roles: ["channel", "staff"],
    operationId: "registrationStatus",
    summary:
      "The customer's registration status for the channel: not_registered (未登録) | issued (発行済; setUp tells whether the app is set up) | in_use (利用中) | locked (停止中), the token's kind, and whether login needs a code (otpRequired: false when not registered, e.g. after 利用解除).",
    params: { customer: CUSTOMER },
    ok: { status: 200, description: "The status.", schema: REGISTRATION_SCHEMA },
    refusals: [],
    handler: ({ registry, params }) => registry.soft.registration(params.customer),
  },
  {
    method: "POST",
    url: SETUP_START_PATH,
    roles: [],
    public: true,
    operationId: "softTokenSetupStart",
    summary: `The app's initial set-up (アプリの初期設定), step 1 of 2; no API key (the app holds only the service ID, user ID and activation password). OPAQUE KE1 in, KE2 out (RFC 9807 §6.4). Each start counts as one activation-password guess before it is answered; ${SETUP_TRIES} starts without a finished set-up void the issuance (voided). attemptsLeft: starts left after this one.`,
    body: {
      type: "object",
      required: ["serviceId", "userId", "startLoginRequest", "clientNonce"],
      additionalProperties: false,
      properties: { serviceId: SERVICE_ID, userId: USER_ID, startLoginRequest: B64U("OPAQUE KE1", MAX_MESSAGE), clientNonce: { ...B64U(`${NONCE_BYTES} random bytes`, 64) } },
    },
    bodyLimit: SETUP_BODY_LIMIT,
    ok: {
      status: 200,
      description: "KE2, the server's nonce and the ticket for step 2 (5 minutes).",
      schema: { type: "object", properties: { loginResponse: { type: "string" }, serverNonce: { type: "string" }, ticket: { type: "string" }, attemptsLeft: { type: "integer" } } },
    },
    refusals: ["already_set_up", "voided", "setup_expired", "setup_not_yet", "not_configured (503)"],
    notFound: ["unknown_user"],
    handler: ({ registry, body, actor }) => registry.soft.setupStart(body, actor),
  },
  {
    method: "POST",
    url: SETUP_FINISH_PATH,
    roles: [],
    public: true,
    operationId: "softTokenSetupFinish",
    summary:
      "The app's initial set-up, step 2 of 2: OPAQUE KE3 and the app's key-confirmation MAC. Both sides derive the seed from the session key and both nonces (HKDF); the seed never crosses the network. Answers the token's parameters (params, JSON text) and the bank's confirmation MAC over them, which the app checks before keeping the key. Only the latest start's ticket can finish, once.",
    body: {
      type: "object",
      required: ["serviceId", "userId", "ticket", "finishLoginRequest", "clientConfirm"],
      additionalProperties: false,
      properties: { serviceId: SERVICE_ID, userId: USER_ID, ticket: TICKET, finishLoginRequest: B64U("OPAQUE KE3", MAX_MESSAGE), clientConfirm: B64U("HMAC-SHA-256 key confirmation", 128) },
    },
    bodyLimit: SETUP_BODY_LIMIT,
    ok: {
      status: 200,
      description: "Set up: the app keeps its key once serverConfirm checks.",
      schema: { type: "object", properties: { params: { type: "string" }, serverConfirm: { type: "string" } } },
    },
    refusals: ["already_set_up", "voided", "setup_expired", "wrong_password", "ticket_expired", "not_configured (503)"],
    notFound: ["unknown_user"],
    handler: ({ registry, body, actor }) => registry.soft.setupFinish(body, actor),
  },
  {
    method: "GET",
    url: "/v1/audit",
    // A channel key reads only its own requests' records (reconciling a 503 outcome_unknown). A staff key has a
    // teller's authority, and a teller reads the whole audit (console, `fobkit bank audit`): it reads every record,
    // and looks up any key's request by naming that key (actor); unnamed, a lookup by id is its own key's.
    roles: ["staff", "channel"],
    operationId: "readAudit",
    summary:
      "Audit records in order, filtered; page with afterId. A channel key may only look up its own requests' records (request with customer or serial). " +
      "A staff key reads every record, and looks up another key's request with request and actor (that key's actor name, e.g. channel:<key id>): a staff key acts with a teller's authority, which reads the whole audit.",
    query: {
      type: "object",
      additionalProperties: false,
      properties: {
        serial: SERIAL,
        customer: CUSTOMER,
        request: { type: "string", pattern: REQUEST_ID_PATTERN, description: "Only the records written by this request (its X-Request-Id) under the calling API key (a staff key: under the key named by actor, if given): after a 503 outcome_unknown, whether the change was made. Ids are the client's choice, so keep them unique per key (e.g. a UUID; the server's own are UUIDs); another key's records with the same id are never shown. No record is conclusive only once the request has ended (see the X-Request-Id header). Needs customer or serial too (400 bad_request without): request ids have no index of their own." },
        actor: {
          type: "string",
          pattern: "^(factory|staff|channel):[0-9a-f]{12}$",
          description:
            "With request: whose request it was, the key's actor name as records show it (channel:<key id>); without, the calling key's. Staff keys only (a channel key looks up only its own requests: 403 wrong_role for another's); 400 bad_request without request.",
        },
        afterId: { type: "string", pattern: "^[0-9]{1,15}$" },
        limit: { type: "string", pattern: "^[0-9]{1,5}$" },
      },
    },
    ok: {
      status: 200,
      description: "Records.",
      schema: {
        type: "object",
        properties: {
          records: {
            type: "array",
            items: {
              type: "object",
              properties: {
                id: { type: "integer" },
                at: { type: "string", format: "date-time" },
                actor: { type: "string" },
                source: { type: "string" },
                action: { type: "string" },
                outcome: { type: "string" },
                serial: { type: ["string", "null"] },
                customer: { type: ["string", "null"] },
                detail: { type: ["object", "null"] },
                requestId: { type: ["string", "null"], description: "The API request that wrote it (X-Request-Id); null for the CLI and the console." },
              },
            },
          },
        },
      },
    },
    refusals: [],
    handler: async ({ registry, query, actor }) => {
      const request = query.request as string | undefined;
      const channel = actor.name.startsWith("channel:");
      if (request === undefined && channel) {
        throw new ApiError(403, "wrong_role", "a channel key reads only the records of its own requests: give request (its X-Request-Id) with customer or serial");
      }
      const whose = query.actor as string | undefined;
      if (whose !== undefined && channel && whose !== actor.name) throw new ApiError(403, "wrong_role", "a channel key looks up only its own requests: leave actor out");
      if (whose !== undefined && request === undefined) throw new ApiError(400, "bad_request", "actor names whose request to look up: give request too");
      return {
      records: await registry.auditTrail({
        serial: query.serial as string | undefined,
        customer: query.customer as string | undefined,
        request,
        // Request ids are the client's choice, so two keys (or one channel restarting its counter) may pick the same: a
        // lookup by id sees only the calling key's records, or another key's could pass for its own change.
        actor: request === undefined ? undefined : (whose ?? actor.name),
        afterId: query.afterId === undefined ? undefined : Number(query.afterId),
        limit: query.limit === undefined ? undefined : Number(query.limit),
      }),
      };
    },
  },
];
