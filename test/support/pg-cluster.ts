/**
 * A PostgreSQL cluster of the test's own: initdb into a temp directory,
 * pg_ctl on a private port, its socket in that directory. For fault tests
 * that terminate backends and restart the server, which must never happen
 * to the shared server on 5432.
 *
 * initdb refuses to run as root ("cannot be run as root"), and so does the
 * postmaster, so as root (CI runs the suite as root) every PostgreSQL
 * program runs as the `postgres` user through runuser(1), and the data
 * directory belongs to that user. `stop()` is idempotent and also runs when
 * the test process exits; a detached watchdog stops the server and removes
 * the directory if the test process dies without either (a killed vitest
 * worker), so a failed test leaves no server behind.
 */
import { execFile, execFileSync, spawn } from "node:child_process";
import { promisify } from "node:util";
import { chownSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";

/** The newest installed PostgreSQL's programs (Debian's layout), else `pg_config --bindir`. */
export function postgresBinDir(): string {
  const base = "/usr/lib/postgresql";
  const versions = existsSync(base) ? readdirSync(base).filter((v) => /^\d+$/.test(v) && existsSync(join(base, v, "bin", "initdb"))) : [];
  if (versions.length) return join(base, versions.sort((a, b) => Number(b) - Number(a))[0], "bin");
  try {
    return execFileSync("pg_config", ["--bindir"]).toString().trim();
  } catch {
    throw new Error("no PostgreSQL server programs (initdb, pg_ctl) found under /usr/lib/postgresql/*/bin or by pg_config; install the postgresql package");
  }
}

/**
 * The kernel hands out local ports for outgoing connections from
 * ip_local_port_range (32768-60999 by default), and so does listen(0).
 * A cluster on such a port can lose it while it restarts: any test's
 * outgoing connection may be given that port in the moment between the old
 * postmaster closing it and the new one binding it, and the restart fails
 * with "could not bind IPv4 address" (the likely cause of a restart that
 * failed in CI, whose log was gone with its directory). So the port comes from
 * below that range, where neither can land, and is checked free first.
 */
function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > 2048) return low;
  } catch {
    // not Linux: fall through to the IANA dynamic range's start
  }
  return 49152;
}

function portFree(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = createServer();
    s.once("error", () => res(false));
    s.listen(port, "127.0.0.1", () => s.close(() => res(true)));
  });
}

/** A free port in [1024 + (low-1024)/2, low): below the ephemeral range, and above the well-known services. */
export async function privatePort(): Promise<number> {
  const high = ephemeralLow();
  const low = Math.max(1024, Math.floor((1024 + high) / 2));
  for (let i = 0; i < 50; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await portFree(port)) return port;
  }
  throw new Error(`no free port found below the ephemeral range (${low}-${high - 1})`);
}

/** The server log's last lines, for an error that says why PostgreSQL did not start. */
function logTail(file: string): string {
  try {
    return readFileSync(file, "utf8").trim().split("\n").slice(-8).join("\n");
  } catch {
    return "(no server log)";
  }
}

export interface PgCluster {
  port: number;
  /** postgres://postgres@127.0.0.1:PORT/postgres */
  url: string;
  /** pg_ctl restart -m fast: every backend is told to exit, then the server starts again. */
  restart(): Promise<void>;
  stop(): void;
}

export async function startPgCluster(): Promise<PgCluster> {
  const bin = postgresBinDir();
  const root = userInfo().uid === 0;
  const dir = mkdtempSync(join(tmpdir(), "fobkit-pg-"));
  const data = join(dir, "data");
  // As root, PostgreSQL's programs run as postgres and must own the directory.
  const run = (prog: string, args: string[]) =>
    execFileSync(root ? "runuser" : join(bin, prog), root ? ["-u", "postgres", "--", join(bin, prog), ...args] : args, { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 });
  // Asynchronous, so a test's load keeps running while the server restarts.
  const runAsync = (prog: string, args: string[]) =>
    promisify(execFile)(root ? "runuser" : join(bin, prog), root ? ["-u", "postgres", "--", join(bin, prog), ...args] : args, { timeout: 60_000 });
  if (root) {
    const uid = Number(execFileSync("id", ["-u", "postgres"]).toString());
    const gid = Number(execFileSync("id", ["-g", "postgres"]).toString());
    chownSync(dir, uid, gid);
  }
  let stopped = false;
  const stop = () => {
    if (stopped) return;
    stopped = true;
    process.off("exit", stop);
    try {
      if (existsSync(join(data, "postmaster.pid"))) run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  process.on("exit", stop);
  // The watchdog: polls this process; once it is gone, stops the server and removes the directory.
  const pgCtl = root ? `runuser -u postgres -- ${join(bin, "pg_ctl")}` : join(bin, "pg_ctl");
  spawn("sh", ["-c", `while kill -0 ${process.pid} 2>/dev/null && [ -d '${dir}' ]; do sleep 1; done; [ -f '${data}/postmaster.pid' ] && ${pgCtl} -D '${data}' -m immediate stop; rm -rf '${dir}'`], {
    detached: true,
    stdio: "ignore",
  }).unref();
  let port = 0;
  const log = join(dir, "log");
  try {
    // --no-sync and fsync=off: a throwaway cluster; the restarts here are clean (fast) shutdowns.
    run("initdb", ["-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"]);
    // Another test file may take the port between the check and the bind: try a few.
    for (let attempt = 1; ; attempt++) {
      port = await privatePort();
      const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60`;
      try {
        run("pg_ctl", ["-D", data, "-l", log, "-o", opts, "-w", "-t", "30", "start"]);
        break;
      } catch (e) {
        if (attempt >= 5 || !/could not bind|could not create listen socket/.test(logTail(log))) throw e;
      }
    }
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    const why = `${err.stderr?.toString().trim() || err.message}\n${logTail(log)}`;
    stop();
    throw new Error(`could not start a private PostgreSQL cluster: ${why}`);
  }
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    // -l again: without it the new postmaster writes to pg_ctl's stdout, this process's pipe.
    restart: async () => {
      try {
        await runAsync("pg_ctl", ["-D", data, "-l", log, "-m", "fast", "-w", "-t", "30", "restart"]);
      } catch (e) {
        throw new Error(`the private PostgreSQL cluster on port ${port} did not restart: ${(e as Error).message.trim()}\n${logTail(log)}`);
      }
    },
    stop,
  };
}
