/**
 * Boot and the event loop glue: UART bytes -> deframer -> decoder -> device
 * -> encoder -> UART; button -> display. NodeMCU is event driven, so start()
 * registers the handlers and returns.
 *
 * Boot is fail-closed. init.lua (host/flash/init-lua.ts) has already taken
 * the console from the Lua interpreter before it loaded this image; start()
 * runs every step that can raise (SPI missing from the build, a bus error,
 * getmac, running out of memory) under pcall. On failure nothing answers on
 * the UART, the display shows "Err" if it can, and start() returns the error
 * text so init.lua can restart with back-off.
 */
// Each from its own module, never an index: the image holds only what is imported (tools/build-firmware.ts).
import { LINK_BAUD } from "../../protocol/codes.js";
import { newDeframer, type Deframer } from "../../protocol/framing.js";
import { PROVISIONING_BOARD_MODULE } from "../board/board.js";
import { NODEMCU_BOARD as board, NODEMCU_PROVISIONING_MODULE } from "../board/nodemcu-board.js";
// Type only: the write drivers are in fobkit-prov, loaded by safeLoad (this import puts the file in the build).
import type * as NodemcuProvisioningBoard from "../board/nodemcu-provisioning-board.js";
import { deviceBoot, type Device, type ModuleLoader } from "./device.js";
import { FRAME_DELIMITER, linkPress, linkReceive } from "./link.js";
import { powerSettle, powerUp } from "./power.js";

/** What a failed boot shows (seven-segment-font.ts has E and r). */
export const BOOT_ERROR_TEXT = "Err boot";

let dev: Device | undefined = undefined;
let rx: Deframer | undefined = undefined;

function onBytes(bytes: number[]): void {
  const d = dev;
  const r = rx;
  if (d === undefined || r === undefined) return;
  linkReceive(d, r, bytes);
}

function onPress(): void {
  const d = dev;
  if (d === undefined) return;
  linkPress(d);
}

/**
 * The bundle's require while the keyfob may still load a module (not
 * locked); cleared at boot otherwise, so a locked keyfob holds it nowhere.
 */
let bundleRequire: ModuleLoader | undefined = undefined;

/**
 * The bundle's require as device.ts wants it: a missing or broken file gives
 * undefined, never an error; PROVISIONING_BOARD_MODULE is this board's write
 * side (nodemcu-provisioning-board.ts).
 */
function safeLoad(module: string): unknown {
  const load = bundleRequire;
  if (load === undefined) return undefined;
  const [ok, m] = pcall(load, module === PROVISIONING_BOARD_MODULE ? NODEMCU_PROVISIONING_MODULE : module);
  return ok ? (m as typeof NodemcuProvisioningBoard | undefined) : undefined;
}

/** Every boot step; any of them may raise. The UART link comes last: nothing answers unless all went well. */
function boot(load: ModuleLoader | undefined): void {
  powerUp(board);
  board.displayInit();
  board.displayOff();
  bundleRequire = load;
  const d = deviceBoot(board, load === undefined ? undefined : safeLoad);
  if (d.load === undefined) bundleRequire = undefined;
  rx = newDeframer();
  board.buttonStart(onPress);
  dev = d;
  board.uartStart(onBytes, LINK_BAUD, FRAME_DELIMITER);
  // Last: a locked keyfob on battery shows its code and deep-sleeps here (power.ts).
  powerSettle(board, d);
}

function showBootError(): void {
  board.displayText(BOOT_ERROR_TEXT);
}

/**
 * Boot the keyfob: called by init.lua (`dofile("fobkit.lc").start()`); the
 * core's bundle hands start its require as `load` (tools/split-bundle.ts),
 * which loads fobkit-prov on a keyfob that is not locked.
 * Returns undefined when the keyfob is up, or the error text of the step
 * that failed (the keyfob then answers nothing; init.lua decides about a
 * restart).
 */
export function start(load?: ModuleLoader): string | undefined {
  const [ok, err] = pcall(boot, load);
  if (ok) return undefined;
  dev = undefined;
  rx = undefined;
  bundleRequire = undefined;
  pcall(showBootError);
  return tostring(err);
}
