/**
 * The console's RX ISR does not run while the flash cache is off (ESP-IDF
 * e7771c75: CONFIG_UART_ISR_IN_IRAM defaults to n, components/driver/Kconfig:230-237,
 * and NodeMCU 7c5bb151 does not set it; esp_flash's spi1_start/spi1_end,
 * spi_flash_os_func_app.c:104-144). Bytes arriving during a flash call stay in
 * the 128-byte RX FIFO; the 129th overflows it and the RXFIFO_OVF handler
 * resets it (uart.c:979-991). hil/README.md has the whole chain.
 *
 * Realtime emulators (flash time is spent, as on the PTY) driven in-process:
 * bytes arrive in 2 ms bursts at the line rate, as pty.ts hands them over.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { beforeAll, describe, expect, it } from "vitest";
import { NODE_BUILD } from "../support/paths.js";
import { loadHil, tempDir } from "./support.js";

/** The ESP32 UART RX FIFO (console-rx.ts RX_FIFO_BYTES). */
const RX_FIFO = 128;

type Hil = Awaited<ReturnType<typeof loadHil>>;
let hil: Hil;
beforeAll(async () => {
  hil = await loadHil();
}, 120_000);

/** init.lua of a per-byte callback that counts; the first byte runs `work` (flash calls); "?" answers the count; byte `notifyAt` writes "got". */
function countingInit(work: string, notifyAt = -1): string {
  return `n = 0
    uart.on(0, "data", 0, function(d)
      n = n + 1
      if n == 1 then ${work} end
      if n == ${notifyAt} then uart.write(0, "got") end
      if d == "?" then uart.write(0, "n=" .. n) end
    end, 0)
    uart.start(0)`;
}

/** A board running countingInit(work). */
function board(work: string, opts: { spiffsWorn?: boolean; notifyAt?: number } = {}) {
  const dir = tempDir("emu-rx-flash-");
  writeFileSync(join(dir, "init.lua"), countingInit(work, opts.notifyAt));
  const emu = new hil.Emulator({ stateDir: dir, time: 1700000000, countInstructions: false, realtime: true, ...opts });
  const tx: number[] = [];
  const overruns: number[] = [];
  emu.on("uart", (b: Uint8Array) => tx.push(...b));
  emu.on("event", (e: { event: string; lost?: number }) => e.event === "uart-overrun" && overruns.push(e.lost!));
  emu.boot();
  emu.advance(1);
  tx.length = 0;
  /** n bytes at 115200 baud: 23 every 2 ms (11.5 a ms). */
  const stream = (n: number) => {
    for (let sent = 0; sent < n; ) {
      const k = Math.min(23, n - sent);
      emu.advance(0.002);
      emu.uartWrite(new Uint8Array(k).fill(0x61));
      sent += k;
    }
  };
  const count = () => {
    emu.advance(2);
    tx.length = 0;
    emu.uartWrite("?");
    emu.advance(0.1);
    const m = /^n=(\d+)$/.exec(Buffer.from(tx).toString("latin1"));
    expect(m, Buffer.from(tx).toString("latin1")).not.toBeNull();
    return Number(m![1]);
  };
  return { emu, stream, count, overruns, text: () => Buffer.from(tx).toString("latin1") };
}

describe("flash calls stop the console's RX ISR (console-rx.ts, hil/flash.ts cacheOffStretches)", () => {
  const collect = 'local f = io.open("w.txt", "wb") f:write(string.rep("x", 300)) f:close()';

  it("during a garbage collection's 500 ms sector erase only the RX FIFO takes bytes: 100 wait there (below its full threshold) and arrive once the erase ends, by the RX timeout", () => {
    // A worn SPIFFS: creating the file collects first, and the collection erases a block.
    const b = board(collect, { spiffsWorn: true, notifyAt: 1 + 100 });
    b.emu.uartWrite("!");
    expect(b.emu.flash.calls.get("gc")?.ms).toBeGreaterThanOrEqual(500);
    // 200 ms in, the erase is under way (it follows the open's 15 ms and the collection's reads and moves).
    b.emu.advance(0.2);
    b.stream(100);
    b.emu.advance(1);
    // The line idles after them: the 100th reaches the callback with nothing more sent.
    expect(b.text()).toBe("got");
    expect(b.emu.counters.uartRxLost).toBe(0);
    expect(b.count()).toBe(1 + 100 + 1);
  });

  it("300 bytes during the erase overflow the FIFO: what it held and every byte after are lost, reported when the ISR runs again (the strict end, console-rx.ts)", () => {
    const b = board(collect, { spiffsWorn: true });
    b.emu.uartWrite("!");
    b.emu.advance(0.2);
    // 300 bytes: less than the FIFO, ring, stash, reader and queue hold while Lua is busy (485),
    // so with the ISR running none would be lost; with the cache off the FIFO alone takes them.
    b.stream(300);
    b.emu.advance(1);
    expect(b.emu.counters.uartRxLost).toBe(300);
    expect(b.overruns).toEqual([300]);
    expect(b.count()).toBe(1 + 1);
  });

  it("the cache comes on between two flash reads: a name lookup's 80 reads (8.8 ms, one stretch each) lose nothing of a stream", () => {
    // Eight lookups of a missing name: 80 reads each, 70 ms of flash time in 640 stretches of 110 us.
    const b = board('for i = 1, 8 do file.exists("nope" .. i) end');
    b.emu.uartWrite("!");
    expect(b.emu.flash.calls.get("exists")?.count).toBe(8);
    b.stream(300);
    expect(b.emu.counters.uartRxLost).toBe(0);
    expect(b.count()).toBe(1 + 300 + 1);
  });

  it("a fresh SPIFFS (no collection): creating and writing a small file while 300 bytes stream in loses none", () => {
    const b = board(collect);
    b.emu.uartWrite("!");
    expect(b.emu.flash.calls.get("gc")).toBeUndefined();
    b.stream(300);
    expect(b.emu.counters.uartRxLost).toBe(0);
    expect(b.count()).toBe(1 + 300 + 1);
  });
});

describe("cache-off stretches late in virtual time (console-rx.ts find/chainEnd)", () => {
  /**
   * The scenario of the stretch test above, after a day (and a fraction of a ms) of virtual time, as
   * sleep-hil.test.ts runs it after its day's advance. It runs in a worker: a ConsoleRx that spins
   * (the bug: at 8.64e7 ms a float step is 1.5e-8 ms, so chainEnd's fixed 1e-9 step and find()'s
   * epsilon put a run's end inside its own last stretch, for ever) cannot stop the test runner.
   */
  function lateStream(dir: string, aheadS: number): Promise<{ reply: string; lost: number }> {
    const code = `
      const { parentPort, workerData } = require("node:worker_threads");
      import(workerData.emulator).then(({ Emulator }) => {
        const emu = new Emulator({ stateDir: workerData.dir, time: 1700000000, countInstructions: false, realtime: true });
        const tx = [];
        emu.on("uart", (b) => tx.push(...b));
        emu.advance(workerData.aheadS);
        emu.boot();
        emu.advance(1);
        emu.uartWrite("!");
        for (let sent = 0; sent < 300; sent += 23) {
          emu.advance(0.002);
          emu.uartWrite(new Uint8Array(Math.min(23, 300 - sent)).fill(0x61));
        }
        emu.advance(2);
        tx.length = 0;
        emu.uartWrite("?");
        emu.advance(0.1);
        parentPort.postMessage({ reply: Buffer.from(tx).toString("latin1"), lost: emu.counters.uartRxLost });
      });`;
    const worker = new Worker(code, { eval: true, workerData: { dir, aheadS, emulator: join(NODE_BUILD, "hil", "emulator.js") } });
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        void worker.terminate();
        reject(new Error(`the emulator did not finish 300 bytes over 8 name lookups within 30 s at ${aheadS} s of virtual time (a spinning ConsoleRx)`));
      }, 30_000);
      worker.once("message", (m: { reply: string; lost: number }) => {
        clearTimeout(t);
        void worker.terminate();
        resolve(m);
      });
      worker.once("error", (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  it("a day (and a fraction of a ms) into virtual time, a stream over 640 flash-read stretches still arrives whole: a stretch's end is never taken to be inside it", async () => {
    const dir = tempDir("emu-rx-late-");
    writeFileSync(join(dir, "init.lua"), countingInit('for i = 1, 8 do file.exists("nope" .. i) end'));
    // 86400.0001234 s: the stretches start at a fractional ms, as after sleep-hil's day with a drifting clock.
    for (const aheadS of [86400, 86400.0001234]) {
      const r = await lateStream(dir, aheadS);
      expect(r.lost, `at ${aheadS} s`).toBe(0);
      expect(r.reply, `at ${aheadS} s`).toBe(`n=${1 + 300 + 1}`);
    }
  }, 90_000);
});

describe("a reset takes the console's pending interrupts with it (console-rx.ts ConsoleRx.reset)", () => {
  it("the RX timeout a burst left pending in a cache-off stretch before a reset does not run in the next life's stretch and save its FIFO from overflowing", async () => {
    const { ConsoleRx } = await import(join(NODE_BUILD, "hil", "console-rx.js"));
    const { VirtualClock } = await import(join(NODE_BUILD, "hil", "virtual-clock.js"));
    const clock = new VirtualClock();
    let posted = 0;
    let lost = 0;
    const rx = new ConsoleRx(
      {
        wanted: () => true,
        post: () => (posted++, true),
        overflow: (n: number) => (lost += n),
        now: () => clock.nowMs,
        at: (atMs: number, fn: () => void) => {
          const ev = clock.schedule(Math.max(0, atMs - clock.nowMs), fn);
          return () => clock.cancel(ev);
        },
      },
      "LF",
      0,
    );
    // Life 1: a 500 ms erase from 0; 10 bytes arrive in it, so the RX timeout is due at its end (500 ms).
    rx.cacheOff(0, [500]);
    clock.advanceTo(100);
    rx.arrive(new Uint8Array(10).fill(0x61));
    // The chip resets at 100 ms: the FIFO, the ring and the interrupt that was due are gone.
    rx.reset();
    // Life 2: another 500 ms erase, 400 to 900 ms. 100 bytes at 450 ms and 100 at 700 ms: the FIFO
    // (128 bytes) overflows, as no ISR can run before 900 ms. The old life's timeout at 500 ms must
    // not empty the FIFO in between (the ISR does not run while the cache is off).
    rx.cacheOff(400, [500]);
    clock.advanceTo(450);
    rx.arrive(new Uint8Array(100).fill(0x62));
    clock.advanceTo(700);
    rx.arrive(new Uint8Array(100).fill(0x63));
    clock.advanceTo(2000);
    expect(lost).toBeGreaterThan(0);
    expect(posted + lost).toBe(200);
    expect(posted).toBeLessThan(RX_FIFO);
    // Nothing of life 1 is left on the clock.
    expect(clock.nextAt()).toBeUndefined();
  });
});
