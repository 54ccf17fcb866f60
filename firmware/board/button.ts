/** @noSelfInFile */
/**
 * The button: GPIO interrupt on the falling edge, debounced with a timer.
 *
 * A mechanical contact bounces for a few milliseconds, so one press gives
 * several edges. The first edge arms a DEBOUNCE_MS timer and later edges are
 * ignored while it runs; when it fires the pin is read again and only a pin
 * still low counts as a press.
 */
import { BUTTON_PIN } from "./pins.js";
import { BOARD_OK } from "./status.js";

/** Long enough for typical tact-switch bounce (a few ms), short for a human. */
export const DEBOUNCE_MS = 30;

let onPress: (() => void) | undefined = undefined;
let settleTimer: TmrObj | undefined = undefined;
let settling = false;

function onSettled(_t: TmrObj): void {
  settling = false;
  const handler = onPress;
  if (handler !== undefined && gpio.read(BUTTON_PIN) === 0) {
    handler();
  }
}

function onEdge(_pin: number, _level: number): void {
  const t = settleTimer;
  if (settling || t === undefined) {
    return;
  }
  settling = true;
  t.start();
}

/** Call handler once per debounced press. Call once per boot. */
export function buttonStart(handler: () => void): number {
  onPress = handler;
  gpio.config({ gpio: BUTTON_PIN, dir: gpio.IN, pull: gpio.PULL_UP });
  const t = tmr.create();
  // ALARM_SEMI: fires once per start() and stays registered for the next press.
  t.register(DEBOUNCE_MS, tmr.ALARM_SEMI, onSettled);
  settleTimer = t;
  gpio.trig(BUTTON_PIN, gpio.INTR_DOWN, onEdge);
  return BOARD_OK;
}
