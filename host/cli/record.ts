/**
 * `fobkit record`: what the factory record says, for the line's supervisor:
 * each batch's good, failed and pending keyfobs and their registration with
 * the bank; or the keyfobs themselves, filtered (the failures and why, to
 * re-test or scrap them; the serials the bank does not have yet). Never a seed.
 */
import type { RegistrationState, TokenRow, TokenState } from "../station/factory-record.js";
import { CliError, EXIT_OK, type Command } from "./command.js";
import { FACTORY_OPTIONS, intOption, openFactory } from "./provision.js";

const STATES: TokenState[] = ["pending", "good", "failed"];
const REGISTRATIONS: RegistrationState[] = ["none", "registered", "failed"];

function choice<T extends string>(values: Record<string, any>, name: string, allowed: T[]): T | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (!(allowed as string[]).includes(v)) throw new CliError(`fobkit record: --${name} must be one of ${allowed.join(", ")}, got '${v}'`);
  return v as T;
}

function tokenLine(t: TokenRow): string {
  const who = [t.operator, t.station].filter(Boolean).join("@") || "-";
  return [t.serial, t.batch, t.state, t.stage, t.registration, t.hardwareId ?? "-", who, t.finishedAt ?? t.startedAt, t.reason ?? ""].join("\t");
}

export const recordCommand: Command = {
  name: "record",
  summary: "show the factory record: each batch's good, failed and pending keyfobs, or the keyfobs themselves",
  description: `Without --list: a line per batch (parameters, good, failed, pending, registered
with the bank, registration failed). With --list: a line per keyfob, tab-separated:
serial, batch, state, last stage, registration, hardware id, operator@station,
time, reason. Filters narrow the list. Reads the record; changes nothing.

  fobkit record --factory line1.sqlite
  fobkit record --factory line1.sqlite --list --batch 7 --state failed
  fobkit record --factory line1.sqlite --list --state good --registration failed`,
  options: {
    ...FACTORY_OPTIONS,
    list: { type: "boolean", help: "list keyfobs instead of batch totals" },
    batch: { type: "string", help: "only this batch", placeholder: "ID" },
    state: { type: "string", help: STATES.join(", "), placeholder: "STATE" },
    registration: { type: "string", help: `with the bank: ${REGISTRATIONS.join(", ")}`, placeholder: "R" },
    json: { type: "boolean", help: "print {batches: [...]} or {tokens: [...]} as JSON" },
  },
  async run({ values }, io) {
    const batch = intOption(values, "batch", 1, 9999);
    const state = choice(values, "state", STATES);
    const registration = choice(values, "registration", REGISTRATIONS);
    if (!values.list && (batch !== undefined || state !== undefined || registration !== undefined)) {
      throw new CliError("fobkit record: --batch, --state and --registration filter --list; add --list");
    }
    const record = openFactory(values, false);
    try {
      if (values.list) {
        const tokens = record.tokens({ batch, state, registration });
        io.stdout.write(values.json ? JSON.stringify({ tokens }) + "\n" : tokens.map((t) => tokenLine(t) + "\n").join(""));
      } else {
        const batches = record.summary();
        io.stdout.write(values.json ? JSON.stringify({ batches }) + "\n" : batches.map((b) =>
          `batch ${b.id}\t${b.algorithm}, ${b.digits} digits, ${b.period} s\tgood ${b.counts.good}\tfailed ${b.counts.failed}\tpending ${b.counts.pending}` +
          `\tregistered ${b.registered}\tregistration failed ${b.registrationFailed}\tsince ${b.createdAt}\n`).join(""));
      }
      return EXIT_OK;
    } finally {
      record.close();
    }
  },
};
