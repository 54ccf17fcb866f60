/**
 * An emulated keyfob in this process (hil/emulator.ts): the console UART of
 * the emulated board is the link. No PTY and no pacing, so tests and demos
 * run at VM speed; SerialTransport over `fobkit emu --pty` is the same
 * firmware behind a real serial line.
 *
 * The board is taken structurally (the slice of hil's Emulator used here),
 * so host/ does not depend on hil/ at build time.
 */
import { CloseListeners } from "./close-listeners.js";
import { ReadQueue } from "./read-queue.js";
import { TransportError, type Transport, type TransportCloseEvent, type TransportStats } from "./transport.js";

/** The part of hil's Emulator the transport uses. */
export interface EmulatedBoard {
  /** Bytes from the host into the board's UART. */
  uartWrite(bytes: Uint8Array): void;
  /** "uart": bytes the firmware sent; "power-cut": the board lost power (closing it counts). */
  on(event: "uart", listener: (bytes: Uint8Array) => void): unknown;
  on(event: "power-cut", listener: (e: { reason: string }) => void): unknown;
  off(event: string, listener: (...args: any[]) => void): unknown;
}

export class EmulatorTransport implements Transport {
  readonly kind = "emulator" as const;
  readonly path: string;
  readonly stats: TransportStats = { bytesWritten: 0, bytesRead: 0 };
  private state: "new" | "open" | "closed" | "unplugged" = "new";
  private readonly queue: ReadQueue;
  private readonly closeListeners = new CloseListeners();
  private unplugError?: TransportError;
  private writeChain: Promise<void> = Promise.resolve();
  private readonly onUart = (bytes: Uint8Array) => {
    this.stats.bytesRead += bytes.length;
    this.queue.push(Uint8Array.from(bytes));
  };
  private readonly onPowerCut = (e: { reason: string }) => this.unplug(`board lost power (${e.reason})`);

  constructor(readonly board: EmulatedBoard, name = "emu:0") {
    this.path = name;
    this.queue = new ReadQueue(name);
  }

  get isOpen(): boolean {
    return this.state === "open";
  }

  async open(): Promise<void> {
    if (this.state !== "new") throw new TransportError(this.state === "open" ? "already_open" : "not_open", `${this.path}: open() called on a transport that was already opened`);
    this.board.on("uart", this.onUart);
    this.board.on("power-cut", this.onPowerCut);
    this.state = "open";
  }

  /** The emulated keyfob is unplugged (a test calls this, or the board powers off). */
  unplug(why = "unplugged"): void {
    if (this.state !== "open") return;
    this.state = "unplugged";
    this.detach();
    this.unplugError = new TransportError("unplugged", `${this.path}: device disconnected (${why})`);
    this.queue.fail(this.unplugError);
    this.closeListeners.fire({ reason: "unplugged" });
  }

  private detach(): void {
    this.board.off("uart", this.onUart);
    this.board.off("power-cut", this.onPowerCut);
  }

  private check(): void {
    if (this.state === "unplugged") throw this.unplugError!;
    if (this.state !== "open") throw new TransportError("not_open", `${this.path}: transport is not open`);
  }

  async read(): Promise<Uint8Array> {
    this.check(); // async: a throw here is the promise's rejection
    return this.queue.read();
  }

  write(frame: Uint8Array): Promise<void> {
    const run = async () => {
      this.check();
      const copy = Uint8Array.from(frame);
      this.stats.bytesWritten += copy.length;
      // The board's reply comes back synchronously through onUart; the read queue keeps it.
      this.board.uartWrite(copy);
      copy.fill(0);
    };
    const p = this.writeChain.then(run, run);
    this.writeChain = p.catch(() => undefined);
    return p;
  }

  async close(): Promise<void> {
    if (this.state !== "open") {
      if (this.state === "new") this.state = "closed";
      return;
    }
    this.state = "closed";
    this.detach();
    this.queue.fail(new TransportError("closed", `${this.path}: transport closed`));
    this.closeListeners.fire({ reason: "closed" });
  }

  onClose(listener: (event: TransportCloseEvent) => void): () => void {
    return this.closeListeners.add(listener);
  }
}
