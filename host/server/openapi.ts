/** The OpenAPI 3.1 document, generated from the route table. */
import { TRANSPORT_ERRORS } from "./api-error.js";
import { ROUTES } from "./routes.js";
import { REQUEST_ID_PATTERN } from "../registry/validation.js";

/** Every route takes X-Request-Id and answers with it (app.ts). */
const REQUEST_ID_HEADER = {
  name: "X-Request-Id",
  in: "header",
  required: false,
  description:
    "The client's id for this request, kept in every audit record it writes and sent back in the answer's X-Request-Id; without one the server makes a random UUID. " +
    "Make it unique per API key (e.g. a UUID): GET /v1/audit?customer=..&request=<id> (with the same key) lists that key's records for the id, so after a 503 outcome_unknown it tells whether the change was made. " +
    "No record is conclusive only once the request has ended: any answer means it has; with no answer, wait out the database's statement_timeout (fobkit sets none on PostgreSQL: set one for its role) plus 10 s, or on SQLite 10 s.",
  schema: { type: "string", pattern: REQUEST_ID_PATTERN },
};

const ERROR_SCHEMA = {
  type: "object",
  required: ["error"],
  properties: {
    error: {
      type: "object",
      required: ["code", "message"],
      properties: {
        code: { type: "string", description: "Stable; see the route's description for the codes it may give." },
        message: { type: "string" },
        detail: { type: "object", description: "e.g. failures and locked after a wrong code." },
      },
    },
  },
};

export function openApiDocument(version = "0.1.0"): object {
  const paths: Record<string, Record<string, object>> = {};
  for (const r of ROUTES) {
    const path = r.url.replace(/:([a-z]+)/gi, "{$1}");
    const err = (description: string) => ({ description, content: { "application/json": { schema: { $ref: "#/components/schemas/Error" } } } });
    const responses: Record<string, object> = {
      [String(r.ok.status)]: { description: r.ok.description, content: { "application/json": { schema: r.ok.schema } } },
      "400": err(
        r.public
          ? "Bad input: bad_request, malformed_json, empty_body, bad_service_id, bad_user_id (the user ID's check digit is wrong: mistyped), bad_client_nonce, bad_start_login_request, bad_request_id"
          : "Bad input: bad_request, malformed_json, empty_body, bad_code, bad_serial, bad_customer, bad_token, bad_request_id" + (r.url.includes("soft-tokens") ? ", bad_mail, bad_registration_request, bad_registration_record" : ""),
      ),
      ...(r.public ? {} : { "401": err("missing_key or bad_key"), "403": err(`wrong_role: only ${r.roles.join(", ")}`) }),
    };
    if (r.params?.serial) responses["404"] = err("unknown_serial");
    if (r.notFound?.length) responses["404"] = err(r.notFound.join(", "));
    if (r.refusals.some((c) => c.includes("(503)"))) responses["503"] = err(r.refusals.filter((c) => c.includes("(503)")).map((c) => c.replace(" (503)", "")).join(", "));
    const refused = r.refusals.filter((c) => !c.includes("(503)"));
    if (refused.length) responses["409"] = err("Refused: " + refused.join(", "));
    // The public set-up routes are limited per client, an IPv4 address or an IPv6 /64 (app.ts, `bank serve --setup-rate`).
    if (r.public) responses["429"] = { ...err("rate_limited: too many set-up requests from this address; wait Retry-After seconds"), headers: { "Retry-After": { description: "seconds until the limit resets", schema: { type: "integer" } } } };
    if (r.body) {
      responses["413"] = err("body_too_large");
      responses["415"] = err("unsupported_media_type");
    }
    (paths[path] ??= {})[r.method.toLowerCase()] = {
      operationId: r.operationId,
      summary: r.summary,
      description:
        (r.public ? "Public: no API key." : `Role: ${r.roles.join(", ")}.`) +
        (refused.length ? ` Refusal codes (409): ${refused.join(", ")}.` : "") +
        (r.notFound?.length ? ` Not found (404): ${r.notFound.join(", ")}.` : "") +
        (r.refusals.length > refused.length ? ` Unavailable (503): ${r.refusals.filter((c) => c.includes("(503)")).map((c) => c.replace(" (503)", "")).join(", ")}.` : ""),
      security: r.public ? [] : [{ apiKey: [] }],
      parameters: [
        REQUEST_ID_HEADER,
        ...Object.entries(r.params ?? {}).map(([name, schema]) => ({ name, in: "path", required: true, schema })),
        ...Object.entries(((r.query as { properties?: Record<string, object> }) ?? {}).properties ?? {}).map(([name, schema]) => ({ name, in: "query", required: false, schema })),
      ],
      ...(r.body ? { requestBody: { required: true, content: { "application/json": { schema: r.body } } } } : {}),
      responses,
    };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "fobkit bank token registry",
      version,
      description:
        "Hardware OTP keyfobs: register (factory), issue/unlock/resync/status/audit (staff: a teller's authority, every audit record, any key's request by X-Request-Id and actor), activate/verify/deactivate and the audit lookup of their own requests by X-Request-Id (channel). " +
        "Every request carries `Authorization: Bearer fbk_<id>_<secret>`; keys are made with `fobkit bank add-key --role R`. " +
        "Errors: " +
        Object.entries(TRANSPORT_ERRORS)
          .map(([c, d]) => `${c} (${d})`)
          .join("; ") +
        ".",
    },
    components: {
      securitySchemes: { apiKey: { type: "http", scheme: "bearer", description: "fbk_<12 hex>_<43 base64url>" } },
      schemas: { Error: ERROR_SCHEMA },
    },
    paths,
  };
}
