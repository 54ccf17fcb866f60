/**
 * `fobkit record`: what the factory record says, for the line's supervisor:
 * each batch's good, failed and pending keyfobs and their registration with
 * the bank; or the keyfobs themselves, filtered (the failures and why, to
 * re-test or scrap them; the serials the bank does not have yet). Never a seed.
 */
import { FactoryRecord, lineLabel, type RegistrationState, type TokenRow, type TokenState } from "../station/factory-record.js";
import { CliError, EXIT_OK, intOption, oneOf, type Command } from "./command.js";
import { cliErrorFrom, requireString } from "./provision.js";

const STATES: TokenState[] = ["pending", "good", "failed"];
const REGISTRATIONS: RegistrationState[] = ["none", "registered", "failed"];

/** Free text (operator, station, reasons) on one line and in one column. */
const cell = (s: string | null): string => (s ?? "").replace(/[\t\r\n]+/g, " ");

function tokenLine(t: TokenRow): string {
  const who = [t.operator, t.station].filter(Boolean).map(cell).join("@") || "-";
  // Why: the provisioning failure, or for a good keyfob the bank's refusal.
  const why = t.reason ?? (t.registration === "failed" ? `registration: ${t.registrationError ?? "failed"}` : "");
  return [t.serial, t.batch, t.state, t.stage, t.registration, t.hardwareId ?? "-", who, t.finishedAt ?? t.startedAt, cell(why)].join("\t");
}

export const recordCommand: Command = {
  name: "record",
  summary: "show the factory record: each batch's good, failed and pending keyfobs, or the keyfobs themselves",
  description: `Without --list: the record's production line (the two digits after FK in its
serials), then a line per batch (parameters, good, failed, pending, registered
with the bank, registration failed); --json gives {line, batches}, line null
for a record made before line numbers. With --list: a line per keyfob, tab-separated:
serial, batch, state, last stage, registration, hardware id, operator@station,
time, and why (the failure, or the bank's registration error). Filters narrow
the list. Reads the record without changing it, and without its key file.
--registration none lists good keyfobs never sent to the bank, failed those
it refused or could not be reached for; fobkit register sends both.

  fobkit record --factory line1.sqlite
  fobkit record --factory line1.sqlite --list --batch 7 --state failed
  fobkit record --factory line1.sqlite --list --state good --registration failed`,
  options: {
    factory: { type: "string", help: "the factory record (SQLite file) to read", placeholder: "FILE" },
    list: { type: "boolean", help: "list keyfobs instead of batch totals" },
    batch: { type: "string", help: "only this batch", placeholder: "ID" },
    state: { type: "string", help: STATES.join(", "), placeholder: "STATE" },
    registration: { type: "string", help: `with the bank: ${REGISTRATIONS.join(", ")}`, placeholder: "R" },
    json: { type: "boolean", help: "print {batches: [...]} or {tokens: [...]} as JSON" },
  },
  async run({ values }, io) {
    const batch = intOption(values, "batch", 1, 9999);
    const state = oneOf(values, "state", STATES, "record");
    const registration = oneOf(values, "registration", REGISTRATIONS, "record");
    if (!values.list && (batch !== undefined || state !== undefined || registration !== undefined)) {
      throw new CliError("fobkit record: --batch, --state and --registration filter --list; add --list");
    }
    let record: FactoryRecord;
    try {
      record = FactoryRecord.open(requireString(values, "factory"), { readOnly: true });
    } catch (e) {
      throw cliErrorFrom(e);
    }
    try {
      if (values.list) {
        const tokens = record.tokens({ batch, state, registration });
        io.stdout.write(values.json ? JSON.stringify({ tokens }) + "\n" : tokens.map((t) => tokenLine(t) + "\n").join(""));
      } else {
        const batches = record.summary();
        const line = record.line === null ? "line none (made before line numbers: give it one with --line when provisioning)" : `line ${lineLabel(record.line)}`;
        io.stdout.write(values.json ? JSON.stringify({ line: record.line, batches }) + "\n" : line + "\n" + batches.map((b) =>
          `batch ${b.id}\t${b.algorithm}, ${b.digits} digits, ${b.period} s\tgood ${b.counts.good}\tfailed ${b.counts.failed}\tpending ${b.counts.pending}` +
          `\tregistered ${b.registered}\tregistration failed ${b.registrationFailed}\tsince ${b.createdAt}${b.exportedAt ? `\texported ${b.exportedAt}` : ""}\n`).join(""));
      }
      return EXIT_OK;
    } finally {
      record.close();
    }
  },
};
