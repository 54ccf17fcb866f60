/**
 * The NodeMCU build the emulated board runs: an sdkconfig fragment
 * (nodemcu-build/sdkconfig.fobkit by default) read at start-up. It decides
 * which C modules exist (a module the build lacks is a nil global, as on the
 * board), the console's newlib line endings and the task queue's size.
 * Settings the emulator cannot model are refused with an error naming them.
 *
 * Defaults for what the fragment does not set are NodeMCU's and ESP-IDF's
 * Kconfig defaults at dev-esp32 commit 7c5bb151 (components/modules/Kconfig,
 * components/task/Kconfig, ESP-IDF newlib Kconfig).
 */
import { LINK_BAUD } from "../protocol/codes.js";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export type LineEnding = "LF" | "CR" | "CRLF";

export interface NodemcuBuild {
  /** The file it came from. */
  readonly source: string;
  /** Lua global names of the C modules in the build (lower case, as NODEMCU_MODULE registers them). */
  readonly modules: ReadonlySet<string>;
  /** user_main.c:40-46: what the UART VFS does to received CR/LF. */
  readonly stdinLineEnding: LineEnding;
  /** user_main.c:48-54: what it does to sent LF. */
  readonly stdoutLineEnding: LineEnding;
  /** task.c:143-151: slots of the high-priority queue (console bytes, tmr alarms). */
  readonly highQueueSlots: number;
  /** task.c:148: slots of the low-priority queue (gpio interrupts). */
  readonly lowQueueSlots: number;
  readonly consoleBaud: number;
}

export const BUILD_FILE_NAME = "sdkconfig.fobkit";

/** Every C module of components/modules/Kconfig with its default (NODEMCU_CMODULE_<NAME>). */
const MODULE_DEFAULTS: Record<string, boolean> = {
  adc: false, bit: false, bthci: false, can: false, crypto: false, dac: false, dht: false, encoder: false,
  eromfs: false, espnow: false, eth: false, file: true, gpio: true, heaptrace: false, http: true, httpd: false,
  i2c: true, i2s: false, ledc: false, mqtt: false, net: true, node: true, ow: true, otaupgrade: false,
  pipe: true, pulsecnt: false, qrcodegen: false, rmt: false, rotary: false, rtcmem: false, sdmmc: false,
  sigma_delta: false, sjson: false, sodium: false, spi: false, struct: false, tmr: true, touch: false,
  u8g2: false, ucg: false, wifi: true, ws2812: false, time: false, uart: true,
};

/** components/lua/Kconfig LUA_REQUIRED_MODULES: always built, whatever the fragment says. */
const REQUIRED_MODULES = ["uart", "pipe"];

/** Every NodeMCU C module name: a global of this name the build lacks reads as nil. */
export const ALL_MODULES: ReadonlySet<string> = new Set(Object.keys(MODULE_DEFAULTS));

/** TASK_PRIORITY_* queue lengths from CONFIG_NODEMCU_TASK_SLOT_MEMORY (task.c:143-151; sizeof(task_event_t) = 8). */
function queueSlots(slotMemory: number): { low: number; high: number } {
  const slice = Math.floor(slotMemory / (10 * 8));
  return { low: 1 * slice, high: 4 * slice };
}

/** Parse an sdkconfig fragment; throws an Error naming the file, line and setting on anything it cannot model. */
export function parseNodemcuBuild(text: string, source: string): NodemcuBuild {
  const values = new Map<string, string>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "") return;
    const notSet = /^#\s*CONFIG_([A-Z0-9_]+) is not set$/.exec(line);
    if (notSet) {
      values.set(notSet[1], "n");
      return;
    }
    if (line.startsWith("#")) return;
    const m = /^CONFIG_([A-Z0-9_]+)=(.*)$/.exec(line);
    if (!m) throw new Error(`${source}:${i + 1}: not an sdkconfig line: ${JSON.stringify(raw)}`);
    values.set(m[1], m[2].replace(/^"(.*)"$/, "$1"));
  });
  const on = (name: string) => values.get(name) === "y";
  const refuse = (what: string) => {
    throw new Error(`${source}: ${what}; the emulator models only the keyfob's build (nodemcu-build/${BUILD_FILE_NAME})`);
  };

  const target = [...values.keys()].find((k) => k.startsWith("IDF_TARGET_") && values.get(k) === "y");
  if (target !== undefined && target !== "IDF_TARGET_ESP32") refuse(`CONFIG_${target}: only the ESP32 is emulated`);
  if (on("LUA_VERSION_51")) refuse("CONFIG_LUA_VERSION_51: the emulator runs Lua 5.3");
  if (on("LUA_NUMBER_INT64")) refuse("CONFIG_LUA_NUMBER_INT64: the emulator has 32-bit integers only");
  if (on("LUA_NUMBER_DOUBLE")) refuse("CONFIG_LUA_NUMBER_DOUBLE is a number model the firmware is not built for");
  for (const other of ["ESP_CONSOLE_USB_CDC", "ESP_CONSOLE_USB_SERIAL_JTAG", "ESP_CONSOLE_NONE"]) {
    if (on(other)) refuse(`CONFIG_${other}: the keyfob's link is the console UART`);
  }
  const consoleNum = values.get("ESP_CONSOLE_UART_NUM");
  if (consoleNum !== undefined && consoleNum !== "0") refuse(`CONFIG_ESP_CONSOLE_UART_NUM=${consoleNum}: only UART0 is emulated`);

  const modules = new Set<string>();
  for (const [name, dflt] of Object.entries(MODULE_DEFAULTS)) {
    const v = values.get(`NODEMCU_CMODULE_${name.toUpperCase()}`);
    if (v !== undefined && v !== "y" && v !== "n") refuse(`CONFIG_NODEMCU_CMODULE_${name.toUpperCase()}=${v} is neither y nor n`);
    if (v === undefined ? dflt : v === "y") modules.add(name);
  }
  for (const k of values.keys()) {
    const mod = /^NODEMCU_CMODULE_([A-Z0-9_]+)$/.exec(k);
    if (mod && !(mod[1].toLowerCase() in MODULE_DEFAULTS)) refuse(`CONFIG_${k}: no such module at dev-esp32 7c5bb151`);
  }
  for (const r of REQUIRED_MODULES) {
    if (!modules.has(r)) refuse(`CONFIG_NODEMCU_CMODULE_${r.toUpperCase()}=n: LUA_REQUIRED_MODULES always selects it`);
  }

  const ending = (dir: "STDIN" | "STDOUT", dflt: LineEnding): LineEnding => {
    const set = (["LF", "CR", "CRLF"] as const).filter((e) => on(`NEWLIB_${dir}_LINE_ENDING_${e}`));
    if (set.length > 1) refuse(`CONFIG_NEWLIB_${dir}_LINE_ENDING_* sets ${set.join(" and ")}`);
    return set[0] ?? dflt;
  };

  const slotMemory = Number(values.get("NODEMCU_TASK_SLOT_MEMORY") ?? "2000");
  if (!Number.isInteger(slotMemory) || slotMemory < 80 || slotMemory > 16000) refuse(`CONFIG_NODEMCU_TASK_SLOT_MEMORY=${values.get("NODEMCU_TASK_SLOT_MEMORY")} is outside 80..16000`);
  // Unset, ESP-IDF's Kconfig default applies: 115200, which is why the link runs at LINK_BAUD.
  const baud = Number(values.get("ESP_CONSOLE_UART_BAUDRATE") ?? String(LINK_BAUD));
  if (!Number.isInteger(baud) || baud <= 0) refuse(`CONFIG_ESP_CONSOLE_UART_BAUDRATE=${values.get("ESP_CONSOLE_UART_BAUDRATE")} is not a baud rate`);
  const slots = queueSlots(slotMemory);
  return {
    source,
    modules,
    // ESP-IDF's newlib Kconfig defaults: stdin CR, stdout CRLF.
    stdinLineEnding: ending("STDIN", "CR"),
    stdoutLineEnding: ending("STDOUT", "CRLF"),
    highQueueSlots: slots.high,
    lowQueueSlots: slots.low,
    consoleBaud: baud,
  };
}

/** nodemcu-build/sdkconfig.fobkit of this checkout (found upwards from this module, in the source tree or build/node). */
export function defaultBuildFile(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const p = join(dir, "nodemcu-build", BUILD_FILE_NAME);
    if (existsSync(p)) return p;
    dir = resolve(dir, "..");
  }
  throw new Error(`nodemcu-build/${BUILD_FILE_NAME} not found above ${fileURLToPath(import.meta.url)}`);
}

/** Read a build file (default: the keyfob's). */
export function loadNodemcuBuild(path = defaultBuildFile()): NodemcuBuild {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new Error(`cannot read the NodeMCU build file ${path}: ${(e as Error).message}`);
  }
  return parseNodemcuBuild(text, path);
}
