/**
 * `fobkit bank serve`: the HTTP API over the same store as the CLI. Several
 * processes may serve one database; every rule holds across them.
 * `--workers N` runs N of them on one port (host/server/cluster.ts).
 */
import { fileURLToPath } from "node:url";
import { inWorker, reportListening, startWorkers, WorkerStartError } from "../server/cluster.js";
import { SETUP_RATE_DEFAULT } from "../server/app.js";
import { checkListen, ListenError, parseSetupRate, parseTrustProxy, startServer } from "../server/serve.js";
import { JSON_OPTION, KEK_OPTION, DB_OPTION, POLICY_OPTIONS, dbUrl, loadKeys, openStore, policyFrom } from "./bank-common.js";
import { CliError, EXIT_FAILED, EXIT_OK, intOption, type Command, type Io } from "./command.js";
import { SMTP_OPTIONS, mailerFrom } from "./bank-soft.js";

/** More workers than this gain nothing on one machine's cores and exhaust the database's connections. */
const MAX_WORKERS = 64;

export const bankServe: Command = {
  name: "bank serve",
  summary: "serve the bank API (OpenAPI at /openapi.json) and the staff console (/console/)",
  description:
    "Plain HTTP only on loopback; elsewhere give --tls-cert and --tls-key. Prints the URL it listens on\n" +
    "(port 0 picks a free one), then serves until SIGINT or SIGTERM.\n" +
    "The staff console is at <URL>/console/ (accounts: fobkit bank add-staff); times shown in $FOBKIT_CONSOLE_TZ (default Asia/Tokyo).\n" +
    "--console-listen HOST:PORT serves it on a listener of its own instead (its own origin; <URL>/console/ is then 404), so a script\n" +
    "that ever runs in the public app (/app/) cannot act as a signed-in staff member: recommended, on an address only staff reach.\n" +
    "Behind a TLS proxy or load balancer, name it with --trust-proxy so the audit records the client's\n" +
    "address from X-Forwarded-For; the header is ignored from any other peer.\n" +
    "--workers N runs N server processes on the one port (node:cluster), each with its own database pool, so\n" +
    "verification on PostgreSQL uses more than one core; a worker that dies is replaced. One per core is a good start.\n" +
    "On SQLite every verification takes the file's one write lock: more workers keep serving if one dies, but are not faster.\n" +
    "Software tokens: the app's set-up at /app/v1/setup/* needs no API key; --smtp URL sends the issuance mail\n" +
    "(トークン発行のご案内) after each issuance through the channel API (fobkit bank soft-config first).\n" +
    `The set-up routes are limited per client: an IPv4 address, or an IPv6 /64, since a host picks any address in its /64\n` +
    `(--setup-rate, default ${SETUP_RATE_DEFAULT}/min; over it: 429 rate_limited with Retry-After): the bank counts 5 password\n` +
    "guesses per issuance, the limit bounds probing many user IDs. Counted in the database, so the limit holds across --workers\n" +
    "and across servers on one database.\n" +
    "Example: fobkit bank serve --db postgres://bank@db/bank --kek-file /etc/fobkit/bank.kek --listen 127.0.0.1:8700 --workers 4",
  options: {
    db: DB_OPTION,
    listen: { type: "string", placeholder: "HOST:PORT", help: "address to listen on (default 127.0.0.1:8700)" },
    "console-listen": { type: "string", placeholder: "HOST:PORT", help: "the staff console's own listener, same TLS as --listen (default: the console at /console/ on --listen)" },
    "kek-file": KEK_OPTION,
    "tls-cert": { type: "string", placeholder: "FILE", help: "PEM certificate (chain) for HTTPS" },
    "tls-key": { type: "string", placeholder: "FILE", help: "PEM private key for HTTPS" },
    "trust-proxy": { type: "string", placeholder: "ADDRS", help: "comma-separated IPs or CIDR ranges of the proxies in front (default: none)" },
    ...POLICY_OPTIONS,
    ...SMTP_OPTIONS,
    "setup-rate": { type: "string", placeholder: "N/min", help: `requests per minute per client (IPv4 address or IPv6 /64) to /app/v1/setup/* (default ${SETUP_RATE_DEFAULT}/min; off: none)` },
    workers: { type: "string", placeholder: "N", help: `server processes sharing the port, 1-${MAX_WORKERS} (default 1)` },
    log: { type: "boolean", help: "log requests (never bodies or keys) as JSON on stdout" },
    json: JSON_OPTION,
  },
  run: async ({ values }, io) => {
    const workers = intOption(values, "workers", 1, MAX_WORKERS) ?? 1;
    if (workers > 1) return serveWorkers(values, workers, io);
    let trustProxy: string[] | undefined;
    let setupRate: number | false | undefined;
    try {
      trustProxy = values["trust-proxy"] === undefined ? undefined : parseTrustProxy(values["trust-proxy"]);
      setupRate = values["setup-rate"] === undefined ? undefined : parseSetupRate(values["setup-rate"]);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
    const keys = loadKeys(values, io, true);
    const policy = policyFrom(io.env, values);
    const mailer = await mailerFrom(values, io, "bank serve");
    const db = await openStore(values, io);
    let server;
    try {
      server = await startServer({
        db,
        keys,
        listen: values.listen ?? "127.0.0.1:8700",
        tlsCert: values["tls-cert"],
        tlsKey: values["tls-key"],
        policy,
        logger: !!values.log,
        trustProxy,
        mailer,
        setupRate,
        consoleListen: values["console-listen"],
      });
    } catch (e) {
      await db.close();
      if (e instanceof ListenError) throw new CliError(e.message);
      if ((e as NodeJS.ErrnoException).code === "EADDRINUSE" || (e as NodeJS.ErrnoException).code === "EACCES") {
        const where = (e as { listen?: string }).listen ? `${(e as { listen?: string }).listen} (--console-listen)` : (values.listen ?? "127.0.0.1:8700");
        throw new CliError(`cannot listen on ${where}: ${(e as NodeJS.ErrnoException).code}`, 3, "listen_failed");
      }
      throw e;
    }
    const consoleUrl = server.consoleUrl;
    if (inWorker()) reportListening(server.url, db.description, consoleUrl);
    else
      io.stdout.write(
        values.json
          ? JSON.stringify({ listening: server.url, db: db.description, ...(consoleUrl ? { console: consoleUrl + "/console/" } : {}) }) + "\n"
          : `fobkit bank serve: listening on ${server.url} (${db.description})${consoleUrl ? `, staff console on ${consoleUrl}/console/` : ""}\n`,
      );
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      if (io.signal.aborted) return resolve();
      io.signal.addEventListener("abort", stop, { once: true });
      process.once("SIGTERM", stop);
    });
    await server.close();
    await db.close();
    if (!inWorker()) io.stderr.write("fobkit bank serve: stopped\n");
    return EXIT_OK;
  },
};

/** The primary of `--workers N`: checks what it can once, migrates once, then supervises N ordinary `bank serve` workers. */
async function serveWorkers(values: Record<string, any>, count: number, io: Io): Promise<number> {
  try {
    if (values["trust-proxy"] !== undefined) parseTrustProxy(values["trust-proxy"]);
    if (values["setup-rate"] !== undefined) parseSetupRate(values["setup-rate"]);
    checkListen({ listen: values.listen ?? "127.0.0.1:8700", tlsCert: values["tls-cert"], tlsKey: values["tls-key"], consoleListen: values["console-listen"] });
  } catch (e) {
    throw new CliError((e as Error).message);
  }
  if (/^sqlite::memory:/.test(dbUrl(values, io))) throw new CliError("--workers: an in-memory SQLite database lives in one process; give a file (sqlite:PATH) or PostgreSQL");
  loadKeys(values, io, true);
  policyFrom(io.env, values);
  // Migrate once here rather than in N workers at once.
  await (await openStore(values, io)).close();
  const args = ["bank", "serve"];
  for (const [name, v] of Object.entries(values)) {
    if (name === "workers" || v === undefined || v === false) continue;
    args.push(`--${name}`, ...(v === true ? [] : [String(v)]));
  }
  const log = (line: string) => io.stderr.write(`fobkit bank serve: ${line}\n`);
  let pool;
  try {
    pool = await startWorkers({ count, exec: fileURLToPath(new URL("./serve-worker.js", import.meta.url)), args, log });
  } catch (e) {
    if (e instanceof WorkerStartError) throw new CliError(e.message, EXIT_FAILED, "worker_failed");
    throw e;
  }
  io.stdout.write(
    values.json
      ? JSON.stringify({ listening: pool.url, db: pool.db, ...(pool.consoleUrl ? { console: pool.consoleUrl + "/console/" } : {}), workers: pool.pids() }) + "\n"
      : `fobkit bank serve: listening on ${pool.url} (${pool.db})${pool.consoleUrl ? `, staff console on ${pool.consoleUrl}/console/` : ""}, ${count} workers\n`,
  );
  const failed = await new Promise<string | undefined>((resolve) => {
    if (io.signal.aborted) return resolve(undefined);
    io.signal.addEventListener("abort", () => resolve(undefined), { once: true });
    process.once("SIGTERM", () => resolve(undefined));
    pool.failed.then(resolve);
  });
  await pool.stop();
  if (failed) throw new CliError(failed, EXIT_FAILED, "workers_failed");
  log("stopped");
  return EXIT_OK;
}
