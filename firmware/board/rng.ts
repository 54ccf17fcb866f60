/** @noSelfInFile */
/**
 * Random bytes, failing closed.
 *
 * NodeMCU for ESP32 has no node.random; its one random source is
 * sodium.random.buf (libsodium over esp_random()). esp_random() is a true
 * RNG only while the RF subsystem (Wi-Fi or Bluetooth) runs; otherwise its
 * output "should be considered pseudo-random only" (ESP-IDF API reference,
 * System API, Random Number Generation). So the radio is switched on for the
 * draw and off again (station mode, never connecting, not saved to flash).
 * A firmware built without the sodium module has no RNG: the hook then
 * reports BOARD_ERR_NO_RNG and never hands out zeros.
 */
import { appendStringBytes } from "./lua-bytes.js";
import { BOARD_ERR_ARG, BOARD_ERR_NO_RNG, BOARD_OK } from "./status.js";

/** Upper bound per call: a seed or nonce, not bulk data. */
export const RNG_MAX_BYTES = 64;

/** Append n random bytes to out. */
export function rngBytes(out: number[], n: number): number {
  if (n < 1 || n > RNG_MAX_BYTES || math.type(n) !== "integer") {
    return BOARD_ERR_ARG;
  }
  const s = sodium;
  if (s === undefined) {
    return BOARD_ERR_NO_RNG;
  }
  wifi.mode(wifi.STATION, false);
  wifi.start();
  const data = s.random.buf(n);
  wifi.stop();
  if (data.length !== n) {
    return BOARD_ERR_NO_RNG;
  }
  appendStringBytes(data, out);
  return BOARD_OK;
}
