/**
 * The response headers the bank's pages share (the web app at /app/, host/app/app.ts, and the staff console at
 * /console/, host/console/console.ts): one onSend hook, each plugin giving its own policy.
 *
 * - Content-Security-Policy (CSP3): the page's own.
 * - X-Content-Type-Options: nosniff (Fetch §3.6): a file is only ever what its Content-Type says.
 * - X-Frame-Options: DENY (RFC 7034), beside CSP's frame-ancestors 'none' for browsers without CSP2.
 * - Referrer-Policy: the page's own (Referrer Policy §3).
 * - Cache-Control: the page's default, unless the route set its own (the app's /app/time says no-store).
 *
 * And on every answer of every listener, over HTTPS only: Strict-Transport-Security (addHsts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";

export interface PageHeaders {
  csp: string;
  referrerPolicy: "no-referrer" | "same-origin";
  /** Cache-Control for every response whose route did not set one. */
  cacheControl: string;
  /** Any further headers, set on every response (e.g. Cross-Origin-Opener-Policy). */
  more?: Record<string, string>;
}

export function addPageHeaders(app: FastifyInstance, o: PageHeaders): void {
  app.addHook("onSend", async (_req, reply, payload) => {
    setPageHeaders(reply, o);
    return payload;
  });
}

/** The same headers on one reply: for answers sent outside the plugin's hooks (Fastify's frameworkErrors, at the root). */
export function setPageHeaders(reply: FastifyReply, o: PageHeaders): void {
  reply.header("content-security-policy", o.csp);
  reply.header("x-content-type-options", "nosniff");
  reply.header("x-frame-options", "DENY");
  reply.header("referrer-policy", o.referrerPolicy);
  for (const [name, value] of Object.entries(o.more ?? {})) reply.header(name, value);
  if (!reply.hasHeader("cache-control")) reply.header("cache-control", o.cacheControl);
}

/**
 * RFC 6797 HSTS: one year (§6.1.1 max-age, in seconds), so a browser that once reached the bank over HTTPS never
 * again tries plain HTTP (a link typed as http://, or one in a mail, cannot be stripped by someone on the network).
 * Over HTTPS only: §7.2 has a server not send it over plain HTTP (a browser ignores it there, §8.1), and plain HTTP
 * is loopback-only here. No includeSubDomains: it would bind every host under the bank's name (intranet hosts,
 * other services still on HTTP) to HTTPS for a year, a decision for whoever runs the domain, not for one service;
 * a proxy in front can add it. req.protocol is "https" on a TLS listener, or behind a --trust-proxy peer that says
 * X-Forwarded-Proto: https.
 */
export const HSTS = "max-age=31536000";

export function withHsts(req: FastifyRequest, reply: FastifyReply): FastifyReply {
  return req.protocol === "https" ? reply.header("strict-transport-security", HSTS) : reply;
}

/** On every answer: the onRequest hook (routes and 404s); router errors (a bad % escape) call withHsts themselves. */
export function addHsts(app: FastifyInstance): void {
  app.addHook("onRequest", async (req, reply) => {
    withHsts(req, reply);
  });
}
