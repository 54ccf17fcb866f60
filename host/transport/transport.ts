/**
 * The one boundary between the host and a keyfob's link: a byte pipe that
 * carries protocol/ frames. Modelled on serialport's BindingPortInterface
 * (@serialport/bindings-interface): every method returns a promise, reads are
 * pulled (one in flight), and the rules below are part of the contract; every
 * implementation (SerialTransport, HidTransport, EmulatorTransport) and every
 * test double enforces them the same way.
 *
 * Rules:
 * - open() once. Opening an open transport rejects with `already_open`; a
 *   missing device rejects with `not_found`, a port another process holds
 *   with `busy`.
 * - write(frame) takes the wire bytes of exactly ONE frame (what
 *   protocol's encodeRequest returns, delimiters included). A byte-stream
 *   link sends them as they are; a packet link (HID) splits them into reports
 *   (protocol/hid.ts), which is why a frame is never split across calls.
 *   Writes are serialised: a second write waits for the first. Resolves when
 *   the bytes are handed to the OS (or the device model). The caller may
 *   overwrite its buffer once it resolves (seeds are wiped that way).
 * - read() resolves with the next bytes received (at least one byte), in
 *   order, never a byte twice. At most one read() may be pending: a second
 *   concurrent read rejects with `read_pending`. Bytes that arrive while no
 *   read is pending are kept until the next read.
 * - close() resolves once the link is released; a pending read rejects with
 *   `closed`. Closing a closed transport resolves (idempotent).
 * - The device going away (USB unplug, PTY gone, emulator detached) rejects
 *   the pending read and every later call with `unplugged`, and fires the
 *   close listeners once with reason "unplugged". close() after that
 *   resolves.
 * - Any call on a transport that is not open rejects with `not_open`
 *   (`unplugged` if it went away).
 */

export type TransportKind = "serial" | "hid" | "emulator";

export type TransportErrorCode =
  | "not_open"
  | "already_open"
  | "not_found"
  | "busy"
  | "closed"
  | "unplugged"
  | "read_pending"
  /** write() was given something that is not one frame's wire bytes (HID only can tell). */
  | "bad_frame"
  | "io";

/** Every failure of a transport. Messages name the path, never payload bytes. */
export class TransportError extends Error {
  constructor(
    readonly code: TransportErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "TransportError";
  }
}

export interface TransportCloseEvent {
  /** "closed": close() was called; "unplugged": the device went away. */
  reason: "closed" | "unplugged";
  /** The OS error behind an unplug, when there was one. */
  error?: Error;
}

/** Byte counts on the link, for benchmarks: protocol bytes, not HID report padding. */
export interface TransportStats {
  bytesWritten: number;
  bytesRead: number;
}

export interface Transport {
  readonly kind: TransportKind;
  /** What the user names it by: "/dev/ttyUSB0", "hid:/dev/hidraw3", "emu:1". */
  readonly path: string;
  readonly isOpen: boolean;
  readonly stats: TransportStats;
  open(): Promise<void>;
  close(): Promise<void>;
  write(frame: Uint8Array): Promise<void>;
  read(): Promise<Uint8Array>;
  /** Listen for the end of the link; returns a function that removes the listener. */
  onClose(listener: (event: TransportCloseEvent) => void): () => void;
}
