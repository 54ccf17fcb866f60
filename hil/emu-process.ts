/**
 * Drive `fobkit emu` running in its own process, as a person at a terminal
 * would: commands on its stdin (press, advance, power-cut, boot), events read
 * from its stdout (JSON lines). The demo and the PTY tests share this.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

export interface EmuProcessOptions {
  /** bin/fobkit.js of the checkout. */
  fobkit: string;
  pty: string;
  state: string;
  /** A factory-fresh board: no image, no init.lua (it boots into the REPL). */
  blank?: boolean;
  /** Start on the battery, USB unplugged (`--battery`). */
  battery?: boolean;
  /** Extra arguments for `fobkit emu` (--time, --drift-ppm...). */
  args?: string[];
  /** How long next() waits for an event (default 30 s). */
  timeoutMs?: number;
}

export interface EmuEvent {
  event: string;
  text?: string;
  [key: string]: unknown;
}

export class EmuProcess {
  readonly proc: ChildProcess;
  readonly pty: string;
  /** Every event so far, oldest first. */
  readonly events: EmuEvent[] = [];
  private waiters: { match: (e: EmuEvent) => boolean; resolve: (e: EmuEvent) => void }[] = [];
  private readonly timeoutMs: number;

  constructor(o: EmuProcessOptions) {
    this.pty = o.pty;
    this.timeoutMs = o.timeoutMs ?? 30_000;
    const args = ["emu", "--pty", o.pty, "--state", o.state];
    if (o.blank) args.push("--blank");
    if (o.battery) args.push("--battery");
    if (o.args) args.push(...o.args);
    this.proc = spawn(process.execPath, [o.fobkit, ...args], { stdio: ["pipe", "pipe", "inherit"] });
    createInterface({ input: this.proc.stdout! }).on("line", (line) => {
      const e = JSON.parse(line) as EmuEvent;
      this.events.push(e);
      this.waiters = this.waiters.filter((w) => (w.match(e) ? (w.resolve(e), false) : true));
    });
  }

  /** The first event from index `from` on (default: from now) that matches. */
  next(match: (e: EmuEvent) => boolean, what: string, from = this.events.length): Promise<EmuEvent> {
    const seen = this.events.slice(from).find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`${this.pty}: no ${what} within ${this.timeoutMs} ms; last events ${JSON.stringify(this.events.slice(-3))}`)), this.timeoutMs);
      this.waiters.push({ match, resolve: (e) => (clearTimeout(t), resolve(e)) });
    });
  }

  /** Resolves once the PTY is there to open (the "ready" event, whenever it came). */
  ready(): Promise<EmuEvent> {
    return this.next((e) => e.event === "ready", "ready event", 0);
  }

  send(line: string): void {
    this.proc.stdin!.write(line + "\n");
  }

  /** Press the button; the text the display then shows (trimmed). */
  async press(): Promise<string> {
    const shown = this.next((e) => e.event === "display" && String(e.text).trim() !== "", "display after a press");
    this.send("press");
    return String((await shown).text).trim();
  }

  advance(seconds: number): void {
    this.send(`advance ${seconds}`);
  }

  /** Plug USB in or pull it out. */
  usb(present: boolean): void {
    this.send(`usb ${present ? "on" : "off"}`);
  }

  /**
   * End of stdin stops the emulator cleanly (socat killed, link removed). One that has not exited 10 s later is
   * killed: an emulator stuck in a loop never reads its stdin (nor runs a SIGTERM handler), and would otherwise
   * outlive the test, spinning a core (seen: five such processes left by runs of a ConsoleRx that looped).
   */
  stop(): Promise<void> {
    return new Promise((r) => {
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) return r();
      const kill = setTimeout(() => this.proc.kill("SIGKILL"), 10_000);
      this.proc.once("exit", () => {
        clearTimeout(kill);
        r();
      });
      this.proc.stdin!.end();
    });
  }
}
