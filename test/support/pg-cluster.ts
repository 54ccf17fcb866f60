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
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
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

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once("error", rej);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => res(port));
    });
  });
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
  const port = await freePort();
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
  try {
    // --no-sync and fsync=off: a throwaway cluster; the restarts here are clean (fast) shutdowns.
    run("initdb", ["-D", data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"]);
    const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60`;
    run("pg_ctl", ["-D", data, "-l", join(dir, "log"), "-o", opts, "-w", "-t", "30", "start"]);
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    stop();
    throw new Error(`could not start a private PostgreSQL cluster: ${err.stderr?.toString().trim() || err.message}`);
  }
  return {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    // -l again: without it the new postmaster writes to pg_ctl's stdout, this process's pipe.
    restart: async () => void (await runAsync("pg_ctl", ["-D", data, "-l", join(dir, "log"), "-m", "fast", "-w", "-t", "30", "restart"])),
    stop,
  };
}
