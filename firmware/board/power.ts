/** @noSelfInFile */
/**
 * Power on NodeMCU (ESP32): the two load switches, the VBUS sense, why the
 * chip started, light sleep and deep sleep. docs/power.md has the contract
 * (node.c's dsleep, sleep and bootreason, with file:line) and the circuit.
 *
 * Nothing here survives deep sleep: the Lua state is gone and the chip
 * restarts. So nothing is kept in this module between boots; the switch pins
 * are configured again at each boot (their pull-downs hold them off meanwhile).
 */
import { BOOT_BROWN_OUT, BOOT_OTHER, BOOT_POWER_ON, BOOT_WAKE } from "./board.js";
import { BUTTON_PIN, DISPLAY_POWER_PIN, RTC_POWER_PIN, VBUS_SENSE_PIN } from "./pins.js";
import { BOARD_ERR_ARG, BOARD_OK } from "./status.js";

/** node.bootreason()'s second value: the ROM reset reason + 7 (node.c:152-153; docs/power.md §1). */
const RESET_POWER_ON = 8;
const RESET_DEEP_SLEEP = 12;
const RESET_BROWN_OUT = 22;
/** A button still held is waited for in slices of this many ms of light sleep. */
const RELEASE_POLL_MS = 20;
/** ...for at most this many slices (2 s). */
const RELEASE_POLLS = 100;
/** A stuck button cannot be an ext1 wake source (it would wake at once): look again a minute later. */
const STUCK_RETRY_SECS = 60;

let railsReady = false;
let vbusReady = false;
/** The app's VBUS handler for this boot (usbWatch); lost with the Lua state, set again at each boot. */
let onUsb: ((present: boolean) => void) | undefined = undefined;

function onVbusEdge(_pin: number, level: number): void {
  const handler = onUsb;
  if (handler !== undefined) handler(level === 1);
}

export function powerRails(on: boolean): number {
  if (!railsReady) {
    gpio.config({ gpio: [RTC_POWER_PIN, DISPLAY_POWER_PIN], dir: gpio.OUT });
    railsReady = true;
  }
  const level = on ? 1 : 0;
  gpio.write(RTC_POWER_PIN, level);
  gpio.write(DISPLAY_POWER_PIN, level);
  return BOARD_OK;
}

function vbusStart(): void {
  if (vbusReady) return;
  // Input only, no internal pulls on GPIO34: the divider sets the level.
  gpio.config({ gpio: VBUS_SENSE_PIN, dir: gpio.IN });
  vbusReady = true;
}

export function usbPresent(): boolean {
  vbusStart();
  return gpio.read(VBUS_SENSE_PIN) === 1;
}

export function usbWatch(onChange: (present: boolean) => void): number {
  vbusStart();
  onUsb = onChange;
  gpio.trig(VBUS_SENSE_PIN, gpio.INTR_UP_DOWN, onVbusEdge);
  return BOARD_OK;
}

export function wakeReason(): number {
  const [, reset] = node.bootreason();
  if (reset === RESET_DEEP_SLEEP) return BOOT_WAKE;
  if (reset === RESET_POWER_ON) return BOOT_POWER_ON;
  if (reset === RESET_BROWN_OUT) return BOOT_BROWN_OUT;
  return BOOT_OTHER;
}

export function pause(ms: number): number {
  if (ms < 1 || ms > 600000) return BOARD_ERR_ARG;
  // Timer wake only (no uart, gpio or touch option): node.c:234-312.
  node.sleep({ us: ms * 1000 });
  return BOARD_OK;
}

export function sleepUntilButton(): void {
  // ext1 is level-triggered (docs/power.md §1): a button still held would
  // wake the chip at once, so wait for the release first.
  for (let i = 0; i < RELEASE_POLLS && gpio.read(BUTTON_PIN) === 0; i++) {
    node.sleep({ us: RELEASE_POLL_MS * 1000 });
  }
  if (gpio.read(BUTTON_PIN) === 0) {
    node.dsleep({ secs: STUCK_RETRY_SECS });
    return;
  }
  // ext1 on the button alone, level 0 (ALL_LOW: the pin is low); pull false:
  // the external pull-up holds the pin (docs/power.md §1, "The pull-up during sleep").
  node.dsleep({ gpio: BUTTON_PIN, level: 0 });
}
