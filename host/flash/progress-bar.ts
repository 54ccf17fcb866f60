/**
 * Upload progress on stderr: a redrawn bar on a terminal, plain lines every
 * 10 % otherwise (logs and pipes get no carriage returns).
 */
import type { FlashProgress } from "./flasher.js";

const WIDTH = 30;

export function progressBar(stream: NodeJS.WritableStream & { isTTY?: boolean }): { update(p: FlashProgress): void; end(): void } {
  const tty = stream.isTTY === true;
  const t0 = performance.now();
  let lastStep = -1;
  let drawn = false;
  return {
    update(p) {
      const frac = p.total === 0 ? 1 : p.done / p.total;
      const pct = Math.floor(frac * 100);
      const secs = (performance.now() - t0) / 1000;
      const rate = secs > 0 ? (p.done - p.from) / 1024 / secs : 0;
      const text = `${String(pct).padStart(3)}%  ${(p.done / 1024).toFixed(1)}/${(p.total / 1024).toFixed(1)} KB  ${rate.toFixed(1)} KB/s${p.from > 0 ? `  (resumed at ${(p.from / 1024).toFixed(1)} KB)` : ""}`;
      if (tty) {
        const fill = Math.round(frac * WIDTH);
        stream.write(`\rflash [${"#".repeat(fill)}${"-".repeat(WIDTH - fill)}] ${text}\x1b[K`);
        drawn = true;
      } else {
        const step = Math.floor(pct / 10);
        if (step === lastStep) return;
        lastStep = step;
        stream.write(`flash: ${text}\n`);
      }
    },
    end() {
      if (tty && drawn) stream.write("\n");
    },
  };
}
