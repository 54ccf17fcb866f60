/**
 * One error shape for every failure the API returns:
 *   { "error": { "code": "<stable code>", "message": "<for a person>", "detail"?: {...} } }
 * Codes are part of the API contract (listed in the OpenAPI document);
 * messages may change. Nothing secret reaches either.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import { DatabaseBusyError, DatabaseUnavailableError } from "../registry/database.js";
import { KeyFileError } from "../registry/key-ring.js";
import { RegistryError } from "../registry/types.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const KIND_STATUS = { refused: 409, bad_input: 400, not_found: 404, unavailable: 503 } as const;
/** Seconds a client should wait before retrying a 503. */
export const RETRY_AFTER_SECONDS = 1;

/** The API's error codes besides the registry's, for the OpenAPI document. */
export const TRANSPORT_ERRORS: Record<string, string> = {
  missing_key: "401: no `Authorization: Bearer <key>` header",
  bad_key: "401: the key is malformed, unknown or revoked",
  wrong_role: "403: the key's role may not call this route",
  bad_request: "400: the body, path or query does not match the schema",
  malformed_json: "400: the body is not JSON",
  empty_body: "400: a JSON body was expected",
  body_too_large: "413: the body exceeds the limit",
  unsupported_media_type: "415: only application/json bodies are accepted",
  not_found: "404: no such route",
  bad_url: "400: the path is not valid URL syntax (a bad % escape)",
  uri_too_long: "414: a path parameter is longer than any serial or customer id can be",
  busy: "503: the database is busy (another program holds its write lock); retry after the Retry-After seconds",
  database_unavailable: "503: the database could not be reached or its connection was lost; nothing was done, retry after the Retry-After seconds",
  outcome_unknown: "503: the database connection was lost while the change committed and the outcome could not be read back; detail.requestId names the request: GET /v1/audit?customer=..&request=<id>, with the same API key, lists the records it wrote if the change was made, none if it was not (a verify's code, sent again, also answers `replayed` if it was accepted)",
  bad_request_id: "400: the X-Request-Id header is not 1 to 64 letters, digits, '.', '_', ':' or '-'",
  internal_error: "500: the server failed; the request may or may not have taken effect only if it changed something, see the audit",
};

export function sendError(reply: FastifyReply, status: number, code: string, message: string, detail?: Record<string, unknown>): FastifyReply {
  return reply.code(status).send({ error: detail && Object.keys(detail).length ? { code, message, detail } : { code, message } });
}

/**
 * Errors Fastify's router raises before any route or hook runs (Fastify's
 * `frameworkErrors` option): without this they come back in Fastify's own
 * shape ({statusCode, error, message}) instead of the API's. The message
 * does not echo the path.
 */
export function frameworkErrorHandler(err: FastifyError, _request: FastifyRequest, reply: FastifyReply): FastifyReply {
  switch (err.code) {
    case "FST_ERR_BAD_URL":
      return sendError(reply, 400, "bad_url", "the path is not valid URL syntax (check its % escapes)");
    case "FST_ERR_MAX_PARAM_LENGTH":
      return sendError(reply, 414, "uri_too_long", "a path parameter is too long (serials and customer ids are at most 64 characters)");
  }
  return sendError(reply, 500, "internal_error", "internal error");
}

/** The operator hears of a lost database at most this often per process (each request still gets its 503). */
const UNAVAILABLE_LOG_MS = 10_000;
let unavailableLoggedAt = 0;

/**
 * The HTTP status of a registry error, for the API and the staff console
 * alike: a 503 gets Retry-After, and a lost database is told to the operator
 * at most every UNAVAILABLE_LOG_MS.
 */
export function registryErrorStatus(err: RegistryError, reply: FastifyReply): number {
  if (err instanceof DatabaseUnavailableError && Date.now() - unavailableLoggedAt >= UNAVAILABLE_LOG_MS) {
    unavailableLoggedAt = Date.now();
    process.stderr.write(`fobkit bank serve: answering 503 ${err.code}: ${err.message}\n`);
  }
  if (err.kind === "unavailable") reply.header("retry-after", String(RETRY_AFTER_SECONDS));
  return KIND_STATUS[err.kind];
}

export function errorHandler(err: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  // Answers that leave the client unsure whether its change was made name the request, whose audit records tell (app.ts, X-Request-Id).
  const requestId = (request as FastifyRequest & { requestId?: string }).requestId;
  if (err instanceof DatabaseUnavailableError && err.outcome === "unknown" && requestId) {
    return sendError(reply, registryErrorStatus(err, reply), err.code, err.message, { ...err.detail, requestId });
  }
  if (err instanceof RegistryError) return sendError(reply, registryErrorStatus(err, reply), err.code, err.message, err.detail);
  if (err instanceof ApiError) return sendError(reply, err.status, err.code, err.message);
  if (err instanceof DatabaseBusyError) {
    reply.header("retry-after", String(RETRY_AFTER_SECONDS));
    return sendError(reply, 503, "busy", "the database is busy (another program holds its write lock); nothing was done, retry shortly");
  }
  const fe = err as FastifyError;
  if (fe.validation) return sendError(reply, 400, "bad_request", fe.message);
  switch (fe.code) {
    case "FST_ERR_CTP_INVALID_JSON_BODY":
      return sendError(reply, 400, "malformed_json", "the body is not valid JSON");
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return sendError(reply, 400, "empty_body", "a JSON body was expected");
    case "FST_ERR_CTP_BODY_TOO_LARGE":
      return sendError(reply, 413, "body_too_large", "the body exceeds the server's limit");
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return sendError(reply, 415, "unsupported_media_type", "send bodies as application/json");
  }
  if (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500) return sendError(reply, fe.statusCode, "bad_request", fe.message);
  // Unexpected: log the kind, not the request (bodies may carry seeds).
  request.log.error({ err: { name: err.name, code: fe.code } }, err instanceof KeyFileError ? "key file problem" : "internal error");
  process.stderr.write(`fobkit bank serve: ${request.method} ${request.routeOptions.url ?? "?"}: ${err instanceof KeyFileError ? err.message : err.name + (fe.code ? " " + fe.code : "") + ": " + err.message}\n`);
  return sendError(reply, 500, "internal_error", "internal error", requestId ? { requestId } : undefined);
}
