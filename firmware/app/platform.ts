/**
 * The app's view of the board: every hardware access the device logic makes,
 * in the app's own terms (UnixTime, byte arrays, status codes). The one file
 * to change when the board layer changes; nothing here touches the runtime.
 */
import { type UnixTime } from "../otp/index.js";
import { flashRead, flashRemove, flashWrite } from "../board/flash-store.js";
import { hardwareId, HARDWARE_ID_LENGTH } from "../board/hardware-id.js";
import { rtcRead, rtcWrite } from "../board/rtc-ds3231.js";
import { BOARD_ERR_NOT_FOUND, BOARD_ERR_RTC_ABSENT, BOARD_ERR_RTC_TIME_LOST, BOARD_OK } from "../board/status.js";

export const PLATFORM_OK = BOARD_OK;
export const PLATFORM_NOT_FOUND = BOARD_ERR_NOT_FOUND;
export const PLATFORM_RTC_ABSENT = BOARD_ERR_RTC_ABSENT;
export const PLATFORM_RTC_TIME_LOST = BOARD_ERR_RTC_TIME_LOST;

export function platformRead(name: string, out: number[]): number {
  return flashRead(name, out);
}

export function platformWrite(name: string, bytes: number[]): number {
  return flashWrite(name, bytes);
}

export function platformRemove(name: string): number {
  return flashRemove(name);
}

/** The 8-byte hardware id; all zeros if the board cannot tell (INFO still answers). */
export function platformHardwareId(): number[] {
  const out: number[] = [];
  if (hardwareId(out) !== BOARD_OK || out.length !== HARDWARE_ID_LENGTH) {
    const zeros: number[] = [];
    for (let i = 0; i < HARDWARE_ID_LENGTH; i++) zeros.push(0);
    return zeros;
  }
  return out;
}

/** RTC time as UnixTime (hi * 2^16 + lo seconds). */
export function platformRtcRead(out: UnixTime): number {
  return rtcRead(out);
}

export function platformRtcWrite(t: UnixTime): number {
  return rtcWrite(t);
}
