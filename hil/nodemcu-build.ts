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
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { spiffsGeometry, type SpiffsGeometry } from "./flash.js";

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
  /** The partition table the build flashes (CONFIG_PARTITION_TABLE_CUSTOM_FILENAME) and the SPIFFS partition NodeMCU mounts from it. */
  readonly partitionTable: string;
  readonly spiffs: SpiffsGeometry;
  /** The table's LFS partition, bytes: always CMAKE_LFS_BYTES (a table with another is refused). */
  readonly lfsBytes: number;
}

/**
 * NodeMCU's own table, which its sdkconfig.defaults:5-6 selects
 * (CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="components/platform/partitions.csv"):
 * that file at 7c5bb151, verbatim. A fragment that names no table gets it.
 */
export const NODEMCU_PARTITION_TABLE = "components/platform/partitions.csv";
const NODEMCU_PARTITIONS_CSV = `# Name,  Type, SubType, Offset,  Size
nvs,           data, nvs,      0x9000,   0x6000
phy_init,      data, phy,      0xf000,   0x1000
factory,       app,  factory, 0x10000, 0x180000
# Type 0xC2 => NodeMCU. SubTypes: 0x01 = LFS
lfs,           0xC2, 0x01,           , 0x10000
storage,       data, spiffs,         , 0x70000
`;

/** A size or offset as ESP-IDF's gen_esp32part.py reads it: hex, decimal, or with a K or M suffix. */
function parseTableNumber(text: string): number | undefined {
  const t = text.trim();
  const m = /^(0x[0-9a-f]+|\d+)([km])?$/i.exec(t);
  if (!m) return undefined;
  const n = Number(m[1]);
  return n * (m[2] === undefined ? 1 : m[2].toLowerCase() === "k" ? 1024 : 1024 * 1024);
}

/**
 * The first partition of a table that `match` picks, as its size in bytes
 * (undefined if none): lines as ESP-IDF's gen_esp32part.py reads them (name,
 * type, subtype, offset, size; "#" to the end of a line is a comment).
 * Throws naming the file and line on a line or size it cannot read.
 */
function firstPartitionBytes(csv: string, source: string, match: (name: string, type: string, subtype: string) => boolean): number | undefined {
  let found: number | undefined;
  csv.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "" || found !== undefined) return;
    const cols = line.split(",").map((c) => c.trim());
    if (cols.length < 5) throw new Error(`${source}:${i + 1}: not a partition line (name, type, subtype, offset, size): ${JSON.stringify(raw)}`);
    const [name, type, subtype, , size] = cols;
    if (!match(name, type, subtype)) return;
    const bytes = parseTableNumber(size);
    if (bytes === undefined) throw new Error(`${source}:${i + 1}: partition ${name}: size ${JSON.stringify(size)} is not a number`);
    found = bytes;
  });
  return found;
}

/**
 * The SPIFFS partition NodeMCU mounts from a partition table: the one whose
 * name is `label`, or, with no label, the first data/spiffs partition
 * (components/platform/Kconfig:20-27 NODEMCU_DEFAULT_SPIFFS_LABEL; user_main.c:136-141
 * hands it to esp_vfs_spiffs_register). Throws naming the file and line on
 * anything it cannot read.
 */
export function spiffsPartitionBytes(csv: string, source: string, label: string | undefined): number {
  const found = firstPartitionBytes(csv, source, (name, type, subtype) =>
    (type === "data" || type === "0x01" || type === "1") && (subtype === "spiffs" || subtype.toLowerCase() === "0x82") && (label === undefined || name === label));
  if (found === undefined) throw new Error(`${source}: no data/spiffs partition${label ? ` named ${label}` : ""}: NodeMCU would have no file system (user_main.c: "no SPIFFS partition found")`);
  return found;
}

/**
 * The size of a table's LFS partition (type 0xC2 "NodeMCU", subtype 0x01
 * "LFS": components/platform/partitions.csv:5's comment; what
 * components/lua/common/lfs.c:26-33 looks up with esp_partition_find_first),
 * undefined if the table has none.
 */
export function lfsPartitionBytes(csv: string, source: string): number | undefined {
  return firstPartitionBytes(csv, source, (_, type, subtype) => parseTableNumber(type) === 0xc2 && parseTableNumber(subtype) === 0x01);
}

/**
 * What the firmware's build records as its LFS size, whatever table it
 * flashes: components/modules/CMakeLists.txt:250-257 at 7c5bb151 runs
 * `grep "^lfs,.*" ${PROJECT_DIR}/components/platform/partitions.csv | cut -d, -f5`
 * into BUILDINFO_LFS_SIZE (:211), which node.info() reports as lfs_size
 * (components/modules/node.c:475). That is NodeMCU's own table, never the
 * one CONFIG_PARTITION_TABLE_CUSTOM_FILENAME names, so a keyfob table with
 * another LFS partition (or none) builds a firmware that reports the wrong
 * size. The emulator refuses such a table (parseNodemcuBuild).
 */
export const CMAKE_LFS_BYTES = lfsPartitionBytes(NODEMCU_PARTITIONS_CSV, NODEMCU_PARTITION_TABLE)!;

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

/** Read a partition table the fragment names: beside the fragment, by its file name. */
function readTableBeside(source: string, file: string): string {
  const p = join(dirname(source), basename(file));
  try {
    return readFileSync(p, "utf8");
  } catch (e) {
    throw new Error(`${source}: CONFIG_PARTITION_TABLE_CUSTOM_FILENAME="${file}": the emulator reads it as ${p}, which cannot be read (${(e as Error).message})`);
  }
}

/** Parse an sdkconfig fragment; throws an Error naming the file, line and setting on anything it cannot model. */
export function parseNodemcuBuild(text: string, source: string, readTable: (file: string) => string = (file) => readTableBeside(source, file)): NodemcuBuild {
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
  const refuse = (what: string): never => {
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
  // tmr's tick model (nodemcu/tmr.ts) is FreeRTOS at 100 Hz, ESP-IDF's default, with assert() live.
  const hz = values.get("FREERTOS_HZ");
  if (hz !== undefined && hz !== "100") refuse(`CONFIG_FREERTOS_HZ=${hz}: the emulator's FreeRTOS ticks at 100 Hz, ESP-IDF's default (components/freertos/Kconfig:31-35)`);
  if (on("COMPILER_OPTIMIZATION_ASSERTIONS_DISABLE")) refuse("CONFIG_COMPILER_OPTIMIZATION_ASSERTIONS_DISABLE: the emulator panics where ESP-IDF's assert() does");
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
  // NodeMCU's sdkconfig.defaults:5-6 selects its own table; the fragment goes on top of it.
  if (values.get("PARTITION_TABLE_CUSTOM") === "n") refuse("CONFIG_PARTITION_TABLE_CUSTOM=n: ESP-IDF's built-in tables are not modelled (NodeMCU's sdkconfig.defaults:5 sets it)");
  const table = values.get("PARTITION_TABLE_CUSTOM_FILENAME") ?? NODEMCU_PARTITION_TABLE;
  const label = values.get("NODEMCU_DEFAULT_SPIFFS_LABEL");
  const csv = table === NODEMCU_PARTITION_TABLE ? NODEMCU_PARTITIONS_CSV : readTable(table);
  const bytes = spiffsPartitionBytes(csv, table, label === undefined || label === "" ? undefined : label);
  const lfs = lfsPartitionBytes(csv, table);
  if (lfs !== CMAKE_LFS_BYTES) {
    const hex = (n: number | undefined) => (n === undefined ? "none" : `0x${n.toString(16)}`);
    refuse(
      `${table}: LFS partition ${hex(lfs)}, but NodeMCU's build takes BUILDINFO_LFS_SIZE from its own components/platform/partitions.csv (lfs ${hex(CMAKE_LFS_BYTES)}; ` +
        `components/modules/CMakeLists.txt:250-257), whatever table it flashes: node.info() would report an LFS the board does not have (nodemcu-build/README.md)`,
    );
  }
  const spiffs = ((): SpiffsGeometry => {
    try {
      return spiffsGeometry(bytes);
    } catch (e) {
      return refuse(`${table}: ${(e as Error).message}`);
    }
  })();
  return {
    source,
    modules,
    // ESP-IDF's newlib Kconfig defaults: stdin CR, stdout CRLF.
    stdinLineEnding: ending("STDIN", "CR"),
    stdoutLineEnding: ending("STDOUT", "CRLF"),
    highQueueSlots: slots.high,
    lowQueueSlots: slots.low,
    consoleBaud: baud,
    partitionTable: table,
    spiffs,
    lfsBytes: CMAKE_LFS_BYTES,
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
