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

/** Blank the display ms from now (restarting any countdown in progress). */
export function displayBlankAfter(ms: number): number {
  if (ms < 1 || ms > 600000) {
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
