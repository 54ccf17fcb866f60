/** @noSelfInFile */
/**
 * One restartable timer for "blank the display after a while": the app asks
 * for the display to go dark N ms after the last press; a new press restarts
 * the countdown instead of stacking timers (heap stays flat).
 */
import { displayOff } from "./display-max7219.js";
import { BOARD_ERR_ARG, BOARD_OK } from "./status.js";

let blankTimer: TmrObj | undefined = undefined;

function onBlank(_t: TmrObj): void {
  displayOff();
}

/**
 * Blank the display ms from now (restarting any countdown in progress).
 * At least 10 ms: NodeMCU's tmr makes FreeRTOS timers of ms / 10 ticks
 * (tmr.c:97-101 pdMS_TO_TICKS, 100 Hz), and 0 ticks fails an assert that
 * panics the chip (FreeRTOS timers.c:367). The board rounds down to a tick.
 */
export function displayBlankAfter(ms: number): number {
  if (ms < 10 || ms > 600000) {
    return BOARD_ERR_ARG;
  }
  let t = blankTimer;
  if (t === undefined) {
    t = tmr.create();
    blankTimer = t;
  }
  // start() alone would not restart a running countdown (NodeMCU tmr.c:124-127);
  // stop() and register() leave the timer idle, so start() always takes.
  t.stop();
  t.register(ms, tmr.ALARM_SEMI, onBlank);
  t.start();
  return BOARD_OK;
}
