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
 * Where bytes are lost, exactly (ESP-IDF components/esp_driver_uart uart.c,
 * uart_rx_intr_handler_default): the ISR reads the FIFO when it holds
 * UART_FULL_THRESH_DEFAULT (120) bytes or the line idles (RX timeout) and
 * pushes that chunk into the ring buffer all or nothing. A chunk that does not
 * fit is stashed and the RX interrupts are switched off until a read makes
 * room (uart_check_buf_full). Meanwhile the FIFO fills from the wire; the byte
 * after the 128th overflows it, and the RXFIFO_OVF handler resets the FIFO:
 * everything in it is lost, not only the last byte. Nothing is lost while the
 * task queue, the reader's byte in hand, the ring buffer, the stash and the
 * FIFO still have room; console_task itself never drops a byte (it blocks),
 * except that it reads and discards every byte while neither the REPL nor a
 * uart.on("data") callback wants input (user_main.c:207).
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

  constructor(
    private readonly sink: ConsoleRxSink,
    private readonly rxEnding: LineEnding,
  ) {}

  /** Bytes held anywhere between the wire and the task queue. */
  get buffered(): number {
    return this.fifo.length + this.ring.length + (this.stash?.length ?? 0) + (this.hand === undefined ? 0 : 1);
  }

  /** A burst of bytes arrives on the wire now; the line idles after it. */
  arrive(bytes: ArrayLike<number>): void {
    for (let i = 0; i < bytes.length; i++) {
      if (this.stash !== undefined) {
        // RX interrupts off: the FIFO only fills, and overflows.
        if (this.fifo.length >= RX_FIFO_BYTES) {
          const n = this.fifo.length + 1;
          this.fifo = [];
          this.lost += n;
          this.sink.overflow(n);
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
    // RX timeout: the line went idle.
    if (this.stash === undefined && this.fifo.length > 0) this.isr();
    this.settle();
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

  /** Reset or power loss: whatever the chip held is gone. */
  reset(): void {
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
