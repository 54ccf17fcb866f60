/**
 * Provisioning one keyfob (DESIGN.md "Factory to bank"): the host makes the
 * seed (CSPRNG), writes it, sets the clock from its own UTC, checks the
 * keyfob's self-test code against its own computation, locks, confirms the
 * lock with INFO, and only then records the token good. Every failure after
 * a serial was handed out is recorded failed with the reason, and the keyfob
 * is wiped if it is not locked (or, if it cannot be reached, left unlocked:
 * the next run wipes it first and succeeds; one that lost power comes back
 * blank, since the keyfob writes its flash only at LOCK: protocol/SPEC.md).
 *
 * Seeds: held only in this function's buffers (wiped in `finally`), sealed
 * into the factory record, sent to the keyfob; never in a result, a log line
 * or an error message.
 */
import { randomBytes } from "node:crypto";
import { DeviceError } from "../device/device-error.js";
import type { DeviceSession, KeyfobInfo, SelfTest } from "../device/session.js";
import { FactoryError, type FactoryRecord, type Stage, type TokenParams } from "./factory-record.js";
import { referenceTotp } from "./reference-totp.js";

/** Seed length per algorithm: the hash's output size, RFC 4226 §4 R6 / RFC 6238 §5.1. */
export const SEED_BYTES: Record<TokenParams["algorithm"], number> = { SHA1: 20, SHA256: 32 };
/** Self-test: the keyfob's time may differ from the host's by this much (clock set + link latency). */
export const CLOCK_TOLERANCE_S = 2;

export type ProvisionStep = "flash" | "info" | "wipe" | "allocate" | "write_seed" | "set_clock" | "set_serial" | "self_test" | "lock" | "confirm" | "done";

export interface ProvisionOptions {
  /** Batch id; default the newest batch (batch 1 in a new record). */
  batch?: number;
  /** Parameters asked for explicitly (undefined: the batch's). */
  params?: Partial<TokenParams>;
  operator?: string;
  station?: string;
  /** Progress for the operator's screen. */
  onStep?: (step: ProvisionStep) => void;
  /** The host's UTC in ms (tests move it to model a wrong RTC). */
  now?: () => number;
}

export interface ProvisionResult {
  status: "good" | "failed";
  /** Absent when the keyfob failed before a serial was handed out (nothing recorded). */
  serial?: string;
  batch?: number;
  port: string;
  hardwareId?: string;
  reason?: string;
  /** Seconds; keyfob minus host at the self-test. */
  deviceClockOffset?: number;
  /** The keyfob was wiped after the failure. */
  wiped?: boolean;
  /** A locked keyfob whose lock was never confirmed, now confirmed. */
  recovered?: boolean;
  /**
   * The factory record refused to issue a serial (the batch was exported or is
   * full, or its line collides at the bank): the keyfob was left as it was, and
   * every keyfob after it would be refused the same way until the operator acts.
   */
  refused?: boolean;
  /** With a bank configured: the direct registration's outcome (a good token stays good either way). */
  registration?: "registered" | "failed";
  registrationError?: string;
  durationMs: number;
}

/** Why, in words fit for the record and the screen (never key material). */
export function describeFailure(e: unknown): string {
  if (e instanceof DeviceError) return e.message;
  if (e instanceof FactoryError) return e.message;
  return (e as Error)?.message ?? String(e);
}

class SelfTestMismatch extends Error {}

export async function provisionKeyfob(session: DeviceSession, record: FactoryRecord, options: ProvisionOptions = {}): Promise<ProvisionResult> {
  const t0 = Date.now();
  const now = options.now ?? Date.now;
  const port = session.transport.path;
  const step = (s: ProvisionStep) => options.onStep?.(s);
  const done = (r: Omit<ProvisionResult, "durationMs" | "port">): ProvisionResult => ({ ...r, port, durationMs: Date.now() - t0 });

  step("info");
  let info: KeyfobInfo;
  try {
    info = await session.info();
  } catch (e) {
    return done({ status: "failed", reason: describeFailure(e) });
  }
  const hardwareId = info.hardwareId;
  if (info.state === "error") return done({ status: "failed", hardwareId, reason: `keyfob reports a fault: ${info.reason}` });
  if (info.state === "locked") return done(recoverLocked(record, info));

  let batch: ReturnType<FactoryRecord["resolveBatch"]>;
  try {
    batch = record.resolveBatch(options.batch, options.params ?? {});
  } catch (e) {
    if (e instanceof FactoryError && e.code === "refused") return done({ status: "failed", hardwareId, reason: e.message, refused: true });
    throw e;
  }
  const params: TokenParams = { algorithm: batch.algorithm, digits: batch.digits, period: batch.period };

  // A keyfob left unlocked by an earlier failed run is wiped before it gets a serial.
  if (info.state !== "blank" || info.serial !== "" || info.seedSet) {
    step("wipe");
    try {
      await session.wipe(info.serial);
    } catch (e) {
      return done({ status: "failed", hardwareId, reason: `could not wipe the keyfob left by an earlier run: ${describeFailure(e)}` });
    }
  }

  const seed = randomBytes(SEED_BYTES[params.algorithm]);
  /** Commands sent and not yet settled: a failure waits for them before it wipes, so none lands after the wipe. */
  const inFlight: Promise<unknown>[] = [];
  const pipelined = <T>(p: Promise<T>): Promise<T> => {
    // Also marks p's rejection handled: an outcome nobody reads (an earlier step failed) is not an unhandled rejection.
    inFlight.push(p.then(ignore, ignore));
    return p;
  };
  let serial: string | undefined;
  let stage: Stage = "allocated";
  const advance = (s: Stage) => {
    stage = s;
    // Only "lock_sent" changes what a crash leaves behind (a keyfob that may be
    // locked with this seed): it is committed before LOCK goes out. The other
    // stages live in the failure reason; each commit is an fsync (~6 ms).
    if (s === "lock_sent") record.setStage(serial!, s);
  };
  try {
    step("allocate");
    serial = record.allocate({ batch: batch.id, seed, hardwareId, port, operator: options.operator, station: options.station }).serial;

    // Pipelined (protocol/SPEC.md, Pipelining): the clock, the seed, the
    // serial and the self-test go out back to back and the keyfob answers
    // them in order, so the line does not sit idle for a round trip per
    // command. SET_CLOCK goes first, so the keyfob sets the time the moment
    // it was read. None of the four writes the keyfob's flash (they are staged
    // until LOCK, the one flash write of a provisioning). Each outcome is
    // still taken in order below; a failure stops the run at that step.
    step("set_clock");
    const clockSet = pipelined(session.setClock(Math.floor(now() / 1000)));
    const seedWritten = pipelined(session.writeSeed({ ...params, seed }));
    const serialSet = pipelined(session.setSerial(serial));
    const firstTest = pipelined(session.selfTest());

    let clockForced = false;
    try {
      await clockSet;
    } catch (e) {
      // The keyfob's RTC runs ahead of the factory's UTC; the factory's clock is the reference, and the keyfob is not locked.
      if (!(e instanceof DeviceError && e.statusName === "CLOCK_BACKWARDS")) throw e;
      await pipelined(session.setClock(Math.floor(now() / 1000), { force: true }));
      clockForced = true;
    }
    advance("clock_set");

    step("write_seed");
    await seedWritten;
    advance("seed_written");

    step("set_serial");
    await serialSet;
    advance("serial_set");
    // The keyfob takes SELF_TEST only after it answered SET_SERIAL: from here on is the earliest its time can read.
    const testBefore = Math.floor(now() / 1000);

    step("self_test");
    // The pipelined self-test counts when it passes. It ran before a forced
    // clock and may have run before a write that had to be resent, so in
    // those cases, and whenever it failed, the keyfob is tested once more on
    // its own, and that result decides.
    let check: SelfTestCheck | undefined;
    if (!clockForced) {
      check = await checkSelfTest(firstTest, testBefore, seed, params, now);
    }
    if (check === undefined || !check.ok) {
      const before = Math.floor(now() / 1000);
      check = await checkSelfTest(session.selfTest(), before, seed, params, now);
      if (!check.ok) throw check.error;
    }
    const deviceClockOffset = check.deviceClockOffset;
    advance("self_tested");

    step("lock");
    advance("lock_sent");
    // LOCK and the INFO that confirms it go out together: the keyfob answers INFO after it has handled LOCK.
    const lockDone = pipelined(session.lock(serial));
    const confirmed = pipelined(session.info());
    await lockDone;

    step("confirm");
    let final = await confirmed.catch(() => undefined);
    // A LOCK that had to be settled by INFO or resent was handled after the pipelined INFO: read it again.
    if (final?.state !== "locked") final = await session.info();
    if (final.state !== "locked" || final.serial !== serial || final.algorithm !== params.algorithm || final.digits !== params.digits || final.period !== params.period) {
      throw new Error(`lock not confirmed: INFO shows ${final.state}, serial '${final.serial}'`);
    }
    record.markGood(serial, { deviceClockOffset });
    step("done");
    return done({ status: "good", serial, batch: batch.id, hardwareId, deviceClockOffset });
  } catch (e) {
    const reason = describeFailure(e);
    let wiped = false;
    // Let every command still on its way settle first: a write resent after a timeout must not land after the wipe.
    await Promise.all(inFlight);
    if (serial !== undefined) {
      wiped = await wipeIfUnlocked(session);
      record.markFailed(serial, wiped ? reason : `${reason} (stage ${stage})`, { wiped });
    }
    const refused = serial === undefined && e instanceof FactoryError && e.code === "refused";
    return done({ status: "failed", serial, batch: batch.id, hardwareId, reason, wiped, ...(refused ? { refused } : {}) });
  } finally {
    seed.fill(0);
  }
}

const ignore = (): void => undefined;

type SelfTestCheck = { ok: true; deviceClockOffset: number } | { ok: false; error: Error };

/**
 * The keyfob's self-test against the host's own computation: its time within
 * CLOCK_TOLERANCE_S of the host's (from `before`, the earliest the keyfob
 * can have run it, to the reply), and its code the host's for a step in that
 * window. The host's code comes from reference-totp.ts (node:crypto), never
 * from the firmware's OTP core, so a bug in that core fails here.
 */
async function checkSelfTest(
  test: Promise<SelfTest>, before: number, seed: Uint8Array, params: TokenParams, now: () => number,
): Promise<SelfTestCheck> {
  let st: SelfTest;
  try {
    st = await test;
  } catch (e) {
    return { ok: false, error: e as Error };
  }
  const after = Math.ceil(now() / 1000);
  if (st.time < before - CLOCK_TOLERANCE_S || st.time > after + CLOCK_TOLERANCE_S) {
    return { ok: false, error: new SelfTestMismatch(`self-test failed: keyfob clock reads ${st.time}, host ${before} (off by ${st.time - before} s)`) };
  }
  // The host's own code for every step the keyfob's instant may fall in: at a step boundary that is two steps.
  const accepted = new Set<string>();
  for (let t = before - CLOCK_TOLERANCE_S; t <= after + CLOCK_TOLERANCE_S; t++) {
    accepted.add(referenceTotp(seed, t, params.period, params.digits, params.algorithm));
  }
  if (!accepted.has(st.code)) return { ok: false, error: new SelfTestMismatch("self-test failed: the keyfob's code differs from the host's computation") };
  return { ok: true, deviceClockOffset: st.time - Math.round((before + after) / 2) };
}

/** After a failure: wipe the keyfob unless it is locked or gone. True if wiped. */
async function wipeIfUnlocked(session: DeviceSession): Promise<boolean> {
  try {
    const info = await session.info();
    if (info.state === "locked") return false;
    await session.wipe(info.serial);
    return true;
  } catch {
    return false;
  }
}

/**
 * A locked keyfob arrives. Either it is done (recorded good), or it is one
 * whose LOCK went out after a passed self-test but whose confirmation never
 * came (crash, unplug): same hardware id and parameters, locked with its
 * serial, so it is recorded good now. Anything else is refused.
 */
function recoverLocked(record: FactoryRecord, info: KeyfobInfo): Omit<ProvisionResult, "durationMs" | "port"> {
  const row = info.serial ? record.token(info.serial) : undefined;
  const base = { hardwareId: info.hardwareId, serial: info.serial || undefined, batch: row?.batch };
  if (!row) return { ...base, status: "failed", reason: `keyfob is already locked (serial '${info.serial}', not in this factory record)` };
  if (row.state === "good") return { ...base, status: "failed", reason: `keyfob ${row.serial} is already provisioned and recorded good` };
  const unconfirmed = row.stage === "lock_sent" || row.stage === "locked";
  if (unconfirmed && row.hardwareId === info.hardwareId && row.algorithm === info.algorithm && row.digits === info.digits && row.period === info.period) {
    record.markGood(row.serial, { note: "lock confirmed when the keyfob was attached again" });
    return { ...base, status: "good", recovered: true };
  }
  return { ...base, status: "failed", reason: `keyfob ${row.serial} is locked but its record is ${row.state} at ${row.stage}; it cannot be confirmed` };
}
