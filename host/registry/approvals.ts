/**
 * Who may do what to a keyfob, and maker-checker (issue 13 item 4). One code
 * path for the HTTP API (routes.ts) and the console (host/console), so the
 * rule cannot differ between them.
 *
 * Authority: a teller issues, unlocks, resyncs and withdraws a keyfob as
 * lost, returned or faulty. A supervisor also withdraws as stolen, approves
 * a teller's request and lifts a staff member's sign-in lock. An API key of
 * role `staff` acts with a teller's authority: it is a system, not a
 * supervisor who can be asked.
 *
 * The rule (maker-checker): a customer's keyfob may be unlocked twice in 24
 * hours by a teller; a third unlock within 24 hours of two earlier ones is a
 * request that a supervisor other than its maker approves. Why: the lock
 * after five wrong codes is what bounds a guesser (5·3/10^8 per cycle); each
 * unlock gives five more guesses, and unlocks are asked for on the phone,
 * where a caller can be anyone. Two a day covers a customer who mistypes
 * twice; fifteen wrong codes in a day is what a guesser or a social engineer
 * looks like, and a second person then looks at the audit before the lock
 * goes. "Stolen" is the supervisor's word because it starts a fraud case;
 * a teller who must block a keyfob now withdraws it as lost, which bars it
 * just the same.
 *
 * Both checks hold only for the row they looked at (sameLock, a guard the
 * unlock's decision applies to the row it is made from): the teller's count
 * of earlier unlocks, and a supervisor's approval, which lifts only the lock
 * the teller asked about (the same keyfob, not unlocked since the request);
 * a request that no longer fits ends `failed` (request_stale) and the teller
 * asks again.
 *
 * Who the maker is: a request asked in the console names its member
 * (`console:<ID>`); one asked through the HTTP API names its key
 * (`staff:<key id>`, host/server/app.ts), not a person, so the person behind
 * the key could approve it in the console under their own name. A staff key
 * may name its owner (migration 17, `fobkit bank add-key --owner`): the owner
 * is refused as checker (own_request), and the console's approvals page names
 * the key's label and owner, or says that none is recorded (a key made
 * before, or without --owner), for the supervisor to judge. Not caught: one
 * person with two console accounts (accounts are one per person by the
 * bank's staff administration), or an owner who hands the key to someone.
 */
import { randomBytes } from "node:crypto";
import type { Database, Sql } from "./database.js";
import type { Registry, RowGuard, UnlockGuard } from "./registry.js";
import { auditRecord } from "./staff.js";
import { RegistryError, type Actor, type TokenStatus, type WithdrawReason } from "./types.js";

export type Authority = "teller" | "supervisor";

/** Unlocks of one customer within UNLOCK_WINDOW_MS that a teller may do alone. */
export const TELLER_UNLOCKS_PER_DAY = 2;
export const UNLOCK_WINDOW_MS = 24 * 3600_000;
/** Withdrawal reasons only a supervisor may record. */
export const SUPERVISOR_REASONS: WithdrawReason[] = ["stolen"];

export interface Approval {
  id: string;
  action: "unlock";
  customer: string | null;
  serial: string | null;
  maker: string;
  madeAt: string;
  state: "pending" | "approved" | "rejected" | "failed";
  checker: string | null;
  decidedAt: string | null;
  outcome: string | null;
  /**
   * When the maker is a staff API key (`staff:<key id>`, a request through the HTTP API): the key as api_keys has it,
   * so the console names the key's label and owner rather than a bare id. Absent for a console maker, or a key gone.
   */
  makerKey?: { id: string; label: string | null; owner: string | null; revoked: boolean };
}

interface ApprovalRow {
  id: string;
  action: "unlock";
  customer: string | null;
  serial: string | null;
  maker: string;
  made_at: number;
  state: Approval["state"];
  checker: string | null;
  decided_at: number | null;
  outcome: string | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());
const toApproval = (r: ApprovalRow): Approval => ({
  id: r.id,
  action: r.action,
  customer: r.customer,
  serial: r.serial,
  maker: r.maker,
  madeAt: iso(r.made_at)!,
  state: r.state,
  checker: r.checker,
  decidedAt: iso(r.decided_at === null ? null : Number(r.decided_at)),
  outcome: r.outcome,
});

/** Successful unlocks of the customer's keyfobs since `since` (unix ms), from the audit. */
async function unlocksSince(db: Database, customer: string, since: number): Promise<number> {
  const r = await db.get<{ n: number }>("SELECT COUNT(*) AS n FROM audit WHERE customer = ? AND action = 'unlock' AND outcome = 'ok' AND at >= ?", [customer, since]);
  return Number(r?.n ?? 0);
}

/**
 * The guard that lets an unlock through only on the very row the rule looked
 * at (same keyfob, same lock: its last change and count of wrong codes). Any
 * unlock since changed the row; any unlock before it is in the count, which is
 * read after the row (an unlock and its audit record are one atomic change).
 */
function sameLock(seen: TokenStatus, code: string, message: string): UnlockGuard {
  const at = Date.parse(seen.updatedAt);
  return (row) => (row.serial === seen.serial && Number(row.updated_at) === at && Number(row.fail_count) === seen.failCount ? undefined : { code, message, detail: { serial: seen.serial } });
}

/**
 * When the caller named the keyfob (the console acts from a keyfob's page):
 * the customer's token must still be that one. Acting by customer alone, a
 * page opened on FK1 could withdraw (bar for good) the FK2 issued since.
 */
function onlySerial(serial: string | undefined): RowGuard | undefined {
  if (serial === undefined) return undefined;
  return (row) => (row.serial === serial ? undefined : { code: "serial_changed", message: `the customer's keyfob is now ${row.serial}, not ${serial}: look again before acting`, detail: { asked: serial } });
}

/** Both guards, the first refusal wins. */
function both(a: RowGuard | undefined, b: RowGuard | undefined): RowGuard | undefined {
  if (!a || !b) return a ?? b;
  return (row) => a(row) ?? b(row);
}

/** Tries of a teller's unlock when the row keeps changing under it (each a read, a count and a compare-and-set). */
const RULE_ATTEMPTS = 3;

/**
 * Unlock under the rule. A teller's third unlock in 24 h is not done: a
 * pending approval is recorded (or the one already pending is named) and
 * the answer is the refusal `needs_approval` with its id. The unlock is made
 * only from the row the count was taken against (sameLock): counted apart
 * from it, two unlocks queued behind each other (with five wrong codes between
 * them) both saw one earlier unlock and both went through, a third unlock
 * without a supervisor.
 */
export async function unlockUnderRule(registry: Registry, customer: string, actor: Actor, authority: Authority, now = Date.now(), serial?: string): Promise<TokenStatus> {
  const only = onlySerial(serial);
  if (authority === "supervisor") return registry.unlock(customer, actor, only);
  const db = registry.db;
  for (let attempt = 1; ; attempt++) {
    const held = await registry.statusOfCustomer(customer).catch(() => undefined);
    // Not locked (or no token): the registry gives its own audited refusal.
    if (!held || held.state !== "locked") return registry.unlock(customer, actor, only);
    const before = await unlocksSince(db, customer, now - UNLOCK_WINDOW_MS);
    if (before < TELLER_UNLOCKS_PER_DAY) {
      try {
        return await registry.unlock(customer, actor, both(only, sameLock(held, "unlock_raced", `keyfob ${held.serial} changed while it was being unlocked; try again`)));
      } catch (e) {
        if (e instanceof RegistryError && e.code === "unlock_raced" && attempt < RULE_ATTEMPTS) continue;
        throw e;
      }
    }
    const id = await db.tx(async (t) => {
      // The request, or the one already pending for this customer: one statement, so two processes asking at
      // once make one request (migration 8's partial unique index approvals_one_pending). The no-op update of
      // an existing request returns its id and holds its row until this transaction ends, so a supervisor
      // cannot decide it between this statement and the audit record that names it.
      const r = await t.get<{ id: string }>(
        "INSERT INTO approvals (id, action, customer, serial, detail, maker, made_at, state) VALUES (?, 'unlock', ?, ?, NULL, ?, ?, 'pending') " +
          "ON CONFLICT (action, customer) WHERE state = 'pending' DO UPDATE SET made_at = approvals.made_at RETURNING id",
        [randomBytes(6).toString("hex"), customer, held.serial, actor.name, now],
      );
      const approval = r!.id;
      await auditRecord(t, actor, "unlock", "needs_approval", now, { serial: held.serial, customer, detail: { approval, unlocksInDay: before } });
      return approval;
    });
    throw new RegistryError(
      "needs_approval",
      `customer ${customer}'s keyfob was unlocked ${before} times in the last 24 hours; a third unlock needs a supervisor's approval (request ${id})`,
      "refused",
      { approval: id, serial: held.serial },
    );
  }
}

/**
 * The CLI's unlock (`fobkit bank unlock`): the operator's break-glass path, outside the rule. Whoever runs the CLI
 * holds the database and the key file, so could lift a lock with SQL anyway; a refusal here would stop nobody, and
 * would leave an operator without a way to unlock when the console is down. What the rule cannot do here, the
 * audit does: the `ok` record says breakGlass, how many unlocks of the customer it counted in the last 24 hours
 * (unlocksInDay), and ruleBypassed when a teller would have needed a supervisor's approval for it. The count is
 * read just before the unlock, not with it (an unlock racing with it may be missed): it tells the reader, it
 * decides nothing. A break-glass unlock is an `unlock ok` like any: it counts towards the tellers' two a day, and
 * makes a pending request for that lock stale.
 */
export async function unlockBreakGlass(registry: Registry, customer: string, actor: Actor, now = Date.now()): Promise<{ token: TokenStatus; unlocksInDay: number; ruleBypassed: boolean }> {
  const unlocksInDay = await unlocksSince(registry.db, customer, now - UNLOCK_WINDOW_MS);
  const ruleBypassed = unlocksInDay >= TELLER_UNLOCKS_PER_DAY;
  const token = await registry.unlock(customer, actor, undefined, undefined, { breakGlass: true, ruleBypassed, unlocksInDay });
  return { token, unlocksInDay, ruleBypassed };
}

/** Withdraw under the rule: only a supervisor records "stolen". */
export async function withdrawUnderRule(registry: Registry, customer: string, reason: WithdrawReason, actor: Actor, authority: Authority, now = Date.now(), serial?: string): Promise<TokenStatus> {
  if (authority !== "supervisor" && SUPERVISOR_REASONS.includes(reason)) {
    await registry.db.tx((t) => auditRecord(t, actor, "withdraw", "needs_supervisor", now, { customer, detail: { reason } }));
    throw new RegistryError(
      "needs_supervisor",
      `only a supervisor withdraws a keyfob as ${reason}; to block it now, withdraw it as lost (it is barred just the same) and tell a supervisor`,
      "refused",
      { reason },
    );
  }
  return registry.withdraw(customer, reason, actor, onlySerial(serial));
}

/** The API key behind a maker `staff:<key id>` (the HTTP API's actor name, host/server/app.ts), else undefined. */
const MAKER_KEY_RE = /^staff:([0-9a-f]{12})$/;
interface KeyRow {
  id: string;
  label: string | null;
  owner: string | null;
  revoked_at: number | null;
}

async function keysOf(db: Sql, makers: string[]): Promise<Map<string, KeyRow>> {
  const ids = [...new Set(makers.map((m) => MAKER_KEY_RE.exec(m)?.[1]).filter((x): x is string => x !== undefined))];
  if (ids.length === 0) return new Map();
  const rows = await db.all<KeyRow>(`SELECT id, label, owner, revoked_at FROM api_keys WHERE id IN (${ids.map(() => "?").join(", ")})`, ids);
  return new Map(rows.map((r) => ["staff:" + r.id, r]));
}

export async function listApprovals(db: Database, state?: Approval["state"], limit = 100): Promise<Approval[]> {
  const rows = state
    ? await db.all<ApprovalRow>(`SELECT * FROM approvals WHERE state = ? ORDER BY made_at DESC, id LIMIT ${limit}`, [state])
    : await db.all<ApprovalRow>(`SELECT * FROM approvals ORDER BY made_at DESC, id LIMIT ${limit}`);
  const keys = await keysOf(db, rows.map((r) => r.maker));
  return rows.map((r) => {
    const k = keys.get(r.maker);
    return k ? { ...toApproval(r), makerKey: { id: k.id, label: k.label, owner: k.owner, revoked: k.revoked_at !== null } } : toApproval(r);
  });
}

/** The staff ID of a console actor (`console:<ID>`), else undefined (an API key, the CLI). */
const consoleName = (actor: string) => (actor.startsWith("console:") ? actor.slice("console:".length) : undefined);

/**
 * A supervisor decides a pending request. The claim (the request is still
 * pending, and its checker is not its maker, checked under the request's
 * row lock) and what it approves commit as one transaction: the unlock
 * (Registry.unlock with `within`, token-store.ts WithinDecision), its audit
 * record, and the request's outcome (`ok`, or `failed` with the refusal's
 * code when the keyfob was unlocked or withdrawn meanwhile). A crash or a
 * lost connection anywhere in between rolls all of it back: the request is
 * still pending and the keyfob still locked, and the supervisor approves
 * again. Claimed in a transaction of its own, a crash after the claim left
 * the request `approved` with no unlock and no outcome, which nobody could
 * approve again (test/registry/approvals.test.ts). Two supervisors
 * approving at once: the second waits on the row lock and finds the
 * request decided.
 */
export async function decideApproval(registry: Registry, id: string, approve: boolean, checker: Actor, now = Date.now()): Promise<{ approval: Approval; token?: TokenStatus }> {
  if (!/^[0-9a-f]{12}$/.test(id)) throw new RegistryError("bad_approval", "an approval id is 12 hex digits", "bad_input");
  const db = registry.db;
  // The maker key's owner (migration 17), read with the request each time it is checked. A key's owner is written
  // once, when the key is made (api-keys.ts; nothing changes it), so reading it beside the request row is enough.
  const check = async (t: Sql, row: ApprovalRow | undefined): Promise<{ row: ApprovalRow; owner: string | null }> => {
    if (!row) throw new RegistryError("unknown_approval", `no approval request ${id}`, "not_found");
    if (row.state !== "pending") throw new RegistryError("already_decided", `request ${id} was already decided (${row.state}${row.checker ? " by " + row.checker : ""})`, "refused");
    if (row.maker === checker.name) throw new RegistryError("own_request", "the maker of a request cannot approve it: a second person must", "refused");
    const key = (await keysOf(t, [row.maker])).get(row.maker);
    const owner = key?.owner ?? null;
    // A request asked through the HTTP API names the key, not the person: its owner is that person, so is refused too.
    if (owner !== null && owner === consoleName(checker.name)) {
      throw new RegistryError("own_request", `the request was made with API key ${key!.id}${key!.label ? ` (${key!.label})` : ""}, which is ${owner}'s: a second person must decide it`, "refused", { makerKey: key!.id });
    }
    return { row, owner };
  };
  const claim = async (t: Sql): Promise<ApprovalRow> => {
    const { row, owner } = await check(t, await t.get<ApprovalRow>(`SELECT * FROM approvals WHERE id = ?${db.forUpdate}`, [id]));
    await t.run("UPDATE approvals SET state = ?, checker = ?, decided_at = ? WHERE id = ?", [approve ? "approved" : "rejected", checker.name, now, id]);
    await auditRecord(t, checker, approve ? "approve" : "reject", "ok", now, {
      serial: row.serial,
      customer: row.customer,
      detail: { approval: id, action: row.action, maker: row.maker, ...(owner !== null ? { makerKeyOwner: owner } : {}) },
    });
    return row;
  };
  if (!approve) {
    const claimed = await db.tx(claim);
    return { approval: toApproval({ ...claimed, state: "rejected", checker: checker.name, decided_at: now }) };
  }
  // What the unlock's guard needs, read first (the claim checks the request again under its lock).
  const { row: asked } = await check(db, await db.get<ApprovalRow>("SELECT * FROM approvals WHERE id = ?", [id]));
  // The approval is for the lock the teller saw: the same keyfob, not unlocked since.
  // Otherwise (the customer holds another keyfob now, or this lock was lifted and
  // the keyfob locked again) a supervisor would lift a lock nobody asked about.
  const stale = `request ${id} was for keyfob ${asked.serial}, which is no longer locked as it was when asked; nothing was unlocked`;
  const held = await registry.statusOfCustomer(asked.customer!).catch(() => undefined);
  // Unlocks after the audit record that made the request (by id: the clock may not have moved), counted after
  // `held` was read: an unlock before that read is counted here, one after it changed the row sameLock compares.
  const since = await db.get<{ n: number }>(
    `SELECT COUNT(*) AS n FROM audit WHERE serial = ? AND action = 'unlock' AND outcome = 'ok' AND id > COALESCE(
       (SELECT MIN(id) FROM audit WHERE customer = ? AND action = 'unlock' AND outcome = 'needs_approval' AND actor = ? AND at = ?), 0)`,
    [asked.serial, asked.customer, asked.maker, Number(asked.made_at)],
  );
  let guard: UnlockGuard | undefined;
  if (held && held.state === "locked") {
    const detail = { approval: id, requested: asked.serial, held: held.serial };
    guard = held.serial !== asked.serial || Number(since?.n ?? 0) > 0 ? () => ({ code: "request_stale", message: stale, detail }) : sameLock(held, "request_stale", stale);
  }
  // Not locked (or no token): the registry's own refusal, which ends the request `failed`.
  let claimed: ApprovalRow | undefined;
  const token = await registry.unlock(asked.customer!, checker, guard, {
    before: async (t) => {
      claimed = await claim(t);
    },
    after: async (t, outcome) => {
      if (outcome instanceof RegistryError) await t.run("UPDATE approvals SET state = 'failed', outcome = ? WHERE id = ?", [outcome.code, id]);
      else await t.run("UPDATE approvals SET outcome = 'ok' WHERE id = ?", [id]);
    },
  });
  return { approval: toApproval({ ...claimed!, state: "approved", checker: checker.name, decided_at: now, outcome: "ok" }), token };
}
