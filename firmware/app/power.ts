/**
 * A locked keyfob on battery sleeps (issue 12; docs/power.md §6.2-6.3).
 *
 * The rule: a LOCKED keyfob deep-sleeps between presses unless USB VBUS is
 * present. Every boot of a locked keyfob without VBUS (a press woke it, or the
 * battery went in) shows the code for LOCKED_SHOW_MS in light sleep, switches
 * the display and the RTC supply off and deep-sleeps until the next press. A
 * brown-out boot sleeps at once without lighting the display (a flat battery
 * would brown out again). With VBUS present it stays awake and answers on the
 * UART as before; unplugging it puts it to sleep. Blank and provisioned
 * keyfobs never sleep: node.dsleep is reached only through powerSettle and
 * powerUsbChanged, both behind isLocked.
 *
 * What is kept across deep sleep: nothing in RAM. The record is in SPIFFS and
 * the time in the DS3231 (on its own cell); both are read again at each wake
 * by deviceBoot and devicePressText. The two `let`s below only hold the board
 * and device of the current boot for the VBUS callback; they are set again by
 * powerSettle at every boot, so losing them loses nothing.
 */
import { BOOT_BROWN_OUT, BOOT_WAKE, type Board } from "../board/board.js";
import { RECORD_LOCKED } from "./record.js";
import { devicePressText, type Device } from "./device.js";

/**
 * How long a sleeping keyfob shows its code: 7 s, not SHOW_MS's 10 s, is what
 * keeps the battery budget at 3 years (docs/power.md §4, power.json
 * sensitivity.batteryYearsAtTodaysShowMs).
 */
export const LOCKED_SHOW_MS = 7000;

let board: Board | undefined = undefined;
let dev: Device | undefined = undefined;

function isLocked(d: Device): boolean {
  return d.rec.state === RECORD_LOCKED;
}

/** Rails off, then deep sleep until the button. Does not return on the board. */
function sleepNow(b: Board): void {
  // The MAX7219 into shutdown before its supply goes (no current through its inputs).
  b.displayOff();
  b.powerRails(false);
  b.sleepUntilButton();
}

/** First step of boot: the display and the RTC need their supplies before anything talks to them. */
export function powerUp(b: Board): void {
  b.powerRails(true);
}

/**
 * Last step of boot. A locked keyfob on battery shows its code and sleeps
 * (never returns on the board); otherwise it watches VBUS and returns.
 */
export function powerSettle(b: Board, d: Device): void {
  board = b;
  dev = d;
  b.usbWatch(powerUsbChanged);
  if (!isLocked(d)) return;
  const reason = b.wakeReason();
  if (b.usbPresent()) {
    // Plugged in: awake from now on; the press that woke it still shows the code.
    if (reason === BOOT_WAKE) {
      b.displayText(devicePressText(d));
      b.displayBlankAfter(LOCKED_SHOW_MS);
    }
    return;
  }
  if (reason !== BOOT_BROWN_OUT) {
    b.displayText(devicePressText(d));
    b.pause(LOCKED_SHOW_MS);
  }
  sleepNow(b);
}

/** VBUS came or went: a locked keyfob that loses USB goes to sleep at once. */
export function powerUsbChanged(present: boolean): void {
  const b = board;
  const d = dev;
  if (present || b === undefined || d === undefined || !isLocked(d)) return;
  sleepNow(b);
}
