/**
 * DeviceSession over a real PTY (serialport's real binding) to the keyfob
 * double: typed results, request ids, which commands are resent and which
 * are verified first, and the unplug path.
 */
import { randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import * as P from "../../protocol/index.js";
import { totpAt } from "../../firmware/otp/index.js";
import { DeviceError } from "../../host/device/device-error.js";
import { DeviceSession } from "../../host/device/session.js";
import { SerialTransport } from "../../host/transport/serial-transport.js";
import { ptyPair, type PtyPair } from "../transport/pty-pair.js";
import { KeyfobDouble } from "./keyfob-double.js";
import { serveDouble } from "./double-on-link.js";

let pair: PtyPair;
let fob: KeyfobDouble;
let session: DeviceSession;
let devEnd: SerialTransport;

async function start(timeoutMs = 300): Promise<void> {
  devEnd = new SerialTransport({ path: pair.device });
  await devEnd.open();
  void serveDouble(devEnd, fob);
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
  fob = new KeyfobDouble();
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
    expect(blank).toMatchObject({ state: "blank", serial: "", seedSet: false, clockSet: false, lockSet: false, firmware: "1.0.0", hardwareId: "d00b1e0001020304", model: "FOBKIT-1" });
    expect(blank.clock).toBeUndefined();
    expect(blank.algorithm).toBeUndefined();
    await session.setClock(4102444800); // 2100-01-01: past 2^32 s would need timeHi; this one tests > 2^31
    const later = await session.info();
    expect(later.clock).toBeGreaterThanOrEqual(4102444800);
    expect(later.clock).toBeLessThan(4102444800 + 3);
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
    const host = totpAt([...seed], st.time, 60, 8, P.ALG_SHA1);
    expect(typeof host === "number" ? host : host.text).toBe(st.code);
    await session.lock("FK000100000197");
    const info = await session.info();
    expect(info).toMatchObject({ state: "locked", serial: "FK000100000197", algorithm: "SHA1", digits: 8, period: 60, lockSet: true });
    const e = await failure(session.setSerial("FK000100000289"));
    expect(e).toMatchObject({ code: "refused", command: "SET_SERIAL", statusName: "LOCKED", status: P.STATUS_LOCKED });
    expect(e.message).toBe("keyfob refused SET_SERIAL: LOCKED");
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
    expect(Buffer.from(fob.seed!)).toEqual(seed);
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
