/**
 * `fobkit bank serve`: the HTTP API over the same store as the CLI. Several
 * processes may serve one PostgreSQL database; every rule holds across them.
 */
import { ListenError, parseTrustProxy, startServer } from "../server/serve.js";
import { JSON_OPTION, KEK_OPTION, DB_OPTION, POLICY_OPTIONS, loadKeys, openStore, policyFrom } from "./bank-common.js";
import { CliError, EXIT_OK, type Command } from "./command.js";

export const bankServe: Command = {
  name: "bank serve",
  summary: "serve the bank API (OpenAPI at /openapi.json) and the staff console (/console/)",
  description:
    "Plain HTTP only on loopback; elsewhere give --tls-cert and --tls-key. Prints the URL it listens on\n" +
    "The staff console is at <URL>/console/ (accounts: fobkit bank add-staff); times shown in $FOBKIT_CONSOLE_TZ (default Asia/Tokyo).\n" +
    "(port 0 picks a free one), then serves until SIGINT or SIGTERM.\n" +
    "Behind a TLS proxy or load balancer, name it with --trust-proxy so the audit records the client's\n" +
    "address from X-Forwarded-For; the header is ignored from any other peer.\n" +
    "Example: fobkit bank serve --db postgres://bank@db/bank --kek-file /etc/fobkit/bank.kek --listen 127.0.0.1:8700",
  options: {
    db: DB_OPTION,
    listen: { type: "string", placeholder: "HOST:PORT", help: "address to listen on (default 127.0.0.1:8700)" },
    "kek-file": KEK_OPTION,
    "tls-cert": { type: "string", placeholder: "FILE", help: "PEM certificate (chain) for HTTPS" },
    "tls-key": { type: "string", placeholder: "FILE", help: "PEM private key for HTTPS" },
    "trust-proxy": { type: "string", placeholder: "ADDRS", help: "comma-separated IPs or CIDR ranges of the proxies in front (default: none)" },
    ...POLICY_OPTIONS,
    log: { type: "boolean", help: "log requests (never bodies or keys) as JSON on stdout" },
    json: JSON_OPTION,
  },
  run: async ({ values }, io) => {
    let trustProxy: string[] | undefined;
    try {
      trustProxy = values["trust-proxy"] === undefined ? undefined : parseTrustProxy(values["trust-proxy"]);
    } catch (e) {
      throw new CliError((e as Error).message);
    }
    const keys = loadKeys(values, io, true);
    const policy = policyFrom(io.env, values);
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
      });
    } catch (e) {
      await db.close();
      if (e instanceof ListenError) throw new CliError(e.message);
      if ((e as NodeJS.ErrnoException).code === "EADDRINUSE" || (e as NodeJS.ErrnoException).code === "EACCES") {
        throw new CliError(`cannot listen on ${values.listen ?? "127.0.0.1:8700"}: ${(e as NodeJS.ErrnoException).code}`, 3, "listen_failed");
      }
      throw e;
    }
    io.stdout.write(values.json ? JSON.stringify({ listening: server.url, db: db.description }) + "\n" : `fobkit bank serve: listening on ${server.url} (${db.description})\n`);
    await new Promise<void>((resolve) => {
      const stop = () => resolve();
      if (io.signal.aborted) return resolve();
      io.signal.addEventListener("abort", stop, { once: true });
      process.once("SIGTERM", stop);
    });
    await server.close();
    await db.close();
    io.stderr.write("fobkit bank serve: stopped\n");
    return EXIT_OK;
  },
};
