/**
 * DeviceSession over a real PTY (serialport's real binding) to the real
 * keyfob code (firmware/app on the in-memory board) behind a link that can
 * lose, flip and hold bytes (link-faults.ts): typed results, request ids, which commands are resent and which
 * are verified first, and the unplug path.
 */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import * as P from "../../protocol/index.js";
import { referenceTotp } from "../../host/station/reference-totp.js";
import { DeviceError } from "../../host/device/device-error.js";
import { DeviceSession, PIPELINE_MAX_BYTES, PIPELINE_MAX_REQUESTS } from "../../host/device/session.js";
import { SerialTransport } from "../../host/transport/serial-transport.js";
import { ptyPair, type PtyPair } from "../transport/pty-pair.js";
import { FaultyLinkKeyfob } from "./link-faults.js";
import { serveKeyfob } from "./serve-keyfob.js";

let pair: PtyPair;
let fob: FaultyLinkKeyfob;
let session: DeviceSession;
let devEnd: SerialTransport;

async function start(timeoutMs = 300): Promise<void> {
  devEnd = new SerialTransport({ path: pair.device });
  await devEnd.open();
  void serveKeyfob(devEnd, fob);
  session = await DeviceSession.open(new SerialTransport({ path: pair.host }), { timeoutMs, retries: 2 });
}

async function failure(p: Promise<unknown>): Promise<DeviceError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(DeviceError);
    return e as DeviceError;
  }
  throw new Error("expected a DeviceError, got success");
}

beforeEach(async () => {
  pair = await ptyPair();
  fob = new FaultyLinkKeyfob();
});

afterEach(async () => {
  await session?.close();
  await devEnd?.close();
  await pair.dispose();
});

describe("DeviceSession", () => {
  it("reads INFO as typed fields: serial a string, clock unix seconds, hardware id hex", async () => {
    await start();
    const blank = await session.info();
    expect(blank).toMatchObject({ state: "blank", serial: "", seedSet: false, clockSet: false, lockSet: false, firmware: "1.1.0", hardwareId: "d00b1e0001020304", model: "FOBKIT-1" });
    // The keyfob reports its RTC even before the clock was set (clockSet says whether it was).
    expect(Math.abs(blank.clock! - fob.now())).toBeLessThanOrEqual(1);
    expect(blank.algorithm).toBeUndefined();
    // 2099-12-31, the DS3231's last year (rtc-ds3231.ts: it would count 2100 as a leap year): past 2^31 s.
    await session.setClock(4102358400);
    const later = await session.info();
    expect(later.clock).toBeGreaterThanOrEqual(4102358400);
    expect(later.clock).toBeLessThan(4102358400 + 3);
    expect(session.hardwareId).toBe("d00b1e0001020304");
  });

  it("provisions: seed, clock, serial, self-test equal to the host's code, lock", async () => {
    await start();
    const seed = randomBytes(20);
    await session.writeSeed({ algorithm: "SHA1", digits: 8, period: 60, seed });
    const now = Math.floor(Date.now() / 1000);
    await session.setClock(now);
    await session.setSerial("FK000100000197");
    const st = await session.selfTest();
    expect(Math.abs(st.time - now)).toBeLessThanOrEqual(2);
    expect(referenceTotp(seed, st.time, 60, 8, "SHA1")).toBe(st.code);
    await session.lock("FK000100000197");
    const info = await session.info();
    expect(info).toMatchObject({ state: "locked", serial: "FK000100000197", algorithm: "SHA1", digits: 8, period: 60, lockSet: true });
    const e = await failure(session.setSerial("FK000100000289"));
    expect(e).toMatchObject({ code: "refused", command: "SET_SERIAL", statusName: "LOCKED", status: P.STATUS_LOCKED });
    expect(e.message).toBe("keyfob refused SET_SERIAL: LOCKED");
  });

  it("pipelines: commands called together all reach the keyfob before its first reply, and each gets its own answer", async () => {
    await start(5000);
    // The double answers nothing until it holds four requests: a host that waits for each reply would stall here.
    fob.faults.holdReplies = 4;
    const seed = randomBytes(20);
    const now = Math.floor(Date.now() / 1000);
    const [, , , st] = await Promise.all([
      session.writeSeed({ algorithm: "SHA1", digits: 8, period: 60, seed }),
      session.setClock(now),
      session.setSerial("FK000100000197"),
      session.selfTest(),
    ]);
    expect(fob.log).toEqual([P.CMD_WRITE_SEED, P.CMD_SET_CLOCK, P.CMD_SET_SERIAL, P.CMD_SELF_TEST]);
    expect(referenceTotp(seed, st.time, 60, 8, "SHA1")).toBe(st.code);
    expect(session.stats).toMatchObject({ requests: 4, retries: 0, timeouts: 0 });
    expect(fob.info()).toMatchObject({ serial: [...Buffer.from("FK000100000197")], flags: P.INFO_CLOCK_SET | P.INFO_SEED_SET, state: P.STATE_PROVISIONED });
  });

  it(`keeps at most ${PIPELINE_MAX_REQUESTS} requests and ${PIPELINE_MAX_BYTES} wire bytes unanswered`, async () => {
    await start(5000);
    fob.faults.holdReplies = Infinity;
    const answerHeld = async () => {
      for (const r of fob.release()) await devEnd.write(r);
    };
    const infos = Array.from({ length: 6 }, () => session.info());
    await vi.waitFor(() => expect(fob.log).toHaveLength(PIPELINE_MAX_REQUESTS));
    // Time for a fifth request to arrive if the session sent one.
    await new Promise((r) => setTimeout(r, 150));
    expect(fob.log).toHaveLength(PIPELINE_MAX_REQUESTS);
    await answerHeld();
    await vi.waitFor(() => expect(fob.log).toHaveLength(6));
    await answerHeld();
    expect((await Promise.all(infos)).map((i) => i.state)).toEqual(Array(6).fill("blank"));

    // A 64-byte seed makes an 80-byte frame: two do not fit in 128 bytes, so they go one at a time.
    fob.log.length = 0;
    const writes = [1, 2].map(() => session.writeSeed({ algorithm: "SHA256", digits: 8, period: 60, seed: randomBytes(64) }));
    await vi.waitFor(() => expect(fob.log).toHaveLength(1));
    await new Promise((r) => setTimeout(r, 150));
    expect(fob.log).toHaveLength(1);
    await answerHeld();
    await vi.waitFor(() => expect(fob.log).toHaveLength(2));
    await answerHeld();
    await Promise.all(writes);
    expect(session.stats.timeouts).toBe(0);
  });

  it("a reply lost inside a pipeline is settled by INFO while the commands around it complete", async () => {
    await start();
    fob.faults.loseReplyTo = P.CMD_SET_CLOCK;
    await Promise.all([
      session.writeSeed({ algorithm: "SHA1", digits: 8, period: 60, seed: randomBytes(20) }),
      session.setClock(Math.floor(Date.now() / 1000)),
      session.setSerial("FK000100000197"),
      session.selfTest(),
    ]);
    // SET_CLOCK took effect (INFO shows it), so it is not sent again.
    expect(fob.log).toEqual([P.CMD_WRITE_SEED, P.CMD_SET_CLOCK, P.CMD_SET_SERIAL, P.CMD_SELF_TEST, P.CMD_INFO]);
    expect(session.stats).toMatchObject({ timeouts: 1, retries: 0 });
  });

  it("a request's timeout runs from when the keyfob reaches it, not from when it was sent", async () => {
    // Each reply takes 150 ms: the fourth comes 600 ms after it was sent, past the 500 ms timeout,
    // but only 150 ms after the keyfob got to it.
    await start(500);
    fob.faults.replyDelayMs = 150;
    await Promise.all([session.info(), session.info(), session.info(), session.info()]);
    expect(session.stats).toMatchObject({ requests: 4, timeouts: 0, retries: 0 });
  });

  it("an unplug fails every command in flight, each with unplugged", async () => {
    await start(10_000);
    fob.faults.holdReplies = Infinity;
    const pending = [session.info(), session.setSerial("FK000100000197"), session.selfTest()].map((p) => failure(p));
    await vi.waitFor(() => expect(fob.log).toHaveLength(3));
    await pair.unplug();
    const errors = await Promise.all(pending);
    expect(errors.map((e) => e.code)).toEqual(["unplugged", "unplugged", "unplugged"]);
    expect(errors[0].message).toMatch(/unplugged during INFO/);
  });

  it("resends INFO after a timeout, with a new request id", async () => {
    await start();
    fob.faults.ignore = { cmd: P.CMD_INFO, times: 1 };
    const info = await session.info();
    expect(info.state).toBe("blank");
    expect(session.stats).toMatchObject({ retries: 1, timeouts: 1 });
    expect(fob.log).toEqual([P.CMD_INFO, P.CMD_INFO]);
  });

  it("resends SELF_TEST at once on a garbled reply, without waiting for the timeout", async () => {
    await start(5000);
    await session.writeSeed({ algorithm: "SHA256", digits: 6, period: 30, seed: randomBytes(32) });
    await session.setClock(Math.floor(Date.now() / 1000));
    fob.faults.garbleReplyTo = P.CMD_SELF_TEST;
    const t0 = Date.now();
    const st = await session.selfTest();
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(st.code).toMatch(/^\d{6}$/);
    expect(session.stats.badFrames).toBe(1);
    expect(fob.log.filter((c) => c === P.CMD_SELF_TEST)).toHaveLength(2);
  });

  it("a lost LOCK reply is settled by INFO, never by sending LOCK again", async () => {
    await start();
    await session.writeSeed({ algorithm: "SHA1", digits: 8, period: 60, seed: randomBytes(20) });
    await session.setClock(Math.floor(Date.now() / 1000));
    await session.setSerial("FK000100000197");
    fob.faults.loseReplyTo = P.CMD_LOCK;
    await session.lock("FK000100000197");
    expect(fob.log.filter((c) => c === P.CMD_LOCK)).toHaveLength(1);
    expect(fob.log.slice(-2)).toEqual([P.CMD_LOCK, P.CMD_INFO]);
    expect(fob.state).toBe(P.STATE_LOCKED);
  });

  it("a WRITE_SEED that never arrived is resent only after INFO shows the keyfob unlocked and unchanged", async () => {
    await start();
    fob.faults.ignore = { cmd: P.CMD_WRITE_SEED, times: 1 };
    const seed = randomBytes(20);
    await session.writeSeed({ algorithm: "SHA1", digits: 8, period: 60, seed });
    expect(fob.log).toEqual([P.CMD_WRITE_SEED, P.CMD_INFO, P.CMD_WRITE_SEED]);
    // The keyfob holds that seed: its self-test code (once its clock is set) is the host's for it.
    fob.setClockDirect(Math.floor(Date.now() / 1000));
    const st = fob.selfTest();
    expect(st.code).toBe(referenceTotp(seed, st.at, 60, 8, "SHA1"));
  });

  it("gives up with timeout after the allowed attempts", async () => {
    await start(100);
    fob.faults.ignore = { cmd: P.CMD_INFO, times: 100 };
    const e = await failure(session.info());
    expect(e.code).toBe("timeout");
    expect(e.message).toMatch(/no reply to INFO .* after 3 attempts \(100 ms each\)/);
  });

  it("refuses to go on when another keyfob answers", async () => {
    await start();
    await session.info();
    fob.hwid = [9, 9, 9, 9, 9, 9, 9, 9];
    const e = await failure(session.info());
    expect(e.code).toBe("protocol");
    expect(e.message).toMatch(/another keyfob answered/);
  });

  it("fails the command in hand with unplugged as soon as the link goes, not at the timeout", async () => {
    await start(10_000);
    fob.faults.ignore = { cmd: P.CMD_WRITE_SEED, times: 1 };
    const pending = failure(session.writeSeed({ algorithm: "SHA1", digits: 8, period: 60, seed: randomBytes(20) }));
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await pair.unplug();
    const e = await pending;
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(e.code).toBe("unplugged");
    expect(e.message).toMatch(/unplugged during WRITE_SEED/);
    expect((await failure(session.info())).code).toBe("unplugged");
  });

  it("refuses out-of-range requests before sending anything", async () => {
    await start();
    expect((await failure(session.writeSeed({ algorithm: "SHA1", digits: 9, period: 60, seed: randomBytes(20) }))).code).toBe("bad_request");
    expect((await failure(session.setSerial("FK 1"))).code).toBe("bad_request");
    expect(fob.log).toEqual([]);
  });
});
