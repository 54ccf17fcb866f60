/**
 * Frames over USB HID: each 64-byte report carries a slice of one frame's
 * wire bytes (exactly what encodeRequest/encodeReply return), so the
 * deframer and CRC work unchanged behind HID. Layout in SPEC.md "HID".
 */
import { MAX_WIRE } from "./codes.js";

export const HID_REPORT_SIZE = 64;
/** Report id of every protocol report (byte 0). */
export const HID_REPORT_ID = 1;
/** Report bytes 3..63. */
export const HID_PAYLOAD_SIZE = 61;
/** Sequence byte: first report of a frame. */
export const HID_START = 0x80;
/** Sequence byte: last report of a frame. */
export const HID_END = 0x40;
/** Sequence byte: report index within the frame, 0 for the START report. */
export const HID_INDEX_MASK = 0x3f;

/** hidPush results. Errors are > HID_FRAME. */
export const HID_NONE = 0;
/** A frame is complete: its wire bytes are buf[0..len). */
export const HID_FRAME = 1;
/** A report was lost: a continuation out of order, or without a START. The partial frame is dropped. */
export const HID_SEQ_GAP = 2;
/** Wrong report size or id, or a payload length above HID_PAYLOAD_SIZE. The partial frame is dropped. */
export const HID_BAD_REPORT = 3;
/** The frame grew past MAX_WIRE bytes. Dropped. */
export const HID_OVERLONG = 4;

/** Reports for one frame's wire bytes; [] when wire is empty or longer than MAX_WIRE. */
export function hidSplit(wire: number[]): number[][] {
  const reports: number[][] = [];
  const n = wire.length;
  if (n === 0 || n > MAX_WIRE) {
    return reports;
  }
  let at = 0;
  let index = 0;
  while (at < n) {
    let take = n - at;
    if (take > HID_PAYLOAD_SIZE) {
      take = HID_PAYLOAD_SIZE;
    }
    let seq = index;
    if (index === 0) {
      seq = seq | HID_START;
    }
    if (at + take === n) {
      seq = seq | HID_END;
    }
    const r: number[] = [HID_REPORT_ID, seq, take];
    for (let i = 0; i < HID_PAYLOAD_SIZE; i++) {
      r.push(i < take ? wire[at + i] : 0);
    }
    reports.push(r);
    at = at + take;
    index = index + 1;
  }
  return reports;
}

/** Reassembly state: a plain object, one per HID link. */
export interface HidAssembler {
  /** Wire bytes of the frame being assembled; after HID_FRAME, buf[0..len) is the frame. Preallocated to MAX_WIRE. */
  buf: number[];
  len: number;
  /** Index the next continuation report must carry; -1 when no frame is open. */
  next: number;
  /** After an error: continuations of the broken frame are dropped quietly until the next START. */
  skipping: boolean;
}

export function newHidAssembler(): HidAssembler {
  const buf: number[] = [];
  for (let i = 0; i < MAX_WIRE; i++) {
    buf.push(0);
  }
  return { buf: buf, len: 0, next: -1, skipping: false };
}

function hidFail(a: HidAssembler, code: number): number {
  a.len = 0;
  a.next = -1;
  a.skipping = true;
  return code;
}

/**
 * Take one report (HID_REPORT_SIZE bytes, report id first). A START report
 * always opens a new frame; if it finds another frame unfinished, that one is
 * dropped and HID_SEQ_GAP returned, unless this report also completes its
 * own frame (then HID_FRAME: a completed frame is never held back).
 */
export function hidPush(a: HidAssembler, report: number[]): number {
  if (report.length !== HID_REPORT_SIZE || report[0] !== HID_REPORT_ID || report[2] > HID_PAYLOAD_SIZE) {
    return hidFail(a, HID_BAD_REPORT);
  }
  const seq = report[1];
  const take = report[2];
  const index = seq & HID_INDEX_MASK;
  let gap = false;
  if ((seq & HID_START) !== 0) {
    gap = a.next >= 0;
    if (index !== 0) {
      return hidFail(a, HID_SEQ_GAP);
    }
    a.len = 0;
    a.skipping = false;
  } else if (a.next < 0) {
    if (a.skipping) {
      return HID_NONE;
    }
    return hidFail(a, HID_SEQ_GAP);
  } else if (index !== a.next) {
    return hidFail(a, HID_SEQ_GAP);
  }
  if (a.len + take > MAX_WIRE) {
    return hidFail(a, HID_OVERLONG);
  }
  for (let i = 0; i < take; i++) {
    a.buf[a.len + i] = report[3 + i];
  }
  a.len = a.len + take;
  a.next = index + 1;
  if ((seq & HID_END) !== 0) {
    a.next = -1;
    return HID_FRAME;
  }
  if (gap) {
    return HID_SEQ_GAP;
  }
  return HID_NONE;
}

/** What hidPushAll saw: one HID_* result per report, and the wire bytes of each completed frame. */
export interface HidBatch {
  events: number[];
  frames: number[][];
}

/**
 * Push several reports in order (e.g. everything one read returned). Each
 * completed frame is copied out, so the assembler can go on.
 */
export function hidPushAll(a: HidAssembler, reports: number[][]): HidBatch {
  const out: HidBatch = { events: [], frames: [] };
  for (let i = 0; i < reports.length; i++) {
    const r = hidPush(a, reports[i]);
    out.events.push(r);
    if (r === HID_FRAME) {
      const frame: number[] = [];
      for (let k = 0; k < a.len; k++) {
        frame.push(a.buf[k]);
      }
      out.frames.push(frame);
    }
  }
  return out;
}
