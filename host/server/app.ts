/**
 * The bank's HTTP API on Fastify 5: JSON in and out, every route behind an
 * API key of the right role, bodies validated against the route's schema
 * with no type coercion (a number where a string is due is a 400, not a
 * silently converted code), bodies capped in size.
 *
 * Public without a key: GET /openapi.json (the API's description, no data)
 * and GET /healthz (process and database up).
 *
 * /console/: the staff console (host/console), signed in with staff
 * accounts and sessions, not API keys; same registry, same rules. Here, or
 * with `console: false` on a listener of its own (buildConsoleApp).
 *
 * /app/: the customers' software-token web app (host/app), public files.
 */
import { randomUUID } from "node:crypto";
import rateLimit from "@fastify/rate-limit";
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";
import type { Registry } from "../registry/registry.js";
import type { Role } from "../registry/types.js";
import { ApiError, errorHandler, frameworkErrorHandler, sendError } from "./api-error.js";
import { KeyCache } from "./auth.js";
import { openApiDocument } from "./openapi.js";
import { ROUTES } from "./routes.js";
import { clientKey } from "../registry/client-key.js";
import { databaseRateStore } from "./rate-store.js";
import { REQUEST_ID_PATTERN } from "../registry/validation.js";
import { consoleFrameworkError, consolePlugin, isConsolePath } from "../console/console.js";
import { addHsts, withHsts } from "./security-headers.js";
import { appPlugin } from "../app/app.js";
import type { IssuanceMailer } from "../soft/mail.js";

/** Largest body accepted: a registration is well under 1 KiB. */
export const BODY_LIMIT = 16 * 1024;

export interface AppOptions {
  registry: Registry;
  https?: { key: Buffer; cert: Buffer };
  bodyLimit?: number;
  logger?: boolean;
  /** Where the request log goes instead of stdout (turns logging on); tests keep it to search it. */
  logStream?: NodeJS.WritableStream;
  /** Proxies whose X-Forwarded-For is believed (serve.ts parseTrustProxy); none by default. */
  trustProxy?: string[];
  /** Unix ms; tests inject a clock (the registry's, so maker-checker and the lifecycle agree). */
  now?: () => number;
  /** Sends software-token issuance mails (`--smtp URL`); none: issuances answer mailSent false. */
  mailer?: IssuanceMailer;
  /** Requests per minute per client (IPv4 address or IPv6 /64, clientKey) to the public set-up routes (/app/v1/setup/*); false: no limit. Default SETUP_RATE_DEFAULT. */
  setupRate?: number | false;
  /** false: no /console/ here (404), the console has its own listener (buildConsoleApp). Default true. */
  console?: boolean;
}

/** Default limit of the public set-up routes, requests per minute per client (IPv4 address or IPv6 /64; `bank serve --setup-rate`). */
export const SETUP_RATE_DEFAULT = 30;

declare module "fastify" {
  interface FastifyContextConfig {
    roles?: Role[];
  }
}

const BEARER = /^Bearer ([\x21-\x7e]{1,200})$/;

/**
 * A client's X-Request-Id (routes.ts REQUEST_ID_PATTERN). The
 * channel sets its own, so that it knows the id even when no answer reaches
 * it; without one the server makes a UUID. Either way the answer carries it
 * in X-Request-Id, a 503 outcome_unknown (and a 500) names it in its detail,
 * and every audit record the request wrote holds it (types.ts Actor.request,
 * GET /v1/audit?customer=..&request=.., scoped to the calling key: ids are
 * the client's choice and may collide across keys): a change whose outcome
 * the client never learned is found there, or, once the request has ended,
 * is known not to have been made.
 */
const REQUEST_ID = new RegExp(REQUEST_ID_PATTERN);

/** The request's id (set for /v1/ and /app/v1/ routes by the onRequest hook). */
export function requestIdOf(req: FastifyRequest): string | undefined {
  return (req as FastifyRequest & { requestId?: string }).requestId;
}

/** The Fastify both listeners share: logging, body limit, TLS, keep-alive, router errors, proxies. */
function baseFastify(options: Pick<AppOptions, "https" | "bodyLimit" | "logger" | "logStream" | "trustProxy">): FastifyInstance {
  const app = Fastify({
    logger: options.logger || options.logStream ? { level: "info", redact: ["req.headers.authorization"], ...(options.logStream ? { stream: options.logStream } : {}) } : false,
    bodyLimit: options.bodyLimit ?? BODY_LIMIT,
    ...(options.https ? { https: options.https } : {}),
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: true, allErrors: false } },
    // The default 5 s keep-alive timeout drops load-test connections between bursts; 65 s as behind a load balancer.
    keepAliveTimeout: 65_000,
    // Router errors (bad % escape, over-long parameter) in the API's error shape; on a console path, the console's page.
    // (They skip the onRequest hooks, so HSTS is set here too.)
    frameworkErrors: (err, req, reply) => (isConsolePath(req.url) ? consoleFrameworkError : frameworkErrorHandler)(err, req, withHsts(req, reply)),
    // req.ip (the audit's source) from X-Forwarded-For only when the peer is a listed proxy.
    ...(options.trustProxy?.length ? { trustProxy: options.trustProxy } : {}),
  }) as unknown as FastifyInstance;
  addHsts(app);
  return app;
}

/**
 * The staff console alone, for its own listener (`bank serve --console-listen`): its own origin, so a script that
 * runs in the public app (/app/) can neither read a console page nor pass the console's Origin check.
 */
export function buildConsoleApp(options: Pick<AppOptions, "registry" | "https" | "logger" | "logStream" | "trustProxy" | "now">): FastifyInstance {
  const app = baseFastify(options);
  app.removeContentTypeParser("text/plain");
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, "not_found", `no route ${req.method} ${req.url.split("?")[0]}`));
  app.get("/", async (_req, reply) => reply.redirect("/console/", 303));
  app.register(consolePlugin, { prefix: "/console", registry: options.registry, now: options.now });
  return app;
}

export function buildApp(options: AppOptions): FastifyInstance {
  const { registry } = options;
  const app = baseFastify(options);
  // JSON only: text/plain would otherwise be parsed into a string body.
  app.removeContentTypeParser("text/plain");
  const keys = new KeyCache(registry.db);
  const document = openApiDocument();

  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler((req, reply) => sendError(reply, 404, "not_found", `no route ${req.method} ${req.url.split("?")[0]}`));

  app.get("/openapi.json", async () => document);
  app.get("/healthz", async () => {
    await registry.db.get("SELECT 1 AS ok");
    return { ok: true };
  });

  app.addHook("onRequest", async (req: FastifyRequest, reply) => {
    // The API routes: the channel's, staff's and factory's (/v1/) and the app's set-up (/app/v1/), whose audit records carry it too.
    if (!req.url.startsWith("/v1/") && !req.url.startsWith("/app/v1/")) return;
    const given = req.headers["x-request-id"];
    if (given !== undefined && (typeof given !== "string" || !REQUEST_ID.test(given))) {
      return sendError(reply, 400, "bad_request_id", "X-Request-Id must be 1 to 64 letters, digits, '.', '_', ':' or '-' (or left out: the server then makes one)");
    }
    const id = given ?? randomUUID();
    (req as FastifyRequest & { requestId?: string }).requestId = id;
    reply.header("x-request-id", id);
  });

  app.addHook("onRequest", async (req: FastifyRequest, reply) => {
    const roles = req.routeOptions.config?.roles;
    if (!roles) return; // public route or 404
    const header = req.headers.authorization;
    if (!header) return sendError(reply, 401, "missing_key", "send `Authorization: Bearer <API key>`");
    const m = BEARER.exec(header);
    const who = m ? await keys.check(m[1]) : undefined;
    if (!who) return sendError(reply, 401, "bad_key", "the API key is malformed, unknown or revoked");
    if (!roles.includes(who.role)) return sendError(reply, 403, "wrong_role", `a ${who.role} key may not call this route (needs ${roles.join(" or ")})`);
    (req as FastifyRequest & { who?: typeof who }).who = who;
  });

  const addRoute = (target: FastifyInstance, r: (typeof ROUTES)[number]) =>
    target.route({
      method: r.method,
      url: r.url,
      // Public routes (the app's set-up) carry no roles: the key check skips them.
      config: r.public ? {} : { roles: r.roles },
      ...(r.bodyLimit ? { bodyLimit: r.bodyLimit } : {}),
      schema: {
        ...(r.params ? { params: { type: "object", required: Object.keys(r.params), properties: r.params } } : {}),
        ...(r.query ? { querystring: r.query } : {}),
        ...(r.body ? { body: r.body } : {}),
      },
      handler: async (req, reply) => {
        const who = (req as FastifyRequest & { who?: { id: string; role: Role } }).who;
        const out = await r.handler({
          registry,
          actor: who ? { name: `${who.role}:${who.id}`, source: req.ip, request: requestIdOf(req) } : { name: "app", source: req.ip, request: requestIdOf(req) },
          mailer: options.mailer,
          params: (req.params ?? {}) as Record<string, string>,
          query: (req.query ?? {}) as Record<string, unknown>,
          body: req.body,
          now: (options.now ?? Date.now)(),
        });
        reply.code(r.ok.status);
        return out;
      },
    });
  for (const r of ROUTES) if (!r.public) addRoute(app, r);
  // The public set-up routes (the app's, no API key) in their own scope, under a per-client rate limit. Why: the
  // start endpoint is the guessing oracle for an issuance's activation password; the bank's count (5 starts per
  // issuance, then void) bounds the guesses at any one user ID, but not what one client does across user IDs:
  // probing which user IDs are live (enumeration), and spending other customers' five tries to void their
  // issuances. The limit bounds those, per client (req.ip: X-Forwarded-For only from --trust-proxy peers; an IPv6
  // client's /64, registry/client-key.ts).
  // Counted in the database (rate-store.ts), so the limit holds across --workers and across hosts.
  app.register(async (scope) => {
    const perMinute = options.setupRate === undefined ? SETUP_RATE_DEFAULT : options.setupRate;
    if (perMinute !== false) {
      await scope.register(rateLimit, {
        max: perMinute,
        timeWindow: 60_000,
        store: databaseRateStore(registry.db, options.now, perMinute),
        keyGenerator: (req) => clientKey(req.ip),
        // Retry-After (and x-ratelimit-*) headers come from the plugin; the body in the API's error shape.
        errorResponseBuilder: (_req, ctx) =>
          new ApiError(429, "rate_limited", `too many set-up requests from this address (${ctx.max} per minute); retry in ${ctx.after}`),
      });
    }
    // Set-up answers (KE2, tickets, the token's parameters) are for this client once: no cache keeps them (RFC 9111 §5.2.2.5).
    scope.addHook("onSend", async (_req, reply) => {
      reply.header("cache-control", "no-store");
    });
    for (const r of ROUTES) if (r.public) addRoute(scope as unknown as FastifyInstance, r);
  });
  if (options.console !== false) app.register(consolePlugin, { prefix: "/console", registry, now: options.now });
  // The customers' web app (files only; its set-up calls are API routes).
  app.register(appPlugin, { now: options.now });
  return app;
}
