/** @noSelfInFile */
/**
 * The Board (board.ts) on NodeMCU (ESP32): the hooks of this directory's
 * drivers. The write side is nodemcu-provisioning-board.ts (fobkit-prov).
 */
import type { Board } from "./board.js";
import { buttonStart } from "./button.js";
import { displayInit, displayNumber, displayOff, displayText } from "./display-max7219.js";
import { displayBlankAfter } from "./display-timer.js";
import { flashExists, flashRead } from "./flash-store.js";
import { hardwareId } from "./hardware-id.js";
import { pause, powerRails, sleepUntilButton, usbPresent, usbWatch, wakeReason } from "./power.js";
import { rtcRead } from "./rtc-ds3231.js";
import { uartStart, uartWrite } from "./uart-link.js";

function restart(): void {
  node.restart();
}

/** The board implementation on NodeMCU (ESP32). */
/** The bundle's name of this board's ProvisioningBoard module (main.ts maps PROVISIONING_BOARD_MODULE to it). */
export const NODEMCU_PROVISIONING_MODULE = "firmware.board.nodemcu-provisioning-board";

export const NODEMCU_BOARD: Board = {
  uartStart: uartStart,
  uartWrite: uartWrite,
  rtcRead: rtcRead,
  flashRead: flashRead,
  flashExists: flashExists,
  buttonStart: buttonStart,
  displayInit: displayInit,
  displayText: displayText,
  displayNumber: displayNumber,
  displayOff: displayOff,
  displayBlankAfter: displayBlankAfter,
  hardwareId: hardwareId,
  restart: restart,
  powerRails: powerRails,
  usbPresent: usbPresent,
  usbWatch: usbWatch,
  wakeReason: wakeReason,
  pause: pause,
  sleepUntilButton: sleepUntilButton,
};
