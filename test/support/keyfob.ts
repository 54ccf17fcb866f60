/**
 * An in-process emulated keyfob with a protocol client on its UART: the
 * firmware image runs unmodified in fengari; requests go in as wire bytes,
 * replies come out through protocol/'s own decoder (the tsc build).
 */
import { createHash } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { IMAGE, nodeBuild } from "./paths.js";

export const P: any = await nodeBuild("protocol/index.js");
const { Emulator } = await nodeBuild("hil/emulator.js");

/** Hash of every file in a board's flash directory: "nothing was written" in one comparison. */
export function flashDigest(dir: string): string {
  const h = createHash("sha256");
  for (const f of readdirSync(dir).sort()) h.update(f).update("\0").update(readFileSync(join(dir, f)));
  return h.digest("hex");
}

export const ascii = (s: string): number[] => Array.from(Buffer.from(s, "latin1"));

export interface KeyfobOptions {
  time?: number;
  driftPpm?: number;
  stateDir?: string;
  rtc?: boolean;
  rng?: boolean;
  rtcTimeLost?: boolean;
  countInstructions?: boolean;
  /** Start from a worn SPIFFS (EmulatorOptions.spiffsWorn). */
  spiffsWorn?: boolean;
}

export class TestKeyfob {
  readonly emu: any;
  readonly stateDir: string;
  /** Every byte the firmware wrote to its UART. */
  readonly tx: number[] = [];
  private readonly d = P.newDeframer();
  private replies: any[] = [];
  private rid = 0;

  constructor(opts: KeyfobOptions = {}) {
    this.stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), "fobkit-keyfob-"));
    this.emu = new Emulator({
      stateDir: this.stateDir,
      imagePath: opts.stateDir ? undefined : IMAGE,
      time: opts.time ?? 1_764_000_000,
      driftPpm: opts.driftPpm ?? 0,
      rtc: opts.rtc,
      rng: opts.rng,
      rtcTimeLost: opts.rtcTimeLost,
      countInstructions: opts.countInstructions ?? false,
      spiffsWorn: opts.spiffsWorn,
    });
    this.emu.on("uart", (bytes: Uint8Array) => {
      for (const b of bytes) this.tx.push(b);
      for (const ev of P.decodeChunk(this.d, Array.from(bytes), true)) this.replies.push(ev);
    });
  }

  /**
   * Power on and let init.lua run. The board prints NodeMCU's banner and
   * first prompt as it boots (they stay in tx); like a host that opens the
   * port once the keyfob is up, the client starts reading after them.
   */
  boot(): this {
    this.emu.boot();
    this.emu.advance(0.5);
    P.deframerReset(this.d);
    return this;
  }

  /** Raw bytes in; the reply events that came out within `seconds` of virtual time. */
  sendRaw(bytes: number[], seconds = 0.05): any[] {
    this.replies = [];
    this.emu.uartWrite(bytes);
    this.emu.advance(seconds);
    return this.replies;
  }

  /** One request; its reply message (throws if none or more than one). */
  request(msg: Record<string, unknown>): any {
    this.rid = (this.rid + 1) & 255;
    const events = this.sendRaw(P.encodeRequest({ rid: this.rid, ...msg }));
    if (events.length !== 1 || events[0].event !== P.RX_FRAME || events[0].status !== 0) {
      throw new Error(`expected one reply to cmd ${msg.cmd}, got ${JSON.stringify(events)}`);
    }
    const reply = events[0].msg;
    if (reply.rid !== this.rid) throw new Error(`reply rid ${reply.rid} != ${this.rid}`);
    return reply;
  }

  info(): any {
    const r = this.request({ cmd: P.CMD_INFO });
    if (r.status !== 0) throw new Error(`INFO status ${r.status}`);
    return r.info;
  }

  /** Unix seconds of the device clock as INFO reports it. */
  clock(): number {
    const i = this.info();
    return i.timeHi * 2 ** 32 + (i.timeLo >>> 0);
  }

  /** Provision (seed, serial, clock) and optionally lock. Returns the statuses in order. */
  provision(seed: number[], serial: string, unix: number, lock = true, algorithm = 1): number[] {
    const s = [
      this.request({ cmd: P.CMD_WRITE_SEED, algorithm, digits: 8, period: 60, seed }).status,
      this.request({ cmd: P.CMD_SET_SERIAL, serial: ascii(serial) }).status,
      this.request({ cmd: P.CMD_SET_CLOCK, timeHi: Math.floor(unix / 2 ** 32), timeLo: unix | 0, flags: 0 }).status,
    ];
    if (lock) s.push(this.request({ cmd: P.CMD_LOCK, serial: ascii(serial) }).status);
    return s;
  }

  /** Press the button; the text the display shows right after. */
  press(): string {
    this.emu.press();
    return String(this.emu.display).trimEnd();
  }

  close(): void {
    this.emu.close();
  }
}
