/** `fobkit station`: continuous provisioning on several ports; serials to stdout, progress to stderr. */
import { CliError, EXIT_OK, EXIT_REFUSED, type Command, intOption, requirePortKind } from "./command.js";
import { ProgressView } from "../station/progress.js";
import { runStation } from "../station/station.js";
import { keyfobClockWarning, wallClock } from "../clock.js";
import { readImage } from "./flash.js";
import { lineLabel } from "../station/factory-record.js";
import { BANK_OPTIONS, bankFrom, FACTORY_OPTIONS, LINE_OPTION, PARAM_OPTIONS, openFactoryToProvision, paramsFrom, resultJson, stationId } from "./provision.js";

export const stationCommand: Command = {
  name: "station",
  summary: "provision keyfobs continuously as they are plugged in",
  transports: ["serial", "hid"],
  description: `Waits for keyfobs (USB-discovered, or the --ports given), provisions each once,
several at a time, and prints each good serial on stdout for its label.
A keyfob is provisioned again only after it was removed and a keyfob
appears on that port. Ctrl-C finishes the keyfobs in hand and stops.

The record's --line is in every serial (see fobkit provision --help). With
--bank, a serial the bank already holds as another token means another
record uses this line: the station stops at once (exit 1), before more
keyfobs are labelled and locked that the bank cannot take. It stops the same
way when the record refuses its batch (exported meanwhile, or full), leaving
that keyfob untouched.

  fobkit station --factory line7.sqlite --line 7 --ports /dev/ttyUSB0,/dev/ttyUSB1`,
  options: {
    ...FACTORY_OPTIONS,
    ...LINE_OPTION,
    ports: { type: "string", help: "watch these ports (comma-separated) instead of USB discovery", placeholder: "P1,P2" },
    count: { type: "string", help: "stop after this many good tokens", placeholder: "N" },
    flash: { type: "boolean", help: "also take factory-fresh boards: install the firmware through the REPL first (fobkit flash; serial ports only: a HID keyfob already runs fobkit)" },
    image: { type: "string", help: "the Lua image for --flash (default: build/firmware/fobkit.lua)", placeholder: "FILE" },
    ...PARAM_OPTIONS,
    ...BANK_OPTIONS,
    "poll-ms": { type: "string", help: "how often to look for keyfobs (default 200)", placeholder: "MS" },
    json: { type: "boolean", help: "one JSON line per keyfob on stdout" },
  },
  async run({ values }, io) {
    const ports = values.ports === undefined ? undefined : String(values.ports).split(",").map((p) => p.trim()).filter(Boolean);
    if (ports !== undefined && ports.length === 0) throw new CliError("--ports needs at least one path");
    for (const p of ports ?? []) requirePortKind(stationCommand, p);
    const count = intOption(values, "count", 1, 1_000_000);
    const pollMs = intOption(values, "poll-ms", 10, 60000);
    const timeoutMs = intOption(values, "timeout", 10, 600000);
    const batch = intOption(values, "batch", 1, 9999);
    const params = paramsFrom(values);
    const bank = bankFrom(values);
    const clockWarning = keyfobClockWarning(io.env);
    if (clockWarning) io.stderr.write(clockWarning);
    const record = openFactoryToProvision(values);
    try {
      // Fail on a bad batch/parameter choice before waiting for keyfobs.
      const b = record.resolveBatch(batch, params);
      const view = new ProgressView(io.stderr);
      io.stderr.write(`station: line ${lineLabel(record.line!)}, batch ${b.id} (${b.algorithm}, ${b.digits} digits, ${b.period} s), watching ${ports ? ports.join(", ") : "USB"}\n`);
      // A monotonic clock: an NTP step during a shift must not bend the pace.
      const started = performance.now();
      const totals = await runStation({
        record, ports, count, pollMs, bank, signal: io.signal, session: { timeoutMs },
        flashImage: values.flash ? readImage(values.image) : undefined,
        provision: { batch: b.id, params, operator: values.operator, station: stationId(values), now: wallClock(io.env) },
        onEvent: (e) => {
          view.handle(e);
          if (e.type === "result") {
            if (values.json) io.stdout.write(JSON.stringify(resultJson(e.result)) + "\n");
            else if (e.result.status === "good") io.stdout.write(e.result.serial + "\n");
          }
        },
      });
      io.stderr.write(`station stopped: ${totals.good} good, ${totals.failed} failed${pace(totals.good, performance.now() - started)}\n`);
      const refusal = record.provisioningRefusal() ?? totals.collision;
      if (refusal !== undefined) {
        io.stderr.write(`fobkit: ${refusal}\n`);
        return EXIT_REFUSED;
      }
      return EXIT_OK;
    } finally {
      record.close();
    }
  },
};

/** " in 1 h 2 min (399 good per hour)": the shift's pace, from a minute on (a shorter run says only its length). */
export function pace(good: number, ms: number): string {
  const s = Math.round(ms / 1000);
  const length = s < 60 ? `${s} s` : s < 3600 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return s < 60 ? ` in ${length}` : ` in ${length} (${Math.round((good * 3600) / s)} good per hour)`;
}
