/**
 * The set-up routes' rate limit counted in the bank's database, so the limit
 * holds for the bank, not per process: @fastify/rate-limit's default store
 * is a map in each process, so `bank serve --workers N` allowed N times the
 * limit, and N hosts behind a load balancer N times that again. Why the
 * database rather than node:cluster's primary (counters in the primary,
 * asked over IPC): that covers one machine only, while every worker of every
 * host already shares the database; and no new moving part (a Redis, which
 * @fastify/rate-limit also supports) for a bank to run, secure and fail over.
 * The cost is one upsert per set-up request, on routes that write to the
 * database anyway (each start counts against its issuance).
 *
 * One row per key (the client: clientKey, an IPv6 client's /64) and fixed window, as the plugin's LocalStore
 * counts (store/LocalStore.js: a window starts at the first hit and lasts
 * timeWindow); the upsert is one statement, atomic on both engines, so hits
 * from any number of processes at once are all counted. When the database
 * cannot be reached the request fails (503) rather than going unlimited.
 * Rows of windows long over are deleted at most once a minute per process.
 *
 * Windows start, end and are swept on the database's clock (clockSql), never
 * a host's: with each host's clock, a host running a minute ahead of the
 * others reset every window another host had started (a client alternating
 * between hosts was never limited) and swept live rows, and one running
 * behind kept windows open past their end. This process's clock only times
 * its own memory of refused keys and its sweeps (intervals, not instants
 * compared with another host's).
 */
import { clockSql, type Database } from "../registry/database.js";

/** Old windows are swept at most this often by each process. */
const SWEEP_MS = 60_000;
/** Keys this process knows to be over the limit, kept to answer 429 without a write; the oldest dropped first. */
const MAX_OVER = 10_000;

interface RateResult {
  current: number;
  ttl: number;
}

/**
 * A store class for @fastify/rate-limit's `store` option (it calls `new Store(params)`), over `db`.
 * `max`: the route's limit. A key the database has already counted over it, in a window not yet
 * over, is answered from this process's memory until that window ends: the request is refused
 * anyway, and a flood of refused requests (the attack review: every 429 cost an upsert and a commit,
 * holding pooled connections verifications need) then costs no database work. It can only refuse
 * what the database already refused, so it never lets more through.
 */
export function databaseRateStore(db: Database, now: () => number = Date.now, max = Infinity) {
  let sweptAt = 0;
  /** until: when the window ends, on this process's clock (its `at` plus the database's ttl). */
  const over = new Map<string, { hits: number; until: number }>();
  const clock = clockSql(db.dialect);
  return class DatabaseRateStore {
    /** The plugin passes the route's window (index.js applyRateLimit), though its types leave it out. */
    incr(key: string, cb: (err: Error | null, result?: RateResult) => void, timeWindow?: number): void {
      if (typeof timeWindow !== "number" || !(timeWindow > 0)) return cb(new Error(`rate limit store: no time window from @fastify/rate-limit (got ${timeWindow})`));
      const at = now();
      const known = over.get(key);
      if (known && at < known.until) {
        known.hits += 1;
        return cb(null, { current: known.hits, ttl: known.until - at });
      }
      if (known) over.delete(key);
      // In a transaction: on SQLite that joins the group commit (a statement outside one would land in whatever batch is open).
      db.tx((t) => t.get<{ hits: number; window_start: number; now: number }>(
        `INSERT INTO rate_limits (key, window_start, hits) VALUES (?, ${clock}, 1)
         ON CONFLICT (key) DO UPDATE SET
           hits = CASE WHEN rate_limits.window_start <= ${clock} - ? THEN 1 ELSE rate_limits.hits + 1 END,
           window_start = CASE WHEN rate_limits.window_start <= ${clock} - ? THEN ${clock} ELSE rate_limits.window_start END
         RETURNING hits, window_start, ${clock} AS now`,
        [key, timeWindow, timeWindow],
      )).then(
        (row) => {
          const hits = Number(row!.hits);
          const ttl = Math.max(0, Number(row!.window_start) + timeWindow - Number(row!.now));
          if (hits > max) {
            if (over.size >= MAX_OVER) over.delete(over.keys().next().value!);
            over.set(key, { hits, until: at + ttl });
          }
          cb(null, { current: hits, ttl });
          if (at - sweptAt >= SWEEP_MS) {
            sweptAt = at;
            db.run(`DELETE FROM rate_limits WHERE window_start <= ${clock} - ?`, [timeWindow]).catch(() => undefined);
          }
        },
        (e) => cb(e as Error),
      );
    }

    child(): DatabaseRateStore {
      return new DatabaseRateStore();
    }
  };
}
