/**
 * `fobkit provision`: one keyfob on one port, recorded in the factory file.
 * Also the option specs and helpers the station/export/register commands share.
 */
import { hostname } from "node:os";
import { CliError, EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, intOption, type Command, type Io, type OptionSpec } from "./command.js";
import { DeviceSession } from "../device/session.js";
import { FactoryError, FactoryRecord, type TokenParams } from "../station/factory-record.js";
import { FactoryKeyError } from "../station/seed-cipher.js";
import { provisionKeyfob, type ProvisionResult } from "../station/provision.js";
import { wallClock } from "../clock.js";
import { transportFor } from "../transport/discover.js";
import { withRegistration } from "../station/station.js";
import { BankConfigError, bankTarget } from "../station/bank-client.js";
import { TransportError } from "../transport/transport.js";

export const FACTORY_OPTIONS: Record<string, OptionSpec> = {
  factory: { type: "string", help: "the factory record (SQLite file; created with its key file if missing)", placeholder: "FILE" },
  "key-file": { type: "string", help: "key that seals seeds in the record (default: FILE.key beside it; keep it elsewhere in production)", placeholder: "F" },
};

export const PARAM_OPTIONS: Record<string, OptionSpec> = {
  algorithm: { type: "string", help: "TOTP hash for a new batch: SHA1 (default) or SHA256", placeholder: "ALG" },
  digits: { type: "string", help: "code length for a new batch, 6..8 (default 8)", placeholder: "N" },
  period: { type: "string", help: "seconds per code for a new batch (default 60)", placeholder: "S" },
  batch: { type: "string", help: "batch number 1..9999 (default: the newest batch, or 1)", placeholder: "ID" },
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

/** Open the factory record, mapping its refusals onto exit statuses. */
export function openFactory(values: Record<string, any>, create: boolean): FactoryRecord {
  try {
    return FactoryRecord.open(requireString(values, "factory"), { keyFile: values["key-file"], create });
  } catch (e) {
    throw cliErrorFrom(e);
  }
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
    ...(r.registration ? { registration: r.registration } : {}), ...(r.registrationError ? { registrationError: r.registrationError } : {}), ...(r.wiped !== undefined ? { wiped: r.wiped } : {}), ...(r.recovered ? { recovered: true } : {}),
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
  const record = openFactory(v, true);
  let session: DeviceSession | undefined;
  try {
    record.recoverInterrupted();
    try {
      session = await DeviceSession.open(transportFor(port), { timeoutMs });
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
    if (result.status === "good" && bank) await withRegistration(record, bank, result);
    if (v.json) io.stdout.write(JSON.stringify(resultJson(result)) + "\n");
    else if (result.status === "good") {
      io.stdout.write(result.serial + "\n");
      io.stderr.write(`provisioned ${result.serial} (batch ${result.batch}) in ${(result.durationMs / 1000).toFixed(1)} s${result.recovered ? "; lock confirmed on re-attach" : ""}\n`);
      if (result.registration === "registered") io.stderr.write(`registered ${result.serial} with the bank\n`);
      if (result.registration === "failed") io.stderr.write(`fobkit: ${result.serial} is good but NOT registered with the bank (${result.registrationError}); run \`fobkit register\` later\n`);
    } else {
      io.stderr.write(`fobkit: provisioning failed: ${result.reason}${result.serial ? ` (serial ${result.serial} recorded failed${result.wiped ? ", keyfob wiped" : ""})` : ""}\n`);
    }
    return result.status === "good" ? EXIT_OK : EXIT_FAILED;
  } finally {
    await session?.close();
    record.close();
  }
}

export const provisionCommand: Command = {
  name: "provision",
  summary: "provision one keyfob: serial, seed, clock, self-test, lock, record",
  description: `Assigns the batch's next serial, writes a fresh seed (CSPRNG), sets the clock
from this host's UTC, checks the keyfob's self-test code against the host's
own, locks it and records it good in the factory file. Any failure is
recorded failed with the reason and the keyfob is wiped when not locked.
Prints the serial for the label (stdout). Exit 0 good, 3 failed.

  fobkit provision --port /dev/ttyUSB0 --factory line1.sqlite --operator ana`,
  options: {
    port: { type: "string", help: "the keyfob's port: a serial path, or hid:PATH", placeholder: "PATH" },
    ...FACTORY_OPTIONS,
    ...PARAM_OPTIONS,
    ...BANK_OPTIONS,
    json: { type: "boolean", help: "print the result as JSON (serial, batch, status, ...)" },
  },
  run,
};
