/** @noSelfInFile */
/**
 * The unique hardware id: 8 bytes, the ESP32's factory MAC as an EUI-64.
 *
 * The station MAC comes from the chip's eFuse base MAC, unique per chip from
 * the factory. node.chipid() was not used: node.c drops the MAC's low byte,
 * so up to 256 chips can share a chipid (its own comment says so). MAC-48 ->
 * EUI-64 inserts FF FE after the OUI (IEEE "Guidelines for Use of EUI,
 * OUI, and CID", MAC-48 encapsulation).
 */
import { BOARD_ERR_ARG, BOARD_OK } from "./status.js";
import { HARDWARE_ID_LENGTH } from "./board.js";

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) {
    return c - 48;
  }
  if (c >= 97 && c <= 102) {
    return c - 87;
  }
  if (c >= 65 && c <= 70) {
    return c - 55;
  }
  return -1;
}

/** Append the 8-byte id to out. BOARD_ERR_ARG if the MAC string is malformed. */
export function hardwareId(out: number[]): number {
  const mac = wifi.sta.getmac();
  // "aa:bb:cc:dd:ee:ff" (ip_fmt.c macstr)
  if (mac.length !== 17) {
    return BOARD_ERR_ARG;
  }
  const b: number[] = [];
  for (let i = 0; i < 6; i++) {
    const hi = hexValue(string.byte(mac, i * 3 + 1));
    const lo = hexValue(string.byte(mac, i * 3 + 2));
    if (hi < 0 || lo < 0 || (i < 5 && string.byte(mac, i * 3 + 3) !== 58)) {
      return BOARD_ERR_ARG;
    }
    b.push(hi * 16 + lo);
  }
  out.push(b[0]);
  out.push(b[1]);
  out.push(b[2]);
  out.push(0xff);
  out.push(0xfe);
  out.push(b[3]);
  out.push(b[4]);
  out.push(b[5]);
  return BOARD_OK;
}
