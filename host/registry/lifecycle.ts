/**
 * The hardware token's lifecycle as one table: each action, the states it
 * starts from, where it leads, whether it needs a code, who does it, and
 * the refusal for every state it does not start from. The registry decides
 * by this table (Registry's `stateRefusal`), the API's refusal lists are
 * read from it (`refusalsOf`, host/server/routes.ts), and the diagram in
 * host/registry/README.md is generated from it (`lifecycleDiagram`;
 * test/registry/lifecycle.test.ts fails when the README is out of date:
 * `node build/node/tools/lifecycle-diagram.js --write`).
 *
 * Lockout (default 5 wrong codes in a row): the manual stops OTP after "a set
 * number" of consecutive failures and needs the bank to lift the stop. With
 * a ±1 window three codes are live, so each guess wins with odds 3/10^8 and
 * a lockout cycle gives an attacker 5·3/10^8 = 1.5e-7; five spares a customer
 * who mistypes twice or thrice. The counter resets only on a success or a
 * staff unlock, never on a timer (privacyIDEA's timed reset let brute force
 * through). The price is a denial-of-service lever: anyone who knows a
 * customer id can lock that customer out; the channel must therefore only
 * call verify after the customer's password, and staff see the lock's
 * source in the audit.
 *
 * Issuing again does not reset the count. A withdrawal (staff, no code)
 * keeps the keyfob's count, and issuing that keyfob again, to any customer,
 * carries the count on: one withdrawn while locked comes back locked (the
 * issue's audit record says lockedAtWithdrawal), so its guesses resume only
 * through the staff unlock, which is audited and counted by maker-checker
 * (approvals.ts). Otherwise withdraw-as-returned and issue again would be an
 * unlock that neither counts nor needs a supervisor's approval; carried for
 * the same customer only, a detour through a made-up customer and back
 * cleared it (the session 7 attack review). A new holder of a keyfob with
 * wrong codes on it has fewer tries left until a right code or an unlock
 * clears them. A deactivation needs a right code, which resets the count anyway.
 */
import { BARRING_REASONS, TOKEN_KINDS, TOKEN_STATES, type TokenKind, type TokenState, type WithdrawReason } from "./types.js";

export type Action = "issue" | "soft-issue" | "setup" | "void" | "activate" | "verify" | "deactivate" | "lock" | "unlock" | "withdraw" | "resync";

/** What a refusal needs to know of the token. */
export interface RefusalContext {
  serial: string;
  state: TokenState;
  withdrawn: WithdrawReason | null;
}

export interface StateRefusal {
  code: string;
  message(t: RefusalContext): string;
  /** Detail for the error and its audit record. */
  detail?(t: RefusalContext): Record<string, unknown>;
}

export interface Transition {
  action: Action;
  /** The kinds of token it applies to (issue 15: keyfob, soft). */
  kinds: TokenKind[];
  /** The states it starts from; [] for soft-issue, which starts from no token (a new row). */
  from: TokenState[];
  /** Where it leads; "unchanged" keeps the state. */
  to: TokenState | "unchanged";
  /** For the diagram: how the arrow is labelled, and a note after it. */
  label: string;
  note?: string;
  /** Codes the action needs: 0, 1 (the code shown now) or 2 (two consecutive codes). */
  codes: 0 | 1 | 2;
  by: "staff" | "channel" | "registry" | "app";
  /** The refusal for a token in a state outside `from` (every such state has one). */
  outside: Partial<Record<TokenState, StateRefusal>>;
  /** Refusals that do not depend on the state, in the order they are checked. */
  refusals: string[];
  /** Soft tokens: what "issued" means along this arrow (awaiting set-up, or set up). */
  soft?: string;
}

const notActive: StateRefusal = {
  code: "not_active",
  message: (t) => `token ${t.serial} is ${t.state}; activate it with its first code`,
  detail: (t) => ({ state: t.state }),
};
const lockedByCodes: StateRefusal = { code: "locked", message: (t) => `token ${t.serial} is locked after repeated wrong codes; staff must unlock it` };
const VALIDITY = ["not_yet_valid", "expired"];
const CODE = ["wrong_code", "replayed"];

/** The table. Order is the diagram's. */
export const LIFECYCLE: Transition[] = [
  {
    action: "issue",
    kinds: ["keyfob"],
    from: ["in_stock", "retired"],
    to: "issued",
    label: "issue(customer)",
    note: "a retired keyfob: a new issuance; to its last holder it keeps the wrong-code count, and comes back locked if withdrawn locked",
    codes: 0,
    by: "staff",
    outside: Object.fromEntries(
      (["issued", "active", "locked"] as TokenState[]).map((s) => [
        s,
        { code: "not_issuable", message: (t: RefusalContext) => `token ${t.serial} is ${t.state}; only a token in stock or retired can be issued`, detail: (t: RefusalContext) => ({ state: t.state }) },
      ]),
    ),
    refusals: ["not_keyfob", "barred", "expired", "customer_has_token"],
  },
  {
    action: "soft-issue",
    kinds: ["soft"],
    from: [],
    to: "issued",
    label: "soft-issue(customer, record)",
    note: "a new row, awaiting set-up; supersedes the customer's soft token never used",
    codes: 0,
    by: "channel",
    outside: {},
    refusals: ["not_configured", "customer_has_token", "ticket_expired", "ticket_used"],
    soft: "awaiting set-up",
  },
  {
    action: "setup",
    kinds: ["soft"],
    from: ["issued"],
    to: "unchanged",
    label: "setup(activation password)",
    note: "issued and awaiting -> issued and set up; the app and the bank derive the seed",
    codes: 0,
    by: "app",
    outside: {
      in_stock: { code: "unknown_user", message: () => "no software token with this service ID and user ID" },
      active: { code: "already_set_up", message: (t) => `software token ${t.serial} was set up already; a user ID sets up once` },
      locked: { code: "already_set_up", message: (t) => `software token ${t.serial} was set up already; a user ID sets up once` },
      retired: { code: "voided", message: (t) => `${t.serial} is no longer valid (void, expired, superseded or deactivated); apply for a new issuance` },
    },
    refusals: ["unknown_user", "already_set_up", "setup_expired", "setup_not_yet", "voided", "wrong_password", "ticket_expired"],
  },
  {
    action: "void",
    kinds: ["soft"],
    from: ["issued"],
    to: "retired",
    label: "void",
    note: "awaiting set-up: after 5 set-up starts without a finished set-up, or past its expiry",
    codes: 0,
    by: "registry",
    outside: {},
    refusals: [],
  },
  {
    action: "activate",
    kinds: ["keyfob", "soft"],
    from: ["issued"],
    to: "active",
    label: "activate(code)",
    codes: 1,
    by: "channel",
    outside: {
      in_stock: { code: "not_issued", message: (t) => `token ${t.serial} is in stock; issue it to a customer first` },
      active: { code: "already_active", message: (t) => `token ${t.serial} is already active` },
      locked: { code: "locked", message: (t) => `token ${t.serial} is locked; staff must unlock it` },
      retired: {
        code: "retired",
        message: (t) =>
          t.withdrawn && BARRING_REASONS.includes(t.withdrawn)
            ? `token ${t.serial} was reported ${t.withdrawn}; it is never used again`
            : `token ${t.serial} was deactivated; it must be issued again before it can be activated`,
        detail: (t) => (t.withdrawn && BARRING_REASONS.includes(t.withdrawn) ? { withdrawn: t.withdrawn } : {}),
      },
    },
    refusals: [...VALIDITY, "not_set_up", ...CODE],
    soft: "set up (not_set_up while awaiting set-up); the window is ±window, not ±activationWindow",
  },
  {
    action: "verify",
    kinds: ["keyfob", "soft"],
    from: ["active"],
    to: "unchanged",
    label: "verify(code)",
    note: "each code accepted once",
    codes: 1,
    by: "channel",
    outside: { in_stock: notActive, issued: notActive, retired: notActive, locked: lockedByCodes },
    refusals: [...VALIDITY, ...CODE],
  },
  {
    action: "deactivate",
    kinds: ["keyfob", "soft"],
    from: ["active"],
    to: "retired",
    label: "deactivate(code)",
    codes: 1,
    by: "channel",
    outside: { in_stock: notActive, issued: notActive, retired: notActive, locked: lockedByCodes },
    refusals: [...VALIDITY, ...CODE],
  },
  {
    action: "lock",
    kinds: ["keyfob", "soft"],
    from: ["issued", "active"],
    to: "locked",
    label: "lockAfter wrong codes in a row",
    note: "replays do not count; only a success or unlock resets the count",
    codes: 0,
    by: "registry",
    outside: {},
    refusals: [],
  },
  {
    action: "unlock",
    kinds: ["keyfob", "soft"],
    from: ["locked"],
    to: "active",
    label: "unlock",
    note: "issued if never activated",
    codes: 0,
    by: "staff",
    outside: Object.fromEntries(
      (["in_stock", "issued", "active", "retired"] as TokenState[]).map((s) => [
        s,
        { code: "not_locked", message: (t: RefusalContext) => `token ${t.serial} is ${t.state}, not locked`, detail: (t: RefusalContext) => ({ state: t.state }) },
      ]),
    ),
    refusals: [],
  },
  {
    action: "withdraw",
    kinds: ["keyfob", "soft"],
    from: ["issued", "active", "locked"],
    to: "retired",
    label: "withdraw(reason)",
    note: "no code; lost or stolen: issue refused \"barred\" for good",
    codes: 0,
    by: "staff",
    outside: {},
    refusals: [],
  },
  {
    action: "resync",
    kinds: ["keyfob"],
    from: ["issued", "active", "locked"],
    to: "unchanged",
    label: "resync(two codes)",
    note: "re-learns the drift",
    codes: 2,
    by: "staff",
    outside: Object.fromEntries(
      (["in_stock", "retired"] as TokenState[]).map((s) => [
        s,
        { code: "not_issued", message: (t: RefusalContext) => `token ${t.serial} is ${t.state}; resync applies to an issued, active or locked token`, detail: (t: RefusalContext) => ({ state: t.state }) },
      ]),
    ),
    refusals: ["not_keyfob", ...VALIDITY, "resync_failed"],
  },
];

export function transition(action: Action): Transition {
  const t = LIFECYCLE.find((x) => x.action === action);
  if (!t) throw new Error(`no lifecycle entry for ${action}`);
  return t;
}

/** The states a customer's token can be found in (one at most per customer: tokens_one_per_customer). */
export const LIVE_STATES: TokenState[] = ["issued", "active", "locked"];

/** The refusal for `action` on a token in `state`, or undefined when the action starts from it. */
export function stateRefusal(action: Action, state: TokenState): StateRefusal | undefined {
  const t = transition(action);
  if (t.from.includes(state)) return undefined;
  const r = t.outside[state];
  if (!r) throw new Error(`lifecycle: ${action} from ${state} has no refusal`);
  return r;
}

/**
 * Every refusal code `action` can answer, for the API's documentation.
 * `byCustomer`: the token is looked up by customer, so only live states can
 * be met (a customer holds no token in stock or retired).
 */
export function refusalsOf(action: Action, o: { byCustomer?: boolean } = {}): string[] {
  const t = transition(action);
  const out = o.byCustomer ? ["no_token"] : [];
  for (const s of o.byCustomer ? LIVE_STATES : TOKEN_STATES) {
    const r = t.outside[s];
    if (r && !out.includes(r.code)) out.push(r.code);
  }
  return [...out, ...t.refusals];
}

/** The diagram in host/registry/README.md, one arrow per line. */
export function lifecycleDiagram(lockAfter = 5): string {
  const lines: string[] = [];
  for (const t of LIFECYCLE) {
    const from = t.from.length ? t.from.join(" | ") : "(no token)";
    const to = t.to === "unchanged" ? "(same state)" : t.to;
    const label = t.action === "lock" ? t.label.replace("lockAfter", String(lockAfter)) : t.label;
    const who = t.by === "registry" ? "" : `, ${t.by}`;
    const kinds = t.kinds.length === TOKEN_KINDS.length ? "" : ` [${t.kinds.join(", ")} only]`;
    lines.push(` ${from} --${label}--> ${to}${who}${kinds}${t.note ? `   (${t.note})` : ""}`);
  }
  const soft = LIFECYCLE.filter((t) => t.soft).map((t) => ` ${t.action}: ${t.soft}`);
  const refusals = LIFECYCLE.filter((t) => Object.keys(t.outside).length).map((t) => {
    const byCode = new Map<string, string[]>();
    for (const s of TOKEN_STATES) {
      const r = t.outside[s];
      if (r) byCode.set(r.code, [...(byCode.get(r.code) ?? []), s]);
    }
    return ` ${t.action}: ${[...byCode].map(([code, states]) => `${code} (${states.join(", ")})`).join(", ")}`;
  });
  return [...lines, "", "Refused, by the token's state:", ...refusals, "", "Soft tokens (kind soft; keyfob only: issue, resync, refused not_keyfob):", ...soft].join("\n");
}

export const DIAGRAM_BEGIN = "<!-- lifecycle:begin (generated from host/registry/lifecycle.ts; do not edit) -->";
export const DIAGRAM_END = "<!-- lifecycle:end -->";

/** The README text with its lifecycle block regenerated. */
export function updateLifecycleDiagram(text: string): string {
  const a = text.indexOf(DIAGRAM_BEGIN);
  const b = text.indexOf(DIAGRAM_END);
  if (a < 0 || b < a) throw new Error(`the README has no ${DIAGRAM_BEGIN} ... ${DIAGRAM_END} block`);
  return text.slice(0, a + DIAGRAM_BEGIN.length) + "\n```\n" + lifecycleDiagram() + "\n```\n" + text.slice(b);
}
