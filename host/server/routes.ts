/**
 * The bank API's routes: one table drives both Fastify (schemas validate
 * every request) and the OpenAPI document, so they cannot disagree.
 */
import type { Registry } from "../registry/registry.js";
import { refusalsOf } from "../registry/lifecycle.js";
import { MAX_LIST } from "../registry/registry.js";
import { unlockUnderRule, withdrawUnderRule } from "../registry/approvals.js";
import { CODE_PATTERN, CUSTOMER_PATTERN, REQUEST_ID_PATTERN, SERIAL_PATTERN } from "../registry/validation.js";

export { REQUEST_ID_PATTERN };
import { BARRING_REASONS, TOKEN_STATES, WITHDRAW_REASONS, type Actor, type NewToken, type Role } from "../registry/types.js";

export interface RouteContext {
  registry: Registry;
  actor: Actor;
  params: Record<string, string>;
  query: Record<string, unknown>;
  body: any;
  /** Unix ms, the server's clock (maker-checker's 24 hours). */
  now: number;
}

export interface RouteDef {
  method: "GET" | "POST";
  /** Fastify style, `:name` parameters. */
  url: string;
  roles: Role[];
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
    refusals: ["duplicate_serial", "duplicate_seed"],
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
    method: "GET",
    url: "/v1/audit",
    roles: ["staff"],
    operationId: "readAudit",
    summary: "Audit records in order, filtered; page with afterId.",
    query: {
      type: "object",
      additionalProperties: false,
      properties: {
        serial: SERIAL,
        customer: CUSTOMER,
        request: { type: "string", pattern: REQUEST_ID_PATTERN, description: "Only the records written by this request (its X-Request-Id): after a 503 outcome_unknown, whether the change was made. Give the customer or serial too: the records are found through their index." },
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
    handler: async ({ registry, query }) => ({
      records: await registry.auditTrail({
        serial: query.serial as string | undefined,
        customer: query.customer as string | undefined,
        request: query.request as string | undefined,
        afterId: query.afterId === undefined ? undefined : Number(query.afterId),
        limit: query.limit === undefined ? undefined : Number(query.limit),
      }),
    }),
  },
];
