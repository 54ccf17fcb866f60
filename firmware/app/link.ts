/**
 * The keyfob's side of the link and its button, for the image (main.ts) and
 * the in-memory keyfob (firmware/sim/memory-keyfob.ts) alike: UART bytes ->
 * deframer -> decoder -> device -> encoder -> UART; a press -> the display.
 * Everything goes to the hardware through the Device's Board.
 */
// Each from its own module, never an index: the image holds only what is imported (tools/build-firmware.ts).
import { MAX_FRAME, STATUS_OK, WRONG_DIRECTION } from "../../protocol/codes.js";
import { CRC16_BYTES } from "../../protocol/crc16.js";
import { deframerPush, deframerWipe, RX_FRAME, RX_NONE, type Deframer } from "../../protocol/framing.js";
import { decodeRequest, encodeReply, type Reply } from "../../protocol/messages.js";
import { deviceHandle, devicePressText, type Device } from "./device.js";

/** How long a code stays on the display after a press. */
export const SHOW_MS = 10000;
/** COBS frames end at 0x00: NodeMCU delivers UART data up to that byte in one callback. */
export const FRAME_DELIMITER = 0;

function answer(d: Device, buf: number[], len: number): Reply | undefined {
  const q = decodeRequest(buf, len);
  if (q.status === WRONG_DIRECTION) return undefined;
  const msg = q.msg;
  if (q.status === STATUS_OK && msg !== undefined) return deviceHandle(d, msg);
  return { rid: q.rid, cmd: q.cmd, status: q.status, info: undefined, selfTest: undefined };
}

/** Bytes from the UART: answer every whole frame, wiping what each frame wrote. */
export function linkReceive(d: Device, r: Deframer, bytes: number[]): void {
  for (let i = 0; i < bytes.length; i++) {
    const ev = deframerPush(r, bytes[i]);
    if (ev === RX_FRAME) {
      const reply = answer(d, r.buf, r.len);
      // The frame may have carried a seed: clear what it wrote (body and CRC) before anything else.
      deframerWipe(r, r.len + CRC16_BYTES);
      if (reply !== undefined) d.board.uartWrite(encodeReply(reply));
    } else if (ev !== RX_NONE) {
      // A damaged frame may have carried one too, and its length is gone.
      deframerWipe(r, MAX_FRAME);
    }
  }
}

/** A press: the code (or the state word) on the display for SHOW_MS. */
export function linkPress(d: Device): void {
  d.board.displayText(devicePressText(d));
  d.board.displayBlankAfter(SHOW_MS);
}
