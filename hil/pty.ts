/**
 * The emulator's console UART on a real pseudo-terminal.
 *
 * socat makes a PTY pair: one end is linked at the path the host opens (any
 * serial tool, or serialport), the other is held here through serialport's
 * own binding. Bytes cross at the modelled line speed in both directions: a
 * UART frame is 10 bits (start, 8 data, stop), so 115200 baud is 11520
 * bytes/s. The emulator's virtual clock follows the wall clock.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, lstatSync, unlinkSync } from "node:fs";
import { SerialPort } from "serialport";
import type { Emulator } from "./emulator.js";

import { BITS_PER_BYTE } from "./console-rx.js";

export { BITS_PER_BYTE };
const TICK_MS = 2;

export interface PtyOptions {
  /** Where the host-side PTY link is created. */
  path: string;
  /** Line speed to model (default: the emulator's baud). */
  baud?: number;
}

/** Start socat with two raw PTYs; resolves with socat and the emulator-side device. */
async function startSocat(linkPath: string): Promise<{ proc: ChildProcess; device: string }> {
  if (existsSync(linkPath)) {
    const st = lstatSync(linkPath);
    if (!st.isSymbolicLink()) throw new Error(`${linkPath} exists and is not a PTY link; refusing to replace it`);
    unlinkSync(linkPath); // a stale link from a killed run
  }
  const proc = spawn("socat", ["-d", "-d", `pty,raw,echo=0,link=${linkPath}`, "pty,raw,echo=0"], { stdio: ["ignore", "ignore", "pipe"] });
  return new Promise((resolve, reject) => {
    const ptys: string[] = [];
    let log = "";
    const fail = (why: string) => {
      proc.kill();
      reject(new Error(`socat: ${why}${log ? `\n${log}` : ""}`));
    };
    const timer = setTimeout(() => fail("no PTYs after 5 s"), 5000);
    proc.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot run socat (${e.message}); make setup installs it`));
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      if (ptys.length < 2) fail(`exited with ${code}`);
    });
    proc.stderr!.setEncoding("utf8");
    proc.stderr!.on("data", (chunk: string) => {
      log += chunk;
      for (const m of chunk.matchAll(/PTY is (\S+)/g)) ptys.push(m[1]);
      if (/starting data transfer loop/.test(log) && ptys.length >= 2) {
        clearTimeout(timer);
        resolve({ proc, device: ptys[1] });
      }
    });
  });
}

/** The link between an Emulator and a PTY; close() undoes everything. */
export class PtyLink {
  readonly path: string;
  readonly baud: number;
  private readonly emu: Emulator;
  private proc: ChildProcess | undefined;
  private port: SerialPort | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private rx: number[] = [];
  private tx: number[] = [];
  private rxCredit = 0;
  private txCredit = 0;
  private last = 0;
  private closed = false;
  private readonly onUart = (bytes: Uint8Array) => {
    for (const b of bytes) this.tx.push(b);
  };

  private constructor(emu: Emulator, path: string, baud: number) {
    this.emu = emu;
    this.path = path;
    this.baud = baud;
  }

  static async open(emu: Emulator, opts: PtyOptions): Promise<PtyLink> {
    const baud = opts.baud ?? emu.baud;
    if (!Number.isInteger(baud) || baud <= 0) throw new RangeError(`baud must be a positive integer, got ${baud}`);
    const link = new PtyLink(emu, opts.path, baud);
    const { proc, device } = await startSocat(opts.path);
    link.proc = proc;
    try {
      link.port = await new Promise<SerialPort>((resolve, reject) => {
        const p = new SerialPort({ path: device, baudRate: baud, autoOpen: false });
        p.open((err) => (err ? reject(err) : resolve(p)));
      });
    } catch (e) {
      await link.close();
      throw e;
    }
    link.port.on("data", (chunk: Buffer) => {
      for (const b of chunk) link.rx.push(b);
    });
    emu.on("uart", link.onUart);
    link.last = performance.now();
    link.ticker = setInterval(() => link.tick(), TICK_MS);
    return link;
  }

  /** One step: virtual time follows the wall clock, bytes move at the line rate. */
  private tick(): void {
    const now = performance.now();
    const dt = now - this.last;
    this.last = now;
    const bytesPerMs = this.baud / BITS_PER_BYTE / 1000;
    // Credit does not pile up while a direction is idle: a line has no buffer.
    this.rxCredit = this.rx.length > 0 ? Math.min(this.rxCredit + dt * bytesPerMs, this.rx.length) : 0;
    this.txCredit = this.tx.length > 0 ? Math.min(this.txCredit + dt * bytesPerMs, this.tx.length) : 0;
    this.emu.advance(dt / 1000);
    const nrx = Math.floor(this.rxCredit);
    if (nrx > 0) {
      this.rxCredit -= nrx;
      this.emu.uartWrite(this.rx.splice(0, nrx));
    }
    const ntx = Math.floor(this.txCredit);
    if (ntx > 0 && this.port) {
      this.txCredit -= ntx;
      this.port.write(Buffer.from(this.tx.splice(0, ntx)));
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ticker) clearInterval(this.ticker);
    this.emu.off("uart", this.onUart);
    const port = this.port;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
    const proc = this.proc;
    if (proc && proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
      proc.kill("SIGTERM");
      await exited;
    }
    try {
      if (lstatSync(this.path).isSymbolicLink()) unlinkSync(this.path);
    } catch {
      // already gone: socat removes its link on a clean exit
    }
  }
}
