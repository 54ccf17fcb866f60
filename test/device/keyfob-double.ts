/**
 * A test double of the KEYFOB (the device end of the link), built from
 * protocol/ alone: it decodes requests with the real deframer/decoder,
 * answers with the real encoder, and keeps the device rules of issue 3
 * (blank -> provisioned -> locked, clock never backwards without force,
 * LOCK/WIPE check the serial, nothing writable after lock). It exists so the
 * host layers can be tested before and beside the emulator; the integration
 * tests run against the real firmware in the emulator.
 *
 * Fault knobs model what a real link does: a reply lost after the device
 * acted, a device that goes silent, a garbled reply, a wrong RTC.
 */
import * as P from "../../protocol/index.js";
import { totpAt } from "../../firmware/otp/index.js";

export interface DoubleFaults {
  /** Act on the next request of this command, but lose the reply. */
  loseReplyTo?: number;
  /** Ignore requests of this command entirely (no action, no reply), this many times. */
  ignore?: { cmd: number; times: number };
  /** Flip one bit in the next reply to this command. */
  garbleReplyTo?: number;
  /** The RTC runs this many seconds away from the time it was set to. */
  rtcOffset?: number;
  /** Answer every request of this command with this status, changing nothing (e.g. HW_FAULT). */
  refuse?: { cmd: number; status: number };
  /** Self-test answers with a code for a wrong seed (a flash that did not keep it). */
  corruptSeed?: boolean;
  /**
   * Act on requests but hold their replies until this many are held, then
   * send them together (and clear the switch); Infinity holds them until
   * release(). Only a host that pipelines gets past it.
   */
  holdReplies?: number;
  /** serveDouble waits this long before each reply: a keyfob busy with every request. */
  replyDelayMs?: number;
  /**
   * serveDouble: ms the keyfob spends on a command (by cmd) after acting on
   * it, before it answers and reads the next request, as a flash write keeps
   * the real one busy.
   */
  busyMs?: Partial<Record<number, number>>;
}

export class KeyfobDouble {
  hwid = [0xd0, 0x0b, 0x1e, 0x00, 1, 2, 3, 4];
  state = P.STATE_BLANK;
  serial: number[] = [];
  seed?: number[];
  algorithm = 0;
  digits = 0;
  period = 0;
  clockSet = false;
  /** RTC = host clock + offset (seconds). */
  offset = 0;
  faults: DoubleFaults = {};
  /** Every request command received, in order. */
  log: number[] = [];
  private readonly d = P.newDeframer();
  private held: Uint8Array[] = [];

  constructor(hwidLast = 4) {
    this.hwid[7] = hwidLast;
  }

  now(): number {
    return Math.floor(Date.now() / 1000) + this.offset + (this.faults.rtcOffset ?? 0);
  }

  /** Bytes from the host in, reply wire bytes out (zero or more frames). */
  receive(bytes: Uint8Array): Uint8Array[] {
    const out: Uint8Array[] = [];
    for (const b of bytes) {
      if (P.deframerPush(this.d, b) !== P.RX_FRAME) continue;
      const q = P.decodeRequest(this.d.buf, this.d.len);
      if (q.status === P.WRONG_DIRECTION) continue;
      if (q.status !== P.STATUS_OK || !q.msg) {
        out.push(Uint8Array.from(P.encodeReply({ rid: q.rid, cmd: q.cmd & 127, status: q.status })));
        continue;
      }
      const req = q.msg;
      this.log.push(req.cmd);
      const ig = this.faults.ignore;
      if (ig && ig.cmd === req.cmd && ig.times > 0) {
        ig.times--;
        continue;
      }
      const refuse = this.faults.refuse;
      const reply = refuse && refuse.cmd === req.cmd ? { rid: req.rid, cmd: req.cmd, status: refuse.status } : this.handle(req);
      const wire = P.encodeReply(reply);
      if (this.faults.loseReplyTo === req.cmd) {
        this.faults.loseReplyTo = undefined;
        continue;
      }
      if (this.faults.garbleReplyTo === req.cmd) {
        this.faults.garbleReplyTo = undefined;
        wire[5] ^= 0x10;
        if (wire[5] === 0) wire[5] = 0x10;
      }
      if (this.faults.holdReplies !== undefined) {
        this.held.push(Uint8Array.from(wire));
        if (this.held.length >= this.faults.holdReplies) {
          this.faults.holdReplies = undefined;
          out.push(...this.release());
        }
        continue;
      }
      out.push(Uint8Array.from(wire));
    }
    return out;
  }

  /** The replies held so far (holdReplies), oldest first; the caller sends them. */
  release(): Uint8Array[] {
    const r = this.held;
    this.held = [];
    return r;
  }

  private r(req: P.Request, status: number): P.Reply {
    return { rid: req.rid, cmd: req.cmd, status };
  }

  private handle(req: P.Request): P.Reply {
    const locked = this.state === P.STATE_LOCKED;
    switch (req.cmd) {
      case P.CMD_INFO: {
        const t = this.clockSet ? this.now() : 0;
        return {
          ...this.r(req, P.STATUS_OK),
          info: {
            state: this.state, reason: 0,
            flags: (this.clockSet ? P.INFO_CLOCK_SET : 0) | (this.seed ? P.INFO_SEED_SET : 0) | (locked ? P.INFO_LOCK_SET : 0),
            fwMajor: 1, fwMinor: 0, fwPatch: 0, hwid: this.hwid,
            timeHi: Math.floor(t / 4294967296), timeLo: (t % 4294967296) | 0,
            algorithm: this.seed ? this.algorithm : 0, digits: this.seed ? this.digits : 0, period: this.seed ? this.period : 0,
            model: [...Buffer.from("FOBKIT-1")], serial: this.serial,
          },
        };
      }
      case P.CMD_SET_SERIAL:
        if (locked) return this.r(req, P.STATUS_LOCKED);
        this.serial = [...req.serial];
        return this.r(req, P.STATUS_OK);
      case P.CMD_WRITE_SEED:
        if (locked) return this.r(req, P.STATUS_LOCKED);
        this.seed = [...req.seed];
        this.algorithm = req.algorithm;
        this.digits = req.digits;
        this.period = req.period;
        this.state = P.STATE_PROVISIONED;
        return this.r(req, P.STATUS_OK);
      case P.CMD_SET_CLOCK: {
        if (locked) return this.r(req, P.STATUS_LOCKED);
        const t = req.timeHi * 4294967296 + (req.timeLo >>> 0);
        if (this.clockSet && (req.flags & P.CLOCK_FORCE) === 0 && t < this.now()) return this.r(req, P.STATUS_CLOCK_BACKWARDS);
        this.offset = t - Math.floor(Date.now() / 1000);
        this.clockSet = true;
        return this.r(req, P.STATUS_OK);
      }
      case P.CMD_SELF_TEST: {
        if (locked) return this.r(req, P.STATUS_LOCKED);
        if (!this.seed || !this.clockSet) return this.r(req, P.STATUS_NOT_PROVISIONED);
        const t = this.now();
        const seed = this.faults.corruptSeed ? this.seed.map((b) => b ^ 1) : this.seed;
        const c = totpAt(seed, t, this.period, this.digits, this.algorithm);
        if (typeof c === "number") return this.r(req, P.STATUS_INTERNAL);
        return { ...this.r(req, P.STATUS_OK), selfTest: { timeHi: Math.floor(t / 4294967296), timeLo: (t % 4294967296) | 0, code: [...Buffer.from(c.text)] } };
      }
      case P.CMD_LOCK:
        if (locked) return this.r(req, P.STATUS_LOCKED);
        if (Buffer.compare(Buffer.from(req.serial), Buffer.from(this.serial)) !== 0) return this.r(req, P.STATUS_SERIAL_MISMATCH);
        if (!this.seed || !this.clockSet || this.serial.length === 0) return this.r(req, P.STATUS_BAD_STATE);
        this.state = P.STATE_LOCKED;
        return this.r(req, P.STATUS_OK);
      case P.CMD_WIPE:
        if (locked) return this.r(req, P.STATUS_LOCKED);
        if (Buffer.compare(Buffer.from(req.serial), Buffer.from(this.serial)) !== 0) return this.r(req, P.STATUS_SERIAL_MISMATCH);
        this.state = P.STATE_BLANK;
        this.serial = [];
        this.seed = undefined;
        this.algorithm = this.digits = this.period = 0;
        this.clockSet = false;
        return this.r(req, P.STATUS_OK);
    }
    return this.r(req, P.STATUS_UNKNOWN_COMMAND);
  }
}
