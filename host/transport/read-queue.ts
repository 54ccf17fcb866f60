/**
 * The read side of a push-driven link (HID reports, an in-process emulator):
 * turns "bytes arrived" callbacks into the pull-based read() the Transport
 * contract asks for, with the same rules (one pending read, buffered bytes,
 * a terminal error that rejects the pending read and every later one).
 */
import { TransportError } from "./transport.js";

/** Received bytes held while nobody reads; a link that floods us past this is broken. */
const MAX_BUFFERED = 64 * 1024;

export class ReadQueue {
  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private pending?: { resolve: (b: Uint8Array) => void; reject: (e: Error) => void };
  private failure?: TransportError;

  constructor(private readonly path: string) {}

  /** Bytes from the device. Ignored once the queue has failed. */
  push(bytes: Uint8Array): void {
    if (this.failure || bytes.length === 0) return;
    if (this.pending) {
      const p = this.pending;
      this.pending = undefined;
      p.resolve(bytes);
      return;
    }
    if (this.buffered + bytes.length > MAX_BUFFERED) {
      this.fail(new TransportError("io", `${this.path}: more than ${MAX_BUFFERED} bytes received and not read`));
      return;
    }
    this.chunks.push(bytes);
    this.buffered += bytes.length;
  }

  read(): Promise<Uint8Array> {
    if (this.pending) {
      return Promise.reject(new TransportError("read_pending", `${this.path}: a read is already pending`));
    }
    if (this.chunks.length > 0) {
      const all = Buffer.concat(this.chunks);
      this.chunks = [];
      this.buffered = 0;
      return Promise.resolve(new Uint8Array(all));
    }
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
    });
  }

  /** End of the link: the pending read and every later read reject with err; buffered bytes are dropped. */
  fail(err: TransportError): void {
    if (this.failure) return;
    this.failure = err;
    this.chunks = [];
    this.buffered = 0;
    const p = this.pending;
    this.pending = undefined;
    p?.reject(err);
  }
}
