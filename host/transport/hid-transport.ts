/**
 * A keyfob on USB HID (node-hid): each frame's wire bytes travel in 64-byte
 * reports, report id first, with the START/END/index sequence byte of
 * protocol/hid.ts (SPEC.md "HID"). Reassembly runs through the same
 * protocol code the firmware uses, so a lost report drops exactly one frame
 * and the session's timeout/retry handles it like a garbled serial frame.
 */
import { createRequire } from "node:module";
import { hidSplit, hidPush, newHidAssembler, HID_FRAME, HID_NONE, type HidAssembler } from "../../protocol/index.js";
import { CloseListeners } from "./close-listeners.js";
import { ReadQueue } from "./read-queue.js";
import { TransportError, type Transport, type TransportCloseEvent, type TransportStats } from "./transport.js";

/**
 * The part of node-hid's `HID` class (node-hid 3, nodehid.d.ts) this
 * transport relies on, with node-hid's behaviour:
 * - write(values): values[0] is the report id; returns the bytes written;
 *   throws TypeError("Cannot write to closed device") after close() and
 *   TypeError("Cannot write to hid device...") when the OS write fails
 *   (unplugged, or a report the device's descriptor does not accept).
 * - on("data", buf): one input report per event, report id first (hidraw
 *   keeps it for numbered reports). Reading starts when a listener is added.
 * - on("error", err): the read thread failed (unplug); reading stops.
 * - close(): releases the device; later writes throw.
 */
export interface HidDevice {
  write(values: number[] | Buffer): number;
  close(): void;
  on(event: "data", listener: (data: Buffer) => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
  removeAllListeners(event?: string): unknown;
}

/** Opens a device by its hidraw path; node-hid's `new HID.HID(path)` by default. */
export type HidOpener = (path: string) => HidDevice;

export function nodeHidOpener(): HidOpener {
  return (path: string) => {
    // node-hid is loaded on first use: `fobkit` commands that never touch HID need not load its native module.
    const require = createRequire(import.meta.url);
    const HID = require("node-hid") as typeof import("node-hid");
    return new HID.HID(path) as unknown as HidDevice;
  };
}

export interface HidTransportOptions {
  /** The OS path (e.g. /dev/hidraw3), as HID.devices() reports it. */
  path: string;
  open?: HidOpener;
}

export class HidTransport implements Transport {
  readonly kind = "hid" as const;
  readonly path: string;
  readonly stats: TransportStats & { badReports: number } = { bytesWritten: 0, bytesRead: 0, badReports: 0 };
  private readonly opener: HidOpener;
  private device?: HidDevice;
  private state: "new" | "open" | "closed" | "unplugged" = "new";
  private queue: ReadQueue;
  private readonly assembler: HidAssembler = newHidAssembler();
  private writeChain: Promise<void> = Promise.resolve();
  private readonly closeListeners = new CloseListeners();
  private unplugError?: TransportError;

  constructor(options: HidTransportOptions) {
    this.path = options.path;
    this.opener = options.open ?? nodeHidOpener();
    this.queue = new ReadQueue("hid:" + this.path);
  }

  get isOpen(): boolean {
    return this.state === "open";
  }

  async open(): Promise<void> {
    if (this.state !== "new") {
      throw new TransportError(this.state === "open" ? "already_open" : "not_open", `hid:${this.path}: open() called on a transport that was already opened`);
    }
    let device: HidDevice;
    try {
      device = this.opener(this.path);
    } catch (e) {
      this.state = "closed";
      const msg = (e as Error).message ?? String(e);
      throw new TransportError(/cannot open/i.test(msg) ? "not_found" : "io", `hid:${this.path}: cannot open: ${msg}`, { cause: e });
    }
    this.device = device;
    this.state = "open";
    device.on("error", (err: Error) => this.unplugged(err));
    device.on("data", (data: Buffer) => this.onReport(data));
  }

  private onReport(data: Buffer): void {
    const r = hidPush(this.assembler, Array.from(data));
    if (r === HID_FRAME) {
      const wire = new Uint8Array(this.assembler.buf.slice(0, this.assembler.len));
      this.stats.bytesRead += wire.length;
      this.queue.push(wire);
    } else if (r !== HID_NONE) {
      // The broken frame is dropped; the session sees no reply and retries or times out.
      this.stats.badReports++;
    }
  }

  private unplugged(e: unknown): TransportError {
    if (this.state === "unplugged") return this.unplugError!;
    const err = new TransportError("unplugged", `hid:${this.path}: device disconnected (${(e as Error)?.message ?? e})`, { cause: e });
    const wasOpen = this.state === "open";
    this.state = "unplugged";
    this.unplugError = err;
    this.queue.fail(err);
    const device = this.device;
    this.device = undefined;
    if (device && wasOpen) {
      device.removeAllListeners("data");
      try {
        device.close();
      } catch {
        // Already gone with the device.
      }
    }
    this.closeListeners.fire({ reason: "unplugged", error: e instanceof Error ? e : undefined });
    return err;
  }

  private check(): HidDevice {
    if (this.state === "unplugged") throw this.unplugError!;
    if (this.state !== "open" || !this.device) throw new TransportError("not_open", `hid:${this.path}: transport is not open`);
    return this.device;
  }

  async read(): Promise<Uint8Array> {
    this.check(); // async: a throw here is the promise's rejection
    return this.queue.read();
  }

  write(frame: Uint8Array): Promise<void> {
    const run = async () => {
      const device = this.check();
      const reports = hidSplit(Array.from(frame));
      if (reports.length === 0 || frame[0] !== 0 || frame[frame.length - 1] !== 0) {
        throw new TransportError("bad_frame", `hid:${this.path}: write() takes one frame's wire bytes (0x00 ... 0x00, at most 131 bytes), got ${frame.length} bytes`);
      }
      try {
        for (const report of reports) {
          const n = device.write(report);
          if (n !== report.length) throw new Error(`short write: ${n} of ${report.length} bytes`);
        }
        this.stats.bytesWritten += frame.length;
      } catch (e) {
        if (this.state === "closed") throw new TransportError("closed", `hid:${this.path}: transport closed`);
        throw this.unplugged(e);
      } finally {
        for (const r of reports) r.fill(0);
      }
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
    const device = this.device!;
    this.device = undefined;
    this.queue.fail(new TransportError("closed", `hid:${this.path}: transport closed`));
    device.removeAllListeners("data");
    device.removeAllListeners("error");
    try {
      device.close();
    } finally {
      this.closeListeners.fire({ reason: "closed" });
    }
  }

  onClose(listener: (event: TransportCloseEvent) => void): () => void {
    return this.closeListeners.add(listener);
  }
}
