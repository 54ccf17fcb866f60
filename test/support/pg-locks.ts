/**
 * Forcing an interleaving on the shared PostgreSQL server: a client in a
 * test's own schema (the test database URL carries it as ?schema=), and a
 * wait until N sessions are queued behind one holder. Only sessions blocked
 * by that holder, directly or behind another of its waiters
 * (pg_blocking_pids, followed transitively), count: other tests on the same
 * server wait on locks too, and counting every lock wait once let a test go
 * on before its own requests were queued.
 */
import pg from "pg";

/** A client on the test database with search_path set to the URL's schema. */
export async function connectInSchema(url: string): Promise<pg.Client> {
  const schema = new URL(url.replace("@/", "@localhost/")).searchParams.get("schema");
  if (!schema) throw new Error(`test database URL names no schema: ${url}`);
  const c = new pg.Client({ connectionString: url.replace(/[?&]schema=[^&]*/, "") });
  await c.connect();
  await c.query(`SET search_path TO ${schema}`);
  return c;
}

/** The server process id of a client's session. */
export async function backendPid(c: pg.Client): Promise<number> {
  return (await c.query("SELECT pg_backend_pid() AS pid")).rows[0].pid;
}

/** Waits (polling `watcher`) until at least `n` sessions are queued behind `holderPid`; throws after ~5 s. */
export async function waitQueuedBehind(watcher: pg.Client, holderPid: number, n: number, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const r = await watcher.query(
      `WITH RECURSIVE queued(pid) AS (
         SELECT pid FROM pg_stat_activity WHERE $1::int = ANY (pg_blocking_pids(pid))
         UNION SELECT a.pid FROM pg_stat_activity a JOIN queued q ON q.pid = ANY (pg_blocking_pids(a.pid)))
       SELECT count(*)::int AS n FROM queued`,
      [holderPid],
    );
    if (r.rows[0].n >= n) return;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error(`never ${n} queued behind the holder: ${what}`);
}
