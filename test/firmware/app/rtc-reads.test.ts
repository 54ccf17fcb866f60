/**
 * How often a request reads the RTC (an I2C transfer on the board, with a
 * 1 s block when the bus is dead: hil/nodemcu/i2c.ts). SPEC §4's HW_FAULT
 * check needs the clock's state, and SET_CLOCK, SELF_TEST and LOCK need the
 * clock itself: one read serves both (device.ts deviceHandle). A keyfob
 * already in error for its record needs no read to answer HW_FAULT. The
 * statuses themselves are app-suite.ts's (HW_FAULT cases); this counts reads.
 */
import { describe, expect, it } from "vitest";
import { nodeBuild } from "../../support/paths.js";

const sim: any = await nodeBuild("firmware/sim/memory-keyfob.js");
const P: any = await nodeBuild("protocol/index.js");

const T0 = 1_700_000_000;
const SEED = Array.from({ length: 20 }, (_, i) => (i * 29 + 3) & 255);
const words = (t: number) => ({ timeHi: Math.floor(t / 2 ** 32), timeLo: t % 2 ** 32 });
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

let rid = 0;
/** Send one request; its status and how many RTC reads answering it took. */
function send(msg: Record<string, unknown>): { status: number; reads: number } {
  rid = (rid + 1) & 255;
  const before = sim.rtcReads();
  const out = sim.exchange(P.encodeRequest({ rid, ...msg }));
  const reads = sim.rtcReads() - before;
  const events = P.decodeChunk(P.newDeframer(), out, true);
  expect(events).toHaveLength(1);
  expect(events[0].msg.rid).toBe(rid);
  return { status: events[0].msg.status, reads };
}

describe("RTC reads per request", () => {
  it("each provisioning write reads the RTC at most once, and the flow still provisions", () => {
    sim.powerOn({ hi: Math.floor(T0 / 65536), lo: T0 % 65536 }, false, 0x5eed);
    expect(send({ cmd: P.CMD_INFO })).toEqual({ status: P.STATUS_OK, reads: 1 });
    expect(send({ cmd: P.CMD_SET_CLOCK, ...words(T0 + 5), flags: 0 })).toEqual({ status: P.STATUS_OK, reads: 1 });
    expect(send({ cmd: P.CMD_WRITE_SEED, algorithm: P.ALG_SHA1, digits: 8, period: 60, seed: SEED })).toEqual({ status: P.STATUS_OK, reads: 1 });
    expect(send({ cmd: P.CMD_SET_SERIAL, serial: ascii("FK-R") })).toEqual({ status: P.STATUS_OK, reads: 1 });
    expect(send({ cmd: P.CMD_SELF_TEST })).toEqual({ status: P.STATUS_OK, reads: 1 });
    // SET_CLOCK backwards is still judged against the clock (the one read).
    expect(send({ cmd: P.CMD_SET_CLOCK, ...words(T0 - 3600), flags: 0 })).toEqual({ status: P.STATUS_CLOCK_BACKWARDS, reads: 1 });
    expect(send({ cmd: P.CMD_LOCK, serial: ascii("FK-R") })).toEqual({ status: P.STATUS_OK, reads: 1 });
    // Locked: refused before anything is read.
    expect(send({ cmd: P.CMD_SET_SERIAL, serial: ascii("FK-S") })).toEqual({ status: P.STATUS_LOCKED, reads: 0 });
  });

  it("a keyfob in error for its record answers HW_FAULT without reading the RTC", () => {
    sim.powerOn({ hi: Math.floor(T0 / 65536), lo: T0 % 65536 }, false, 0x5eed);
    send({ cmd: P.CMD_SET_CLOCK, ...words(T0), flags: 0 });
    send({ cmd: P.CMD_WRITE_SEED, algorithm: P.ALG_SHA1, digits: 8, period: 60, seed: SEED });
    send({ cmd: P.CMD_SET_SERIAL, serial: ascii("FK-C") });
    expect(send({ cmd: P.CMD_LOCK, serial: ascii("FK-C") }).status).toBe(P.STATUS_OK);
    sim.corruptRecordAndReboot();
    for (const msg of [{ cmd: P.CMD_SET_SERIAL, serial: ascii("X") }, { cmd: P.CMD_SELF_TEST }, { cmd: P.CMD_LOCK, serial: ascii("FK-C") }]) {
      expect(send(msg)).toEqual({ status: P.STATUS_HW_FAULT, reads: 0 });
    }
  });
});
