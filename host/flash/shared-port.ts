/**
 * One open port, used in turn by several clients (the REPL, then one
 * DeviceSession per INFO try after node.restart()), each through a lease:
 * a Transport of its own (transport.ts's rules) over the port, whose close()
 * releases the lease and keeps the port open.
 *
 * Why: `fobkit flash` asks the restarted board INFO until it answers
 * (flasher.ts INFO_TIMEOUTS_MS). Reopening the port per try costs time on a
 * real serial port (~40 ms each: open, termios, the driver's buffers), and
 * an open may toggle DTR/RTS, which on a board with an auto-reset circuit
 * resets the ESP32 again. The USB-UART bridge (CP2102, CH340) stays
 * enumerated across the ESP32's reset, so the port can stay open.
 *
 * The port's one read loop hands what arrives to the lease that is open;
 * bytes that arrive while none is open are dropped, as a closed port would
 * (a late reply to an INFO try that timed out, the ROM's boot banner).
 */
import { TransportError, type Transport, type TransportCloseEvent, type TransportKind, type TransportStats } from "../transport/transport.js";

export class SharedPort {
  private current: Lease | undefined;
  private ended: TransportCloseEvent | undefined;
  private readonly loop: Promise<void>;

  /** port: already open; SharedPort owns it from now on (its reads and its close). */
  constructor(readonly port: Transport) {
    if (!port.isOpen) throw new TypeError("SharedPort needs an open transport");
    port.onClose((e) => {
      this.ended = e;
      this.current?.end(e);
    });
    this.loop = this.readLoop();
  }

  private async readLoop(): Promise<void> {
    for (;;) {
      let chunk: Uint8Array;
      try {
        chunk = await this.port.read();
      } catch {
        return; // closed or unplugged: onClose told the lease
      }
      this.current?.deliver(chunk);
    }
  }

  /** A Transport over the port; the previous lease must be closed first. */
  lease(): Transport {
    if (this.current?.isOpen) throw new Error("SharedPort: a lease is still open");
    const l = new Lease(this, this.port);
    this.current = l;
    return l;
  }

  /** Called by a lease when it opens: the port's end, if it ended. */
  gone(): TransportCloseEvent | undefined {
    return this.ended;
  }

  /** Close the port (and any open lease). */
  async close(): Promise<void> {
    await this.port.close().catch(() => undefined);
    this.current?.end({ reason: "closed" });
    await this.loop;
  }
}

class Lease implements Transport {
  readonly kind: TransportKind;
  readonly path: string;
  readonly stats: TransportStats = { bytesWritten: 0, bytesRead: 0 };
  private state: "new" | "open" | "closed" | "unplugged" = "new";
  private queue: Uint8Array[] = [];
  private reader: { resolve: (b: Uint8Array) => void; reject: (e: Error) => void } | undefined;
  private readonly listeners = new Set<(e: TransportCloseEvent) => void>();

  constructor(
    private readonly shared: SharedPort,
    private readonly port: Transport,
  ) {
    this.kind = port.kind;
    this.path = port.path;
  }

  get isOpen(): boolean {
    return this.state === "open";
  }

  private err(code: "not_open" | "closed" | "unplugged", what: string): TransportError {
    return new TransportError(code, `${this.path}: ${what}`);
  }

  async open(): Promise<void> {
    if (this.state === "open") throw new TransportError("already_open", `${this.path}: already open`);
    if (this.state !== "new") throw this.err("not_open", "a released lease cannot open again");
    if (this.shared.gone()?.reason === "unplugged" || !this.port.isOpen) {
      this.state = "unplugged";
      throw this.err("unplugged", "the port went away");
    }
    this.state = "open";
  }

  async write(frame: Uint8Array): Promise<void> {
    if (this.state !== "open") throw this.err(this.state === "unplugged" ? "unplugged" : "not_open", "not open");
    await this.port.write(frame);
    this.stats.bytesWritten += frame.length;
  }

  read(): Promise<Uint8Array> {
    if (this.state !== "open") return Promise.reject(this.err(this.state === "unplugged" ? "unplugged" : "not_open", "not open"));
    if (this.reader) return Promise.reject(new TransportError("read_pending", `${this.path}: a read is already pending`));
    const next = this.queue.shift();
    if (next) return Promise.resolve(next);
    return new Promise((resolve, reject) => {
      this.reader = { resolve, reject };
    });
  }

  /** Bytes from the port. */
  deliver(chunk: Uint8Array): void {
    if (this.state !== "open") return;
    this.stats.bytesRead += chunk.length;
    const r = this.reader;
    this.reader = undefined;
    if (r) r.resolve(chunk);
    else this.queue.push(chunk);
  }

  /** The lease ends: released (close) or the port went away. */
  end(e: TransportCloseEvent): void {
    if (this.state === "closed" || this.state === "unplugged") return;
    const wasOpen = this.state === "open";
    this.state = e.reason === "unplugged" ? "unplugged" : "closed";
    this.queue = [];
    const r = this.reader;
    this.reader = undefined;
    r?.reject(this.err(e.reason === "unplugged" ? "unplugged" : "closed", e.reason === "unplugged" ? "the port went away" : "closed"));
    if (wasOpen) for (const l of [...this.listeners]) l(e);
  }

  async close(): Promise<void> {
    this.end({ reason: "closed" });
  }

  onClose(listener: (event: TransportCloseEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
