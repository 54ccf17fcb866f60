/**
 * A whole byte stream through one Deframer and the decoder: what a receiver
 * sees, as a list. Used for captured traffic, batch tests, and a host that
 * reads in chunks and wants every frame in the chunk.
 */
import { deframerFeed, newDeframer, RX_FRAME, RX_NONE, Deframer } from "./framing.js";
import { decodeRequest, Reply, Request } from "./messages.js";
import { decodeReply } from "./messages-host.js";

/**
 * One receiver event. event: RX_FRAME or an RX_* error. For RX_FRAME,
 * status/rid/cmd/msg are the decoder's result; for errors status, rid and cmd are 0.
 */
export interface StreamEvent {
  event: number;
  status: number;
  rid: number;
  cmd: number;
  msg: Request | Reply | undefined;
}

/** Continue decoding bytes with an existing deframer (state carries over between calls). */
export function decodeChunk(d: Deframer, bytes: number[], replies: boolean): StreamEvent[] {
  const events: StreamEvent[] = [];
  let i = 0;
  while (i < bytes.length) {
    i = deframerFeed(d, bytes, i);
    const ev = d.event;
    if (ev === RX_FRAME) {
      if (replies) {
        const r = decodeReply(d.buf, d.len);
        events.push({ event: ev, status: r.status, rid: r.rid, cmd: r.cmd, msg: r.msg });
      } else {
        const q = decodeRequest(d.buf, d.len);
        events.push({ event: ev, status: q.status, rid: q.rid, cmd: q.cmd, msg: q.msg });
      }
    } else if (ev !== RX_NONE) {
      events.push({ event: ev, status: 0, rid: 0, cmd: 0, msg: undefined });
    }
  }
  return events;
}

/** Decode a complete stream from a fresh deframer; replies selects decodeReply over decodeRequest. */
export function decodeStream(bytes: number[], replies: boolean): StreamEvent[] {
  return decodeChunk(newDeframer(), bytes, replies);
}
