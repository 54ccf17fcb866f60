/**
 * CRC-16/GENIBUS: poly 0x1021, init 0xFFFF, no reflection, final XOR 0xFFFF
 * (Greg Cook's CRC catalogue: check("123456789") = 0xD64E, residue 0x1D0F).
 * It is CRC-16/CCITT-FALSE with the result inverted.
 *
 * Why 16 bits and not CRC-32: every intermediate value stays below 2^24, so
 * the same code is exact on 32-bit Lua, 64-bit Lua and JS without any word
 * reduction, and the byte step below needs neither a table (a 256-entry Lua
 * table costs ~4 KB of heap) nor a bit loop. For frames of at most 128 bytes
 * the polynomial has Hamming distance 4, catches every odd number of bit
 * errors and every burst up to 16 bits.
 *
 * Why the final XOR: without it (plain CCITT-FALSE) a valid frame followed by
 * a 0x00 byte is valid too, because the register is 0 after the CRC and a
 * zero byte leaves 0 at 0. Over COBS exactly that happens when one bit flips
 * the closing delimiter 0x00 into 0x01 (an empty block: "append a zero").
 * With the XOR the register ends at the residue 0x1D0F, which a zero byte
 * moves (to 0xCC9C), so that error is always caught.
 */
import { shr } from "../core/intrinsics.js";

export const CRC16_INIT = 0xffff;
/** Transmitted CRC = register XOR this. */
export const CRC16_XOROUT = 0xffff;
/** Register after feeding a frame and its own (transmitted) CRC. */
export const CRC16_RESIDUE = 0x1d0f;
/** The CRC's length in a frame (big-endian, after the body). */
export const CRC16_BYTES = 2;

/**
 * One byte into the register. Table-less and loop-free: the eight shift/XOR
 * steps of 0x1021 collapse into three shifted copies of one nibble-folded byte.
 */
export function crc16Update(crc: number, byte: number): number {
  let x = (shr(crc, 8) ^ byte) & 255;
  x = x ^ shr(x, 4);
  return ((crc << 8) ^ (x << 12) ^ (x << 5) ^ x) & 0xffff;
}

/** The CRC to transmit for bytes[from..to). */
export function crc16(bytes: number[], from: number, to: number): number {
  let crc = CRC16_INIT;
  for (let i = from; i < to; i++) {
    crc = crc16Update(crc, bytes[i]);
  }
  return crc ^ CRC16_XOROUT;
}
