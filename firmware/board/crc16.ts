/** @noSelfInFile */
/**
 * CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout;
 * check value of "123456789" is 0x29B1 — Greg Cook's CRC catalogue).
 * Guards the flash-store envelope, which must tell a complete file from one a
 * power cut left short.
 */

/** Continue a CRC over bytes[from .. from+count-1]. Start with CRC16_INIT. */
export function crc16Update(crc: number, bytes: number[], from: number, count: number): number {
  let c = crc;
  const end = from + count;
  for (let i = from; i < end; i++) {
    c = c ^ (bytes[i] << 8);
    for (let k = 0; k < 8; k++) {
      if ((c & 0x8000) !== 0) {
        c = ((c << 1) ^ 0x1021) & 0xffff;
      } else {
        c = (c << 1) & 0xffff;
      }
    }
  }
  return c;
}

export const CRC16_INIT = 0xffff;
