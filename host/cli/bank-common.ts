/**
 * What every `fobkit bank ...` command shares: --db, --kek-file, --staff,
 * --json; opening the store; printing a result or a refusal; exit statuses
 * (0 done/accepted, 1 refused, 2 bad usage or input, 3 failed).
 */
import { wallClock } from "../clock.js";
import { PskcError } from "../pskc/index.js";
import { DatabaseBusyError, type Database } from "../registry/database.js";
import { KeyFileError, KeyRing } from "../registry/key-ring.js";
import { defaultDbUrl, openMigrated } from "../registry/open-database.js";
import { DEFAULT_POLICY, MAX_WINDOW, Registry, type Policy } from "../registry/registry.js";
import { RegistryError, type Actor } from "../registry/types.js";
import { CliError, EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, type Io, type OptionSpec } from "./command.js";

export const DB_OPTION: OptionSpec = {
  type: "string",
  placeholder: "URL",
  help: "sqlite:PATH, postgres://USER@HOST/DB or, over the local socket, postgres://USER@/DB?host=/var/run/postgresql (default $FOBKIT_BANK_DB, else sqlite:$XDG_DATA_HOME/fobkit/bank.sqlite)",
};
export const KEK_OPTION: OptionSpec = {
  type: "string",
  placeholder: "FILE",
  help: "key-encryption key file for seeds (default $FOBKIT_BANK_KEK_FILE)",
};
export const JSON_OPTION: OptionSpec = { type: "boolean", help: "print the result (or the refusal) as JSON on stdout" };
export const STAFF_OPTION: OptionSpec = { type: "string", placeholder: "NAME", help: "staff name for the audit record (default $USER)" };

export const COMMON_OPTIONS = { db: DB_OPTION, json: JSON_OPTION, staff: STAFF_OPTION };
export const SEED_OPTIONS = { ...COMMON_OPTIONS, "kek-file": KEK_OPTION };

export function dbUrl(values: Record<string, any>, io: Io): string {
  return values.db ?? io.env.FOBKIT_BANK_DB ?? defaultDbUrl(io.env);
}

export function kekPath(values: Record<string, any>, io: Io): string | undefined {
  return values["kek-file"] ?? io.env.FOBKIT_BANK_KEK_FILE ?? undefined;
}

export function loadKeys(values: Record<string, any>, io: Io, needed: boolean): KeyRing {
  const path = kekPath(values, io);
  if (!path) {
    if (needed) throw new CliError("this command needs the key-encryption key: give --kek-file FILE or set FOBKIT_BANK_KEK_FILE (create one with `fobkit bank init-kek --kek-file FILE`)");
    return KeyRing.none("no --kek-file given");
  }
  try {
    return KeyRing.fromFile(path);
  } catch (e) {
    if (e instanceof KeyFileError) throw new CliError(e.message);
    throw e;
  }
}

/** Policy from the environment, so CLI and servers can be configured alike. */
export function policyFrom(env: NodeJS.ProcessEnv, values: Record<string, any> = {}): Partial<Policy> {
  const p: Partial<Policy> = {};
  const pick = (key: keyof Policy, flag: string, envName: string) => {
    const raw = values[flag] ?? env[envName];
    if (raw === undefined) return;
    if (!/^[0-9]{1,6}$/.test(String(raw))) throw new CliError(`--${flag} / ${envName} must be a whole number, got ${JSON.stringify(raw)}`);
    p[key] = Number(raw);
  };
  pick("window", "window", "FOBKIT_BANK_WINDOW");
  pick("lockAfter", "lock-after", "FOBKIT_BANK_LOCK_AFTER");
  pick("activationWindow", "activation-window", "FOBKIT_BANK_ACTIVATION_WINDOW");
  pick("resyncWindow", "resync-window", "FOBKIT_BANK_RESYNC_WINDOW");
  if (p.lockAfter === 0) throw new CliError("--lock-after must be at least 1");
  if (p.window !== undefined && p.window > MAX_WINDOW) {
    throw new CliError(
      `--window / FOBKIT_BANK_WINDOW must be at most ${MAX_WINDOW} steps, got ${p.window}: the clock model already follows each keyfob's drift, ` +
        `and ${MAX_WINDOW} covers a year unused at ${DEFAULT_POLICY.maxDriftPpm} ppm; resync a keyfob further out (bank resync) instead`,
    );
  }
  return p;
}

export const POLICY_OPTIONS: Record<string, OptionSpec> = {
  window: { type: "string", placeholder: "STEPS", help: `steps each side of the learned drift, 0-${MAX_WINDOW} (default ${DEFAULT_POLICY.window}; $FOBKIT_BANK_WINDOW)` },
  "lock-after": { type: "string", placeholder: "N", help: `wrong codes in a row that lock a token (default ${DEFAULT_POLICY.lockAfter}; $FOBKIT_BANK_LOCK_AFTER)` },
};

export function staffActor(values: Record<string, any>, io: Io): Actor {
  const name = values.staff ?? io.env.USER ?? io.env.LOGNAME ?? "unknown";
  if (!/^[A-Za-z0-9._@-]{1,64}$/.test(name)) throw new CliError("--staff must be 1-64 of A-Z a-z 0-9 . _ @ -");
  return { name: "staff:" + name, source: "cli" };
}

export function required(values: Record<string, any>, name: string, command: string): string {
  const v = values[name];
  if (v === undefined || v === "") throw new CliError(`fobkit ${command}: --${name} is required`);
  return v;
}

export async function openStore(values: Record<string, any>, io: Io): Promise<Database> {
  const url = dbUrl(values, io);
  try {
    return await openMigrated(url);
  } catch (e) {
    if (e instanceof RangeError) throw new CliError(e.message);
    const msg = (e as Error).message.replace(/postgres(ql)?:\/\/[^@\s]*@/g, "postgres://***@");
    throw new CliError(`cannot open the database: ${msg}`, EXIT_FAILED, "db_unavailable");
  }
}

export interface BankRun {
  db: Database;
  registry: Registry;
  actor: Actor;
}

/**
 * Opens the store, runs fn, prints its result; maps refusals and bad input
 * to their exit statuses, with the reason code on stderr and in --json.
 */
export async function runBank(
  command: string,
  values: Record<string, any>,
  io: Io,
  opts: { needsKek: boolean },
  fn: (r: BankRun) => Promise<{ json: unknown; text: string }>,
): Promise<number> {
  const keys = loadKeys(values, io, opts.needsKek);
  const policy = policyFrom(io.env, values);
  const actor = staffActor(values, io);
  const db = await openStore(values, io);
  try {
    const registry = new Registry(db, { keys, policy, now: wallClock(io.env) });
    const out = await fn({ db, registry, actor });
    io.stdout.write(values.json ? JSON.stringify({ ok: true, ...(out.json as object) }) + "\n" : out.text.endsWith("\n") || !out.text ? out.text : out.text + "\n");
    return EXIT_OK;
  } catch (e) {
    return reportError(command, e, values, io);
  } finally {
    await db.close();
  }
}

export function reportError(command: string, e: unknown, values: Record<string, any>, io: Io): number {
  let code: string;
  let message: string;
  let exit: number;
  let detail: Record<string, unknown> | undefined;
  if (e instanceof RegistryError) {
    code = e.code;
    message = e.message;
    exit = e.kind === "refused" ? EXIT_REFUSED : e.kind === "unavailable" ? EXIT_FAILED : EXIT_USAGE;
    detail = e.detail;
  } else if (e instanceof PskcError) {
    code = "pskc_" + e.code;
    message = e.message;
    exit = e.code === "duplicate_serial" ? EXIT_REFUSED : EXIT_USAGE;
  } else if (e instanceof DatabaseBusyError) {
    code = "busy";
    message = e.message;
    exit = EXIT_FAILED;
  } else if (e instanceof KeyFileError) {
    code = "key_file";
    message = e.message;
    exit = EXIT_FAILED;
  } else if (e instanceof CliError) {
    code = e.code;
    message = e.message;
    exit = e.exitCode;
  } else {
    throw e;
  }
  const verdict = exit === EXIT_REFUSED ? "refused" : exit === EXIT_USAGE ? "bad input" : "failed";
  io.stderr.write(`fobkit ${command}: ${verdict}: ${code}: ${message}\n`);
  if (values.json) io.stdout.write(JSON.stringify({ ok: false, error: { code, message, ...(detail && Object.keys(detail).length ? { detail } : {}) } }) + "\n");
  return exit;
}
