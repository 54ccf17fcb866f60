/**
 * The staff console at /console/ (issue 13), a Fastify plugin in the same
 * process and on the same Registry as the API.
 *
 * Security, in one place:
 * - Sessions: only sign-in makes one, with a fresh random id (a cookie the
 *   client brings is never adopted: no fixation); the database keeps its
 *   SHA-256. Cookie HttpOnly, SameSite=Strict; over HTTPS __Host-fobkit_console,
 *   Secure, Path=/; over plain HTTP fobkit_console, Path=/console/, Secure unless
 *   the request reached a loopback listener. 15 minutes idle
 *   ends it (host/registry/staff.ts). The language cookie likewise: over HTTPS
 *   __Host-fobkit_lang, Secure, Path=/ (the old fobkit_lang still read after it).
 * - CSRF: every POST but sign-in carries the session's token (_csrf), compared
 *   in constant time, and a POST whose Origin header names another origin, or
 *   whose Sec-Fetch-Site is not same-origin (or none), is refused (sign-in
 *   included: no login CSRF).
 * - Roles on the server: tellers get 403 for supervisor pages and actions,
 *   whatever the page shows; the maker-checker rule is the API's own code
 *   (host/registry/approvals.ts).
 * - Escaping: all HTML through html`` (html.ts); CSP allows only this
 *   origin's script and style; no inline script.
 * - Redirects after sign-in or a language switch go only to /console/ paths.
 */
import { timingSafeEqual } from "node:crypto";
import { Readable } from "node:stream";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { decideApproval, listApprovals, unlockUnderRule, withdrawUnderRule } from "../registry/approvals.js";
import { DatabaseBusyError } from "../registry/database.js";
import { registryErrorStatus } from "../server/api-error.js";
import { addPageHeaders, setPageHeaders, type PageHeaders } from "../server/security-headers.js";
import type { Registry } from "../registry/registry.js";
import { auditRecord, consoleActor, endSession, listStaff, loadSession, signIn, unlockStaff, type Session } from "../registry/staff.js";
import { RegistryError, TOKEN_STATES, WITHDRAW_REASONS, type TokenState, type TokenStatus, type WithdrawReason } from "../registry/types.js";
import { CONSOLE_CSS, CONSOLE_JS } from "./assets.js";
import { Html } from "./html.js";
import { WORDS, chooseLang, type Lang } from "./i18n.js";
import * as P from "./pages.js";
import { AUDIT_CSV_HEAD, auditBatches, auditCsvRows, auditPage, keyfobsOfCustomer, lastAcceptedAt, listKeyfobs, search, SORTS, type AuditFilter, type Sort } from "./queries.js";

export const SESSION_COOKIE = "fobkit_console";
/**
 * The session cookie's name over HTTPS. The __Host- prefix (RFC 6265bis §4.1.3.2) makes the browser refuse the
 * cookie unless it is Secure, has Path=/ and no Domain, so neither a sibling host (Domain=) nor a plain-HTTP page
 * can plant or shadow a staff session. Path=/ costs nothing: within one origin Path=/console/ was never a boundary
 * (a script in /app/ could fetch /console/ with the cookie), and on its own listener (--console-listen) the origin
 * is the console's. Over plain HTTP (loopback only) no prefix is possible: SESSION_COOKIE, Path=/console/.
 * Chromium refuses such a cookie that breaks the rules (net/cookies/canonical_cookie.cc, chromium/chromium b55f2f1,
 * CanonicalCookie::Create: cookie_util::IsCookiePrefixValid, else EXCLUDE_INVALID_PREFIX); tested in
 * test/console/console-origin-browser.test.ts, where Chromium keeps it and signs in with it.
 */
export const HOST_SESSION_COOKIE = "__Host-fobkit_console";

/** The session cookie's name and attributes for this request's scheme (req.protocol honours --trust-proxy's X-Forwarded-Proto). */
function sessionCookie(req: FastifyRequest): { name: string; attrs: string } {
  return req.protocol === "https" ? { name: HOST_SESSION_COOKIE, attrs: "Path=/; HttpOnly; SameSite=Strict; Secure" } : { name: SESSION_COOKIE, attrs: `Path=/console/; HttpOnly; SameSite=Strict${isLoopbackAddress(req.socket.localAddress) ? "" : "; Secure"}` };
}
/** The language cookie's name over plain HTTP (loopback only; Path=/console/), and its old name over HTTPS too. */
export const LANG_COOKIE = "fobkit_lang";
/**
 * The language cookie's name over HTTPS: __Host- as the session's (HOST_SESSION_COOKIE), Secure, Path=/, no Domain,
 * so a sibling host or a plain-HTTP page cannot plant one that outranks the staff member's own choice. Read first;
 * LANG_COOKIE, the name every browser had before 2026-11-30 (a year's Max-Age), is still read after it so nobody's
 * language changes, and over HTTPS a page that finds only that one moves it to this name (and expires the old).
 * LANG_COOKIE can go from reading once a year has passed (2027-12).
 */
export const HOST_LANG_COOKIE = "__Host-fobkit_lang";
const LANG_MAX_AGE = 31536000;

/** The language cookie the request carries: the __Host- one if it names a language, else the old name's. */
function langCookie(cookies: Record<string, string>): string | undefined {
  const prefixed = cookies[HOST_LANG_COOKIE];
  return prefixed === "ja" || prefixed === "en" ? prefixed : cookies[LANG_COOKIE];
}

/** Set-Cookie values that keep `lang` for a year: over HTTPS the __Host- name, and the old name expired (its own Path). */
function langCookies(req: FastifyRequest, lang: Lang): string[] {
  if (req.protocol === "https") {
    return [`${HOST_LANG_COOKIE}=${lang}; Path=/; Max-Age=${LANG_MAX_AGE}; SameSite=Strict; Secure`, `${LANG_COOKIE}=; Path=/console/; Max-Age=0; SameSite=Strict; Secure`];
  }
  return [`${LANG_COOKIE}=${lang}; Path=/console/; Max-Age=${LANG_MAX_AGE}; SameSite=Strict${isLoopbackAddress(req.socket.localAddress) ? "" : "; Secure"}`];
}
const FORM_LIMIT = 16 * 1024;

const PAGE_HEADERS: PageHeaders = {
  csp: "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  referrerPolicy: "same-origin",
  // Staff pages hold customers' data: never kept by a browser or proxy.
  cacheControl: "no-store",
};

/** Is this request for the console (its pages, not the API or the app)? */
export function isConsolePath(url: string): boolean {
  return url === "/console" || url.startsWith("/console/") || url.startsWith("/console?");
}

/**
 * A router error on a console path (Fastify's frameworkErrors, before any route or hook: a bad % escape, an
 * over-long parameter): the console's error page, in the language the console would choose (Japanese unless the
 * browser asks for English), with the console's headers. It was the API's JSON, in English, on a staff member's
 * screen. app.ts sends console paths here.
 */
export function consoleFrameworkError(err: FastifyError, req: FastifyRequest, reply: FastifyReply): FastifyReply {
  const lang = chooseLang(langCookie(parseCookies(req.headers.cookie)), req.headers["accept-language"]);
  const v: P.View = { lang, w: WORDS[lang], here: "/console/", timeZone: process.env.FOBKIT_CONSOLE_TZ ?? "Asia/Tokyo", staff: undefined };
  const status = err.code === "FST_ERR_BAD_URL" ? 400 : err.code === "FST_ERR_MAX_PARAM_LENGTH" ? 414 : 500;
  setPageHeaders(reply, PAGE_HEADERS);
  const page = P.messagePage(v, v.w.error, status === 500 ? v.w.internalError : v.w.badRequest, { href: "/console/", label: v.w.home });
  return reply.code(status).type("text/html; charset=utf-8").send(page.text);
}

export interface ConsoleOptions {
  registry: Registry;
  now?: () => number;
  /** Time zone the console shows times in and reads audit dates in (default $FOBKIT_CONSOLE_TZ, else Asia/Tokyo). */
  timeZone?: string;
}

declare module "fastify" {
  interface FastifyContextConfig {
    /** Console route reachable without a session (sign-in, assets, language). */
    consolePublic?: boolean;
  }
}

interface ConsoleRequest extends FastifyRequest {
  view?: P.View;
  session?: Session;
  sessionId?: string;
}

export function parseCookies(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    if (k && !(k in out)) out[k] = part.slice(i + 1).trim();
  }
  return out;
}

/** Only a path inside the console, printable ASCII; anything else (another host, //x, /\x, a scheme, a character a header cannot hold) goes home. */
export function safeNext(n: unknown): string {
  if (typeof n !== "string" || n.length > 2000) return "/console/";
  // Printable ASCII only: a Location header cannot hold more (a raw あ made the redirect throw, after the session was made).
  if (!n.startsWith("/console/") || /[^\x21-\x7e]|\\/.test(n) || /\/\.\.?(\/|$|\?)/.test(n)) return "/console/";
  // Where a browser lands (WHATWG URL: "%2e%2e" and ".%2E" are dot segments too), which must still be the console.
  const landed = new URL(n, "https://console.invalid");
  if (landed.origin !== "https://console.invalid" || !landed.pathname.startsWith("/console/")) return "/console/";
  return n;
}

function isLoopbackAddress(a: string | undefined): boolean {
  return !!a && (a.startsWith("127.") || a === "::1" || /^::ffff:127\./i.test(a));
}

function equalTokens(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Midnight of YYYY-MM-DD in the time zone, as unix ms; undefined when it is not a date. */
export function zonedMidnight(date: string, timeZone: string): number | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!m) return undefined;
  const guess = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  if (Number.isNaN(guess) || new Date(guess).toISOString().slice(0, 10) !== date) return undefined;
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", { timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" })
      .formatToParts(new Date(guess))
      .map((p) => [p.type, p.value]),
  );
  const asUtc = Date.UTC(Number(parts.year), Number(parts.month) - 1, Number(parts.day), Number(parts.hour), Number(parts.minute), Number(parts.second));
  return guess - (asUtc - guess);
}

export async function consolePlugin(app: FastifyInstance, options: ConsoleOptions): Promise<void> {
  const { registry } = options;
  const db = registry.db;
  const now = options.now ?? Date.now;
  const timeZone = options.timeZone ?? process.env.FOBKIT_CONSOLE_TZ ?? "Asia/Tokyo";
  new Intl.DateTimeFormat("en", { timeZone }); // a bad zone fails at start, not on the first page

  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string", bodyLimit: FORM_LIMIT }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });

  function viewOf(req: ConsoleRequest): P.View {
    const cookies = parseCookies(req.headers.cookie);
    const lang: Lang = chooseLang(langCookie(cookies), req.headers["accept-language"]);
    return {
      lang,
      w: WORDS[lang],
      here: safeNext(req.url.replace(/([?&])done=[^&]*&?/, "$1").replace(/[?&]$/, "")),
      timeZone,
      staff: req.session ? { name: req.session.staff, role: req.session.role, csrf: req.session.csrf } : undefined,
    };
  }

  const send = (reply: FastifyReply, status: number, page: Html) => reply.code(status).type("text/html; charset=utf-8").send(page.text);

  function message(req: ConsoleRequest, e: RegistryError): string {
    const w = req.view!.w;
    return w.errors[e.code] ?? e.message;
  }

  addPageHeaders(app, PAGE_HEADERS);

  // Who is asking, and may they: every console route passes here before its handler.
  app.addHook("preHandler", async (request, reply) => {
    const req = request as ConsoleRequest;
    if (req.url.startsWith("/console/assets/")) return; // the stylesheet and script: no session, no database
    const cookies = parseCookies(req.headers.cookie);
    const sid = cookies[sessionCookie(req).name];
    if (sid) {
      req.session = await loadSession(db, sid, now());
      if (req.session) req.sessionId = sid;
    }
    req.view = viewOf(req);
    // Over HTTPS, a language kept under the old name only: moved to the __Host- name (the language stays).
    const old = cookies[LANG_COOKIE];
    if (req.protocol === "https" && (old === "ja" || old === "en") && cookies[HOST_LANG_COOKIE] !== old && langCookie(cookies) === old && !req.url.startsWith("/console/lang")) {
      reply.header("set-cookie", langCookies(req, old));
    }
    const isPost = req.method === "POST";
    if (isPost) {
      // A cross-site form post names its own origin; ours is the Host the request came to.
      const origin = req.headers.origin;
      if (origin !== undefined && origin !== `${req.protocol}://${req.host}`) {
        return send(reply, 403, P.messagePage(req.view, req.view.w.error, req.view.w.csrf));
      }
      // Fetch Metadata: a browser that sends Sec-Fetch-Site says where the request came from even when it sends no
      // Origin. Only this origin ("same-origin") or the user ("none") may post; "same-site" is refused too (another
      // port of this host, the public app with --console-listen, is same-site). A client that sends neither header
      // (curl, a script) is no browser a page can drive: it still needs the session cookie and the CSRF token.
      // Chromium (services/network/sec_header_helpers.cc, chromium/chromium 1a4f344: GetHeaderValueForTargetAndInitiator
      // l.56-76 makes another port of the host same-site; SetFetchMetadataHeaders sends it only to potentially
      // trustworthy URLs, i.e. HTTPS or loopback, the only ones bank serve listens on).
      const site = req.headers["sec-fetch-site"];
      if (site !== undefined && site !== "same-origin" && site !== "none") {
        return send(reply, 403, P.messagePage(req.view, req.view.w.error, req.view.w.csrf));
      }
    }
    if (req.routeOptions.config?.consolePublic) return;
    if (!req.session) {
      if (isPost || (req.query as Record<string, string>)?.partial) {
        return send(reply, 401, P.messagePage(req.view, req.view.w.signInTitle, req.view.w.sessionEnded, { href: "/console/sign-in", label: req.view.w.signIn }));
      }
      return reply.redirect(`/console/sign-in?next=${encodeURIComponent(safeNext(req.url))}`, 303);
    }
    if (isPost) {
      const token = (req.body as Record<string, string> | undefined)?._csrf;
      if (typeof token !== "string" || !equalTokens(token, req.session.csrf)) {
        return send(reply, 403, P.messagePage(req.view, req.view.w.error, req.view.w.csrf));
      }
    }
  });

  app.setErrorHandler((err, request, reply) => {
    const req = request as ConsoleRequest;
    const v = req.view ?? viewOf(req);
    if (err instanceof RegistryError) return send(reply, registryErrorStatus(err, reply), P.messagePage(v, v.w.error, message(req, err)));
    if (err instanceof DatabaseBusyError) return send(reply.header("retry-after", "1"), 503, P.messagePage(v, v.w.error, v.w.errors.busy));
    const fe = err as { statusCode?: number; validation?: unknown };
    if (fe.validation || (fe.statusCode && fe.statusCode >= 400 && fe.statusCode < 500)) return send(reply, fe.statusCode ?? 400, P.messagePage(v, v.w.error, v.w.badRequest));
    const e = err as Error;
    process.stderr.write(`fobkit bank serve: console ${request.method} ${request.routeOptions.url ?? "?"}: ${e.name}: ${e.message}\n`);
    return send(reply, 500, P.messagePage(v, v.w.error, v.w.internalError));
  });

  app.setNotFoundHandler((request, reply) => {
    const req = request as ConsoleRequest;
    const v = req.view ?? viewOf(req);
    return send(reply, 404, P.messagePage(v, v.w.error, v.w.notFound, { href: "/console/", label: v.w.home }));
  });

  const pub = { consolePublic: true };
  const actorOf = (req: ConsoleRequest) => consoleActor(req.session!.staff, req.ip);
  const supervisorOnly = (req: ConsoleRequest, reply: FastifyReply) => {
    if (req.session!.role === "supervisor") return false;
    send(reply, 403, P.messagePage(req.view!, req.view!.w.error, req.view!.w.forbidden));
    return true;
  };
  const str = (v: unknown) => (typeof v === "string" ? v : "");

  // ---------------------------------------------------------------- assets, language, sign-in

  app.get("/assets/console.css", { config: pub }, async (_req, reply) => reply.type("text/css; charset=utf-8").send(CONSOLE_CSS));
  app.get("/assets/console.js", { config: pub }, async (_req, reply) => reply.type("text/javascript; charset=utf-8").send(CONSOLE_JS));

  app.get("/lang", { config: pub }, async (request, reply) => {
    const q = request.query as Record<string, string>;
    const to = q.to === "en" ? "en" : "ja";
    reply.header("set-cookie", langCookies(request, to));
    return reply.redirect(safeNext(q.back), 303);
  });

  app.get("/sign-in", { config: pub }, async (request, reply) => {
    const req = request as ConsoleRequest;
    const next = safeNext((req.query as Record<string, string>).next);
    if (req.session) return reply.redirect(next, 303);
    return send(reply, 200, P.signInPage(req.view!, next));
  });

  app.post("/sign-in", { config: pub }, async (request, reply) => {
    const req = request as ConsoleRequest;
    const body = (req.body ?? {}) as Record<string, string>;
    const v = req.view!;
    const next = safeNext(body.next);
    const staff = str(body.staff).slice(0, 64);
    const result = await signIn(db, staff, str(body.password), req.ip, now()).catch((e) => {
      if (e instanceof RegistryError && e.code === "signin_busy") return undefined;
      throw e;
    });
    if (!result) return send(reply.header("retry-after", "1"), 503, P.signInPage(v, next, { staffId: staff, error: v.w.errors.signin_busy }));
    if (!result.ok) {
      return send(reply, 401, P.signInPage(v, next, { staffId: staff, error: result.reason === "locked" ? v.w.lockedAccount : v.w.badCredentials }));
    }
    // Whatever session the browser had ends; the new one (made by signIn, in the transaction that audited the
    // sign-in, so only for a member still enabled then) has an id it never saw.
    if (req.sessionId) await endSession(db, req.sessionId);
    const cookie = sessionCookie(req);
    reply.header("set-cookie", `${cookie.name}=${result.session.id}; ${cookie.attrs}`);
    return reply.redirect(next, 303);
  });

  app.post("/sign-out", async (request, reply) => {
    const req = request as ConsoleRequest;
    await endSession(db, req.sessionId!);
    await db.tx((t) => auditRecord(t, actorOf(req), "signout", "ok", now()));
    const cookie = sessionCookie(req);
    reply.header("set-cookie", `${cookie.name}=; ${cookie.attrs}; Max-Age=0`);
    return reply.redirect("/console/sign-in", 303);
  });

  // ---------------------------------------------------------------- home, search, customer

  app.get("/", async (request, reply) => {
    const req = request as ConsoleRequest;
    const counts = await registry.countByState();
    const pending = req.session!.role === "supervisor" ? (await listApprovals(db, "pending")).length : undefined;
    return send(reply, 200, P.homePage(req.view!, counts, pending));
  });

  app.get("/search", async (request, reply) => {
    const req = request as ConsoleRequest;
    const q = str((req.query as Record<string, string>).q).trim().slice(0, 64);
    if (!q) return reply.redirect("/console/", 303);
    const r = await search(db, q);
    if (r.exact) return reply.redirect(`/console/${r.exact.kind === "keyfob" ? "keyfobs" : "customers"}/${encodeURIComponent(r.exact.id)}`, 303);
    return send(reply, 200, P.searchResultsPage(req.view!, q, r.serials, r.customers));
  });

  app.get("/customers/:customer", async (request, reply) => {
    const req = request as ConsoleRequest;
    const customer = (req.params as { customer: string }).customer;
    const current = await registry.statusOfCustomer(customer).catch((e) => {
      if (e instanceof RegistryError && e.code === "no_token") return undefined;
      throw e;
    });
    const had = await keyfobsOfCustomer(db, customer);
    const withState = await Promise.all(
      had.map(async (k) => {
        const s = await registry.status(k.serial).catch(() => undefined);
        return { ...k, state: s?.state, holder: s?.customer };
      }),
    );
    const history = (await auditPage(db, { customer }, 200)).records;
    return send(reply, 200, P.customerPage(req.view!, customer, current, withState, history));
  });

  // ---------------------------------------------------------------- lists

  app.get("/keyfobs", async (request, reply) => {
    const req = request as ConsoleRequest;
    const started = process.hrtime.bigint();
    const q = req.query as Record<string, string>;
    const state = TOKEN_STATES.includes(q.state as TokenState) ? (q.state as TokenState) : undefined;
    // Own keys only: `in` also found "constructor", "__proto__", "toString" on Object's prototype, and their text reached ORDER BY.
    const sort: Sort = typeof q.sort === "string" && Object.hasOwn(SORTS, q.sort) ? (q.sort as Sort) : "serial";
    const desc = q.dir === "desc";
    const prefix = str(q.q).trim().slice(0, 64);
    const page = /^\d{1,6}$/.test(q.page ?? "") ? Number(q.page) : 1;
    const r = await listKeyfobs(db, { state, prefix: prefix || undefined, sort, desc, page });
    const l: P.ListView = { state, prefix, sort, desc, ...r };
    const out = q.partial ? P.listResults(req.view!, l) : P.listPage(req.view!, l);
    // Server time of the page (queries and rendering), for `make bench` and the browser's dev tools.
    reply.header("server-timing", `app;dur=${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(2)}`);
    return send(reply, 200, out);
  });

  // ---------------------------------------------------------------- a keyfob and its actions

  async function facts(serial: string): Promise<P.KeyfobFacts> {
    const token = await registry.status(serial);
    const [last, history] = await Promise.all([lastAcceptedAt(db, serial), auditPage(db, { serial }, 100)]);
    return { token, lastAcceptedAt: last, history: history.records };
  }

  const DONE = new Set(["issue", "unlock", "withdraw", "resync", "approve"]);
  app.get("/keyfobs/:serial", async (request, reply) => {
    const req = request as ConsoleRequest;
    const done = str((req.query as Record<string, string>).done);
    const flash = DONE.has(done) ? (req.view!.w as unknown as Record<string, string>)["done_" + done] : undefined;
    return send(reply, 200, P.keyfobPage(req.view!, await facts((req.params as { serial: string }).serial), { flash }));
  });

  type Form = Record<string, unknown>;
  type Answer = { status: number; page: Html };

  /**
   * Every change the console makes is a POST through here (the session and its CSRF token were checked in the
   * preHandler): the role, the act, then either a 303 to the page with the `done` message (a reload does not repeat
   * it) or the page again with the registry's refusal. Other errors, and an unavailable database, go to the error
   * handler. `act` may instead answer a page itself (a form sent incomplete: nothing was done).
   */
  function change<Params extends Record<string, string>>(
    url: string,
    c: {
      supervisor?: boolean;
      act(req: ConsoleRequest, params: Params, form: Form): Promise<Answer | void>;
      refused(req: ConsoleRequest, reply: FastifyReply, params: Params, form: Form, e: RegistryError): Promise<Answer>;
      done(params: Params): string;
    },
  ): void {
    app.post(url, async (request, reply) => {
      const req = request as ConsoleRequest;
      if (c.supervisor && supervisorOnly(req, reply)) return reply;
      const params = req.params as Params;
      const form = (req.body ?? {}) as Form;
      let answer: Answer | void;
      try {
        answer = await c.act(req, params, form);
      } catch (e) {
        if (!(e instanceof RegistryError) || e.kind === "unavailable") throw e;
        answer = await c.refused(req, reply, params, form, e);
      }
      if (answer) return send(reply, answer.status, answer.page);
      return reply.redirect(c.done(params), 303);
    });
  }

  type KeyfobForm = (v: P.View, t: TokenStatus, opts: { customer?: string; error?: string }) => Html;
  /**
   * A keyfob's action: done, back to the keyfob's page with its message; refused, the keyfob's page with the reason
   * (and the approval request, if one was made), or the action's own form when `formRefusal` gives it a status.
   */
  function keyfobChange(
    action: "issue" | "unlock" | "withdraw" | "resync",
    c: { form?: KeyfobForm; formRefusal?: (e: RegistryError) => number | undefined; act(req: ConsoleRequest, serial: string, form: Form): Promise<Answer | void> },
  ): void {
    change<{ serial: string }>(`/keyfobs/:serial/${action}`, {
      act: (req, { serial }, form) => c.act(req, serial, form),
      async refused(req, reply, { serial }, form, e) {
        const status = c.form && c.formRefusal?.(e);
        if (status) return { status, page: c.form!(req.view!, await registry.status(serial), { customer: str(form.customer).trim(), error: message(req, e) }) };
        let text = message(req, e);
        if (e.code === "needs_approval") text = `${req.view!.w.needsApprovalSent} ${String(e.detail.approval)}`;
        return { status: registryErrorStatus(e, reply), page: P.keyfobPage(req.view!, await facts(serial), { error: text }) };
      },
      done: ({ serial }) => `/console/keyfobs/${encodeURIComponent(serial)}?done=${action}`,
    });
  }

  const forms: Record<"issue" | "withdraw" | "resync", KeyfobForm> = { issue: P.issueFormPage, withdraw: P.withdrawFormPage, resync: P.resyncFormPage };
  for (const [action, form] of Object.entries(forms)) {
    app.get(`/keyfobs/:serial/${action}`, async (request, reply) => {
      const req = request as ConsoleRequest;
      return send(reply, 200, form(req.view!, await registry.status((req.params as { serial: string }).serial), {}));
    });
  }
  const badInput = (e: RegistryError) => (e.kind === "bad_input" ? 400 : undefined);

  keyfobChange("issue", {
    form: forms.issue,
    formRefusal: badInput,
    act: (req, serial, form) => registry.issue(serial, str(form.customer).trim(), actorOf(req)).then(() => undefined),
  });

  // Unlock and withdraw act on the keyfob's live customer, as the page showed it.
  keyfobChange("unlock", {
    async act(req, serial) {
      const t = await registry.status(serial);
      if (!t.customer || t.state !== "locked") throw new RegistryError("not_locked", `token ${serial} is ${t.state}, not locked`);
      await unlockUnderRule(registry, t.customer, actorOf(req), req.session!.role, now(), serial);
    },
  });

  keyfobChange("withdraw", {
    form: forms.withdraw,
    formRefusal: (e) => (e.code === "needs_supervisor" ? 403 : undefined),
    async act(req, serial, form) {
      const t = await registry.status(serial);
      const reason = form.reason as WithdrawReason;
      if (!WITHDRAW_REASONS.includes(reason) || form.confirmed !== "yes") return { status: 400, page: P.withdrawFormPage(req.view!, t, { error: req.view!.w.confirmWithdrawMissing }) };
      if (!t.customer || !["issued", "active", "locked"].includes(t.state)) throw new RegistryError("no_token", `token ${serial} is ${t.state}; only an issued, active or locked keyfob is withdrawn`);
      await withdrawUnderRule(registry, t.customer, reason, actorOf(req), req.session!.role, now(), serial);
    },
  });

  keyfobChange("resync", {
    form: forms.resync,
    formRefusal: badInput,
    act: (req, serial, form) => registry.resync(serial, [str(form.code1).trim(), str(form.code2).trim()], actorOf(req)).then(() => undefined),
  });

  // ---------------------------------------------------------------- audit

  /**
   * A page cursor is one audit record number, given once; `before` and `after` read in opposite directions, so both
   * at once is refused rather than one silently winning. An empty field is no cursor (as for from= and to=).
   */
  function cursorOf(q: Record<string, unknown>, name: "before" | "after", w: P.View["w"], errors: string[]): number | undefined {
    const v = q[name];
    if (v === undefined || v === "") return undefined;
    if (typeof v === "string" && /^\d{1,15}$/.test(v)) return Number(v);
    errors.push(w.badCursor(name));
    return undefined;
  }

  function auditFilter(req: ConsoleRequest): { f: AuditFilter; raw: { serial: string; customer: string; staff: string; from: string; to: string }; error?: string } {
    const q = req.query as Record<string, string>;
    const w = req.view!.w;
    const raw = { serial: str(q.serial).trim().slice(0, 64), customer: str(q.customer).trim().slice(0, 64), staff: str(q.staff).trim().slice(0, 80), from: str(q.from), to: str(q.to) };
    const errors: string[] = [];
    const f: AuditFilter = {
      serial: raw.serial || undefined,
      customer: raw.customer || undefined,
      staff: raw.staff || undefined,
      page: /^\d{1,6}$/.test(q.page ?? "") ? Number(q.page) : 1,
      before: cursorOf(q, "before", w, errors),
      after: cursorOf(q, "after", w, errors),
    };
    if (f.before !== undefined && f.after !== undefined) errors.push(w.bothCursors);
    if (raw.from) {
      f.fromMs = zonedMidnight(raw.from, timeZone);
      if (f.fromMs === undefined) errors.push(`${w.from}: YYYY-MM-DD`);
    }
    if (raw.to) {
      const t = zonedMidnight(raw.to, timeZone);
      if (t === undefined) errors.push(`${w.to}: YYYY-MM-DD`);
      else f.toMs = t + 24 * 3600_000;
    }
    return { f, raw, error: errors.length ? errors.join(" ") : undefined };
  }

  app.get("/audit", async (request, reply) => {
    const req = request as ConsoleRequest;
    const { f, raw, error } = auditFilter(req);
    const r = error ? { records: [], page: 1, older: null, newer: null } : await auditPage(db, f);
    return send(reply, error ? 400 : 200, P.auditPageHtml(req.view!, { ...raw, ...r }, error));
  });

  app.get("/audit.csv", async (request, reply) => {
    const req = request as ConsoleRequest;
    const { f, error } = auditFilter(req);
    if (error) return send(reply, 400, P.messagePage(req.view!, req.view!.w.error, error));
    const stamp = new Date(now()).toISOString().slice(0, 10);
    async function* csv() {
      yield "\ufeff" + AUDIT_CSV_HEAD; // BOM: Excel in a Japanese locale reads UTF-8 only with it
      for await (const batch of auditBatches(db, f)) yield auditCsvRows(batch);
    }
    // Streamed: a failed batch aborts the download (no clean end), never a short file that looks whole.
    return reply
      .type("text/csv; charset=utf-8")
      .header("content-disposition", `attachment; filename="fobkit-audit-${stamp}.csv"`)
      .send(Readable.from(csv()));
  });

  // ---------------------------------------------------------------- supervisor: approvals, staff

  const approvals = async (req: ConsoleRequest, flash?: string, error?: string) => {
    const all = await listApprovals(db, undefined, 200);
    return P.approvalsPage(req.view!, all.filter((a) => a.state === "pending"), all.filter((a) => a.state !== "pending"), flash, error);
  };
  app.get("/approvals", async (request, reply) => {
    const req = request as ConsoleRequest;
    if (supervisorOnly(req, reply)) return reply;
    const done = str((req.query as Record<string, string>).done);
    const flash = done === "approve" ? req.view!.w.done_approve : done === "reject" ? req.view!.w.done_reject : undefined;
    return send(reply, 200, await approvals(req, flash));
  });

  for (const verdict of ["approve", "reject"] as const) {
    change<{ id: string }>(`/approvals/:id/${verdict}`, {
      supervisor: true,
      act: (req, { id }) => decideApproval(registry, id, verdict === "approve", actorOf(req), now()).then(() => undefined),
      // The API's statuses (api-error.ts): a malformed id 400, an unknown one 404, a request decided already 409.
      refused: async (req, reply, _params, _form, e) => ({ status: registryErrorStatus(e, reply), page: await approvals(req, undefined, message(req, e)) }),
      done: () => `/console/approvals?done=${verdict}`,
    });
  }

  app.get("/staff", async (request, reply) => {
    const req = request as ConsoleRequest;
    if (supervisorOnly(req, reply)) return reply;
    const done = str((req.query as Record<string, string>).done);
    return send(reply, 200, P.staffPage(req.view!, await listStaff(db), done === "unlock" ? req.view!.w.done_unlock_staff : undefined));
  });

  change<{ name: string }>("/staff/:name/unlock", {
    supervisor: true,
    act: (req, { name }) => unlockStaff(db, name, actorOf(req), now()).then(() => undefined),
    refused: async (req, _reply, _params, _form, e) => ({ status: 409, page: P.staffPage(req.view!, await listStaff(db), undefined, message(req, e)) }),
    done: () => "/console/staff?done=unlock",
  });
}
