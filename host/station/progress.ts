/**
 * The operator's view on stderr: one live line per port and a running
 * count. On a TTY the block is redrawn in place (ANSI cursor-up and
 * erase-line, ECMA-48 CUU/EL); otherwise every change is a plain line, so a
 * log file or a pipe gets readable text without escape codes.
 */
import type { StationEvent, StationTotals } from "./station.js";

const STEP_TEXT: Record<string, string> = {
  flash: "installing firmware (REPL)", info: "reading info", wipe: "wiping leftover", allocate: "assigning serial", write_seed: "writing seed",
  set_clock: "setting clock", set_serial: "writing serial", self_test: "self-test", lock: "locking",
  confirm: "confirming lock", done: "done",
};

export class ProgressView {
  private lines = new Map<string, string>();
  private totals: StationTotals = { good: 0, failed: 0 };
  private drawn = 0;

  constructor(private readonly out: NodeJS.WritableStream & { isTTY?: boolean }, private readonly tty = !!out.isTTY) {}

  handle(e: StationEvent): void {
    let line: string | undefined;
    let port: string | undefined;
    if (e.type === "attached") {
      port = e.port;
      line = "keyfob attached";
    } else if (e.type === "step") {
      port = e.port;
      line = STEP_TEXT[e.step] ?? e.step;
    } else if (e.type === "result") {
      port = e.result.port;
      this.totals = e.totals;
      line = e.result.status === "good"
        ? `GOOD ${e.result.serial}${e.result.recovered ? " (lock confirmed)" : ""} in ${(e.result.durationMs / 1000).toFixed(1)} s - remove keyfob`
        : `FAILED${e.result.serial ? " " + e.result.serial : ""}: ${e.result.reason} - remove keyfob`;
    } else if (e.type === "detached") {
      port = e.port;
      line = "waiting for keyfob";
    } else {
      line = `error: ${e.message}`;
      port = e.port ?? "station";
    }
    this.lines.set(port, line);
    if (this.tty) this.redraw();
    else this.out.write(`${port}: ${line}${e.type === "result" ? `  [good ${this.totals.good}, failed ${this.totals.failed}]` : ""}\n`);
  }

  private redraw(): void {
    let s = this.drawn > 0 ? `\x1b[${this.drawn}A` : "";
    const rows = [...this.lines].map(([p, l]) => `${p}  ${l}`);
    rows.push(`good ${this.totals.good}  failed ${this.totals.failed}`);
    for (const r of rows) s += `\r\x1b[2K${r}\n`;
    this.drawn = rows.length;
    this.out.write(s);
  }
}
