/**
 * A keyfob on a serial port (USB-UART bridge, or a PTY an emulator serves),
 * through serialport's real hardware binding. The binding's own promise API
 * (BindingPort) is used directly rather than the stream: its
 * pull-based read() is exactly the Transport contract, and its error rules
 * ("canceled" on close, anything else is a disconnect) map one to one.
 */
import { existsSync } from "node:fs";
import { SerialPort } from "serialport";
import { LINK_BAUD } from "../../protocol/codes.js";
import { CloseListeners } from "./close-listeners.js";
import { TransportError, type Transport, type TransportCloseEvent, type TransportStats } from "./transport.js";

/** The keyfob's UART0 rate (SPEC.md "Serial link"; protocol/codes.ts LINK_BAUD). */
export const DEFAULT_BAUD_RATE = LINK_BAUD;
const READ_CHUNK = 1024;
/**
 * How often an open port checks that its device node still exists. The
 * binding learns of a hang-up from poll(2), which a PTY whose master went
 * away does not always report while a read waits; a USB-UART's node and a
 * PTY link both vanish on unplug, so their absence is the second signal.
 */
const PRESENCE_CHECK_MS = 200;

export interface SerialTransportOptions {
  path: string;
  baudRate?: number;
  /** The serialport binding; the platform's real one unless a test brings another that keeps the same contract. */
  binding?: SerialBinding;
}

/** serialport's binding types (@serialport/bindings-interface), taken from the package we depend on. */
export type SerialBinding = Pick<typeof SerialPort.binding, "open" | "list">;
type BindingPort = Awaited<ReturnType<SerialBinding["open"]>>;

function errCode(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException | undefined)?.code ?? undefined;
}

export class SerialTransport implements Transport {
  readonly kind = "serial" as const;
  readonly path: string;
  readonly baudRate: number;
  readonly stats: TransportStats = { bytesWritten: 0, bytesRead: 0 };
  private readonly binding: SerialBinding;
  private port?: BindingPort;
  private state: "new" | "opening" | "open" | "closed" | "unplugged" = "new";
  private reading = false;
  private writeChain: Promise<void> = Promise.resolve();
  private readonly closeListeners = new CloseListeners();
  private unplugError?: TransportError;
  private presence?: NodeJS.Timeout;

  constructor(options: SerialTransportOptions) {
    this.path = options.path;
    this.baudRate = options.baudRate ?? DEFAULT_BAUD_RATE;
    this.binding = options.binding ?? SerialPort.binding;
  }

  get isOpen(): boolean {
    return this.state === "open";
  }

  async open(): Promise<void> {
    if (this.state !== "new") {
      throw new TransportError(this.state === "open" || this.state === "opening" ? "already_open" : "not_open",
        `${this.path}: open() called on a transport that was already opened`);
    }
    this.state = "opening";
    try {
      this.port = await this.binding.open({ path: this.path, baudRate: this.baudRate, dataBits: 8, stopBits: 1, parity: "none", lock: true, hupcl: false });
    } catch (e) {
      this.state = "closed";
      const msg = (e as Error).message ?? String(e);
      if (/ENOENT|No such file/i.test(msg)) throw new TransportError("not_found", `${this.path}: no such port`, { cause: e });
      if (/EBUSY|lock|Resource temporarily unavailable/i.test(msg)) throw new TransportError("busy", `${this.path}: port is in use by another process`, { cause: e });
      throw new TransportError("io", `${this.path}: cannot open: ${msg}`, { cause: e });
    }
    this.state = "open";
    // Only where a port is a file (POSIX /dev nodes and PTY links; not Windows' COMn names).
    if (this.path.startsWith("/")) {
      this.presence = setInterval(() => {
        if (!existsSync(this.path)) this.unplugged(new Error("device node disappeared"));
      }, PRESENCE_CHECK_MS);
      this.presence.unref();
    }
  }

  private check(): BindingPort {
    if (this.state === "unplugged") throw this.unplugError!;
    if (this.state !== "open" || !this.port) throw new TransportError("not_open", `${this.path}: transport is not open`);
    return this.port;
  }

  /** The device went away: release the port and tell everyone, once. */
  private unplugged(e: unknown): TransportError {
    if (this.state === "unplugged") return this.unplugError!;
    const err = new TransportError("unplugged", `${this.path}: device disconnected (${(e as Error)?.message ?? e})`, { cause: e });
    this.state = "unplugged";
    this.unplugError = err;
    clearInterval(this.presence);
    const port = this.port;
    this.port = undefined;
    if (port?.isOpen) port.close().catch(() => undefined);
    this.closeListeners.fire({ reason: "unplugged", error: e instanceof Error ? e : undefined });
    return err;
  }

  async read(): Promise<Uint8Array> {
    const port = this.check();
    if (this.reading) throw new TransportError("read_pending", `${this.path}: a read is already pending`);
    this.reading = true;
    try {
      const buf = Buffer.alloc(READ_CHUNK);
      const { bytesRead } = await port.read(buf, 0, READ_CHUNK);
      if (bytesRead === 0) throw this.unplugged(new Error("end of file"));
      this.stats.bytesRead += bytesRead;
      return new Uint8Array(buf.subarray(0, bytesRead));
    } catch (e) {
      if (e instanceof TransportError) throw e;
      if (this.state === "unplugged") throw this.unplugError!;
      if ((e as { canceled?: boolean }).canceled || this.state === "closed") {
        throw new TransportError("closed", `${this.path}: transport closed`);
      }
      throw this.unplugged(e);
    } finally {
      this.reading = false;
    }
  }

  write(frame: Uint8Array): Promise<void> {
    const run = async () => {
      const port = this.check();
      try {
        await port.write(Buffer.from(frame));
        this.stats.bytesWritten += frame.length;
      } catch (e) {
        if (this.state === "unplugged") throw this.unplugError!;
        if ((e as { canceled?: boolean }).canceled || this.state === "closed") {
          throw new TransportError("closed", `${this.path}: transport closed`);
        }
        throw this.unplugged(e);
      }
    };
    const p = this.writeChain.then(run, run);
    this.writeChain = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    if (this.state === "closed" || this.state === "unplugged" || this.state === "new") {
      this.state = this.state === "unplugged" ? "unplugged" : "closed";
      return;
    }
    const port = this.port;
    this.state = "closed";
    this.port = undefined;
    clearInterval(this.presence);
    try {
      if (port?.isOpen) await port.close();
    } catch (e) {
      if (!/not open/i.test((e as Error).message) && errCode(e) !== "EBADF") throw new TransportError("io", `${this.path}: close failed: ${(e as Error).message}`, { cause: e });
    } finally {
      this.closeListeners.fire({ reason: "closed" });
    }
  }

  onClose(listener: (event: TransportCloseEvent) => void): () => void {
    return this.closeListeners.add(listener);
  }
}
