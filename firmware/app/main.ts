/**
 * Boot and the event loop glue: UART bytes -> deframer -> decoder -> device
 * -> encoder -> UART; button -> display. NodeMCU is event driven, so start()
 * registers the handlers and returns.
 */
import {
  CRC16_BYTES, decodeRequest, deframerPush, deframerWipe, encodeReply, MAX_FRAME, newDeframer, RX_FRAME, RX_NONE,
  STATUS_OK, WRONG_DIRECTION, type Deframer, type Reply,
} from "../../protocol/index.js";
import { NODEMCU_BOARD as board } from "../board/board.js";
import { deviceBoot, deviceHandle, devicePressText, type Device } from "./device.js";

/** How long a code stays on the display after a press. */
export const SHOW_MS = 10000;
/** The provisioning link's speed (the host's default too). */
export const LINK_BAUD = 115200;
/** COBS frames end at 0x00: NodeMCU delivers UART data up to that byte in one callback. */
const FRAME_DELIMITER = 0;

let dev: Device | undefined = undefined;
let rx: Deframer | undefined = undefined;

function answer(d: Device, buf: number[], len: number): Reply | undefined {
  const q = decodeRequest(buf, len);
  if (q.status === WRONG_DIRECTION) return undefined;
  const msg = q.msg;
  if (q.status === STATUS_OK && msg !== undefined) return deviceHandle(d, msg);
  return { rid: q.rid, cmd: q.cmd, status: q.status, info: undefined, selfTest: undefined };
}

function onBytes(bytes: number[]): void {
  const d = dev;
  const r = rx;
  if (d === undefined || r === undefined) return;
  for (let i = 0; i < bytes.length; i++) {
    const ev = deframerPush(r, bytes[i]);
    if (ev === RX_FRAME) {
      const reply = answer(d, r.buf, r.len);
      // The frame may have carried a seed: clear what it wrote (body and CRC) before anything else.
      deframerWipe(r, r.len + CRC16_BYTES);
      if (reply !== undefined) board.uartWrite(encodeReply(reply));
    } else if (ev !== RX_NONE) {
      // A damaged frame may have carried one too, and its length is gone.
      deframerWipe(r, MAX_FRAME);
    }
  }
}

function onPress(): void {
  const d = dev;
  if (d === undefined) return;
  board.displayText(devicePressText(d));
  board.displayBlankAfter(SHOW_MS);
}

/** Boot the keyfob: called by init.lua (`dofile("fobkit.lua").start()`). */
export function start(): void {
  dev = deviceBoot();
  rx = newDeframer();
  board.displayInit();
  board.displayOff();
  board.buttonStart(onPress);
  board.uartStart(onBytes, LINK_BAUD, FRAME_DELIMITER);
}
