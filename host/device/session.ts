/**
 * A conversation with one keyfob over a Transport, in protocol/'s frames.
 *
 * - Pipelining (protocol/SPEC.md, Pipelining): commands go out in the order they
 *   are called, without waiting for earlier replies, up to
 *   PIPELINE_MAX_REQUESTS requests and PIPELINE_MAX_BYTES wire bytes in
 *   flight. The keyfob handles them one at a time, in order. A caller that
 *   awaits each command gets plain request/reply. Each attempt gets a fresh
 *   request id, and a reply counts only if its id and command match an
 *   attempt in flight, so a late reply to a timed-out attempt can never be
 *   taken for the answer to a later one. A request's timeout runs from when
 *   every earlier request has been answered or given up, which is when the
 *   keyfob should be getting to it, so queueing behind a slow flash write is
 *   not a timeout. (After a request was given up the keyfob may still be
 *   busy with it, so the next one can time out too: each is retried.)
 * - Retries: INFO and SELF_TEST are read-only and are simply sent again
 *   (on a timeout or a garbled reply). Writes are never resent blindly: after
 *   a timeout the session reads INFO (same hardware id required) to learn
 *   whether the write took effect (LOCK: locked with our serial; SET_SERIAL:
 *   our serial; SET_CLOCK: clock set near the time sent; WIPE: blank; WRITE_SEED:
 *   seed set with our parameters), and sends it again only if the keyfob is
 *   still writable and shows no effect. A rewrite of the same values on an
 *   unlocked keyfob leaves it as one write would.
 * - The link going away fails the command in hand with "unplugged" at once,
 *   not after a timeout.
 */
import * as P from "../../protocol/index.js";
import { DeviceError } from "./device-error.js";
import { ALGORITHM_CODES, ALGORITHM_NAMES, COMMAND_NAMES, nameOf, REASON_NAMES, STATE_NAMES, STATUS_NAMES, type KeyfobState, type TokenAlgorithm } from "./names.js";
import { TransportError, type Transport } from "../transport/transport.js";

/** Long enough for a flash write and an HMAC on the board and in the emulator; 131 bytes at 115200 baud take 11 ms. */
export const DEFAULT_TIMEOUT_MS = 2000;
export const DEFAULT_RETRIES = 2;
/**
 * Pipelining window (protocol/SPEC.md, Pipelining): at most this many requests
 * and wire bytes sent and not yet answered. 128 bytes fit the ESP32 UART's
 * hardware receive FIFO, so a keyfob busy with a flash write cannot lose a
 * byte whatever its driver's buffer is configured to.
 */
export const PIPELINE_MAX_REQUESTS = 4;
export const PIPELINE_MAX_BYTES = 128;
const TWO_32 = 4294967296;

export interface KeyfobInfo {
  state: KeyfobState;
  /** Why state is "error" (e.g. "RTC_TIME_LOST"); undefined otherwise. */
  reason?: string;
  clockSet: boolean;
  seedSet: boolean;
  lockSet: boolean;
  /** "major.minor.patch". */
  firmware: string;
  /** The unique hardware id, lower-case hex. */
  hardwareId: string;
  /** The keyfob's RTC in unix seconds; undefined when it cannot be read. */
  clock?: number;
  /** Token parameters, present once a seed is written. */
  algorithm?: TokenAlgorithm;
  digits?: number;
  period?: number;
  model: string;
  /** "" when unset. */
  serial: string;
}

export interface SelfTest {
  /** The unix time the keyfob computed its code for. */
  time: number;
  code: string;
}

export interface SeedWrite {
  algorithm: TokenAlgorithm;
  digits: number;
  period: number;
  /** The seed; the session never keeps or logs it, and wipes its own copies. */
  seed: Uint8Array;
}

export interface SessionOptions {
  timeoutMs?: number;
  /** Extra attempts per command (reads) or verify-then-resend rounds (writes). */
  retries?: number;
}

export interface SessionStats {
  requests: number;
  retries: number;
  timeouts: number;
  /** Frames that failed COBS/CRC or decoding. */
  badFrames: number;
}

interface InFlight {
  rid: number;
  cmd: number;
  /** Wire bytes of the request (counted against PIPELINE_MAX_BYTES). */
  bytes: number;
  resolve: (r: P.Reply) => void;
  reject: (e: Error) => void;
  /** A damaged frame arrived while waiting: a read-only command is resent at once. */
  onGarbled?: () => void;
  /** Armed when this is the oldest request in flight: the one the keyfob is working on. */
  timer?: NodeJS.Timeout;
}

class Garbled extends Error {}
class TimedOut extends Error {}

function ascii(bytes: number[]): string {
  return String.fromCharCode(...bytes);
}

function toAsciiBytes(s: string, what: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e) throw new DeviceError("bad_request", `${what} must be printable ASCII without spaces`, what);
    out.push(c);
  }
  return out;
}

export function unixFromWords(hi: number, lo: number): number {
  return hi * TWO_32 + (lo >>> 0);
}

export function wordsFromUnix(seconds: number): { timeHi: number; timeLo: number } {
  if (!Number.isSafeInteger(seconds) || seconds < 0) throw new RangeError(`unix time must be a non-negative integer, got ${seconds}`);
  return { timeHi: Math.floor(seconds / TWO_32), timeLo: (seconds % TWO_32) | 0 };
}

export function infoFromWire(i: P.DeviceInfo): KeyfobInfo {
  const seedSet = (i.flags & P.INFO_SEED_SET) !== 0;
  const clockOk = !(i.timeHi === 0 && i.timeLo === 0);
  return {
    state: STATE_NAMES[i.state] ?? "error",
    reason: i.state === P.STATE_ERROR ? nameOf(REASON_NAMES, i.reason) : undefined,
    clockSet: (i.flags & P.INFO_CLOCK_SET) !== 0,
    seedSet,
    lockSet: (i.flags & P.INFO_LOCK_SET) !== 0,
    firmware: `${i.fwMajor}.${i.fwMinor}.${i.fwPatch}`,
    hardwareId: Buffer.from(i.hwid).toString("hex"),
    clock: clockOk ? unixFromWords(i.timeHi, i.timeLo) : undefined,
    algorithm: seedSet ? ALGORITHM_NAMES[i.algorithm] : undefined,
    digits: seedSet ? i.digits : undefined,
    period: seedSet ? i.period : undefined,
    model: ascii(i.model),
    serial: ascii(i.serial),
  };
}

export class DeviceSession {
  readonly transport: Transport;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly stats: SessionStats = { requests: 0, retries: 0, timeouts: 0, badFrames: 0 };
  /** Learned from the first INFO; a later INFO with another id means the keyfob was swapped. */
  hardwareId?: string;
  private nextRid = Math.floor(Math.random() * 256);
  /** Requests sent and not yet answered, oldest first (Map keeps insertion order). */
  private readonly inFlight = new Map<number, InFlight>();
  /** Sends go out one after another, in call order. */
  private sendChain: Promise<void> = Promise.resolve();
  /** Wakes a send waiting for room in the window. */
  private windowWaiter?: () => void;
  private readonly deframer = P.newDeframer();
  private ended?: DeviceError;
  private readonly loop: Promise<void>;

  constructor(transport: Transport, options: SessionOptions = {}) {
    if (!transport.isOpen) throw new TypeError("DeviceSession needs an open transport");
    this.transport = transport;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.retries = options.retries ?? DEFAULT_RETRIES;
    transport.onClose((e) => this.end(e.reason === "unplugged" ? "unplugged" : "closed"));
    this.loop = this.readLoop();
  }

  /** Open the transport and start a session on it. */
  static async open(transport: Transport, options?: SessionOptions): Promise<DeviceSession> {
    await transport.open();
    return new DeviceSession(transport, options);
  }

  private end(how: "unplugged" | "closed"): void {
    if (this.ended) return;
    const oldest = this.oldest();
    const cmd = oldest ? nameOf(COMMAND_NAMES, oldest.cmd) : "";
    this.ended = new DeviceError(how, how === "unplugged"
      ? `keyfob on ${this.transport.path} was unplugged${cmd ? " during " + cmd : ""}`
      : `session on ${this.transport.path} is closed`, cmd);
    const all = [...this.inFlight.values()];
    this.inFlight.clear();
    for (const f of all) {
      clearTimeout(f.timer);
      f.reject(this.ended);
    }
    this.wakeWindow();
  }

  private oldest(): InFlight | undefined {
    return this.inFlight.values().next().value;
  }

  private track(f: InFlight): void {
    this.inFlight.set(f.rid, f);
    this.armOldest();
  }

  private untrack(f: InFlight): void {
    if (this.inFlight.get(f.rid) !== f) return;
    clearTimeout(f.timer);
    this.inFlight.delete(f.rid);
    this.armOldest();
    this.wakeWindow();
  }

  /** The keyfob answers in order: the oldest request's timeout runs, the others wait their turn. */
  private armOldest(): void {
    const f = this.oldest();
    if (f && f.timer === undefined) {
      f.timer = setTimeout(() => {
        this.untrack(f);
        f.reject(new TimedOut());
      }, this.timeoutMs);
    }
  }

  private wakeWindow(): void {
    const w = this.windowWaiter;
    this.windowWaiter = undefined;
    w?.();
  }

  /** Wait until a request of `bytes` wire bytes fits the pipelining window (one always fits an empty window). */
  private async windowFor(bytes: number): Promise<void> {
    const unanswered = () => [...this.inFlight.values()].reduce((n, f) => n + f.bytes, 0);
    while (!this.ended && this.inFlight.size > 0
      && (this.inFlight.size >= PIPELINE_MAX_REQUESTS || unanswered() + bytes > PIPELINE_MAX_BYTES)) {
      await new Promise<void>((resolve) => (this.windowWaiter = resolve));
    }
  }

  private async readLoop(): Promise<void> {
    for (;;) {
      let chunk: Uint8Array;
      try {
        chunk = await this.transport.read();
      } catch (e) {
        this.end(e instanceof TransportError && e.code === "unplugged" ? "unplugged" : "closed");
        return;
      }
      for (let i = 0; i < chunk.length; i++) {
        const r = P.deframerPush(this.deframer, chunk[i]);
        if (r === P.RX_FRAME) this.onFrame();
        else if (r !== P.RX_NONE) this.onDamaged();
      }
    }
  }

  /** A frame that failed COBS/CRC: replies come in order, so it was most likely the oldest request's. */
  private onDamaged(): void {
    this.stats.badFrames++;
    this.oldest()?.onGarbled?.();
  }

  private onFrame(): void {
    const d = P.decodeReply(this.deframer.buf, this.deframer.len);
    if (d.status === P.WRONG_DIRECTION) return; // our own request echoed by the line
    if (d.status !== P.STATUS_OK || !d.msg) {
      this.stats.badFrames++;
      const f = this.inFlight.get(d.rid);
      if (f && d.cmd === f.cmd) f.onGarbled?.();
      return;
    }
    const f = this.inFlight.get(d.msg.rid);
    if (!f || d.msg.cmd !== f.cmd) return; // a late reply to an earlier attempt
    this.untrack(f);
    f.resolve(d.msg);
  }

  /**
   * One attempt: queue the request behind earlier sends, send it when the
   * window has room, wait for the matching reply or the timeout.
   */
  private async attempt(build: (rid: number) => P.Request, readOnly: boolean): Promise<P.Reply> {
    if (this.ended) throw this.ended;
    let rid = this.nextRid;
    // Never reuse an id still in flight (a window holds at most 4 of 256).
    while (this.inFlight.has(rid)) rid = (rid + 1) & 255;
    this.nextRid = (rid + 1) & 255;
    const msg = build(rid);
    const wire = P.encodeRequest(msg);
    const name = nameOf(COMMAND_NAMES, msg.cmd);
    if (msg.cmd === P.CMD_WRITE_SEED) msg.seed.fill(0);
    if (wire.length === 0) throw new DeviceError("bad_request", `${name}: request fields out of range`, name);
    const bytes = Uint8Array.from(wire);
    wire.fill(0);
    let entry!: InFlight;
    const reply = new Promise<P.Reply>((resolve, reject) => {
      entry = {
        rid, cmd: msg.cmd, bytes: bytes.length, resolve, reject,
        onGarbled: readOnly ? () => {
          this.untrack(entry);
          reject(new Garbled());
        } : undefined,
      };
    });
    reply.catch(() => undefined);
    const send = this.sendChain.then(async () => {
      await this.windowFor(bytes.length);
      if (this.ended) throw this.ended;
      this.stats.requests++;
      this.track(entry);
      await this.transport.write(bytes);
    });
    this.sendChain = send.catch(() => undefined);
    try {
      await send;
      return await reply;
    } catch (e) {
      if (e instanceof TransportError) {
        this.end(e.code === "unplugged" ? "unplugged" : "closed");
        throw this.ended!;
      }
      throw e;
    } finally {
      bytes.fill(0);
      this.untrack(entry);
    }
  }

  private refused(reply: P.Reply): DeviceError {
    const name = nameOf(COMMAND_NAMES, reply.cmd);
    const st = nameOf(STATUS_NAMES, reply.status);
    return new DeviceError("refused", `keyfob refused ${name}: ${st}`, name, reply.status, st);
  }

  /** A read-only command: resend on timeout or garbled reply. */
  private async readCommand(build: (rid: number) => P.Request, name: string): Promise<P.Reply> {
    for (let n = 0; ; n++) {
      try {
        const r = await this.attempt(build, true);
        if (r.status !== P.STATUS_OK) throw this.refused(r);
        return r;
      } catch (e) {
        if (!(e instanceof TimedOut || e instanceof Garbled)) throw e;
        if (e instanceof TimedOut) this.stats.timeouts++;
        if (n >= this.retries) {
          throw new DeviceError("timeout", `no ${e instanceof Garbled ? "intact " : ""}reply to ${name} from ${this.transport.path} after ${n + 1} attempts (${this.timeoutMs} ms each)`, name);
        }
        this.stats.retries++;
      }
    }
  }

  /**
   * A write: on timeout, learn from INFO whether it took effect (done),
   * and resend only to a keyfob that is the same, unlocked, and unchanged.
   */
  private async writeCommand(build: (rid: number) => P.Request, name: string, tookEffect: (info: KeyfobInfo) => boolean): Promise<void> {
    for (let n = 0; ; n++) {
      let reply: P.Reply;
      try {
        reply = await this.attempt(build, false);
      } catch (e) {
        if (!(e instanceof TimedOut)) throw e;
        this.stats.timeouts++;
        const info = await this.infoNow();
        if (tookEffect(info)) return;
        if (n >= this.retries) {
          throw new DeviceError("timeout", `no reply to ${name} from ${this.transport.path} after ${n + 1} attempts, and INFO shows it did not take effect`, name);
        }
        if (info.state === "locked") {
          throw new DeviceError("refused", `keyfob refused ${name}: LOCKED (found locked while retrying)`, name, P.STATUS_LOCKED, "LOCKED");
        }
        this.stats.retries++;
        continue;
      }
      if (reply.status !== P.STATUS_OK) throw this.refused(reply);
      return;
    }
  }

  private async infoNow(): Promise<KeyfobInfo> {
    const r = await this.readCommand((rid) => ({ cmd: P.CMD_INFO, rid }), "INFO");
    const info = infoFromWire(r.info!);
    if (this.hardwareId === undefined) this.hardwareId = info.hardwareId;
    else if (this.hardwareId !== info.hardwareId) {
      throw new DeviceError("protocol", `another keyfob answered on ${this.transport.path} (hardware id ${info.hardwareId}, expected ${this.hardwareId})`, "INFO");
    }
    return info;
  }

  info(): Promise<KeyfobInfo> {
    return this.infoNow();
  }

  async setSerial(serial: string): Promise<void> {
    const bytes = toAsciiBytes(serial, "SET_SERIAL");
    return this.writeCommand((rid) => ({ cmd: P.CMD_SET_SERIAL, rid, serial: bytes }), "SET_SERIAL",
      (i) => i.serial === serial);
  }

  async writeSeed(w: SeedWrite): Promise<void> {
    const alg = ALGORITHM_CODES[w.algorithm];
    if (alg === undefined) return Promise.reject(new DeviceError("bad_request", `unknown algorithm ${w.algorithm}`, "WRITE_SEED"));
    return this.writeCommand(
      // A fresh array per attempt: attempt() wipes it after encoding.
      (rid) => ({ cmd: P.CMD_WRITE_SEED, rid, algorithm: alg, digits: w.digits, period: w.period, seed: Array.from(w.seed) }),
      "WRITE_SEED",
      // INFO cannot tell our seed from another with the same parameters, so a
      // timed-out WRITE_SEED is resent (to the same, unlocked keyfob: the same
      // seed written twice is one write); the caller's SELF_TEST proves which seed it holds.
      () => false);
  }

  async setClock(unixSeconds: number, options: { force?: boolean } = {}): Promise<void> {
    const { timeHi, timeLo } = wordsFromUnix(unixSeconds);
    const flags = options.force ? P.CLOCK_FORCE : 0;
    const sentAt = Date.now();
    return this.writeCommand((rid) => ({ cmd: P.CMD_SET_CLOCK, rid, timeHi, timeLo, flags }), "SET_CLOCK",
      (i) => i.clockSet && i.clock !== undefined && Math.abs(i.clock - (unixSeconds + Math.round((Date.now() - sentAt) / 1000))) <= 2);
  }

  async selfTest(): Promise<SelfTest> {
    const r = await this.readCommand((rid) => ({ cmd: P.CMD_SELF_TEST, rid }), "SELF_TEST");
    const st = r.selfTest!;
    return { time: unixFromWords(st.timeHi, st.timeLo), code: ascii(st.code) };
  }

  async lock(serial: string): Promise<void> {
    const bytes = toAsciiBytes(serial, "LOCK");
    return this.writeCommand((rid) => ({ cmd: P.CMD_LOCK, rid, serial: bytes }), "LOCK",
      (i) => i.state === "locked" && i.serial === serial);
  }

  /** serial: the serial the keyfob has now ("" for none). */
  async wipe(serial: string): Promise<void> {
    const bytes = serial === "" ? [] : toAsciiBytes(serial, "WIPE");
    return this.writeCommand((rid) => ({ cmd: P.CMD_WIPE, rid, serial: bytes }), "WIPE",
      (i) => i.state === "blank" && !i.seedSet && i.serial === "");
  }

  /** Close the session and its transport. */
  async close(): Promise<void> {
    this.end("closed");
    await this.transport.close().catch(() => undefined);
    await this.loop;
  }
}
