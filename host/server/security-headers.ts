/**
 * The response headers the bank's pages share (the web app at /app/, host/app/app.ts, and the staff console at
 * /console/, host/console/console.ts): one onSend hook, each plugin giving its own policy.
 *
 * - Content-Security-Policy (CSP3): the page's own.
 * - X-Content-Type-Options: nosniff (Fetch §3.6): a file is only ever what its Content-Type says.
 * - X-Frame-Options: DENY (RFC 7034), beside CSP's frame-ancestors 'none' for browsers without CSP2.
 * - Referrer-Policy: the page's own (Referrer Policy §3).
 * - Cache-Control: the page's default, unless the route set its own (the app's /app/time says no-store).
 */
import type { FastifyInstance, FastifyReply } from "fastify";

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
