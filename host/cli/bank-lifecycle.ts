/**
 * `fobkit bank issue|activate|verify|unlock|withdraw|deactivate|resync|status|tokens|audit`:
 * the staff CLI on the store directly, one command per lifecycle step.
 */
import { wallClock } from "../clock.js";
import { unlockBreakGlass } from "../registry/approvals.js";
import { MAX_LIST } from "../registry/registry.js";
import { REQUEST_ID_PATTERN } from "../registry/validation.js";
import { BARRING_REASONS, TOKEN_STATES, WITHDRAW_REASONS, type AuditRecord, type TokenStatus } from "../registry/types.js";
import { KIND_LABELS, REGISTRATION_LABELS, registrationOf, type Registration } from "../registry/soft-tokens.js";
import { COMMON_OPTIONS, POLICY_OPTIONS, SEED_OPTIONS, required, runBank } from "./bank-common.js";
import { CliError, EXIT_USAGE, intOption, oneOf, type Command } from "./command.js";

const SERIAL = { type: "string", placeholder: "SERIAL", help: "the serial printed on the keyfob" } as const;
const CUSTOMER = { type: "string", placeholder: "ID", help: "the bank's customer id" } as const;
const CODE = { type: "string", placeholder: "DIGITS", help: "the code the keyfob shows (exactly its digit count)" } as const;

/** The registration status a live token gives its customer (soft-tokens.ts registrationOf), from a status. */
function registrationOfStatus(s: TokenStatus): Registration | undefined {
  if (!s.customer || !["issued", "active", "locked"].includes(s.state)) return undefined;
  return registrationOf(s.customer, { serial: s.serial, state: s.state, kind: s.kind, setup_at: s.setUp ? 1 : null, setup_from: null, setup_before: null });
}

function registrationText(r: Registration | undefined): string {
  if (!r) return "-";
  return `${r.status} (${REGISTRATION_LABELS[r.status].ja})${r.kind === "soft" && r.status === "issued" ? (r.setUp ? ", app set up" : ", app not set up yet") : ""}`;
}

function statusText(s: TokenStatus): string {
  return [
    `serial      ${s.serial}`,
    `kind        ${KIND_LABELS[s.kind].en} (${KIND_LABELS[s.kind].ja})`,
    `state       ${s.state}`,
    `registration ${registrationText(registrationOfStatus(s))}`,
    ...(s.kind === "soft" ? [`user ID     ${s.serial.slice(2)}`, `set up      ${s.setUp ? "yes" : `no${s.setupBefore ? ` (by ${s.setupBefore}${s.setupFrom ? `, not before ${s.setupFrom}` : ""})` : ""}`}`] : []),
    `customer    ${s.customer ?? "-"}`,
    `issuance    ${s.issuance}`,
    `token       ${s.manufacturer}${s.model ? " " + s.model : ""}, ${s.algorithm}, ${s.digits} digits, ${s.period} s`,
    `drift       ${s.drift} step(s)`,
    `failures    ${s.failCount} in a row`,
    `activated   ${s.activatedAt ?? "-"}`,
    `withdrawn   ${s.withdrawn ?? "-"}`,
    `sealed by   ${s.kekId}`,
    `origin      ${s.origin}`,
    `updated     ${s.updatedAt}`,
  ].join("\n");
}

const EXIT_HELP = "Exit status: 0 done, 1 refused (reason code on stderr and in --json), 2 bad usage or input.";

export const bankIssue: Command = {
  name: "bank issue",
  summary: "issue a keyfob in stock (or retired) to a customer",
  description: `A customer holds at most one issued, active or locked keyfob.\nExample: fobkit bank issue --serial FK07000100004226 --customer 999800000001\n${EXIT_HELP}`,
  options: { serial: SERIAL, customer: CUSTOMER, ...COMMON_OPTIONS },
  run: ({ values }, io) =>
    runBank("bank issue", values, io, { needsKek: false }, async ({ registry, actor }) => {
      const s = await registry.issue(required(values, "serial", "bank issue"), required(values, "customer", "bank issue"), actor);
      return { json: { token: s }, text: `issued ${s.serial} to ${s.customer} (issuance ${s.issuance}); the customer activates it with its first code` };
    }),
};

export const bankActivate: Command = {
  name: "bank activate",
  summary: "start of use (利用開始): activate an issued keyfob or set-up software token with the code it shows",
  description:
    "By the keyfob's serial or by the customer (a software token: the code the app shows after its set-up).\n" +
    `Examples: fobkit bank activate --serial FK07000100004226 --code 84755224\n          fobkit bank activate --customer 999800000001 --code 40517394\n${EXIT_HELP}`,
  options: { serial: SERIAL, customer: CUSTOMER, code: CODE, ...SEED_OPTIONS, ...POLICY_OPTIONS },
  run: ({ values }, io) =>
    runBank("bank activate", values, io, { needsKek: true }, async ({ registry, actor }) => {
      if (!!values.serial === !!values.customer) throw new CliError("fobkit bank activate: give --serial or --customer (one of them)");
      const by = values.serial ? { serial: values.serial as string } : { customer: values.customer as string };
      const a = await registry.activate(by, required(values, "code", "bank activate"), actor);
      return { json: { result: "accepted", ...a }, text: `activated ${a.serial} (drift ${a.drift} step(s))` };
    }),
};

export const bankVerify: Command = {
  name: "bank verify",
  summary: "check a customer's code (single use; wrong codes in a row lock)",
  description: `Example: fobkit bank verify --customer 999800000001 --code 84755224\n${EXIT_HELP}`,
  options: { customer: CUSTOMER, code: CODE, ...SEED_OPTIONS, ...POLICY_OPTIONS },
  run: ({ values }, io) =>
    runBank("bank verify", values, io, { needsKek: true }, async ({ registry, actor }) => {
      const a = await registry.verify(required(values, "customer", "bank verify"), required(values, "code", "bank verify"), actor);
      return { json: { result: "accepted", ...a }, text: `accepted (${a.serial}, drift ${a.drift} step(s))` };
    }),
};

export const bankUnlock: Command = {
  name: "bank unlock",
  summary: "lift the lock after repeated wrong codes",
  description: [
    "Check with the customer first: a lock may be someone else guessing.",
    "The operator's break-glass path: it does not apply the maker-checker rule (a teller's third unlock of one",
    "customer in 24 hours needs a supervisor's approval in the console). Whoever runs it holds the database and the",
    "key file, so a rule here would only be a speed bump; instead each unlock is audited as break-glass, and the",
    "record says when it went past the rule (detail.breakGlass, ruleBypassed, unlocksInDay). Tellers use the console",
    "or the API, where the rule holds.",
    EXIT_HELP,
  ].join("\n"),
  options: { customer: CUSTOMER, ...COMMON_OPTIONS },
  run: ({ values }, io) =>
    runBank("bank unlock", values, io, { needsKek: false }, async ({ registry, actor }) => {
      const customer = required(values, "customer", "bank unlock");
      // The registry's clock (wallClock: FOBKIT_CLOCK_OFFSET too), so the 24 hours are counted as the audit's times are.
      const u = await unlockBreakGlass(registry, customer, actor, wallClock(io.env)());
      const s = u.token;
      if (u.ruleBypassed) {
        io.stderr.write(
          `fobkit bank unlock: break-glass: ${customer}'s keyfob was unlocked ${u.unlocksInDay} times in the last 24 hours; a teller would have needed a supervisor's approval (maker-checker), which this command does not ask for. Audited as break-glass.\n`,
        );
      }
      return { json: { token: s, breakGlass: true, ruleBypassed: u.ruleBypassed, unlocksInDay: u.unlocksInDay }, text: `unlocked ${s.serial}: ${s.state} (break-glass, audited)` };
    }),
};

export const bankWithdraw: Command = {
  name: "bank withdraw",
  summary: "take a customer's keyfob out of use without its code: lost, stolen, returned or faulty",
  description: [
    "For a keyfob the customer cannot read a code from (deactivation needs one).",
    "It is retired at once, and the customer may be issued another keyfob.",
    `A keyfob withdrawn as ${BARRING_REASONS.join(" or ")} is never issued again: whoever had it may have read its key.`,
    "A returned or faulty one may be issued again after a check.",
    "Example: fobkit bank withdraw --customer 999800000001 --reason lost",
    EXIT_HELP,
  ].join("\n"),
  options: { customer: CUSTOMER, reason: { type: "string", placeholder: "WHY", help: WITHDRAW_REASONS.join(", ") }, ...COMMON_OPTIONS },
  run: ({ values }, io) =>
    runBank("bank withdraw", values, io, { needsKek: false }, async ({ registry, actor }) => {
      required(values, "reason", "bank withdraw"); // a missing --reason is named as missing
      const reason = oneOf(values, "reason", WITHDRAW_REASONS, "bank withdraw")!;
      const s = await registry.withdraw(required(values, "customer", "bank withdraw"), reason, actor);
      const next = BARRING_REASONS.includes(reason) ? "it will not be issued again" : "it may be issued again";
      return { json: { token: s }, text: `withdrew ${s.serial} (${reason}): retired; ${next}; ${s.customer} may be issued another keyfob` };
    }),
};

export const bankDeactivate: Command = {
  name: "bank deactivate",
  summary: "deactivate a customer's keyfob with a current code (it must be issued again to be used again)",
  description: `The channel checks the customer's transaction password before this.\n${EXIT_HELP}`,
  options: { customer: CUSTOMER, code: CODE, ...SEED_OPTIONS, ...POLICY_OPTIONS },
  run: ({ values }, io) =>
    runBank("bank deactivate", values, io, { needsKek: true }, async ({ registry, actor }) => {
      const a = await registry.deactivate(required(values, "customer", "bank deactivate"), required(values, "code", "bank deactivate"), actor);
      return { json: { result: "accepted", ...a }, text: `deactivated ${a.serial}: retired` };
    }),
};

export const bankResync: Command = {
  name: "bank resync",
  summary: "re-learn the clock of a keyfob drifted beyond the window, from two consecutive codes",
  description: `Ask the customer for a code, then the next one a minute later.\nExample: fobkit bank resync --serial FK07000100004226 --code 12345678 --code 87654321\n${EXIT_HELP}`,
  options: { serial: SERIAL, code: { ...CODE, multiple: true, help: "a code; give two, consecutive" }, ...SEED_OPTIONS },
  run: ({ values }, io) =>
    runBank("bank resync", values, io, { needsKek: true }, async ({ registry, actor }) => {
      const codes = (values.code ?? []) as string[];
      if (codes.length !== 2) throw new CliError(`fobkit bank resync: give --code exactly twice (two consecutive codes), got ${codes.length}`);
      const a = await registry.resync(required(values, "serial", "bank resync"), [codes[0], codes[1]], actor);
      return { json: { result: "accepted", ...a }, text: `resynchronised ${a.serial}: drift ${a.drift} step(s)` };
    }),
};

export const bankStatus: Command = {
  name: "bank status",
  summary: "show a token's kind, state, registration status, customer, drift and failures (by serial or customer)",
  description: [
    "Registration status (the channel's): not_registered (未登録), issued (発行済), in_use (利用中), locked (停止中).",
    "Kinds: keyfob (キーホルダー型), soft (ソフトウェアトークン). By customer, a customer with no token is shown as",
    "not_registered (exit 0): such a customer logs in without a code.",
    EXIT_HELP,
  ].join("\n"),
  options: { serial: SERIAL, customer: CUSTOMER, ...COMMON_OPTIONS },
  run: ({ values }, io) =>
    runBank("bank status", values, io, { needsKek: false }, async ({ registry }) => {
      if (!!values.serial === !!values.customer) throw new CliError("fobkit bank status: give --serial or --customer (one of them)");
      if (values.serial) {
        const s = await registry.status(values.serial);
        return { json: { token: s, registration: registrationOfStatus(s) ?? null }, text: statusText(s) };
      }
      const registration = await registry.soft.registration(values.customer);
      if (registration.status === "not_registered") {
        return { json: { token: null, registration }, text: `customer    ${values.customer}\nregistration ${registrationText(registration)}: no token; logs in without a code` };
      }
      const s = await registry.statusOfCustomer(values.customer);
      return { json: { token: s, registration }, text: statusText(s) };
    }),
};

function tokenLine(s: TokenStatus): string {
  // Kind and registration status last: scripts that read the first six columns keep working.
  return [s.serial, s.state, s.customer ?? "-", s.failCount, s.withdrawn ?? "-", s.updatedAt, s.kind, registrationText(registrationOfStatus(s))].join("\t");
}

export const bankTokens: Command = {
  name: "bank tokens",
  summary: "list tokens (keyfobs and software tokens) in serial order, of one state if asked; --counts for how many are in each state",
  description: [
    "Lines: serial, state, customer, wrong codes in a row, withdrawal reason, last change, kind (keyfob or soft),",
    "registration status (発行済 / 利用中 / 停止中; a software token not set up yet says so) (tab-separated).",
    "Examples: fobkit bank tokens --state locked     (who is locked out now)",
    "          fobkit bank tokens --counts           (stock, issued, active, locked, retired)",
    `Pages: --limit N (default 100, max ${MAX_LIST}), then --after the last serial shown; --json gives "next".`,
    EXIT_HELP,
  ].join("\n"),
  options: {
    state: { type: "string", placeholder: "STATE", help: TOKEN_STATES.join(", ") },
    after: { type: "string", placeholder: "SERIAL", help: "only serials after this one (the last of the previous page)" },
    limit: { type: "string", placeholder: "N", help: `at most N keyfobs (default 100, max ${MAX_LIST})` },
    counts: { type: "boolean", help: "print how many keyfobs are in each state instead" },
    ...COMMON_OPTIONS,
  },
  run: ({ values }, io) =>
    runBank("bank tokens", values, io, { needsKek: false }, async ({ registry }) => {
      const state = oneOf(values, "state", TOKEN_STATES, "bank tokens");
      // The registry clamps the page to 1..MAX_LIST.
      const limit = intOption(values, "limit", 0, 99999);
      if (values.counts) {
        if (state !== undefined || values.after !== undefined || limit !== undefined) throw new CliError("fobkit bank tokens: --counts takes no --state, --after or --limit");
        const counts = await registry.countByState();
        return { json: { counts }, text: TOKEN_STATES.map((s) => `${s}\t${counts[s]}`).join("\n") };
      }
      const page = await registry.listTokens({ state, afterSerial: values.after, limit });
      return { json: page, text: page.tokens.map(tokenLine).join("\n") };
    }),
};

function auditLine(r: AuditRecord): string {
  return [r.id, r.at, r.actor, r.source, r.action, r.outcome, r.serial ?? "-", r.customer ?? "-", r.detail ? JSON.stringify(r.detail) : ""].join("\t");
}

export const bankAudit: Command = {
  name: "bank audit",
  summary: "print audit records (who, what, when, from where), oldest first",
  options: {
    serial: SERIAL,
    customer: CUSTOMER,
    request: { type: "string", placeholder: "ID", help: "only records written by this API request (its X-Request-Id, named by a 503 outcome_unknown), by any key: the actor column says which; none means its change was not made, once the request has ended (README, X-Request-Id); needs --customer or --serial" },
    after: { type: "string", placeholder: "ID", help: "only records after this id" },
    limit: { type: "string", placeholder: "N", help: "at most N records (default 1000, max 10000)" },
    ...COMMON_OPTIONS,
  },
  run: ({ values }, io) =>
    runBank("bank audit", values, io, { needsKek: false }, async ({ registry }) => {
      for (const k of ["after", "limit"]) {
        if (values[k] !== undefined && !/^[0-9]{1,15}$/.test(values[k])) throw new CliError(`fobkit bank audit: --${k} must be a whole number`);
      }
      if (values.request !== undefined && !new RegExp(REQUEST_ID_PATTERN).test(values.request)) {
        throw new CliError(`fobkit bank audit: --request must be 1 to 64 letters, digits, '.', '_', ':' or '-' (an X-Request-Id)`);
      }
      if (values.request !== undefined && values.customer === undefined && values.serial === undefined) {
        // The audit has no index on request ids (sql-token-store.ts auditTrail): alone, --request would read every record.
        throw new CliError("fobkit bank audit: --request needs --customer or --serial too (request ids have no index of their own: alone it would read the whole audit)", EXIT_USAGE, "bad_request");
      }
      const records = await registry.auditTrail({
        serial: values.serial,
        customer: values.customer,
        request: values.request,
        afterId: values.after === undefined ? undefined : Number(values.after),
        limit: values.limit === undefined ? undefined : Number(values.limit),
      });
      return { json: { records }, text: records.map(auditLine).join("\n") };
    }),
};

export const BANK_LIFECYCLE_COMMANDS = [bankIssue, bankActivate, bankVerify, bankUnlock, bankWithdraw, bankDeactivate, bankResync, bankStatus, bankTokens, bankAudit];
