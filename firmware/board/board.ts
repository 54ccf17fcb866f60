/** @noSelfInFile */
/**
 * Board: the one boundary between the device application and the hardware.
 * Modelled on Trussed's Platform { rng, store, user_interface }: the app sees
 * only these hooks and receives the Board as a parameter (deviceBoot(board));
 * the NodeMCU implementation (nodemcu-board.ts) is the only code that touches
 * the runtime, the HIL emulator (hil/) runs the same Lua on a simulated
 * NodeMCU, and host tests pass an in-memory board.
 *
 * This module holds no implementation, so importing it pulls no hardware
 * driver into an image.
 *
 * Conventions for every hook:
 * - Bytes are number[] of integers 0..255; Lua strings stay inside board/.
 * - Errors are status codes from status.ts (BOARD_OK = 0), never a throw.
 *   Outputs go into caller-supplied arrays/objects and are only written on
 *   success, so a failed read can never leave a zero clock or zero bytes
 *   behind for the app to use.
 * - Hooks are declared `this: void`: TSTL calls them with a dot, no self.
 * - Callbacks are app functions called from NodeMCU's event loop (UART data,
 *   GPIO interrupt, timers); they must return quickly. A Lua error inside one
 *   restarts the chip (NodeMCU's default crash handling).
 */
import type { UnixTime } from "../../core/time.js";

/** Why the chip started (wakeReason); from node.bootreason(), docs/power.md §1. */
export const BOOT_POWER_ON = 0;
/** Woken from deep sleep (by the button: the only wake source the firmware sets). */
export const BOOT_WAKE = 1;
/** The supply dipped below the brown-out level: a flat battery. */
export const BOOT_BROWN_OUT = 2;
/** node.restart(), a Lua error's restart, anything else. */
export const BOOT_OTHER = 3;

/** Length of the unique hardware id (hardwareId). */
export const HARDWARE_ID_LENGTH = 8;

export interface Board {
  // --- link to the host -------------------------------------------------
  /**
   * Start the console UART at `baud` (8N1, no echo); received bytes go to
   * onBytes and never to the Lua interpreter. delimiter -1: one call per
   * byte; 0..255: one call per run of bytes ending with that byte (or 256 bytes).
   */
  uartStart(this: void, onBytes: (bytes: number[]) => void, baud: number, delimiter: number): number;
  /** Send bytes to the host. */
  uartWrite(this: void, bytes: number[]): number;

  // --- clock --------------------------------------------------------------
  /** Read the battery-backed RTC into out (the OTP core's UnixTime). */
  rtcRead(this: void, out: UnixTime): number;

  // --- store ----------------------------------------------------------------
  /** Append the committed record `name` (<= 27 printable chars, no '/') to out. */
  flashRead(this: void, name: string, out: number[]): number;
  /** Whether a committed record `name` exists. */
  flashExists(this: void, name: string): boolean;

  // --- user interface -------------------------------------------------------
  /** Call onPress once per debounced button press. */
  buttonStart(this: void, onPress: () => void): number;
  /** Configure the display controller; leaves it dark. Call before the others. */
  displayInit(this: void): number;
  /** Show up to 8 characters (digits, blank, '-', '_', letters of seven-segment-font.ts). */
  displayText(this: void, text: string): number;
  /** Show value as `width` digits with leading zeros, right-aligned (an OTP code). */
  displayNumber(this: void, value: number, width: number): number;
  /** Blank the display and put the controller into its low-power shutdown. */
  displayOff(this: void): number;
  /** displayOff ms (1..600000) from now; a new call restarts the countdown. */
  displayBlankAfter(this: void, ms: number): number;

  // --- identity, randomness, power ------------------------------------------
  /** Append the 8-byte unique hardware id. */
  hardwareId(this: void, out: number[]): number;
  /** Restart the chip (does not return on the device). */
  restart(this: void): void;

  // --- power (issue 12, docs/power.md §6) ----------------------------------
  /** Switch the display and RTC supplies on or off (pins.ts DISPLAY_POWER_PIN, RTC_POWER_PIN). */
  powerRails(this: void, on: boolean): number;
  /** Whether USB VBUS is present (pins.ts VBUS_SENSE_PIN). */
  usbPresent(this: void): boolean;
  /** Call onChange(present) whenever VBUS comes or goes. */
  usbWatch(this: void, onChange: (present: boolean) => void): number;
  /** Why the chip started: BOOT_POWER_ON, BOOT_WAKE, BOOT_BROWN_OUT or BOOT_OTHER. */
  wakeReason(this: void): number;
  /** Light sleep for ms (1..600000): the CPU pauses, RAM and driven pins stay; returns after ms. */
  pause(this: void, ms: number): number;
  /**
   * Deep sleep until the button is pressed: does not return on the device; the
   * press restarts the chip (wakeReason BOOT_WAKE). Everything in RAM is lost.
   */
  sleepUntilButton(this: void): void;
}

/**
 * The board's write side: what only provisioning does (set the clock, write
 * or remove the record, draw random bytes). A board keeps it apart from its
 * Board, in a module of its own that the keyfob loads only when it
 * provisions (on NodeMCU nodemcu-provisioning-board.ts, in fobkit-prov), so a
 * locked keyfob never holds these drivers in RAM. The module exports it as
 * PROVISIONING_BOARD; the app asks its module loader for
 * PROVISIONING_BOARD_MODULE, and the loader maps that name to the board's module.
 */
export interface ProvisioningBoard {
  /** Set the RTC (years 2000..2099) and mark its time valid (clears OSF). */
  rtcWrite(this: void, t: UnixTime): number;
  /** Replace record `name`; atomic across power loss (old or new after reboot). */
  flashWrite(this: void, name: string, bytes: number[]): number;
  /** Remove record `name`; atomic across power loss. */
  flashRemove(this: void, name: string): number;
  /** Append n (1..64) true-random bytes; BOARD_ERR_NO_RNG if the board has no RNG. */
  rngBytes(this: void, out: number[], n: number): number;
}

/** The name under which a ModuleLoader hands a board's ProvisioningBoard module ({ PROVISIONING_BOARD }). */
export const PROVISIONING_BOARD_MODULE = "board.provisioning";

export type { UnixTime } from "../../core/time.js";
export * from "./status.js";
