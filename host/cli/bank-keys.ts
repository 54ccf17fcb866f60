/**
 * Keys: API keys for the three roles (`add-key`, `list-keys`, `revoke-key`)
 * and the key-encryption key for seeds at rest (`init-kek`, `rotate-key`).
 */
import { createApiKey, listApiKeys, revokeApiKey } from "../registry/api-keys.js";
import { KeyFileError, KeyFileLock, KeyFileLockedError, KeyRing, describeHolder, newLockHolder } from "../registry/key-ring.js";
import { clearRotationLease, takeRotationLease } from "../registry/rotation-lock.js";
import { RegistryError } from "../registry/types.js";
import { ROLES, type Role } from "../registry/types.js";
import { COMMON_OPTIONS, SEED_OPTIONS, kekPath, reportError, required, runBank, type BankRun } from "./bank-common.js";
import { CliError, EXIT_OK, type Command, type Io } from "./command.js";

export const bankAddKey: Command = {
  name: "bank add-key",
  summary: "make an API key for a role (factory, staff, channel); printed once, stored hashed",
  description:
    "Example: fobkit bank add-key --role staff --label 'branch 12 teller app' --owner tanaka\n" +
    "The key is printed on stdout once; the database keeps only its SHA-256.\n" +
    "--owner (staff keys): the staff member who uses the key. A third unlock in a day asked with the key is a request\n" +
    "its owner may not approve in the console (own_request), as for a request they asked there themselves; the\n" +
    "console's approvals page names the key's label and owner, or that it has none.",
  options: {
    role: { type: "string", placeholder: "ROLE", help: "factory (register), staff (issue, unlock, withdraw, resync, status, audit) or channel (activate, verify, deactivate)" },
    label: { type: "string", placeholder: "TEXT", help: "what the key is for" },
    owner: { type: "string", placeholder: "STAFF_ID", help: "staff keys: the staff member (an active console account) who uses the key; refused as checker of its requests" },
    ...COMMON_OPTIONS,
  },
  run: ({ values }, io) => {
    const role = required(values, "role", "bank add-key");
    if (!ROLES.includes(role as Role)) throw new CliError(`fobkit bank add-key: --role must be one of ${ROLES.join(", ")}`);
    return runBank("bank add-key", values, io, { needsKek: false }, async ({ db, registry, actor }) => {
      const k = await createApiKey(db, role as Role, values.label, Date.now(), { owner: values.owner });
      await registry.note(actor, "add_key", "ok", { keyId: k.id, role: k.role, label: values.label ?? null, ...(k.owner !== null ? { owner: k.owner } : {}) });
      return { json: { id: k.id, role: k.role, owner: k.owner, key: k.key }, text: k.key };
    });
  },
};

export const bankListKeys: Command = {
  name: "bank list-keys",
  summary: "list API keys (ids, roles, owners, labels; never the keys)",
  options: { ...COMMON_OPTIONS },
  run: ({ values }, io) =>
    runBank("bank list-keys", values, io, { needsKek: false }, async ({ db }) => {
      const keys = await listApiKeys(db);
      return { json: { keys }, text: keys.map((k) => [k.id, k.role, k.revokedAt ? "revoked " + k.revokedAt : "active", k.createdAt, k.owner ? "owner " + k.owner : "-", k.label ?? ""].join("\t")).join("\n") };
    }),
};

export const bankRevokeKey: Command = {
  name: "bank revoke-key",
  summary: "revoke an API key (servers stop accepting it within 5 s)",
  options: { id: { type: "string", placeholder: "ID", help: "the key id (12 hex digits after fbk_)" }, ...COMMON_OPTIONS },
  run: ({ values }, io) =>
    runBank("bank revoke-key", values, io, { needsKek: false }, async ({ db, registry, actor }) => {
      const id = required(values, "id", "bank revoke-key");
      await revokeApiKey(db, id);
      await registry.note(actor, "revoke_key", "ok", { keyId: id });
      return { json: { revoked: id }, text: `revoked ${id}` };
    }),
};

export const bankInitKek: Command = {
  name: "bank init-kek",
  summary: "create a key-encryption key file (AES-256, mode 0600) for seeds at rest",
  description: "Keep it outside the database and its backups. Example: fobkit bank init-kek --kek-file /etc/fobkit/bank.kek",
  options: { "kek-file": SEED_OPTIONS["kek-file"], json: COMMON_OPTIONS.json },
  run: async ({ values }, io) => {
    const path = kekPath(values, io);
    if (!path) throw new CliError("fobkit bank init-kek: give --kek-file FILE (or set FOBKIT_BANK_KEK_FILE)");
    try {
      const ring = KeyRing.create(path);
      io.stdout.write(values.json ? JSON.stringify({ ok: true, file: path, kekId: ring.currentId }) + "\n" : `created ${path} with key ${ring.currentId}\n`);
      return EXIT_OK;
    } catch (e) {
      if (e instanceof KeyFileError) return reportError("bank init-kek", new CliError(e.message), values, io);
      throw e;
    }
  },
};

export const bankRotateKey: Command = {
  name: "bank rotate-key",
  summary: "re-encrypt every seed under a new key-encryption key, while servers keep serving",
  description:
    "1. Puts a new key at the top of the key file. 2. Records every older key as retired in the database: from then on\n" +
    "the database refuses any seed sealed under them, and a server that has not yet re-read the file re-reads it at once\n" +
    "and seals under the new key. 3. Re-seals each row under the new key, one transaction per row, until none is left.\n" +
    "--prune then drops the retired keys from the file, each only after a transaction that marks it pruned has counted\n" +
    "no row under it (rows that appear meanwhile are re-sealed and the count is taken again), so no seed is ever left\n" +
    "under a dropped key. Give every server the same key file (a shared path or the same copy) before the rotation.\n" +
    "Servers with their own copies: first --stage, which only adds the next key, marked staged (it opens, never seals),\n" +
    "and changes nothing in the database; copy the file to every server; then rotate-key, which makes the staged key\n" +
    "the newest. A server whose copy still has it staged opens the re-sealed rows, and seals under it once the\n" +
    "database refuses its old key. Copy the rotated file to every server, then prune with rotate-key --no-new-key --prune\n" +
    "(--prune alone adds another key, on this server only, and re-seals every row under it).\n" +
    "--no-new-key finishes an interrupted rotation (or indexes rows from before the seed index) without adding a key.\n" +
    "An outdated copy is refused: before it changes anything, a run (also --stage, --prune, --no-new-key) checks that\n" +
    "the key file holds every key the database records as active (a key staged in it counts) and every key a row is\n" +
    "sealed under. If not (another server rotated and this copy was never replaced), it is refused (exit 1,\n" +
    "key_file_outdated) naming the missing key, and changes nothing: copy the current key file here, then run again.\n" +
    "One at a time: a run (also --stage and --prune) holds the key file's lock (FILE.lock) and the database's rotation\n" +
    "lease until it ends. A second run started meanwhile, on this key file or from any server on this database, is\n" +
    "refused at once (exit 1, rotation_in_progress) naming the holder's pid, host and start time, and changes nothing;\n" +
    "run it again once the first has finished. A run that died (killed, power cut) leaves its lock: the refusal says\n" +
    "so when the holder's pid is not running on this host and gives its id; --clear-lock ID then removes exactly that\n" +
    "lock (never one whose holder still runs here), and --no-new-key finishes the rotation. A run whose lock or lease\n" +
    "was cleared while it ran (its host could not be judged) stops before its next step (exit 1, rotation_lock_lost).",
  options: {
    stage: { type: "boolean", help: "only add the next key to the file, staged, for copying to every server; no rotation yet" },
    "no-new-key": { type: "boolean", help: "re-seal under the current newest key; add none" },
    prune: { type: "boolean", help: "afterwards drop retired keys from the file, once proven unused" },
    "clear-lock": { type: "string", placeholder: "ID", help: "clear the lock a run that died left (the id its refusal names); rotates nothing" },
    ...SEED_OPTIONS,
  },
  run: ({ values }, io) =>
    runBank("bank rotate-key", values, io, { needsKek: true }, async ({ db, registry, actor }) => {
      if (values["clear-lock"] !== undefined) return clearLock(values, registry.keys.path, db, registry, actor);
      return rotateUnderLock(values, db, registry, actor, io);
    }),
};

/**
 * A whole rotation run, one at a time: it holds, for the whole run, the key file's lock (this host's runs on this
 * file), then the database's lease (every server's runs, whatever their key file). Each is refused at once when
 * held, never waited for. Exported for tests.
 */
export async function rotateUnderLock(values: Record<string, any>, db: BankRun["db"], registry: BankRun["registry"], actor: BankRun["actor"], io: Io): Promise<{ json: unknown; text: string }> {
  const holder = newLockHolder("bank rotate-key");
  let fileLock: KeyFileLock | undefined;
  try {
    fileLock = registry.keys.lock(holder);
  } catch (e) {
    if (e instanceof KeyFileLockedError) throw new RegistryError("rotation_in_progress", e.message, "refused", { lock: e.lockPath });
    throw e;
  }
  try {
    const lease = await takeRotationLease(db, holder, registry.keys.path);
    try {
      // Before each step that changes keys or rows: this run's lock and lease must still be its own (held()).
      return await rotate(values, registry, actor, io, async () => {
        await lease.assertHeld();
        if (fileLock && registry.keys.path) underLock(() => fileLock!.assertHeld(registry.keys.path!));
      });
    } finally {
      await lease.release();
    }
  } finally {
    fileLock?.release();
  }
}

/** Runs a key file change or check; a lock cleared from under this run (KeyRing.write checks it) is rotation_lock_lost. */
function underLock<T>(change: () => T): T {
  try {
    return change();
  } catch (e) {
    if (e instanceof KeyFileLockedError) throw new RegistryError("rotation_lock_lost", e.message, "refused", { lock: e.lockPath });
    throw e;
  }
}

/**
 * One rotation, under the key file's lock and the database's lease. `held` refuses unless both are still this run's:
 * an operator may clear them (--clear-lock, on their word when this run is on another host or container) and start
 * another run, whose new key this run's later steps would otherwise retire, re-seal away from, or prune.
 */
async function rotate(
  values: Record<string, any>,
  registry: BankRun["registry"],
  actor: BankRun["actor"],
  io: Io,
  held: () => Promise<void>,
): Promise<{ json: unknown; text: string }> {
  // Before anything changes (the file was re-read under its lock; the lease keeps other rotations out): a copy of the
  // file that lacks a key the database needs is refused, --stage too (its file, copied to every server, would drop
  // that key) and --prune/--no-new-key (they would end in key_retired, inviting a rotation from this copy).
  await registry.refuseOutdatedKeyFile();
  if (values.stage) {
    const given = ["no-new-key", "prune"].filter((o) => values[o]);
    if (given.length) throw new CliError(`fobkit bank rotate-key: --stage only adds a key; it cannot go with --${given.join(" or --")}`);
    let staged: string;
    await held();
    try {
      staged = underLock(() => registry.keys.stageKey());
    } catch (e) {
      if (e instanceof KeyFileError) throw new CliError(`fobkit bank rotate-key: ${e.message}`);
      throw e;
    }
    await registry.note(actor, "stage_key", "ok", { kekId: staged });
    return {
      json: { staged, file: registry.keys.path },
      text: `key ${staged} staged in ${registry.keys.path}: copy this file to every server, then run fobkit bank rotate-key`,
    };
  }
  const before = await registry.kekUsage();
  const wasStaged = !values["no-new-key"] && registry.keys.stagedId !== undefined;
  await held();
  const newId = values["no-new-key"] ? registry.keys.currentId : underLock(() => registry.keys.addNewestKey());
  await held();
  const retired = await registry.retireOlderKeys(actor);
  await held();
  const r = await registry.resealAll(actor);
  let dropped: string[] = [];
  if (values.prune) {
    await held();
    const pruned = await registry.pruneRetiredKeys(actor);
    await held();
    dropped = underLock(() => registry.keys.dropKeys(pruned));
  }
  const usage = await registry.kekUsage();
  // Tokens from before the seed index that share a seed: a warning for staff, not a failure of the rotation.
  for (const [serial, other] of r.duplicateSeeds) io.stderr.write(`fobkit bank rotate-key: warning: ${serial} holds the same seed as ${other}; withdraw one of them\n`);
  return {
    json: { kekId: newId, wasStaged, retired, resealed: r.resealed, indexed: r.indexed, duplicateSeeds: r.duplicateSeeds, before, after: usage, dropped },
    text:
      `key ${newId}${wasStaged ? " (the staged key)" : ""}: re-sealed ${r.resealed} seed(s)` +
      (r.indexed ? `; indexed ${r.indexed} seed(s)` : "") +
      (retired.length ? "; retired " + retired.join(", ") : "") +
      (dropped.length ? "; dropped " + dropped.join(", ") : ""),
  };
}

/**
 * --clear-lock TOKEN: removes the key file's lock and the database's lease left by the run that TOKEN names (the
 * refusal prints it), and nothing else: never a lock another run took since, never one whose holder still runs on
 * this host. Nothing is rotated.
 */
async function clearLock(values: Record<string, any>, keyFile: string | undefined, db: BankRun["db"], registry: BankRun["registry"], actor: BankRun["actor"]): Promise<{ json: unknown; text: string }> {
  const token = String(values["clear-lock"]);
  if (!/^[0-9a-f]{20}$/.test(token)) throw new CliError("fobkit bank rotate-key: --clear-lock takes the 20 hex digits a refusal names (\"--clear-lock <id>\")");
  const given = ["stage", "no-new-key", "prune"].filter((o) => values[o]);
  if (given.length) throw new CliError(`fobkit bank rotate-key: --clear-lock only clears a lock; it cannot go with --${given.join(" or --")}`);
  let file = false;
  try {
    file = keyFile ? KeyFileLock.clearStale(keyFile, token) : false;
  } catch (e) {
    if (e instanceof KeyFileLockedError) throw new RegistryError("rotation_in_progress", e.message, "refused", { lock: e.lockPath });
    throw e;
  }
  const lease = await clearRotationLease(db, token);
  if (!file && !lease) {
    throw new RegistryError("no_such_lock", `neither the key file${keyFile ? " " + keyFile : ""} nor the database holds a lock with id ${token}; nothing cleared`, "refused");
  }
  const cleared = [...(file ? [KeyFileLock.lockPathOf(keyFile!)] : []), ...(lease ? [`the database's rotation lease of ${describeHolder(lease)}`] : [])];
  await registry.note(actor, "clear_rotation_lock", "ok", { token, keyFileLock: file, databaseLease: !!lease });
  return { json: { cleared: { keyFileLock: file, databaseLease: !!lease } }, text: `cleared ${cleared.join(" and ")}; run fobkit bank rotate-key --no-new-key to finish what the dead run left` };
}

export const BANK_KEY_COMMANDS = [bankAddKey, bankListKeys, bankRevokeKey, bankInitKek, bankRotateKey];
