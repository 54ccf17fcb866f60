/**
 * The provisioning flow's decisions, driven through a real PTY against the
 * real keyfob code on the in-memory board behind a faulty link
 * (test/device/link-faults.ts), whose switches reach paths the emulator does
 * not offer: a self-test code from a seed damaged on the wire, a
 * LOCK whose confirmation never comes (and its later recovery), a keyfob
 * clock ahead of the factory's, a keyfob reporting a fault.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import * as P from "../../protocol/index.js";
import { DeviceSession } from "../../host/device/session.js";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { provisionKeyfob } from "../../host/station/provision.js";
import { SerialTransport } from "../../host/transport/serial-transport.js";
import { FaultyLinkKeyfob } from "../device/link-faults.js";
import { serveKeyfob } from "../device/serve-keyfob.js";
import { ptyPair, type PtyPair } from "../transport/pty-pair.js";

let dir: string;
let pair: PtyPair;
let fob: FaultyLinkKeyfob;
let devEnd: SerialTransport;
let record: FactoryRecord;
const sessions: DeviceSession[] = [];

/** timeoutMs: short where a test waits for a timeout; tests that assert an exact exchange pass a long one, so load cannot add a resend. */
async function session(timeoutMs = 200): Promise<DeviceSession> {
  const s = await DeviceSession.open(new SerialTransport({ path: pair.host }), { timeoutMs, retries: 1 });
  sessions.push(s);
  return s;
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-pd-"));
  pair = await ptyPair();
  fob = new FaultyLinkKeyfob();
  devEnd = new SerialTransport({ path: pair.device });
  await devEnd.open();
  void serveKeyfob(devEnd, fob);
  record = FactoryRecord.open(join(dir, "f.sqlite"), { create: true, line: 1 });
});

afterEach(async () => {
  for (const s of sessions.splice(0)) await s.close();
  await devEnd.close();
  await pair.dispose();
  record.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("provisionKeyfob decisions", () => {
  it("a self-test code that is not the host's: failed with the reason, keyfob wiped, seed erased", async () => {
    fob.faults.corruptSeed = true;
    const r = await provisionKeyfob(await session(), record);
    expect(r).toMatchObject({ status: "failed", wiped: true, reason: "self-test failed: the keyfob's code differs from the host's computation" });
    expect(fob.state).toBe(P.STATE_BLANK);
    expect(fob.seedSet).toBe(false);
    expect(record.token(r.serial!)).toMatchObject({ state: "failed", stage: "allocated" });
    expect(() => record.openSeed(r.serial!)).toThrow(/no seed on record/);
    expect(fob.log).not.toContain(P.CMD_LOCK);
  });

  it("a lock never confirmed is recorded failed at lock_sent, and confirmed good when the keyfob comes back", async () => {
    fob.faults.loseReplyTo = P.CMD_LOCK;
    const origHandle = fob.receive.bind(fob);
    // INFO is answered until LOCK arrives, then the keyfob goes quiet (cable pulled right after locking).
    let quiet = false;
    fob.receive = (bytes) => {
      const out = origHandle(bytes);
      if (!quiet && fob.log.includes(P.CMD_LOCK)) {
        quiet = true;
        fob.faults.ignore = { cmd: P.CMD_INFO, times: 1000 };
      }
      return out;
    };
    const first = await session();
    const r = await provisionKeyfob(first, record);
    await first.close();
    expect(r.status).toBe("failed");
    expect(r.reason).toMatch(/no reply to LOCK|no reply to INFO/);
    expect(fob.state).toBe(P.STATE_LOCKED);
    expect(record.token(r.serial!)).toMatchObject({ state: "failed", stage: "lock_sent" });
    // Plugged in again: it answers, is locked with that serial, same hardware id.
    fob.faults.ignore = undefined;
    const again = await provisionKeyfob(await session(), record);
    expect(again).toMatchObject({ status: "good", recovered: true, serial: r.serial });
    expect(record.token(r.serial!)).toMatchObject({ state: "good", reason: "lock confirmed when the keyfob was attached again" });
    expect(record.openSeed(r.serial!)).toHaveLength(20);
  });

  it("a LOCK refused by a keyfob that stays unlocked: failed at lock_sent, keyfob wiped, and then its seed erased too", async () => {
    fob.faults.refuse = { cmd: P.CMD_LOCK, status: P.STATUS_FLASH_ERROR };
    const r = await provisionKeyfob(await session(2000), record);
    expect(r).toMatchObject({ status: "failed", wiped: true, reason: "keyfob refused LOCK: FLASH_ERROR" });
    expect(fob.state).toBe(P.STATE_BLANK);
    expect(record.token(r.serial!)).toMatchObject({ state: "failed", stage: "lock_sent" });
    // Wiped, so no keyfob holds the seed: the record keeps none either.
    expect(() => record.openSeed(r.serial!)).toThrow(/no seed on record/);
  });

  it("a locked keyfob the record does not know is refused, nothing allocated", async () => {
    fob.provisionDirect("FK999999999999", [...Buffer.from("12345678901234567890")], true);
    const r = await provisionKeyfob(await session(), record);
    expect(r).toMatchObject({ status: "failed", reason: "keyfob is already locked (serial 'FK999999999999', not in this factory record)" });
    expect(record.tokens()).toEqual([]);
  });

  it("a keyfob clock ahead of the factory's is set back with force, and the token is good", async () => {
    fob.setClockDirect(Math.floor(Date.now() / 1000) + 3600);
    const r = await provisionKeyfob(await session(5000), record);
    expect(r.status).toBe("good");
    expect(Math.abs(r.deviceClockOffset!)).toBeLessThanOrEqual(2);
    expect(fob.log.filter((c) => c === P.CMD_SET_CLOCK)).toHaveLength(2);
    // The pipelined self-test ran on the keyfob's old clock: it is repeated after the forced set, and that one decides.
    expect(fob.log).toEqual([P.CMD_INFO, P.CMD_SET_CLOCK, P.CMD_WRITE_SEED, P.CMD_SET_SERIAL, P.CMD_SELF_TEST, P.CMD_SET_CLOCK, P.CMD_SELF_TEST, P.CMD_LOCK, P.CMD_INFO]);
  });

  it("pipelines: clock, seed, serial and self-test go out together, then LOCK with the INFO that confirms it", async () => {
    // The double holds its replies until the whole batch is in: a flow that waited for each reply would time out.
    const r = await provisionKeyfob(await session(5000), record, {
      onStep: (s) => {
        if (s === "set_clock") fob.faults.holdReplies = 4;
        if (s === "lock") fob.faults.holdReplies = 2;
      },
    });
    expect(r.status).toBe("good");
    expect(fob.log).toEqual([P.CMD_INFO, P.CMD_SET_CLOCK, P.CMD_WRITE_SEED, P.CMD_SET_SERIAL, P.CMD_SELF_TEST, P.CMD_LOCK, P.CMD_INFO]);
    expect(fob.state).toBe(P.STATE_LOCKED);
  });

  it("a WRITE_SEED lost on the way is resent, and the self-test it overtook is repeated: the token is good", async () => {
    fob.faults.ignore = { cmd: P.CMD_WRITE_SEED, times: 1 };
    const r = await provisionKeyfob(await session(), record);
    expect(r.status).toBe("good");
    expect(fob.log).toEqual([
      P.CMD_INFO, P.CMD_SET_CLOCK, P.CMD_WRITE_SEED, P.CMD_SET_SERIAL, P.CMD_SELF_TEST, // the self-test found no seed
      P.CMD_INFO, P.CMD_WRITE_SEED, // the write timed out: INFO shows no effect, so it is resent
      P.CMD_SELF_TEST, P.CMD_LOCK, P.CMD_INFO,
    ]);
    expect(record.token(r.serial!)).toMatchObject({ state: "good" });
  });

  it("a slow seed write does not leave the keyfob's clock behind: SET_CLOCK goes first", async () => {
    fob.faults.busyMs = { [P.CMD_WRITE_SEED]: 4000 };
    const s = await DeviceSession.open(new SerialTransport({ path: pair.host }), { timeoutMs: 5000, retries: 1 });
    sessions.push(s);
    const r = await provisionKeyfob(s, record);
    expect(r.status).toBe("good");
    // The keyfob's clock against the host's, and what the record says of it: within 2 s. Writing the
    // seconds register restarts the DS3231's second (datasheet: the countdown chain resets), so the keyfob
    // lags by the fraction the host's whole-second SET_CLOCK dropped, plus the line; a SET_CLOCK that
    // waited behind the 4 s seed write would lag by more than 3 s.
    expect(Math.abs(fob.now() - Math.floor(Date.now() / 1000))).toBeLessThanOrEqual(2);
    expect(Math.abs(r.deviceClockOffset!)).toBeLessThanOrEqual(2);
    expect(fob.log.slice(0, 3)).toEqual([P.CMD_INFO, P.CMD_SET_CLOCK, P.CMD_WRITE_SEED]);
  });

  it("a keyfob whose clock is off is caught even when a slow seed write delays its self-test", async () => {
    // 1.5 s on the seed (a flash write) and an RTC 3 s behind the time it was set to: the self-test's
    // window starts when the keyfob reaches SELF_TEST, not when the batch went out, so the delay cannot hide the 3 s.
    fob.faults.busyMs = { [P.CMD_WRITE_SEED]: 1500 };
    fob.shiftRtcAfter = { cmd: P.CMD_SET_CLOCK, seconds: -3 };
    const s = await DeviceSession.open(new SerialTransport({ path: pair.host }), { timeoutMs: 5000, retries: 1 });
    sessions.push(s);
    const r = await provisionKeyfob(s, record);
    expect(r).toMatchObject({ status: "failed", wiped: true, reason: expect.stringMatching(/^self-test failed: keyfob clock reads \d+, host \d+ \(off by -[3-5] s\)$/) });
    expect(fob.state).toBe(P.STATE_BLANK);
  });

  it("a failure waits for the commands still in flight before it wipes: nothing lands on the keyfob after the wipe", async () => {
    // SET_CLOCK is refused (the run fails there) while the pipelined SET_SERIAL was lost on the line:
    // its timeout, INFO and resend come before the wipe, not after it.
    fob.faults.refuse = { cmd: P.CMD_SET_CLOCK, status: P.STATUS_HW_FAULT };
    fob.faults.ignore = { cmd: P.CMD_SET_SERIAL, times: 1 };
    const r = await provisionKeyfob(await session(), record);
    expect(r).toMatchObject({ status: "failed", wiped: true, reason: "keyfob refused SET_CLOCK: HW_FAULT" });
    // Time for a straggling resend to arrive if one were still on its way.
    await new Promise((res) => setTimeout(res, 600));
    expect(fob).toMatchObject({ state: P.STATE_BLANK, serial: [], seedSet: false });
    expect(fob.log.at(-1)).toBe(P.CMD_WIPE);
  });

  it("a keyfob that does not answer gets no serial", async () => {
    fob.faults.ignore = { cmd: P.CMD_INFO, times: 1000 };
    const r = await provisionKeyfob(await session(), record);
    expect(r).toMatchObject({ status: "failed", reason: expect.stringMatching(/no reply to INFO/) });
    expect(r.serial).toBeUndefined();
    expect(record.tokens()).toEqual([]);
  });
});
