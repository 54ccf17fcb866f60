/**
 * Several server processes on one port (`bank serve --workers N`), through
 * node:cluster: the primary process owns the listening socket and hands
 * each new connection to a worker in turn (round-robin, Node's default on
 * Linux); every worker is a whole server with its own database pool, key
 * ring and API-key cache. Correctness across workers comes from the
 * database, as it does across machines (DESIGN.md: stateless servers).
 *
 * The primary serves nothing itself. It starts the workers, reports the
 * address once all of them listen, replaces a worker that dies (a crash,
 * an OOM kill, a kill -9) so the server recovers without a restart, and on
 * stop asks each worker to finish (SIGTERM) and waits for it.
 */
import cluster, { type Worker } from "node:cluster";

/** What a worker sends the primary once it listens. */
export interface ListeningMessage {
  fobkit: "listening";
  url: string;
  db: string;
  /** The console's own listener (--console-listen), if any. */
  consoleUrl?: string;
}

export function isListeningMessage(m: unknown): m is ListeningMessage {
  return typeof m === "object" && m !== null && (m as ListeningMessage).fobkit === "listening" && typeof (m as ListeningMessage).url === "string";
}

/** In a worker: tells the primary this worker serves `url`. */
export function reportListening(url: string, db: string, consoleUrl?: string): void {
  if (cluster.isWorker && process.send) process.send({ fobkit: "listening", url, db, ...(consoleUrl ? { consoleUrl } : {}) } satisfies ListeningMessage);
}

export const inWorker = (): boolean => cluster.isWorker;

/** A replaced worker is started this long after the death, so a crash loop does not spin. */
const RESPAWN_DELAY_MS = 500;
/** More deaths than this within RESPAWN_WINDOW_MS and the primary gives up (something is wrong beyond one process). */
const MAX_RESPAWNS = 10;
const RESPAWN_WINDOW_MS = 60_000;

export class WorkerStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WorkerStartError";
  }
}

export interface WorkersOptions {
  count: number;
  /** The module each worker runs, and its arguments (process.argv.slice(2) there). */
  exec: string;
  args: string[];
  /** One line for the operator (stderr). */
  log(line: string): void;
}

export interface Workers {
  url: string;
  db: string;
  consoleUrl?: string;
  /** The live workers' process ids. */
  pids(): number[];
  /** Resolves when the primary gave up replacing workers (crash loop); the caller stops. */
  failed: Promise<string>;
  /** SIGTERM to every worker; resolves once all have exited. */
  stop(): Promise<void>;
}

/**
 * The primary's Node flags for the workers, minus code given on the command
 * line (`node -e ...` / `-p`, and its --input-type): cluster.fork passes
 * execArgv before `exec`, and Node would run that code instead of `exec`.
 */
export function workerExecArgv(execArgv: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const a = execArgv[i];
    if (a === "-e" || a === "--eval" || a === "-p" || a === "--print") {
      i++;
      continue;
    }
    if (/^(--eval|--print|--input-type)=/.test(a) || a === "-pe") continue;
    if (a === "--input-type") {
      i++;
      continue;
    }
    out.push(a);
  }
  return out;
}

export async function startWorkers(o: WorkersOptions): Promise<Workers> {
  if (!cluster.isPrimary) throw new Error("startWorkers runs in the primary process");
  cluster.setupPrimary({ exec: o.exec, args: o.args, execArgv: workerExecArgv(process.execArgv) });
  const live = new Set<Worker>();
  let stopping = false;
  const deaths: number[] = [];
  let giveUp!: (why: string) => void;
  const failed = new Promise<string>((res) => (giveUp = res));

  const fork = (): Promise<ListeningMessage> => {
    const w = cluster.fork();
    live.add(w);
    return new Promise((resolve, reject) => {
      let listening = false;
      w.on("message", (m) => {
        if (!listening && isListeningMessage(m)) {
          listening = true;
          resolve(m);
        }
      });
      w.on("exit", (code, signal) => {
        live.delete(w);
        if (!listening) return reject(new WorkerStartError(`a worker exited before it listened (${signal ?? "exit " + code}); its message is above`));
        if (stopping) return;
        const now = Date.now();
        deaths.push(now);
        while (deaths.length && deaths[0] < now - RESPAWN_WINDOW_MS) deaths.shift();
        if (deaths.length > MAX_RESPAWNS) {
          giveUp(`${deaths.length} workers died within ${RESPAWN_WINDOW_MS / 1000} s; not starting more`);
          return;
        }
        o.log(`worker ${w.process.pid} died (${signal ?? "exit " + code}); starting another`);
        setTimeout(() => {
          if (stopping) return;
          fork().then(
            () => o.log(`a new worker serves: ${live.size} of ${o.count} serving`),
            (e: Error) => giveUp(e.message),
          );
        }, RESPAWN_DELAY_MS);
      });
    });
  };

  const stop = async () => {
    stopping = true;
    await Promise.all(
      [...live].map(
        (w) =>
          new Promise<void>((res) => {
            if (w.isDead()) return res();
            w.once("exit", () => res());
            w.process.kill("SIGTERM");
          }),
      ),
    );
  };

  let first: ListeningMessage;
  try {
    const all = await Promise.all(Array.from({ length: o.count }, fork));
    first = all[0];
    const urls = new Set(all.map((m) => m.url));
    if (urls.size !== 1) throw new WorkerStartError(`workers listen on different addresses: ${[...urls].join(", ")}`);
  } catch (e) {
    await stop();
    throw e;
  }
  return { url: first.url, db: first.db, consoleUrl: first.consoleUrl, pids: () => [...live].map((w) => w.process.pid!).filter(Boolean), failed, stop };
}
