/**
 * The console UART's receive path, from the wire to the Lua task queue, as
 * NodeMCU dev-esp32 (7c5bb151) on ESP-IDF e7771c75 builds it:
 *
 *   wire -> RX FIFO (128 B, ESP32 hardware)
 *        -> driver ISR moves the FIFO into a ring buffer of 256 B
 *           (user_main.c:254 uart_driver_install(console, 256, 0, ...))
 *        -> console_task reads ONE byte at a time through the UART VFS, which
 *           applies newlib's RX line endings (user_main.c:205-213, :234)
 *        -> task_post_block_high: one task per byte into the high-priority
 *           queue (100 slots with the default 2000-byte slot memory,
 *           task.c:143-151), waiting while it is full
 *        -> the Lua task pump runs console_nodemcu_task per byte
 *           (user_main.c:179-194): the REPL first, then uart_feed_data.
 *
 * Where bytes are lost, exactly (ESP-IDF e7771c75 components/driver/uart/uart.c,
 * uart_rx_intr_handler_default, :763): the ISR reads the FIFO when it holds
 * UART_FULL_THRESH_DEFAULT (120) bytes or the line idles (RX timeout) and
 * pushes that chunk into the ring buffer all or nothing. A chunk that does not
 * fit is stashed and the RX interrupts are switched off until a read makes
 * room (uart_check_buf_full). Meanwhile the FIFO fills from the wire; the byte
 * after the 128th overflows it, and the RXFIFO_OVF handler resets the FIFO
 * (uart.c:979-991, uart_hal_rxfifo_rst): everything in it is lost, not only
 * the last byte. Nothing is lost while the
 * task queue, the reader's byte in hand, the ring buffer, the stash and the
 * FIFO still have room; console_task itself never drops a byte (it blocks),
 * except that it reads and discards every byte while neither the REPL nor a
 * uart.on("data") callback wants input (user_main.c:207).
 *
 * Flash operations stop the ISR (hil/README.md has the chain, with lines):
 * the console driver's ISR is not in IRAM (CONFIG_UART_ISR_IN_IRAM defaults
 * to n, components/driver/Kconfig:230-237, and neither NodeMCU's
 * sdkconfig.defaults nor the keyfob's fragment sets it; user_main.c:254
 * passes intr_alloc_flags 0), so while the flash cache is off for an
 * esp_flash call the RX interrupt cannot run: bytes arriving stay in the
 * FIFO, and the 129th overflows it. cacheOff() gives the stretches (virtual
 * ms, hil/flash.ts cacheOffStretches); a byte whose arrival falls in one
 * goes to the FIFO only. Between two stretches the cache is on for an
 * instant and a pending interrupt runs: the FIFO is emptied there if it
 * reached the full threshold. A burst that ends inside a stretch is taken
 * by the RX timeout at the stretch's end. Each byte of a burst arrived one
 * byte time after the one before, the last at the time of arrive().
 *
 * Deviation: the RX timeout (10 idle symbol times) is taken to expire at the
 * end of each burst handed to arrive(); over the PTY a burst is one 2 ms tick.
 */
import type { LineEnding } from "./nodemcu-build.js";

/** Bits per byte on the wire: start + 8 data + stop (8N1). */
export const BITS_PER_BYTE = 10;
/** ESP32 UART RX FIFO (SOC_UART_FIFO_LEN). */
export const RX_FIFO_BYTES = 128;
/** ESP32 UART TX FIFO: a console write returns once all but this much is in it (tx buffer size 0). */
export const TX_FIFO_BYTES = 128;
/** uart.c UART_FULL_THRESH_DEFAULT: the ISR empties the FIFO at this fill level. */
export const RX_FULL_THRESHOLD = 120;
/** user_main.c:254: the console driver's ring buffer. */
export const RX_RING_BYTES = 256;

const CR = 0x0d;
const LF = 0x0a;

export interface ConsoleRxSink {
  /** console_task's condition to post at all: run_input || a data callback (user_main.c:207). */
  wanted(): boolean;
  /** task_post_block_high of one byte: false while the queue is full (the reader then waits). */
  post(byte: number): boolean;
  /** Bytes were lost to a FIFO overflow. */
  overflow(lost: number): void;
  /** Virtual time now, ms. */
  now(): number;
  /** Run fn at virtual time atMs (>= now); the function returned cancels it (ConsoleRx.reset). */
  at(atMs: number, fn: () => void): () => void;
}

/** n stretches of seg ms each, end to end from `from` (virtual ms): the flash cache is off inside each. */
interface CacheOffRun {
  from: number;
  seg: number;
  n: number;
}

/** Where stretch k of a run starts (k = n: where the run ends); the one expression for every boundary. */
function edge(run: CacheOffRun, k: number): number {
  return run.from + k * run.seg;
}

export class ConsoleRx {
  private fifo: number[] = [];
  private ring: number[] = [];
  /** The ISR's chunk that did not fit in the ring buffer; RX interrupts are off while it waits. */
  private stash: number[] | undefined;
  /** The byte console_task holds while task_post_block waits for a slot. */
  private hand: number | undefined;
  private settling = false;
  private again = false;
  /** Bytes lost to FIFO overflow since power-on. */
  lost = 0;
  /** Cache-off stretches not yet past, oldest first. */
  private runs: CacheOffRun[] = [];
  /** Arrival time of the last byte taken. */
  private lastAt = -Infinity;
  /**
   * Bytes lost to an overflow inside a cache-off stretch, not yet reported:
   * the RXFIFO_OVF handler cannot run before the stretch ends. What happens
   * to the bytes meanwhile is the hardware's; the source leaves a range:
   * the handler's FULL branch (uart.c:882-978) comes before its OVF branch
   * (:979-991), so at best the first 128 reach the ring and the rest are
   * dropped. The strict end is taken: the FIFO's content and every byte
   * until the ISR runs are lost, and the reset empties the FIFO.
   */
  private overflowed = 0;
  /** A settle() waiting for the cache to come on again, at this time. */
  private settleAt: number | undefined;
  /** Cancellers of the interrupts and reads scheduled and not yet run (later()). */
  private readonly timers = new Set<() => void>();

  constructor(
    private readonly sink: ConsoleRxSink,
    private readonly rxEnding: LineEnding,
    /** One byte's time on the wire, ms (10 bits at the line's baud). */
    private readonly byteMs = 0,
  ) {}

  /**
   * The flash cache is off for these stretches (ms), end to end from
   * virtual time fromMs: the RX ISR cannot run inside one.
   */
  cacheOff(fromMs: number, stretches: readonly number[]): void {
    let t = fromMs;
    for (const seg of stretches) {
      if (!(seg > 0)) continue;
      const last = this.runs[this.runs.length - 1];
      if (last !== undefined && last.seg === seg && edge(last, last.n) === t) last.n++;
      else this.runs.push({ from: t, seg, n: 1 });
      // The next stretch starts exactly where this one ends, as edge() computes it: summing segs
      // instead would leave a rounding gap (the cache on for an instant) or overlap between them.
      const run = this.runs[this.runs.length - 1];
      t = edge(run, run.n);
    }
  }

  /** The run and index of the stretch the time t falls in, or undefined when the cache is on. */
  private find(t: number): { run: CacheOffRun; k: number } | undefined {
    for (const run of this.runs) {
      if (t < run.from) return undefined;
      // Stretch k is [edge(k), edge(k + 1)), judged with the same float expression that gives the
      // ends (stretchEnd, chainEnd): an end is never inside its own stretch, whatever the time's
      // magnitude. A fixed epsilon cannot do that: after a day of virtual time (8.64e7 ms) a float
      // step is 1.5e-8 ms, and chainEnd spun for ever on an end that find() put inside its stretch.
      let k = Math.floor((t - run.from) / run.seg);
      while (k > 0 && edge(run, k) > t) k--;
      while (edge(run, k + 1) <= t) k++;
      if (k < run.n) return { run, k };
    }
    return undefined;
  }

  /** The stretch the time t falls in ("run:index"), or undefined when the cache is on. */
  private stretchAt(t: number): string | undefined {
    const f = this.find(t);
    return f === undefined ? undefined : `${f.run.from}:${f.k}`;
  }

  /** When the stretch the time t falls in ends (t itself outside one). */
  private stretchEnd(t: number): number {
    const f = this.find(t);
    return f === undefined ? t : edge(f.run, f.k + 1);
  }

  /** Forget stretches that ended before t. */
  private prune(t: number): void {
    while (this.runs.length > 0 && edge(this.runs[0], this.runs[0].n) <= t) this.runs.shift();
  }

  /** Bytes held anywhere between the wire and the task queue. */
  get buffered(): number {
    return this.fifo.length + this.ring.length + (this.stash?.length ?? 0) + (this.hand === undefined ? 0 : 1);
  }

  /** A burst of bytes arrives on the wire now; the line idles after it. */
  arrive(bytes: ArrayLike<number>): void {
    const now = this.sink.now();
    const n = bytes.length;
    this.prune(now - n * this.byteMs - 1);
    for (let i = 0; i < n; i++) {
      const t = now - (n - 1 - i) * this.byteMs;
      const off = this.stretchAt(t);
      // The cache came on since the last byte (between two stretches, or after one): pending interrupts ran then.
      if (off === undefined || off !== this.stretchAt(this.lastAt)) this.pending();
      this.lastAt = t;
      if (off !== undefined) {
        // The flash cache is off: the ISR cannot run, the FIFO only fills. Once it overflowed, what it
        // held and every byte until the ISR runs again are lost (see overflowed).
        if (this.overflowed > 0) this.overflowed++;
        else if (this.fifo.length >= RX_FIFO_BYTES) {
          this.overflowed = this.fifo.length + 1;
          this.fifo = [];
        } else this.fifo.push(bytes[i]);
        continue;
      }
      if (this.stash !== undefined) {
        // RX interrupts off (the driver's, uart_check_buf_full): the FIFO only fills, and overflows.
        if (this.fifo.length >= RX_FIFO_BYTES) {
          const lost = this.fifo.length + 1;
          this.fifo = [];
          this.lost += lost;
          this.sink.overflow(lost);
          continue;
        }
        this.fifo.push(bytes[i]);
        continue;
      }
      this.fifo.push(bytes[i]);
      if (this.fifo.length >= RX_FULL_THRESHOLD) {
        this.isr();
        this.settle();
      }
    }
    // RX timeout: the line went idle. Inside a cache-off stretch it is served when the stretch ends.
    if (this.overflowed > 0 || (this.stash === undefined && this.fifo.length > 0)) {
      if (this.stretchAt(now) === undefined) this.pending(true);
      else this.later(this.stretchEnd(now), () => this.pending(true));
    }
    this.settle();
  }

  /**
   * The ISR runs after a cache-off stretch (an instant between two, or for
   * good): a pending overflow resets the FIFO (uart.c:979-991), a FIFO at the
   * full threshold (or, idle, any bytes: the RX timeout) goes to the ring.
   */
  private pending(idle = false): void {
    if (this.overflowed > 0) {
      const lost = this.overflowed;
      this.overflowed = 0;
      this.fifo = [];
      this.lost += lost;
      this.sink.overflow(lost);
    }
    if (this.stash === undefined && this.fifo.length > 0 && (idle || this.fifo.length >= RX_FULL_THRESHOLD)) this.isr();
    this.settle();
  }

  /** When the stretches that run on without a gap from time t end: no task reads the ring before. */
  private chainEnd(t: number): number {
    let end = t;
    for (;;) {
      const f = this.find(end);
      if (f === undefined) return end;
      // The rest of this run, then whatever run starts where it ends (find() never returns this run
      // for its own end, so each run is passed once).
      end = edge(f.run, f.run.n);
    }
  }

  private isr(): void {
    const chunk = this.fifo;
    this.fifo = [];
    if (this.ring.length + chunk.length <= RX_RING_BYTES) {
      for (const b of chunk) this.ring.push(b);
    } else {
      this.stash = chunk;
    }
  }

  /** One read() of console_task through the UART VFS; undefined when it would wait. */
  private read(): number | undefined {
    if (this.ring.length === 0) return undefined;
    const c = this.ring[0];
    if (c === CR && this.rxEnding === "CR") {
      this.ring.shift();
      return LF;
    }
    if (c === CR && this.rxEnding === "CRLF") {
      // uart_read looks ahead (blocking) for the LF of a CR LF pair.
      if (this.ring.length < 2) return undefined;
      this.ring.shift();
      if (this.ring[0] === LF) {
        this.ring.shift();
        return LF;
      }
      return CR;
    }
    this.ring.shift();
    return c;
  }

  /** Move bytes towards the task queue as far as they can go now. */
  settle(): void {
    // The flash cache is off: the task doing the flash call has the CPU, the other one is parked
    // (cache_utils.c:152-202), so console_task reads nothing before the stretches end.
    const now = this.sink.now();
    if (this.stretchAt(now) !== undefined) {
      const end = this.chainEnd(now);
      if (this.settleAt !== end) {
        this.settleAt = end;
        this.later(end, () => {
          if (this.settleAt === end) this.settleAt = undefined;
          this.settle();
        });
      }
      return;
    }
    if (this.settling) {
      this.again = true;
      return;
    }
    this.settling = true;
    try {
      do {
        this.again = false;
        for (;;) {
          if (this.hand !== undefined) {
            const b = this.hand;
            if (!this.sink.post(b)) break;
            this.hand = undefined;
          }
          const c = this.read();
          if (c === undefined) break;
          // uart_read_bytes made room: the stash goes in and RX interrupts come back on.
          if (this.stash !== undefined && this.ring.length + this.stash.length <= RX_RING_BYTES) {
            for (const b of this.stash) this.ring.push(b);
            this.stash = undefined;
            if (this.fifo.length > 0) this.isr();
          }
          if (this.sink.wanted()) this.hand = c;
        }
      } while (this.again);
    } finally {
      this.settling = false;
    }
  }

  /** Run fn at virtual time atMs, unless a reset comes first. */
  private later(atMs: number, fn: () => void): void {
    const cancel = this.sink.at(atMs, () => {
      this.timers.delete(cancel);
      fn();
    });
    this.timers.add(cancel);
  }

  /**
   * Reset or power loss: whatever the chip held is gone, the interrupts and
   * reads that were due with it (an RX timeout due at the end of a cache-off
   * stretch must not run the ISR inside the next life's stretch).
   */
  reset(): void {
    for (const cancel of this.timers) cancel();
    this.timers.clear();
    this.runs = [];
    this.lastAt = -Infinity;
    this.settleAt = undefined;
    this.overflowed = 0;
    this.fifo = [];
    this.ring = [];
    this.stash = undefined;
    this.hand = undefined;
  }
}

/** What the UART VFS sends for bytes written to stdout (user_main.c:48-54, :236). */
export function translateTx(bytes: Uint8Array, ending: LineEnding): Uint8Array {
  if (ending === "LF" || !bytes.includes(LF)) return bytes;
  const out: number[] = [];
  for (const b of bytes) {
    if (b !== LF) out.push(b);
    else if (ending === "CR") out.push(CR);
    else out.push(CR, LF);
  }
  return Uint8Array.from(out);
}
