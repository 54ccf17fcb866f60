/**
 * Starting the API: opens the store, loads the key file, listens. Plain
 * HTTP is allowed only on a loopback address, because registration bodies
 * carry seeds; anywhere else needs --tls-cert and --tls-key (or a TLS proxy
 * on the same host, in front of a loopback listener).
 */
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { FastifyInstance } from "fastify";
import type { Database } from "../registry/database.js";
import type { KeyRing } from "../registry/key-ring.js";
import { Registry, type Policy } from "../registry/registry.js";
import { buildApp, buildConsoleApp } from "./app.js";
import type { IssuanceMailer } from "../soft/mail.js";
import { scryptParams } from "../registry/staff.js";

export class ListenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ListenError";
  }
}

export function parseListen(listen: string): { host: string; port: number } {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]+)):(\d{1,5})$/.exec(listen);
  if (!m) throw new ListenError(`--listen must be HOST:PORT (e.g. 127.0.0.1:8700 or [::1]:8700), got ${JSON.stringify(listen)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new ListenError(`--listen: port ${port} is above 65535`);
  return { host: m[1] ?? m[2], port };
}

export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  if (isIP(host) === 6) return host === "::1" || /^::ffff:127\./i.test(host);
  return false;
}

/**
 * --trust-proxy: the addresses (IPs or CIDR ranges) of the proxies or load
 * balancers in front of the server. A request from one of them has its
 * client taken from X-Forwarded-For (the nearest address not itself
 * trusted), so the audit names the customer's or staff member's address and
 * not the balancer's; from anywhere else the header is ignored, so a client
 * cannot choose its own audited address. There is no switch to trust every
 * peer, and a /0 range is refused: list the proxies.
 */
export function parseTrustProxy(value: string): string[] {
  const entries = value.split(",").map((s) => s.trim()).filter(Boolean);
  if (entries.length === 0) throw new ListenError("--trust-proxy needs at least one address, e.g. 127.0.0.1 or 10.0.0.0/8");
  for (const e of entries) {
    const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(e);
    const family = m ? isIP(m[1]) : 0;
    const bits = m?.[2] === undefined ? undefined : Number(m[2]);
    if (!m || family === 0 || (bits !== undefined && (bits < 1 || bits > (family === 4 ? 32 : 128)))) {
      throw new ListenError(`--trust-proxy: ${JSON.stringify(e)} is not an IP address or CIDR range of 1 to ${family === 6 ? 128 : 32} bits (e.g. 127.0.0.1, 10.0.0.0/8, fd00::/8)`);
    }
  }
  return entries;
}

export interface ServeOptions {
  db: Database;
  keys: KeyRing;
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  policy?: Partial<Policy>;
  now?: () => number;
  logger?: boolean;
  /** Addresses of trusted proxies (parseTrustProxy); default none. */
  trustProxy?: string[];
  /** Sends software-token issuance mails (`--smtp URL`). */
  mailer?: IssuanceMailer;
  /** Set-up requests per minute per client, an IPv4 address or an IPv6 /64 (clientKey) (`--setup-rate`); false: none; default SETUP_RATE_DEFAULT. */
  setupRate?: number | false;
  /**
   * HOST:PORT of the staff console's own listener (`--console-listen`), same TLS as --listen; the main listener then
   * answers 404 under /console/. Default: the console on the main listener.
   */
  consoleListen?: string;
}

/**
 * `--setup-rate`: "N/min" (or just N), requests per minute per client (IPv4 address or IPv6 /64) to the public set-up routes, 1-100000;
 * "off" for none (a proxy in front limits instead). ListenError on anything else.
 */
export function parseSetupRate(text: string): number | false {
  if (text === "off") return false;
  const m = /^([0-9]{1,6})(?:\/min)?$/.exec(text.trim());
  const n = m ? Number(m[1]) : NaN;
  if (!(n >= 1 && n <= 100_000)) throw new ListenError(`--setup-rate must be N/min with N from 1 to 100000 (e.g. 30/min), or off; got ${JSON.stringify(text).slice(0, 40)}`);
  return n;
}

/** The listen address and TLS choice, checked (ListenError) before anything starts. */
export function checkListen(o: Pick<ServeOptions, "listen" | "tlsCert" | "tlsKey" | "consoleListen">): {
  host: string;
  port: number;
  tls: boolean;
  console?: { host: string; port: number };
} {
  const { host, port } = parseListen(o.listen);
  if (!!o.tlsCert !== !!o.tlsKey) throw new ListenError("give both --tls-cert and --tls-key, or neither");
  const tls = !!o.tlsCert;
  if (!tls && !isLoopback(host)) {
    throw new ListenError(`refusing plain HTTP on ${host}: registration carries seeds, which travel only over HTTPS. Listen on 127.0.0.1 or give --tls-cert and --tls-key`);
  }
  if (o.consoleListen === undefined) return { host, port, tls };
  let c: { host: string; port: number };
  try {
    c = parseListen(o.consoleListen);
  } catch (e) {
    throw new ListenError((e as Error).message.replace(/^--listen/, "--console-listen"));
  }
  if (!tls && !isLoopback(c.host)) {
    throw new ListenError(`refusing plain HTTP on ${c.host} for --console-listen: staff passwords and sessions travel only over HTTPS. Listen on 127.0.0.1 or give --tls-cert and --tls-key`);
  }
  if (c.port !== 0 && c.port === port && (c.host === host || c.host === "0.0.0.0" || host === "0.0.0.0" || c.host === "::" || host === "::")) {
    throw new ListenError(`--console-listen ${o.consoleListen} is the --listen address: the console needs a port of its own (its own origin)`);
  }
  return { host, port, tls, console: c };
}

function urlOf(tls: boolean, host: string, address: ReturnType<FastifyInstance["server"]["address"]>, port: number): string {
  const actualPort = typeof address === "object" && address ? address.port : port;
  return `${tls ? "https" : "http"}://${isIP(host) === 6 ? `[${host}]` : host}:${actualPort}`;
}

export async function startServer(
  o: ServeOptions,
): Promise<{ app: FastifyInstance; url: string; consoleUrl?: string; registry: Registry; close(): Promise<void> }> {
  const { host, port, tls, console: consoleAt } = checkListen(o);
  let https: { key: Buffer; cert: Buffer } | undefined;
  if (tls) {
    try {
      https = { cert: readFileSync(o.tlsCert!), key: readFileSync(o.tlsKey!) };
    } catch (e) {
      throw new ListenError(`cannot read TLS files: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
  }
  // A staff-password cost the environment sets wrong fails here, not at the first sign-in.
  try {
    scryptParams();
  } catch (e) {
    throw new ListenError((e as Error).message);
  }
  const registry = new Registry(o.db, { keys: o.keys, policy: o.policy, now: o.now });
  const app = buildApp({ registry, https, logger: o.logger, trustProxy: o.trustProxy, now: o.now, mailer: o.mailer, setupRate: o.setupRate, console: !consoleAt });
  await app.listen({ host, port });
  let consoleApp: FastifyInstance | undefined;
  if (consoleAt) {
    consoleApp = buildConsoleApp({ registry, https, logger: o.logger, trustProxy: o.trustProxy, now: o.now });
    try {
      await consoleApp.listen(consoleAt);
    } catch (e) {
      await app.close();
      // So the caller names the address that failed (EADDRINUSE, EACCES), not --listen's.
      if (e && typeof e === "object") (e as { listen?: string }).listen = o.consoleListen;
      throw e;
    }
  }
  // What a killed import left (its staged rows hold its serials) is cleared at start, not only by the next import:
  // in the background, since a large batch takes seconds of short transactions; never a live import's (clearStaleImports).
  const clearing = registry.clearStaleImports({ name: "server", source: "start" }).then(
    (r) => {
      if (r.discarded.length + r.orphaned.length) process.stderr.write(`fobkit bank serve: cleared the staged rows of dead imports: ${[...r.discarded, ...r.orphaned].join(", ")}\n`);
    },
    (e) => process.stderr.write(`fobkit bank serve: could not clear dead imports at start (the next import will): ${(e as Error).message}\n`),
  );
  return {
    app,
    registry,
    url: urlOf(tls, host, app.server.address(), port),
    ...(consoleApp && consoleAt ? { consoleUrl: urlOf(tls, consoleAt.host, consoleApp.server.address(), consoleAt.port) } : {}),
    close: async () => {
      await clearing;
      await consoleApp?.close();
      await app.close();
    },
  };
}
