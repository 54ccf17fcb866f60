/**
 * The REAL keyfob (firmware/app/device.ts, the tsc build, on the in-memory
 * board of firmware/sim) behind a link that can misbehave. Host tests talk to
 * the rules the keyfob runs, not to a copy of them; what a real link does
 * wrong lives here, between the host's bytes and the device:
 * a request lost on the way, a reply lost after the keyfob acted, a flipped
 * bit, replies held back or late, a keyfob busy after a command, a seed
 * damaged on the wire.
 *
 * The in-memory board is one per process (the subset has no classes), so a
 * test has one FaultyLinkKeyfob at a time; constructing one powers a fresh
 * board on. Its RTC runs with the wall clock from the host's UTC.
 */
import * as P from "../../protocol/index.js";
import { nodeBuild } from "../support/paths.js";

const sim: any = await nodeBuild("firmware/sim/memory-keyfob.js");

export interface LinkFaults {
  /** The keyfob acts on the next request of this command, but its reply is lost. */
  loseReplyTo?: number;
  /** Requests of this command are lost on the way (no action, no reply), this many times. */
  ignore?: { cmd: number; times: number };
  /** One bit flips in the next reply to this command. */
  garbleReplyTo?: number;
  /**
   * The link answers every request of this command with this status in the
   * keyfob's place; the keyfob never sees it (a reply forged on the line).
   */
  refuse?: { cmd: number; status: number };
  /** WRITE_SEED arrives with one bit of its seed flipped (and a CRC that matches): the keyfob holds another seed. */
  corruptSeed?: boolean;
  /**
   * Replies are held until this many are held, then sent together (and the
   * switch clears); Infinity holds them until release(). Only a host that
   * pipelines gets past it.
   */
  holdReplies?: number;
  /** serveKeyfob waits this long before each reply. */
  replyDelayMs?: number;
  /** serveKeyfob: ms the keyfob stays busy after a command (by cmd) before it answers and reads on, as a flash write keeps it. */
  busyMs?: Partial<Record<number, number>>;
}

const unixTime = (seconds: number) => ({ hi: Math.floor(seconds / 65536), lo: seconds % 65536 });
/** The hardware id host tests see (the old double's, so their expectations stay readable). */
export const TEST_HWID = [0xd0, 0x0b, 0x1e, 0x00, 1, 2, 3, 4];

export class FaultyLinkKeyfob {
  faults: LinkFaults = {};
  /** The board's RTC jumps by seconds right after the keyfob acted on cmd (an RTC that does not keep the time it was set to); once. */
  shiftRtcAfter?: { cmd: number; seconds: number };
  /** Every request command that reached the link, in order (lost ones too). */
  log: number[] = [];
  private readonly d = P.newDeframer();
  private held: Uint8Array[] = [];
  private lastMs = Date.now();
  private rid = 0;

  constructor() {
    sim.powerOn(unixTime(Math.floor(Date.now() / 1000)), false, 0x5eed);
    sim.setHardwareId(TEST_HWID);
    sim.reboot(); // the device reads its hardware id at boot
  }

  /** The board's RTC follows the wall clock between exchanges. */
  private tick(): void {
    const now = Date.now();
    if (now > this.lastMs) sim.advance(now - this.lastMs);
    this.lastMs = now;
  }

  /** Host bytes in; reply wire frames out (zero or more). */
  receive(bytes: Uint8Array): Uint8Array[] {
    this.tick();
    const out: Uint8Array[] = [];
    for (const b of bytes) {
      if (P.deframerPush(this.d, b) !== P.RX_FRAME) continue;
      const body = Array.from(this.d.buf.slice(0, this.d.len)) as number[];
      let wire: number[] = P.encodeFrame(body, body.length);
      const q = P.decodeRequest(body, body.length);
      if (q.status === P.STATUS_OK && q.msg) {
        const req = q.msg;
        this.log.push(req.cmd);
        const ig = this.faults.ignore;
        if (ig && ig.cmd === req.cmd && ig.times > 0) {
          ig.times--;
          continue;
        }
        const refuse = this.faults.refuse;
        if (refuse && refuse.cmd === req.cmd) {
          out.push(Uint8Array.from(P.encodeReply({ rid: req.rid, cmd: req.cmd, status: refuse.status })));
          continue;
        }
        if (this.faults.corruptSeed && req.cmd === P.CMD_WRITE_SEED) {
          const seed = [...req.seed];
          seed[seed.length - 1] ^= 1;
          wire = P.encodeRequest({ ...req, seed });
        }
      }
      const reply = sim.exchange(wire) as number[];
      const shift = this.shiftRtcAfter;
      if (shift && q.msg && q.msg.cmd === shift.cmd) {
        this.shiftRtcAfter = undefined;
        this.shiftRtc(shift.seconds);
      }
      if (reply.length === 0) continue;
      if (q.msg && this.faults.loseReplyTo === q.msg.cmd) {
        this.faults.loseReplyTo = undefined;
        continue;
      }
      if (q.msg && this.faults.garbleReplyTo === q.msg.cmd) {
        this.faults.garbleReplyTo = undefined;
        reply[5] ^= 0x10;
        if (reply[5] === 0) reply[5] = 0x10;
      }
      if (this.faults.holdReplies !== undefined) {
        this.held.push(Uint8Array.from(reply));
        if (this.held.length >= this.faults.holdReplies) {
          this.faults.holdReplies = undefined;
          out.push(...this.release());
        }
        continue;
      }
      out.push(Uint8Array.from(reply));
    }
    return out;
  }

  /** The replies held so far (holdReplies), oldest first; the caller sends them. */
  release(): Uint8Array[] {
    const r = this.held;
    this.held = [];
    return r;
  }

  // ---- the test's own look at the keyfob: straight to the device, not through the link or its log ----

  /** One request to the keyfob, bypassing the link; its reply. */
  direct(msg: Record<string, unknown>): any {
    this.tick();
    this.rid = (this.rid + 1) & 255;
    const reply = sim.exchange(P.encodeRequest({ rid: 0x100 - 1 - (this.rid & 127), ...msg })) as number[];
    const events = P.decodeChunk(P.newDeframer(), reply, true);
    if (events.length !== 1 || !events[0].msg) throw new Error(`no reply to direct cmd ${msg.cmd}`);
    return events[0].msg;
  }

  info(): any {
    return this.direct({ cmd: P.CMD_INFO }).info;
  }

  get state(): number {
    return this.info().state;
  }

  get serial(): number[] {
    return this.info().serial;
  }

  get seedSet(): boolean {
    return (this.info().flags & P.INFO_SEED_SET) !== 0;
  }

  /** The RTC's time, Unix seconds. */
  now(): number {
    this.tick();
    const t = sim.rtcTime();
    return t.hi * 65536 + t.lo;
  }

  /** Move the RTC by seconds behind the keyfob's back (a crystal off, a battery swap). */
  shiftRtc(seconds: number): void {
    sim.setRtc(unixTime(this.now() + seconds));
  }

  /** Another keyfob on the same port: another hardware id, booted afresh (the device reads its id at boot). */
  set hwid(id: number[]) {
    sim.setHardwareId(id);
    sim.reboot();
  }

  /** The self-test code the keyfob gives now, and the time it used (Unix seconds). */
  selfTest(): { code: string; at: number } {
    const r = this.direct({ cmd: P.CMD_SELF_TEST });
    if (r.status !== P.STATUS_OK) throw new Error(`SELF_TEST: status ${r.status}`);
    return { code: Buffer.from(r.selfTest.code).toString(), at: r.selfTest.timeHi * 2 ** 32 + (r.selfTest.timeLo >>> 0) };
  }

  /** Provision (and lock) through the device's own rules, off the link. */
  provisionDirect(serial: string, seed: number[], lock: boolean): void {
    const unix = this.now();
    const statuses = [
      this.direct({ cmd: P.CMD_WRITE_SEED, algorithm: 1, digits: 8, period: 60, seed }).status,
      this.direct({ cmd: P.CMD_SET_SERIAL, serial: [...Buffer.from(serial)] }).status,
      this.direct({ cmd: P.CMD_SET_CLOCK, timeHi: Math.floor(unix / 2 ** 32), timeLo: unix | 0, flags: 0 }).status,
    ];
    if (lock) statuses.push(this.direct({ cmd: P.CMD_LOCK, serial: [...Buffer.from(serial)] }).status);
    if (statuses.some((s) => s !== 0)) throw new Error(`provisionDirect: statuses ${statuses}`);
  }

  /** Set the clock through the device (marks it set), off the link. */
  setClockDirect(unix: number): void {
    const st = this.direct({ cmd: P.CMD_SET_CLOCK, timeHi: Math.floor(unix / 2 ** 32), timeLo: unix | 0, flags: P.CLOCK_FORCE }).status;
    if (st !== 0) throw new Error(`setClockDirect: status ${st}`);
  }
}
