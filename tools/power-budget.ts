/**
 * The sleeping keyfob's power budget and wake-to-code time (issue 12, items 4
 * and 5), from a table of cited figures and one measured input: the Lua VM
 * instructions the image executes from boot to the code on the display.
 *
 *   node build/node/tools/power-budget.js            measure the image, print, write bench/results/power.json
 *   node build/node/tools/power-budget.js --instructions N --parse-equivalent M
 *                                                    use given counts instead of measuring (no lua32 needed)
 *   node build/node/tools/power-budget.js --json     the result as JSON on stdout, nothing written
 *
 * docs/power.md explains every figure, the circuit it assumes and the design
 * for the firmware; this file is the arithmetic. computeBudget() is pure: the
 * figures are data (FIGURES, BATTERIES), each with the source it comes from, so
 * a test checks both the arithmetic and that no figure is uncited.
 *
 * Measuring (measureWakeInstructions): a board directory gets the image as
 * installed (fobkit.lua + init.lua), is provisioned and locked in a first
 * power-on on build/lua32/lua32 (NodeMCU's number model) with the Lua
 * stand-ins of test/support/nodemcu-stand-ins.lua, then a second power-on is
 * counted with a count hook of 1: every VM instruction of the image (init.lua,
 * fobkit.lua and whatever they load) during boot and during one press until
 * the code is on the display. Instructions of the stand-ins are counted apart:
 * on the board they are C. A count hook does not see the parser, so the time
 * lua32 spends compiling fobkit.lua is measured too and expressed in VM
 * instructions at lua32's own measured time per instruction (same process,
 * same machine): the parser costs on the ESP32 what as many VM instructions
 * would. Issue 10 splits the image; measureWakeInstructions takes the files to
 * install, so the lead points it at whatever the split installs.
 */
import { benchProvisioningFrames } from "./bench-provisioning.js";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { INIT_SOURCE, initSource } from "../host/flash/init-lua.js";
import { imageFilePaths } from "../host/flash/image-files.js";
import { SPIFFS_MOUNT_READS_PER_BLOCK } from "../hil/flash.js";
import { loadNodemcuBuild } from "../hil/nodemcu-build.js";

const HERE = dirname(fileURLToPath(import.meta.url));
/** Source (tools/) or compiled (build/node/tools/): the repository root either way. */
const ROOT = existsSync(resolve(HERE, "..", "package.json")) ? resolve(HERE, "..") : resolve(HERE, "..", "..", "..");

/** One figure and where it comes from. */
export interface Figure {
  value: number;
  unit: string;
  /** Document, revision, section/table/page; or repository file:line at a commit. */
  source: string;
  /**
   * "seen": the text was read this session in the source named.
   * "derived": computed here from other cited figures or source lines.
   * "estimate": an engineering estimate, its reasoning in `source` (docs/power.md).
   * "recalled": from the named datasheet but not re-read this session: check against the PDF before layout.
   */
  basis: "seen" | "derived" | "estimate" | "recalled";
}

const NODEMCU = "nodemcu/nodemcu-firmware dev-esp32 @7c5bb151";
/** The keyfob's NodeMCU build (nodemcu-build/): its partition table sizes SPIFFS. */
const KEYFOB_BUILD = loadNodemcuBuild();
const IDF = "espressif/esp-idf v5.1.3 @e7771c75 (NodeMCU's sdk/esp32-esp-idf submodule)";
const WROOM = "ESP32-WROOM-32 Datasheet (Espressif), section 3.4 'RTC and Low-Power Management', Table 4 'Power Consumption by Power Modes'";
const MAX7219 = "MAX7219/MAX7221 datasheet (Maxim 19-4452 Rev 4, 7/03)";
const DS3231 = "DS3231 datasheet (Maxim 19-5170 Rev 10, 3/15)";

/** The segment patterns of the digits 0-9 (firmware/board/seven-segment-font.ts:16 at main 9800f14). */
export const DIGIT_SEGMENTS = [0x7e, 0x30, 0x6d, 0x79, 0x33, 0x5b, 0x5f, 0x70, 0x7f, 0x7b];

function popcount(v: number): number {
  let n = 0;
  for (let x = v; x !== 0; x >>>= 1) n += x & 1;
  return n;
}

/** Average lit segments of a uniformly random digit in the keyfob's font. */
export function averageDigitSegments(font: number[] = DIGIT_SEGMENTS): number {
  return font.reduce((s, v) => s + popcount(v), 0) / font.length;
}

export const FIGURES = {
  // --- ESP32 (WROOM-32 module) ---
  esp32DeepSleepUa: {
    value: 10,
    unit: "uA",
    source: `${WROOM}: Deep-sleep 'RTC timer + RTC memory' 10 uA. RTC memory stays on because rtcmem's RTC_NOINIT array (${NODEMCU} components/modules/rtcmem.c:9) lands in RTC slow memory (${IDF} components/esp_system/ld/esp32/sections.ld.in:90-97,153-155; memory.ld.in:150-151) and sleep_modes.c:1779-1797 keeps RTC_SLOW_MEM on when it holds data; ext1 with pull=false leaves RTC_PERIPH off (node.c:376-379, sleep_modes.c:1814-1826)`,
    basis: "seen",
  },
  esp32ActiveMa: {
    value: 50,
    unit: "mA",
    source: `${WROOM}: Modem-sleep (CPU on, radio off) 'Max speed 240 MHz: 30 mA ~ 50 mA'; the upper end, taken for 160 MHz as a bound (the ESP32 Series Datasheet gives a lower 160 MHz range); no radio: the image never calls wifi.start, wifi.c:106-123 only runs esp_wifi_init`,
    basis: "seen",
  },
  esp32LightSleepMa: {
    value: 0.8,
    unit: "mA",
    source: `${WROOM}: Light-sleep 0.8 mA (node.sleep, ${NODEMCU} components/modules/node.c:234-312, while the code is shown)`,
    basis: "seen",
  },
  cpuMhz: {
    value: 160,
    unit: "MHz",
    source: `${IDF} components/esp_system/port/soc/esp32/Kconfig.cpu:4 (default ESP_DEFAULT_CPU_FREQ_MHZ_160); neither NodeMCU's sdkconfig.defaults nor nodemcu-build/sdkconfig.fobkit sets it`,
    basis: "seen",
  },
  bootToAppMainMs: {
    value: 300,
    unit: "ms",
    source: "Espressif ESP Techpedia, 'ESP Chip Startup Time Optimization' (docs.espressif.com/projects/esp-techpedia, reduce-boot-time), Introduction: power-on to app_main 'generally around 300 milliseconds' unoptimized; a deep-sleep wake runs the same ROM + 2nd-stage bootloader + image validation path (CONFIG_BOOTLOADER_SKIP_VALIDATE_IN_DEEP_SLEEP default n, esp-idf docs/en/api-guides/performance/speed.rst:124-136 at e7771c75)",
    basis: "seen",
  },
  spiffsReadUs: {
    value: 110,
    unit: "us",
    source: "espressif/esp-idf issue #3277 (igrr, 2019-04-08): SPIFFS stat() best case 736 flash reads in 80,948 us = 110 us per read",
    basis: "seen",
  },
  spiffsPartitionBytes: {
    value: KEYFOB_BUILD.spiffs.partitionBytes,
    unit: "bytes",
    source: `nodemcu-build/partitions-fobkit.csv (storage, spiffs, 0x${KEYFOB_BUILD.spiffs.partitionBytes.toString(16)}), the table nodemcu-build/sdkconfig.fobkit selects (CONFIG_PARTITION_TABLE_CUSTOM_FILENAME; ${NODEMCU} components/platform/partitions.csv:7 has 0x70000)`,
    basis: "seen",
  },
  spiffsBlockBytes: {
    value: 4096,
    unit: "bytes",
    source: `${IDF} components/spiffs/Kconfig (SPIFFS logical block = flash sector 4096; page 256)`,
    basis: "recalled",
  },
  spiffsPageBytes: {
    value: 256,
    unit: "bytes",
    source: `${IDF} components/spiffs/Kconfig SPIFFS_PAGE_SIZE default 256`,
    basis: "recalled",
  },
  nodemcuOtherInitMs: {
    value: 20,
    unit: "ms",
    source: `estimate (docs/power.md 'Wake to code'): app_main's task_init, esp_event loop, nvs_flash_init, esp_netif_init, console_init (${NODEMCU} components/base_nodemcu/user_main.c:286-312), esp_wifi_init at module init (wifi.c:106-123), luaL_openlibs and the ~80-byte banner at 115200 baud = 7 ms (components/lua/lua-5.3/lua.c:222-247)`,
    basis: "estimate",
  },
  cyclesPerVmInstruction: {
    value: 300,
    unit: "cycles",
    source: "estimate, conservative (docs/power.md 'Cost of a Lua VM instruction'): NodeMCU on the ESP8266's Xtensa at 80 MHz toggled a GPIO from a localized Lua loop at ~51 kHz (nodemcu-firmware issue #177, 2015-02-05) = ~1570 cycles per iteration of ~9 VM instructions and 2 C calls, ~175 cycles per instruction; code running from the flash cache pays an order of magnitude more on a miss (nodemcu-firmware PR #2768, TerryE, 2019-09-25); 300 taken (lua32 on the x86 host measures ~11 host cycles per instruction: power.json image.hostCyclesPerInstruction)",
    basis: "estimate",
  },
  i2cHz: {
    value: 400000,
    unit: "Hz",
    source: `firmware/board/rtc-ds3231.ts ensureBus: i2c.FAST; ${NODEMCU} components/platform/include/platform.h:151 PLATFORM_I2C_SPEED_FAST = 400000`,
    basis: "seen",
  },
  i2cWakeBits: {
    value: (3 + 16) * 9 + 3,
    unit: "bits",
    source: "firmware/board/rtc-ds3231.ts transferRead: address+W, register 00h, repeated start, address+R, READ_LENGTH = 16 data bytes; 9 clocks per byte (8 + ACK) plus start, repeated start and stop",
    basis: "derived",
  },
  spiHz: {
    value: 1000000,
    unit: "Hz",
    source: "firmware/board/display-max7219.ts SPI_FREQ_HZ = 1000000",
    basis: "seen",
  },
  spiWakeFrames: {
    value: 5 + 8 + 9,
    unit: "frames",
    source: "firmware/board/display-max7219.ts: displayInit writes 5 control registers + 8 digits, showSegments 8 digits + shutdown = 22 frames of 16 bits",
    basis: "derived",
  },
  spiTransactionUs: {
    value: 25,
    unit: "us",
    source: `${IDF} docs/en/api-reference/peripherals/spi_master.rst:476-494 'Interrupt Transaction via CPU: 25 us' on ESP32 (NodeMCU spi_master.c:158 uses spi_device_transmit; the display's DMA channel is 0)`,
    basis: "seen",
  },
  powerRailSettleMs: {
    value: 1,
    unit: "ms",
    source: "estimate (docs/power.md 'Circuit'): a P-MOSFET high-side switch charging the rail's decoupling (tens of uF at most) through the cell's internal resistance; rises in well under 1 ms",
    basis: "estimate",
  },
  // --- MAX7219 ---
  max7219SegmentMa: {
    value: 10,
    unit: "mA",
    source: `${MAX7219} Table 11 'RSET vs. Segment Current and LED Forward Voltage': ISEG = 10 mA with RSET = 63.7 kOhm at VLED 2.0 V (the board's RSET, a design choice: docs/power.md)`,
    basis: "recalled",
  },
  max7219DutyFraction: {
    value: 7 / 32,
    unit: "fraction",
    source: `firmware/board/display-max7219.ts INTENSITY = 0x03; ${MAX7219} Table 7 'Intensity Register Format': 0x03 = duty 7/32`,
    basis: "seen",
  },
  max7219QuiescentMa: {
    value: 8,
    unit: "mA",
    source: `${MAX7219} Electrical Characteristics, 'Operating Supply Current' I+ with RSET open circuit: 8 mA max`,
    basis: "recalled",
  },
  max7219ShutdownUa: {
    value: 150,
    unit: "uA",
    source: `${MAX7219} Features and Electrical Characteristics: 'Low-Power Shutdown' 150 uA (not drawn in sleep: the display rail is switched off)`,
    basis: "seen",
  },
  displaySegmentsPerDigit: {
    value: averageDigitSegments(),
    unit: "segments",
    source: "firmware/board/seven-segment-font.ts:16 (digits 0-9: 6,2,5,5,4,5,6,3,7,6 segments; average of a random digit)",
    basis: "derived",
  },
  showMs: {
    value: 10000,
    unit: "ms",
    source: "firmware/app/link.ts SHOW_MS = 10000 (how long a code stays on the display today)",
    basis: "seen",
  },
  lockedShowMs: {
    value: 7000,
    unit: "ms",
    source: "firmware/app/power.ts LOCKED_SHOW_MS = 7000, in light sleep (docs/power.md 'Battery'): a sleeping locked keyfob shows its code 7 s, 'a few seconds' (issue 12 item 1), the longest display that keeps 3 years on 3 x AAA with the max figures here; at today's SHOW_MS the budget gives less (power.json sensitivity)",
    basis: "estimate",
  },
  // --- DS3231 ---
  ds3231IbattUa: {
    value: 3.0,
    unit: "uA",
    source: `${DS3231} Electrical Characteristics (VCC = 0 V): Timekeeping Battery Current IBATT, EOSC = 0, BBSQW = 0, SCL = SDA = 0 V or VBAT, VBAT = 3.63 V: 0.84 uA typ, 3.0 uA max (the max taken); drawn from the DS3231's own backup cell, not the main battery`,
    basis: "recalled",
  },
  ds3231IddMa: {
    value: 0.2,
    unit: "mA",
    source: `${DS3231} Electrical Characteristics: Active Supply Current IDDA (I2C active) VCC = 3.63 V: 200 uA max`,
    basis: "recalled",
  },
  ds3231OnMs: {
    value: 5,
    unit: "ms",
    source: "estimate: the DS3231 rail is on from the switch to the end of the one read (settle 1 ms + I2C and Lua well under 5 ms), then off (docs/power.md 'Sequence')",
    basis: "estimate",
  },
  backupCellMah: {
    value: 225,
    unit: "mAh",
    source: "CR2032 coin cell, typical capacity 225 mAh to 2.0 V (Energizer CR2032 product datasheet; capacity table in gist christophermark/384ac395 lists 225 mAh)",
    basis: "recalled",
  },
  // --- regulator, switches, button ---
  ldoIqUa: {
    value: 2,
    unit: "uA",
    source: "Richtek RT9080 datasheet (DS9080-00): '2 uA IQ, 600 mA Low-Dropout Linear Regulator', 1.2 V to 5.5 V input, dropout 0.31 V at 600 mA (a devkit's AMS1117 draws mA: docs/power.md)",
    basis: "seen",
  },
  switchLeakageUa: {
    value: 2,
    unit: "uA",
    source: "two P-MOSFET load switches off: IDSS 1 uA max each at 25 C (typical small-signal P-MOSFET, e.g. Diodes DMG2305UX datasheet, Electrical Characteristics, Zero Gate Voltage Drain Current)",
    basis: "recalled",
  },
  buttonPullupOhm: {
    value: 100000,
    unit: "ohm",
    source: "design choice (docs/power.md 'The button'): external 100 kOhm to the 3.3 V rail; current flows only while pressed",
    basis: "estimate",
  },
  pressMs: {
    value: 300,
    unit: "ms",
    source: "estimate: a press held about 0.3 s",
    basis: "estimate",
  },
  railVolts: {
    value: 3.3,
    unit: "V",
    source: "RT9080-33 fixed output 3.3 V (RT9080 datasheet ordering information)",
    basis: "seen",
  },
  usbBridgeSleepUa: {
    value: 0,
    unit: "uA",
    source: "design choice (docs/power.md 'Circuit'): the USB-serial bridge is powered from USB VBUS only, so on battery it is unpowered",
    basis: "estimate",
  },
} satisfies Record<string, Figure>;

export type FigureTable = { [K in keyof typeof FIGURES]: Figure };

export interface Battery {
  name: string;
  capacityMah: Figure;
  /** Share of the rated capacity usable above the cut-off the circuit needs. */
  usableFraction: Figure;
  selfDischargePerYear: Figure;
}

export const BATTERIES: Record<string, Battery> = {
  "3xAAA-L92": {
    name: "3 x AAA lithium iron disulfide (Energizer L92), in series: 4.5 V nominal",
    capacityMah: {
      value: 1200,
      unit: "mAh",
      source: "Energizer L92 product datasheet: typical capacity 1200 mAh (25 mA to 0.8 V, 21 C)",
      basis: "recalled",
    },
    usableFraction: {
      value: 0.8,
      unit: "fraction",
      source: "estimate (docs/power.md 'Battery'): the MAX7219 needs V+ >= 4.0 V (1.33 V a cell); Li/FeS2 holds ~1.4-1.5 V until near the end, so 80% is taken as usable",
      basis: "estimate",
    },
    selfDischargePerYear: {
      value: 0.01,
      unit: "fraction/year",
      source: "Energizer L91/L92 datasheets: shelf life 15-20 years at 21 C (90% of capacity after 15 years on the older L91 sheet quoted in candlepowerforums thread 352033) = under 1%/year; 1% taken",
      basis: "recalled",
    },
  },
};

export const HOURS_PER_YEAR = 8760;
export const DEFAULT_PRESSES_PER_DAY = 10;

/** What the image costs between the wake and the code: measured on lua32. */
export interface ImageWork {
  /** VM instructions of the image (not the stand-ins) from boot to the code on the display. */
  vmInstructions: number;
  /** The parser's work (compiling fobkit.lua in RAM) in VM instructions at lua32's measured rate. */
  parseEquivalentInstructions: number;
  /** Bytes the board reads from SPIFFS to boot (init.lua + the image). */
  imageBytes: number;
  /** Files opened at boot (each open scans SPIFFS's lookup pages). */
  filesOpened: number;
}

export interface BudgetInput {
  figures: FigureTable;
  battery: Battery;
  pressesPerDay: number;
  image: ImageWork;
}

export interface PartRow {
  part: string;
  sleepUa: number;
  bootMa: number;
  displayOnMa: number;
  source: string;
}

export interface Budget {
  wakeToCodeMs: number;
  wakeToCode: { bootToAppMainMs: number; spiffsMs: number; otherInitMs: number; imageMs: number; railsMs: number; i2cMs: number; spiMs: number };
  parts: PartRow[];
  sleepUa: number;
  displayOnMa: number;
  energyPerPressMas: number;
  energyPerPress: { wakeMas: number; displayMas: number; rtcMas: number; buttonMas: number };
  perYearMah: { sleep: number; presses: number; selfDischarge: number; total: number };
  battery: string;
  batteryYears: number;
  pressesPerDay: number;
  rtcBackupCellYears: number;
}

function check(name: string, v: number, min = 0): void {
  if (!Number.isFinite(v) || v < min) throw new RangeError(`${name} must be a finite number >= ${min}, got ${v}`);
}

/** The budget, from figures and the measured image work. Pure. */
export function computeBudget(input: BudgetInput): Budget {
  const f = input.figures;
  const v = (k: keyof FigureTable) => f[k].value;
  check("pressesPerDay", input.pressesPerDay);
  check("image.vmInstructions", input.image.vmInstructions);
  check("image.parseEquivalentInstructions", input.image.parseEquivalentInstructions);
  check("image.imageBytes", input.image.imageBytes);
  check("image.filesOpened", input.image.filesOpened);
  for (const k of Object.keys(f) as (keyof FigureTable)[]) check(`figure ${k}`, f[k].value);
  // Divisors: a zero would turn the budget into Infinity instead of an error.
  for (const k of ["cpuMhz", "i2cHz", "spiHz", "spiffsBlockBytes", "spiffsPageBytes", "buttonPullupOhm", "ds3231IbattUa"] as const) {
    if (!(f[k].value > 0)) throw new RangeError(`figure ${k} must be > 0, got ${f[k].value}`);
  }
  const bat = input.battery;
  if (!(bat.capacityMah.value > 0)) throw new RangeError(`battery capacityMah must be > 0, got ${bat.capacityMah.value}`);
  if (!(bat.usableFraction.value > 0 && bat.usableFraction.value <= 1)) throw new RangeError(`battery usableFraction must be in (0, 1], got ${bat.usableFraction.value}`);
  if (!(bat.selfDischargePerYear.value >= 0 && bat.selfDischargePerYear.value < 1)) throw new RangeError(`battery selfDischargePerYear must be in [0, 1), got ${bat.selfDischargePerYear.value}`);

  // --- wake to code ---
  const blocks = v("spiffsPartitionBytes") / v("spiffsBlockBytes");
  // Mount reads three pages a block (magic, erase count, lookup page: SPIFFS_MOUNT_READS_PER_BLOCK, hil/flash.ts);
  // an open scans the lookup pages again; the data is read a page at a time.
  const spiffsReads = blocks * (SPIFFS_MOUNT_READS_PER_BLOCK + input.image.filesOpened) + Math.ceil(input.image.imageBytes / v("spiffsPageBytes"));
  const spiffsMs = (spiffsReads * v("spiffsReadUs")) / 1000;
  const instructions = input.image.vmInstructions + input.image.parseEquivalentInstructions;
  const imageMs = (instructions * v("cyclesPerVmInstruction")) / (v("cpuMhz") * 1000);
  const i2cMs = (v("i2cWakeBits") / v("i2cHz")) * 1000;
  const spiMs = (v("spiWakeFrames") * (v("spiTransactionUs") + (16 / v("spiHz")) * 1e6)) / 1000;
  const railsMs = 2 * v("powerRailSettleMs");
  const wakeToCode = {
    bootToAppMainMs: v("bootToAppMainMs"),
    spiffsMs,
    otherInitMs: v("nodemcuOtherInitMs"),
    imageMs,
    railsMs,
    i2cMs,
    spiMs,
  };
  const wakeToCodeMs = Object.values(wakeToCode).reduce((a, b) => a + b, 0);

  // --- currents ---
  const displayOnMa = v("displaySegmentsPerDigit") * v("max7219SegmentMa") * v("max7219DutyFraction") + v("max7219QuiescentMa");
  const buttonPressedMa = (v("railVolts") / v("buttonPullupOhm")) * 1000;
  const parts: PartRow[] = [
    { part: "ESP32 (WROOM-32)", sleepUa: v("esp32DeepSleepUa"), bootMa: v("esp32ActiveMa"), displayOnMa: v("esp32LightSleepMa"), source: "esp32DeepSleepUa, esp32ActiveMa, esp32LightSleepMa" },
    { part: "MAX7219 + 8 digits (switched rail)", sleepUa: 0, bootMa: 0, displayOnMa, source: "max7219SegmentMa, max7219DutyFraction, max7219QuiescentMa, displaySegmentsPerDigit" },
    { part: "DS3231 (VCC switched; VBAT own cell)", sleepUa: 0, bootMa: v("ds3231IddMa"), displayOnMa: 0, source: "ds3231IddMa (ds3231IbattUa comes from its backup cell)" },
    { part: "LDO RT9080-33", sleepUa: v("ldoIqUa"), bootMa: v("ldoIqUa") / 1000, displayOnMa: v("ldoIqUa") / 1000, source: "ldoIqUa" },
    { part: "Load switches (2, off)", sleepUa: v("switchLeakageUa"), bootMa: 0, displayOnMa: 0, source: "switchLeakageUa" },
    { part: "Button pull-up (100 kOhm, external)", sleepUa: 0, bootMa: 0, displayOnMa: 0, source: "buttonPullupOhm: only while pressed" },
    { part: "USB-serial bridge (VBUS only)", sleepUa: v("usbBridgeSleepUa"), bootMa: 0, displayOnMa: 0, source: "usbBridgeSleepUa" },
  ];
  const sleepUa = parts.reduce((s, p) => s + p.sleepUa, 0);

  // --- energy per press (mA x s) ---
  const wakeMas = (wakeToCodeMs / 1000) * (v("esp32ActiveMa") + v("ldoIqUa") / 1000);
  const displayMas = (v("lockedShowMs") / 1000) * (displayOnMa + v("esp32LightSleepMa") + v("ldoIqUa") / 1000);
  const rtcMas = (v("ds3231OnMs") / 1000) * v("ds3231IddMa");
  const buttonMas = (v("pressMs") / 1000) * buttonPressedMa;
  const energyPerPress = { wakeMas, displayMas, rtcMas, buttonMas };
  const energyPerPressMas = wakeMas + displayMas + rtcMas + buttonMas;

  // --- a year ---
  const b = input.battery;
  const sleepMah = (sleepUa / 1000) * HOURS_PER_YEAR;
  const pressesMah = (input.pressesPerDay * 365 * energyPerPressMas) / 3600;
  const selfDischargeMah = b.capacityMah.value * b.selfDischargePerYear.value;
  const total = sleepMah + pressesMah + selfDischargeMah;
  const batteryYears = (b.capacityMah.value * b.usableFraction.value) / total;
  const rtcBackupCellYears = v("backupCellMah") / ((v("ds3231IbattUa") / 1000) * HOURS_PER_YEAR);
  return {
    wakeToCodeMs,
    wakeToCode,
    parts,
    sleepUa,
    displayOnMa,
    energyPerPressMas,
    energyPerPress,
    perYearMah: { sleep: sleepMah, presses: pressesMah, selfDischarge: selfDischargeMah, total },
    battery: b.name,
    batteryYears,
    pressesPerDay: input.pressesPerDay,
    rtcBackupCellYears,
  };
}

// ---------------------------------------------------------------------------
// Measuring the image on lua32

export interface WakeMeasurement extends ImageWork {
  vm: string;
  bootInstructions: number;
  pressInstructions: number;
  standInInstructions: number;
  hostParseMs: number;
  hostNsPerInstruction: number;
  /** hostNsPerInstruction x the host's clock from /proc/cpuinfo, when it has one. */
  hostCyclesPerInstruction?: number;
  installed: string[];
  runs: number;
}

const LUA32 = resolve(ROOT, "build", "lua32", "lua32");
const STAND_INS = resolve(ROOT, "test", "support", "nodemcu-stand-ins.lua");

function luaBytes(bytes: ArrayLike<number>): string {
  return '"' + Array.from(bytes, (x) => "\\" + String(x).padStart(3, "0")).join("") + '"';
}

function runLua(dir: string, body: string): Record<string, number> {
  const script = `BOARD = dofile(${JSON.stringify(STAND_INS)})\nlocal R = {}\n${body}\nlocal o = {} for k, x in pairs(R) do o[#o + 1] = string.format("%q:%s", k, string.format(math.type(x) == "integer" and "%d" or "%.17g", x)) end io.write("{" .. table.concat(o, ",") .. "}")\n`;
  if (!existsSync(LUA32)) throw new Error(`${LUA32} missing (scripts/setup.sh builds it; run make setup)`);
  const r = spawnSync(LUA32, ["-"], { cwd: dir, input: script, maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`lua32: ${r.stderr.toString()}${r.error ? r.error.message : ""}`);
  const text = r.stdout.toString();
  return JSON.parse(text.slice(text.lastIndexOf("\n") + 1)) as Record<string, number>;
}

/** Boots the locked keyfob and presses once; counts (MODE "count") or times (MODE "time"). */
const WAKE = String.raw`
BOARD.ds3231.base = RTC_BASE BOARD.ds3231.reg[0x0f] = 0
local stand = "@" .. STAND_INS
local getinfo = debug.getinfo
local image, other = 0, 0
local function hook()
  local s = getinfo(2, "S").source
  if s == stand or s == "=stdin" then other = other + 1 else image = image + 1 end
end
local function code_shown()
  for i = #BOARD.spi, 1, -1 do if BOARD.spi[i] == "\12\1" then return true end end
  return false
end
local function presses()
  for _ = 1, RATE_PRESSES do BOARD.advance(60000) BOARD.press() BOARD.advance(50) BOARD.release() end
end
if MODE == "count" then
  debug.sethook(hook, "", 1)
  BOARD.boot()
  debug.sethook()
  R.boot_image, R.boot_other = image, other
  if BOARD.init_error or not BOARD.console.started then error("boot failed: " .. tostring(BOARD.init_error)) end
  BOARD.spi = {}
  image, other = 0, 0
  debug.sethook(hook, "", 1)
  BOARD.press() BOARD.advance(50) BOARD.release()
  debug.sethook()
  if not code_shown() then error("no code on the display after the press") end
  R.press_image, R.press_other = image, other
  BOARD.log_spi = false
  image, other = 0, 0
  debug.sethook(hook, "", 1)
  presses()
  debug.sethook()
  R.rate_instructions = image + other
else
  BOARD.boot()
  if BOARD.init_error or not BOARD.console.started then error("boot failed: " .. tostring(BOARD.init_error)) end
  BOARD.press() BOARD.advance(50) BOARD.release()
  BOARD.log_spi = false
  local clock = os.clock
  collectgarbage("collect")
  local t0 = clock()
  presses()
  R.rate_s = clock() - t0
  collectgarbage("collect")
  local n, t1 = 0, clock()
  repeat
    for _, f in ipairs(INSTALLED) do assert(loadfile(f)) end
    n = n + 1
  until clock() - t1 > 0.2 and n >= 3
  R.parse_s = (clock() - t1) / n
end
`;

/** Presses timed (and counted) for lua32's time per VM instruction: long enough for os.clock. */
const RATE_PRESSES = 100;

function hostMhz(): number | undefined {
  try {
    const m = /cpu MHz\s*:\s*([0-9.]+)/.exec(readFileSync("/proc/cpuinfo", "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Count the image's VM instructions from boot to the code on the display, and
 * the parser's work in instruction equivalents. files: the image files as the
 * board holds them (name on the board -> path), init.lua added.
 */
export function measureWakeInstructions(files: Record<string, string>, opts: { runs?: number; bytecode?: boolean } = {}): WakeMeasurement {
  const runs = opts.runs ?? 5;
  const frames = benchProvisioningFrames();
  const dir = mkdtempSync(join(tmpdir(), "fobkit-power-"));
  try {
    // init.lua as the flasher writes it (host/flash/init-lua.ts), booting the core's source or its bytecode.
    let init = initSource("fobkit.lua");
    let imageBytes = Buffer.byteLength(init);
    for (const [name, path] of Object.entries(files)) {
      copyFileSync(path, join(dir, name));
      imageBytes += readFileSync(path).length;
    }
    let names = Object.keys(files);
    if (opts.bytecode) {
      // As every install leaves it (node.compile, node.c:718-779: stripped bytecode; the source removed), init.lua loading fobkit.lc.
      const lua = names.filter((n) => n.endsWith(".lua"));
      runLua(dir, lua.map((n) => `node.compile(${JSON.stringify(n)}) os.remove(${JSON.stringify(n)})`).join("\n"));
      names = names.map((n) => (n.endsWith(".lua") ? n.slice(0, -4) + ".lc" : n));
      init = initSource("fobkit.lc");
      imageBytes = Buffer.byteLength(init) + names.reduce((sum, n) => sum + readFileSync(join(dir, n)).length, 0);
    }
    writeFileSync(join(dir, "init.lua"), init);
    const installed = [...names, "init.lua"];
    const first = runLua(dir, `BOARD.log_spi = false
      assert(BOARD.boot(), BOARD.init_error)
      BOARD.rx(${luaBytes(frames)})
      local tx = BOARD.take_tx()
      R.replies = #tx
      R.rtc_base = BOARD.ds3231.base
      R.errors = #BOARD.errors`);
    if (first.errors !== 0) throw new Error("provisioning raised in a callback");
    const prelude = `RATE_PRESSES = ${RATE_PRESSES}\nRTC_BASE = ${first.rtc_base}\nSTAND_INS = ${JSON.stringify(STAND_INS)}\nINSTALLED = { ${names.map((n) => JSON.stringify(n)).join(", ")} }\n`;
    const counted = runLua(dir, `${prelude}MODE = "count"\n${WAKE}`);
    const timed: { rate: number; parse: number }[] = [];
    for (let i = 0; i < runs; i++) {
      const t = runLua(dir, `${prelude}MODE = "time"\n${WAKE}`);
      timed.push({ rate: t.rate_s, parse: t.parse_s });
    }
    // lua32's time per VM instruction over RATE_PRESSES presses (the image's own work, stand-ins and GC included).
    // The fastest of the runs for both: on a shared machine, interference only ever adds time.
    const sPerInstr = Math.min(...timed.map((t) => t.rate)) / counted.rate_instructions;
    const parseS = Math.min(...timed.map((t) => t.parse));
    const parseEquivalent = Math.round(parseS / sPerInstr);
    return {
      vm: "lua32: Debian lua5.3 5.3.6 source, -DLUA_32BITS -m32 (NodeMCU's int32/float32 number model), count hook of 1" + (opts.bytecode ? "; installed as bytecode (node.compile stand-in)" : "; installed as source"),
      vmInstructions: counted.boot_image + counted.press_image,
      parseEquivalentInstructions: parseEquivalent,
      imageBytes,
      filesOpened: installed.length,
      bootInstructions: counted.boot_image,
      pressInstructions: counted.press_image,
      standInInstructions: counted.boot_other + counted.press_other,
      hostParseMs: parseS * 1000,
      hostNsPerInstruction: sPerInstr * 1e9,
      ...(hostMhz() === undefined ? {} : { hostCyclesPerInstruction: sPerInstr * 1e9 * (hostMhz() as number) / 1000 }),
      installed,
      runs,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------------------
// Output

const fmt = (x: number, d = 1) => x.toFixed(d);

export function formatBudget(b: Budget, m?: WakeMeasurement): string {
  const lines: string[] = [];
  lines.push("part                                   sleep uA   boot mA   display-on mA");
  for (const p of b.parts) lines.push(`${p.part.padEnd(38)} ${fmt(p.sleepUa, 2).padStart(8)} ${fmt(p.bootMa, 3).padStart(9)} ${fmt(p.displayOnMa, 3).padStart(15)}`);
  lines.push(`${"total".padEnd(38)} ${fmt(b.sleepUa, 2).padStart(8)}`);
  const w = b.wakeToCode;
  lines.push("");
  lines.push(`wake to code: ${fmt(b.wakeToCodeMs)} ms = boot to app_main ${fmt(w.bootToAppMainMs)} + SPIFFS ${fmt(w.spiffsMs)} + other init ${fmt(w.otherInitMs)} + image ${fmt(w.imageMs)} + rails ${fmt(w.railsMs)} + I2C ${fmt(w.i2cMs, 3)} + SPI ${fmt(w.spiMs, 3)} (goal <= 1000 ms)`);
  if (m) lines.push(`  image: ${m.vmInstructions} VM instructions (boot ${m.bootInstructions}, press ${m.pressInstructions}) + ${m.parseEquivalentInstructions} parser-equivalent (lua32 parses in ${fmt(m.hostParseMs, 2)} ms at ${fmt(m.hostNsPerInstruction, 1)} ns/instruction); ${m.standInInstructions} stand-in instructions not counted (C on the board)`);
  const e = b.energyPerPress;
  lines.push(`energy per press: ${fmt(b.energyPerPressMas)} mA*s = wake ${fmt(e.wakeMas)} + display ${fmt(e.displayMas)} + DS3231 ${fmt(e.rtcMas, 4)} + button ${fmt(e.buttonMas, 4)}`);
  const y = b.perYearMah;
  lines.push(`per year: sleep ${fmt(y.sleep)} + ${b.pressesPerDay} presses/day ${fmt(y.presses)} + self-discharge ${fmt(y.selfDischarge)} = ${fmt(y.total)} mAh`);
  lines.push(`battery: ${b.battery}: ${fmt(b.batteryYears, 2)} years (goal >= 3)`);
  lines.push(`DS3231 backup cell (CR2032 at IBATT max): ${fmt(b.rtcBackupCellYears, 1)} years`);
  return lines.join("\n");
}

function usage(): string {
  return [
    "usage: power-budget [--instructions N --parse-equivalent M --image-bytes B] [--presses-per-day N] [--json]",
    "  Measures the image's wake-to-code instructions on build/lua32 (make setup, make firmware first),",
    "  computes the keyfob's power budget from the cited figures in tools/power-budget.ts (see docs/power.md),",
    "  prints it and writes bench/results/power.json.",
    "  --instructions N, --parse-equivalent M: use these counts instead of measuring (no lua32 needed)",
    "  --image-bytes B: bytes read from SPIFFS at boot when not measuring (default: the built image + init.lua)",
    "  --presses-per-day N: default 10",
    "  --json: print the JSON only, write nothing",
  ].join("\n");
}

function numberArg(args: string[], name: string): number | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const s = args[i + 1];
  const n = Number(s);
  if (s === undefined || !Number.isFinite(n) || n < 0) throw new RangeError(`${name} needs a non-negative number, got ${s === undefined ? "nothing" : JSON.stringify(s)}`);
  return n;
}

export interface Sensitivity {
  batteryYearsAtTodaysShowMs: number;
  wakeToCodeMsAt3xCyclesPerInstruction: number;
  wakeToCodeMsWithBootToAppMain1000: number;
  /** The same image booted from its Lua source (before issue 10's install compiled it): the parser's work on every wake. */
  wakeToCodeMsFromSource?: number;
  batteryYearsFromSource?: number;
}

export async function runPowerBench(args: string[] = []): Promise<{ budget: Budget; measurement?: WakeMeasurement; json: Record<string, unknown>; sensitivity: Sensitivity }> {
  const known = new Set(["--instructions", "--parse-equivalent", "--image-bytes", "--presses-per-day", "--json", "--help"]);
  for (let i = 0; i < args.length; i++) {
    if (!known.has(args[i])) throw new RangeError(`unknown option ${JSON.stringify(args[i])} (--help lists them)`);
    if (args[i] !== "--json" && args[i] !== "--help") i++;
  }
  const pressesPerDay = numberArg(args, "--presses-per-day") ?? DEFAULT_PRESSES_PER_DAY;
  const given = numberArg(args, "--instructions");
  const givenParse = numberArg(args, "--parse-equivalent");
  const image = resolve(ROOT, "build", "firmware", "fobkit.lua");
  let measurement: WakeMeasurement | undefined;
  let sourceMeasurement: WakeMeasurement | undefined;
  let work: ImageWork;
  if (given !== undefined) {
    if (givenParse === undefined) throw new RangeError("--instructions needs --parse-equivalent too (0 if the image is bytecode)");
    const bytes = numberArg(args, "--image-bytes") ?? (existsSync(image) ? readFileSync(image).length : 0) + Buffer.byteLength(INIT_SOURCE);
    work = { vmInstructions: given, parseEquivalentInstructions: givenParse, imageBytes: bytes, filesOpened: 2 };
  } else {
    if (!existsSync(image)) throw new Error(`${image} missing: run make firmware first (or give --instructions)`);
    // Every file of the image as the board holds it; the board boots the bytecode node.compile left (issue 10).
    const files = Object.fromEntries(imageFilePaths(image).map((f) => [f.name, f.path]));
    measurement = measureWakeInstructions(files, { bytecode: true });
    sourceMeasurement = measureWakeInstructions(files);
    work = measurement;
  }
  const battery = BATTERIES["3xAAA-L92"];
  const budget = computeBudget({ figures: FIGURES, battery, pressesPerDay, image: work });
  const withFigure = (k: keyof FigureTable, value: number) => computeBudget({ figures: { ...FIGURES, [k]: { ...FIGURES[k], value } }, battery, pressesPerDay, image: work });
  const sensitivity = {
    batteryYearsAtTodaysShowMs: Math.round(withFigure("lockedShowMs", FIGURES.showMs.value).batteryYears * 100) / 100,
    wakeToCodeMsAt3xCyclesPerInstruction: Math.round(withFigure("cyclesPerVmInstruction", 3 * FIGURES.cyclesPerVmInstruction.value).wakeToCodeMs),
    wakeToCodeMsWithBootToAppMain1000: Math.round(withFigure("bootToAppMainMs", 1000).wakeToCodeMs),
    ...(sourceMeasurement === undefined
      ? {}
      : (() => {
          const src = computeBudget({ figures: FIGURES, battery, pressesPerDay, image: sourceMeasurement });
          return { wakeToCodeMsFromSource: Math.round(src.wakeToCodeMs), batteryYearsFromSource: Math.round(src.batteryYears * 100) / 100 };
        })()),
  };
  const json = {
    wakeToCodeMs: Math.round(budget.wakeToCodeMs),
    batteryYears: Math.round(budget.batteryYears * 100) / 100,
    battery: budget.battery,
    pressesPerDay,
    goals: { wakeToCodeMs: 1000, batteryYears: 3 },
    wakeToCode: budget.wakeToCode,
    sleepUa: budget.sleepUa,
    displayOnMa: budget.displayOnMa,
    energyPerPressMas: budget.energyPerPressMas,
    energyPerPress: budget.energyPerPress,
    perYearMah: budget.perYearMah,
    rtcBackupCellYears: budget.rtcBackupCellYears,
    sensitivity,
    parts: budget.parts,
    image: measurement ?? { ...work, given: true },
    ...(sourceMeasurement === undefined ? {} : { imageAsSource: sourceMeasurement }),
    figures: FIGURES,
    batteryFigures: battery,
    method: "tools/power-budget.ts computeBudget; figures and their sources in FIGURES; explained in docs/power.md",
  };
  return { budget, measurement, json, sensitivity };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes("--help")) {
    process.stdout.write(usage() + "\n");
    return;
  }
  const { budget, measurement, json, sensitivity } = await runPowerBench(args);
  if (args.includes("--json")) {
    process.stdout.write(JSON.stringify(json, null, 2) + "\n");
    return;
  }
  const out = resolve(ROOT, "bench", "results");
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, "power.json"), JSON.stringify(json, null, 2) + "\n");
  process.stdout.write(formatBudget(budget, measurement) + "\n");
  process.stdout.write(`sensitivity: ${sensitivity.batteryYearsAtTodaysShowMs} years at today's SHOW_MS ${FIGURES.showMs.value} ms; wake to code ${sensitivity.wakeToCodeMsAt3xCyclesPerInstruction} ms at 3x the cycles per VM instruction` + (sensitivity.wakeToCodeMsFromSource === undefined ? "" : `; ${sensitivity.wakeToCodeMsFromSource} ms if the board booted the source`) + `\n(bench/results/power.json)\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((e) => {
    process.stderr.write(`power-budget: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  });
}
