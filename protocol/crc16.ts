/**
 * CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final XOR
 * (Greg Cook's CRC catalogue, "CRC-16/IBM-3740"; check("123456789") = 0x29B1).
 *
 * Chosen over CRC-32 because every intermediate value stays below 2^24, so
 * the same code is exact on 32-bit Lua, 64-bit Lua and JS without any word
 * reduction, and the byte step below needs neither a table (a 256-entry Lua
 * table costs ~4 KB of heap) nor a bit loop. For frames of at most 128 bytes
 * the polynomial has Hamming distance 4, catches every odd number of bit
 * errors and every burst up to 16 bits.
 */
import { shr } from "../firmware/lib/intrinsics.js";

export const CRC16_INIT = 0xffff;

/**
 * One byte into the register. Table-less and loop-free: the eight shift/XOR
 * steps of 0x1021 collapse into three shifted copies of one nibble-folded byte.
 */
export function crc16Update(crc: number, byte: number): number {
  let x = (shr(crc, 8) ^ byte) & 255;
  x = x ^ shr(x, 4);
  return ((crc << 8) ^ (x << 12) ^ (x << 5) ^ x) & 0xffff;
}

/** CRC of bytes[from..to). */
export function crc16(bytes: number[], from: number, to: number): number {
  let crc = CRC16_INIT;
  for (let i = from; i < to; i++) {
    crc = crc16Update(crc, bytes[i]);
  }
  return crc;
}
