/**
 * A double of node-hid's `HID` object (node-hid 3, nodehid.js / HID.cc) for
 * a keyfob with a 64-byte report (id 1), wired to an emulated keyfob's UART
 * the way the keyfob's USB HID interface would be: reports in are
 * reassembled into frames for the firmware; the firmware's frames go out
 * split into reports. It keeps node-hid's contract and the device's:
 * - write(values): values[0] is the report id; number[] or Buffer; returns
 *   the byte count. After close(): TypeError("Cannot write to closed device").
 *   Unplugged, or a report the descriptor does not define (wrong id or
 *   size): TypeError("Cannot write to hid device"), as hidapi's -1 becomes.
 * - "data" events carry one input report each, report id first, delivered
 *   from the read thread (asynchronously), only while a listener exists.
 * - Unplug: the read thread emits "error" once and stops.
 */
import { EventEmitter } from "node:events";
import { HID_REPORT_ID, HID_REPORT_SIZE, HID_FRAME, hidPush, hidSplit, newHidAssembler } from "../../protocol/index.js";
import type { HidDevice } from "../../host/transport/hid-transport.js";

export interface UartBoard {
  uartWrite(bytes: Uint8Array): void;
  on(event: "uart", l: (b: Uint8Array) => void): unknown;
  off(event: "uart", l: (b: Uint8Array) => void): unknown;
}

export class HidDouble extends EventEmitter implements HidDevice {
  closed = false;
  unplugged = false;
  reportsIn = 0;
  reportsOut = 0;
  /** Drop the next n input reports (a lossy link). */
  dropReports = 0;
  private readonly asm = newHidAssembler();
  private frame: number[] = [];
  private readonly onUart = (bytes: Uint8Array) => {
    for (const b of bytes) {
      if (b !== 0) {
        this.frame.push(b);
        continue;
      }
      if (this.frame.length === 0) continue;
      const wire = [0, ...this.frame, 0];
      this.frame = [];
      for (const r of hidSplit(wire)) this.deliver(Buffer.from(r));
    }
  };

  constructor(private readonly board: UartBoard) {
    super();
    board.on("uart", this.onUart);
  }

  private deliver(report: Buffer): void {
    setImmediate(() => {
      if (this.closed || this.unplugged || this.listenerCount("data") === 0) return;
      if (this.dropReports > 0) {
        this.dropReports--;
        return;
      }
      this.reportsOut++;
      this.emit("data", report);
    });
  }

  write(values: number[] | Buffer): number {
    if (this.closed) throw new TypeError("Cannot write to closed device");
    if (!Array.isArray(values) && !Buffer.isBuffer(values)) throw new TypeError("Cannot write to hid device");
    const report = Array.from(values);
    if (this.unplugged) throw new TypeError("Cannot write to hid device");
    if (report.length !== HID_REPORT_SIZE || report[0] !== HID_REPORT_ID) throw new TypeError("Cannot write to hid device");
    this.reportsIn++;
    if (hidPush(this.asm, report) === HID_FRAME) this.board.uartWrite(Uint8Array.from(this.asm.buf.slice(0, this.asm.len)));
    return report.length;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.board.off("uart", this.onUart);
  }

  /** The keyfob leaves the bus. */
  unplug(): void {
    if (this.unplugged) return;
    this.unplugged = true;
    this.board.off("uart", this.onUart);
    setImmediate(() => {
      if (!this.closed) this.emit("error", new Error("could not read from HID device"));
    });
  }
}
