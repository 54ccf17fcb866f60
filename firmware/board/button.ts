/** @noSelfInFile */
/**
 * The button: GPIO interrupt on the falling edge, debounced with a timer.
 *
 * A mechanical contact bounces for a few milliseconds, so one press gives
 * several edges. Each falling edge (re)starts a DEBOUNCE_MS countdown; when
 * it runs out the pin is read again and only a pin still low counts as a
 * press, so one press counts once however it bounces.
 *
 * Restarting is stop() then start(): NodeMCU's start() on a running timer
 * returns false and does not restart it (tmr.c:124-127). Keeping no "armed"
 * flag of our own matters too: an expiry whose task finds NodeMCU's
 * high-priority queue full is lost (tmr.c:39, task_post_high does not wait),
 * and a flag that only the callback clears would then ignore every later
 * press. stop() puts even such a stranded timer back to idle.
 */
import { BUTTON_PIN } from "./pins.js";
import { BOARD_OK } from "./status.js";

/** Long enough for typical tact-switch bounce (a few ms), short for a human. */
export const DEBOUNCE_MS = 30;

let onPress: (() => void) | undefined = undefined;
let settleTimer: TmrObj | undefined = undefined;

function onSettled(_t: TmrObj): void {
  const handler = onPress;
  if (handler !== undefined && gpio.read(BUTTON_PIN) === 0) {
    handler();
  }
}

function onEdge(_pin: number, _level: number): void {
  const t = settleTimer;
  if (t === undefined) {
    return;
  }
  t.stop();
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
