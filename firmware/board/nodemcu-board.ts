/** @noSelfInFile */
/** The Board (board.ts) on NodeMCU (ESP32): the hooks of this directory's drivers. */
import type { Board } from "./board.js";
import { buttonStart } from "./button.js";
import { displayInit, displayNumber, displayOff, displayText } from "./display-max7219.js";
import { displayBlankAfter } from "./display-timer.js";
import { flashExists, flashRead, flashRemove, flashWrite } from "./flash-store.js";
import { hardwareId } from "./hardware-id.js";
import { pause, powerRails, sleepUntilButton, usbPresent, usbWatch, wakeReason } from "./power.js";
import { rngBytes } from "./rng.js";
import { rtcRead, rtcWrite } from "./rtc-ds3231.js";
import { uartStart, uartWrite } from "./uart-link.js";

function restart(): void {
  node.restart();
}

/** The board implementation on NodeMCU (ESP32). */
export const NODEMCU_BOARD: Board = {
  uartStart: uartStart,
  uartWrite: uartWrite,
  rtcRead: rtcRead,
  rtcWrite: rtcWrite,
  flashRead: flashRead,
  flashWrite: flashWrite,
  flashRemove: flashRemove,
  flashExists: flashExists,
  buttonStart: buttonStart,
  displayInit: displayInit,
  displayText: displayText,
  displayNumber: displayNumber,
  displayOff: displayOff,
  displayBlankAfter: displayBlankAfter,
  hardwareId: hardwareId,
  rngBytes: rngBytes,
  restart: restart,
  powerRails: powerRails,
  usbPresent: usbPresent,
  usbWatch: usbWatch,
  wakeReason: wakeReason,
  pause: pause,
  sleepUntilButton: sleepUntilButton,
};
