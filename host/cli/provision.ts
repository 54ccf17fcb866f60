/**
 * `fobkit provision`: one keyfob on one port, recorded in the factory file.
 * Also the option specs and helpers the station/export/register commands share.
 */
import { hostname } from "node:os";
import { CliError, EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, intOption, portTransport, type Command, type Io, type OptionSpec } from "./command.js";
import { DeviceSession } from "../device/session.js";
import { FactoryError, FactoryRecord, type TokenParams } from "../station/factory-record.js";
import { MAX_LINE } from "../serial/serial-number.js";
import { FactoryKeyError } from "../station/seed-cipher.js";
import { provisionKeyfob, type ProvisionResult } from "../station/provision.js";
import { keyfobClockWarning, wallClock } from "../clock.js";
import { withRegistration } from "../station/station.js";
import { BankConfigError, bankTarget } from "../station/bank-client.js";
import { TransportError } from "../transport/transport.js";

export const FACTORY_OPTIONS: Record<string, OptionSpec> = {
  factory: { type: "string", help: "the factory record (SQLite file; created with its key file if missing)", placeholder: "FILE" },
  "key-file": { type: "string", help: "key that seals seeds in the record (default: FILE.key beside it; keep it elsewhere in production)", placeholder: "F" },
};

/** The production line: only commands that may create a record or issue serials take it. */
export const LINE_OPTION: Record<string, OptionSpec> = {
  line: {
    type: "string",
    help: `production line 1..${MAX_LINE}, printed in every serial (FK + line + batch + sequence + check); required to create a record, must match an existing one's (gives a record made before line numbers its line). Each line has its own number: two records with one line would issue the same serials`,
    placeholder: "N",
  },
};

export const PARAM_OPTIONS: Record<string, OptionSpec> = {
  algorithm: { type: "string", help: "TOTP hash for a new batch: SHA1 (default) or SHA256", placeholder: "ALG" },
  digits: { type: "string", help: "code length for a new batch, 6..8 (default 8)", placeholder: "N" },
  period: { type: "string", help: "seconds per code for a new batch (default 60)", placeholder: "S" },
  batch: { type: "string", help: "batch number 1..9999 (default: the newest batch, or 1; once that was exported, a new batch after it)", placeholder: "ID" },
  operator: { type: "string", help: "who runs the station (recorded with each token)", placeholder: "NAME" },
  station: { type: "string", help: "station id recorded with each token (default: host name)", placeholder: "ID" },
  timeout: { type: "string", help: "ms to wait for each keyfob reply (default 2000)", placeholder: "MS" },
};

export const BANK_OPTIONS = {
  bank: { type: "string" as const, help: "register each good token with the bank at this URL (https; http only to loopback)", placeholder: "URL" },
  "bank-key-file": { type: "string" as const, help: "file holding the bank's factory-role API key", placeholder: "F" },
};

export function bankFrom(values: Record<string, any>) {
  if (values.bank === undefined) {
    if (values["bank-key-file"] !== undefined) throw new CliError("--bank-key-file needs --bank URL");
    return undefined;
  }
  try {
    return bankTarget(values.bank, values["bank-key-file"]);
  } catch (e) {
    if (e instanceof BankConfigError) throw new CliError(e.message, EXIT_USAGE, "bad_usage");
    throw e;
  }
}

export function paramsFrom(values: Record<string, any>): Partial<TokenParams> {
  const alg = values.algorithm === undefined ? undefined : String(values.algorithm).toUpperCase();
  if (alg !== undefined && alg !== "SHA1" && alg !== "SHA256") throw new CliError(`--algorithm must be SHA1 or SHA256, got '${values.algorithm}'`);
  return { algorithm: alg as TokenParams["algorithm"] | undefined, digits: intOption(values, "digits", 6, 8), period: intOption(values, "period", 1, 86400) };
}

export function requireString(values: Record<string, any>, name: string): string {
  const v = values[name];
  if (typeof v !== "string" || v === "") throw new CliError(`--${name} is required`);
  return v;
}

/** Open the factory record, mapping its refusals onto exit statuses. --line (if the command has it) binds or checks the record's line. */
export function openFactory(values: Record<string, any>, create: boolean): FactoryRecord {
  const line = intOption(values, "line", 1, MAX_LINE);
  try {
    return FactoryRecord.open(requireString(values, "factory"), { keyFile: values["key-file"], create, line });
  } catch (e) {
    throw cliErrorFrom(e);
  }
}

/** Open the record to issue serials: refused before any keyfob is touched when it may not (no line, or its line collides at the bank). */
export function openFactoryToProvision(values: Record<string, any>): FactoryRecord {
  const record = openFactory(values, true);
  const refusal = record.provisioningRefusal();
  if (refusal !== undefined) {
    record.close();
    throw new CliError(refusal, EXIT_REFUSED, "line_refused");
  }
  return record;
}

export function cliErrorFrom(e: unknown): unknown {
  if (e instanceof FactoryKeyError) return new CliError(e.message, EXIT_USAGE, "bad_key");
  if (e instanceof FactoryError) return new CliError(e.message, e.code === "refused" ? EXIT_REFUSED : EXIT_USAGE, e.code === "refused" ? "refused" : e.code === "key" ? "bad_key" : "bad_usage");
  if (e instanceof TransportError) return new CliError(e.message, e.code === "not_found" ? EXIT_USAGE : EXIT_FAILED, e.code);
  return e;
}

/** What --json prints for a provisioned (or failed) keyfob. */
export function resultJson(r: ProvisionResult): Record<string, unknown> {
  return {
    serial: r.serial ?? null, batch: r.batch ?? null, status: r.status, port: r.port, hardwareId: r.hardwareId ?? null,
    ...(r.reason ? { reason: r.reason } : {}),
    ...(r.registration ? { registration: r.registration } : {}), ...(r.registrationError ? { registrationError: r.registrationError } : {}), ...(r.wiped !== undefined ? { wiped: r.wiped } : {}), ...(r.recovered ? { recovered: true } : {}), ...(r.refused ? { refused: true } : {}),
    deviceClockOffset: r.deviceClockOffset ?? null, durationMs: r.durationMs,
  };
}

export function stationId(values: Record<string, any>): string {
  return values.station ?? hostname();
}

async function run(args: { values: Record<string, any> }, io: Io): Promise<number> {
  const v = args.values;
  const port = requireString(v, "port");
  const params = paramsFrom(v);
  const batch = intOption(v, "batch", 1, 9999);
  const timeoutMs = intOption(v, "timeout", 10, 600000);
  const bank = bankFrom(v);
  const clockWarning = keyfobClockWarning(io.env);
  if (clockWarning) io.stderr.write(clockWarning);
  const record = openFactoryToProvision(v);
  let session: DeviceSession | undefined;
  try {
    record.recoverInterrupted();
    try {
      session = await DeviceSession.open(portTransport(provisionCommand, port), { timeoutMs });
    } catch (e) {
      throw cliErrorFrom(e);
    }
    let result: ProvisionResult;
    try {
      result = await provisionKeyfob(session, record, {
        batch, params, operator: v.operator, station: stationId(v), now: wallClock(io.env),
        onStep: v.json ? undefined : (s) => io.stderr.write(`  ${s}\n`),
      });
    } catch (e) {
      throw cliErrorFrom(e);
    }
    // A serial the bank holds as another token: this record's line is used by another record too.
    const collided = result.status === "good" && bank !== undefined && (await withRegistration(record, bank, result));
    if (v.json) io.stdout.write(JSON.stringify(resultJson(result)) + "\n");
    else if (result.status === "good") {
      io.stdout.write(result.serial + "\n");
      io.stderr.write(`provisioned ${result.serial} (batch ${result.batch}) in ${(result.durationMs / 1000).toFixed(1)} s${result.recovered ? "; lock confirmed on re-attach" : ""}\n`);
      if (result.registration === "registered") io.stderr.write(`registered ${result.serial} with the bank\n`);
      if (result.registration === "failed") io.stderr.write(`fobkit: ${result.serial} is good but NOT registered with the bank (${result.registrationError}); run \`fobkit register\` later\n`);
    } else {
      io.stderr.write(`fobkit: provisioning failed: ${result.reason}${result.serial ? ` (serial ${result.serial} recorded failed${result.wiped ? ", keyfob wiped" : ""})` : ""}\n`);
    }
    if (collided) {
      io.stderr.write(`fobkit: ${record.provisioningRefusal() ?? result.registrationError}\n`);
      return EXIT_REFUSED;
    }
    return result.status === "good" ? EXIT_OK : result.refused ? EXIT_REFUSED : EXIT_FAILED;
  } finally {
    await session?.close();
    record.close();
  }
}

export const provisionCommand: Command = {
  name: "provision",
  summary: "provision one keyfob: serial, seed, clock, self-test, lock, record",
  transports: ["serial", "hid"],
  description: `Assigns the batch's next serial, writes a fresh seed (CSPRNG), sets the clock
from this host's UTC, checks the keyfob's self-test code against the host's
own, locks it and records it good in the factory file. Any failure is
recorded failed with the reason and the keyfob is wiped when not locked.
Prints the serial for the label (stdout). Exit 0 good, 1 refused (the
record may not issue serials, or with --bank the bank holds this serial as
another token: see below), 3 failed.

A record belongs to one production line, given with --line when it is made;
every serial carries it (FK 07 0001 000042 97: line 07, batch 1, keyfob 42,
check digits), so two lines never issue the same serial. If the bank refuses
a serial as held by another token, another record uses this line number:
the record then refuses to issue more until the line gets a new record.

  fobkit provision --port /dev/ttyUSB0 --factory line7.sqlite --line 7 --operator ana`,
  options: {
    port: { type: "string", help: "the keyfob's port: a serial path, or hid:PATH", placeholder: "PATH" },
    ...FACTORY_OPTIONS,
    ...LINE_OPTION,
    ...PARAM_OPTIONS,
    ...BANK_OPTIONS,
    json: { type: "boolean", help: "print the result as JSON (serial, batch, status, ...)" },
  },
  run,
};
