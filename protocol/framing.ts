/**
 * Framing: 0x00 + COBS(body ‖ CRC-16/GENIBUS big-endian) + 0x00.
 *
 * COBS (Cheshire & Baker, "Consistent Overhead Byte Stuffing", IEEE/ACM ToN
 * 1999) removes every 0x00 from the frame, so 0x00 only ever means "frame
 * boundary": a receiver that lost or gained bytes is back in step at the next
 * 0x00. Unlike SLIP/HDLC escaping, its overhead is fixed (one byte per 254),
 * so the wire length of a frame does not depend on its content (a seed) and
 * one limit, MAX_WIRE, bounds every frame. Frames start with a delimiter too,
 * so line noise before a frame is cut off as its own (bad) frame.
 */
import { shr } from "../core/intrinsics.js";
import { crc16, crc16Update, CRC16_INIT, CRC16_RESIDUE } from "./crc16.js";
import { MAX_BODY, MAX_FRAME, MIN_FRAME } from "./codes.js";

/** deframerPush results. Errors are > RX_FRAME so `r > RX_FRAME` counts them. */
export const RX_NONE = 0;
/** A frame passed COBS, length and CRC: its body is buf[0..len) of the deframer. */
export const RX_FRAME = 1;
/** More than MAX_FRAME decoded bytes before a delimiter; the rest up to the next 0x00 is skipped. */
export const RX_OVERLONG = 2;
/** The last COBS block was cut short by the delimiter. */
export const RX_BAD_ENCODING = 3;
/** Fewer than MIN_FRAME decoded bytes. */
export const RX_TOO_SHORT = 4;
export const RX_BAD_CRC = 5;

/**
 * Encode one frame body (bytes[0..len), version byte first) for the wire.
 * Returns [] when len is outside 3..MAX_BODY.
 */
export function encodeFrame(body: number[], len: number): number[] {
  const out: number[] = [];
  if (len < 3 || len > MAX_BODY) {
    return out;
  }
  const crc = crc16(body, 0, len);
  out.push(0);
  let codeAt = out.length;
  out.push(0);
  let code = 1;
  for (let i = 0; i < len + 2; i++) {
    let b = 0;
    if (i < len) {
      b = body[i];
    } else if (i === len) {
      b = shr(crc, 8);
    } else {
      b = crc & 255;
    }
    if (b === 0) {
      out[codeAt] = code;
      codeAt = out.length;
      out.push(0);
      code = 1;
    } else {
      out.push(b);
      code = code + 1;
      if (code === 255) {
        out[codeAt] = code;
        codeAt = out.length;
        out.push(0);
        code = 1;
      }
    }
  }
  out[codeAt] = code;
  out.push(0);
  return out;
}

/** Streaming receiver state: a plain object, one per link, reused for every frame. */
export interface Deframer {
  /** Decoded bytes; after RX_FRAME, buf[0..len) is the frame body (CRC removed). Preallocated to MAX_FRAME. */
  buf: number[];
  len: number;
  /** CRC register over every decoded byte incl. the CRC itself: CRC16_RESIDUE for an intact frame. */
  crc: number;
  /** Data bytes left in the current COBS block; 0 means the next byte is a block code. */
  left: number;
  /** The current block was shorter than 254 bytes, so a 0x00 precedes the next block. */
  zeroPending: boolean;
  /** A non-delimiter byte arrived since the last delimiter. */
  inFrame: boolean;
  /** After RX_OVERLONG: drop bytes until the next delimiter. */
  skipping: boolean;
  /** Result of the last deframerFeed. */
  event: number;
}

export function newDeframer(): Deframer {
  const buf: number[] = [];
  for (let i = 0; i < MAX_FRAME; i++) {
    buf.push(0);
  }
  return { buf: buf, len: 0, crc: CRC16_INIT, left: 0, zeroPending: false, inFrame: false, skipping: false, event: RX_NONE };
}

/** Back to "between frames", e.g. after a link reset. */
export function deframerReset(d: Deframer): void {
  d.len = 0;
  d.crc = CRC16_INIT;
  d.left = 0;
  d.zeroPending = false;
  d.inFrame = false;
  d.skipping = false;
  d.event = RX_NONE;
}

/**
 * Overwrite buf[0..count) (count is clamped to MAX_FRAME), e.g. after
 * handling a frame that carried a seed. Only the buffer: every event has
 * already left the receiver state right (between frames, or skipping the
 * rest of an overlong frame, which a reset would start decoding as a new
 * one). A frame only writes buf[0..its length): after RX_FRAME that is
 * len + CRC16_BYTES; after an error event the length is gone, so wipe
 * MAX_FRAME. A buffer wiped after every event is all zero between frames.
 */
export function deframerWipe(d: Deframer, count: number): void {
  const buf = d.buf;
  const n = count < MAX_FRAME ? count : MAX_FRAME;
  for (let i = 0; i < n; i++) {
    buf[i] = 0;
  }
}

/** Append one decoded byte; false when the frame has grown past MAX_FRAME. */
function emit(d: Deframer, b: number): boolean {
  if (d.len >= MAX_FRAME) {
    return false;
  }
  d.buf[d.len] = b;
  d.len = d.len + 1;
  d.crc = crc16Update(d.crc, b);
  return true;
}

/** Take one byte off the wire. Returns RX_NONE, RX_FRAME or an RX_* error. */
export function deframerPush(d: Deframer, byte: number): number {
  if (byte === 0) {
    const started = d.inFrame;
    const skipped = d.skipping;
    const left = d.left;
    const n = d.len;
    const crc = d.crc;
    deframerReset(d);
    if (skipped || !started) {
      // The overlong frame was reported when it overflowed; an empty frame is an idle delimiter.
      return RX_NONE;
    }
    if (left !== 0) {
      return RX_BAD_ENCODING;
    }
    if (n < MIN_FRAME) {
      return RX_TOO_SHORT;
    }
    if (crc !== CRC16_RESIDUE) {
      return RX_BAD_CRC;
    }
    d.len = n - 2;
    return RX_FRAME;
  }
  if (d.skipping) {
    return RX_NONE;
  }
  if (!d.inFrame) {
    d.inFrame = true;
    d.len = 0;
    d.crc = CRC16_INIT;
  }
  let ok = true;
  if (d.left === 0) {
    if (d.zeroPending) {
      ok = emit(d, 0);
    }
    d.zeroPending = byte !== 255;
    d.left = byte - 1;
  } else {
    ok = emit(d, byte);
    d.left = d.left - 1;
  }
  if (!ok) {
    d.skipping = true;
    d.len = 0;
    return RX_OVERLONG;
  }
  return RX_NONE;
}

/**
 * Chunk helper: push bytes[from..) until something happens or the chunk ends.
 * Returns the index after the last byte consumed; d.event holds the result
 * (RX_NONE when the chunk ran out). Loop until the returned index reaches
 * bytes.length, handling d.event after each call.
 */
export function deframerFeed(d: Deframer, bytes: number[], from: number): number {
  const n = bytes.length;
  let i = from;
  while (i < n) {
    const r = deframerPush(d, bytes[i]);
    i = i + 1;
    if (r !== RX_NONE) {
      d.event = r;
      return i;
    }
  }
  d.event = RX_NONE;
  return i;
}
