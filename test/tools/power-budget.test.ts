/** The power budget's arithmetic against a hand computation, and every figure cited. */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";
import {
  BATTERIES,
  computeBudget,
  DIGIT_SEGMENTS,
  FIGURES,
  averageDigitSegments,
  type Battery,
  type Figure,
  type FigureTable,
} from "../../tools/power-budget.js";

const ROOT = resolve(import.meta.dirname, "..", "..");

/** FIGURES with round values, so the expected results below can be worked by hand. */
function roundFigures(): FigureTable {
  const f: FigureTable = structuredClone(FIGURES);
  const set = (k: keyof FigureTable, value: number) => (f[k] = { ...f[k], value });
  set("bootToAppMainMs", 300);
  set("spiffsPartitionBytes", 40960); // 10 blocks of 4096
  set("spiffsBlockBytes", 4096);
  set("spiffsPageBytes", 256);
  set("spiffsReadUs", 100);
  set("nodemcuOtherInitMs", 20);
  set("cyclesPerVmInstruction", 100);
  set("cpuMhz", 160);
  set("i2cWakeBits", 174);
  set("i2cHz", 400000);
  set("spiWakeFrames", 22);
  set("spiTransactionUs", 25);
  set("spiHz", 1000000);
  set("powerRailSettleMs", 1);
  set("displaySegmentsPerDigit", 5);
  set("max7219SegmentMa", 10);
  set("max7219DutyFraction", 0.25);
  set("max7219QuiescentMa", 8);
  set("esp32ActiveMa", 50);
  set("esp32LightSleepMa", 0.8);
  set("esp32DeepSleepUa", 10);
  set("ldoIqUa", 2);
  set("switchLeakageUa", 2);
  set("usbBridgeSleepUa", 0);
  set("lockedShowMs", 8000);
  set("ds3231OnMs", 5);
  set("ds3231IddMa", 0.2);
  set("pressMs", 300);
  set("railVolts", 3.3);
  set("buttonPullupOhm", 100000);
  set("ds3231IbattUa", 3);
  set("backupCellMah", 225);
  return f;
}

const BATTERY: Battery = {
  name: "test cell",
  capacityMah: { value: 1200, unit: "mAh", source: "test", basis: "estimate" },
  usableFraction: { value: 0.8, unit: "fraction", source: "test", basis: "estimate" },
  selfDischargePerYear: { value: 0.01, unit: "fraction/year", source: "test", basis: "estimate" },
};

const IMAGE = { vmInstructions: 100000, parseEquivalentInstructions: 60000, imageBytes: 2560, filesOpened: 2 };

describe("computeBudget", () => {
  const b = computeBudget({ figures: roundFigures(), battery: BATTERY, pressesPerDay: 10, image: IMAGE });

  it("wake to code: boot + SPIFFS reads + init + image + rails + I2C + SPI", () => {
    // SPIFFS: 10 blocks x (mount's 3 reads a block + 2 opens) + 2560/256 pages = 60 reads x 100 us = 6 ms.
    expect(b.wakeToCode.spiffsMs).toBeCloseTo(6, 9);
    // (100000 + 60000) instructions x 100 cycles / 160 MHz = 100 ms.
    expect(b.wakeToCode.imageMs).toBeCloseTo(100, 9);
    // 174 bits / 400 kHz = 0.435 ms; 22 frames x (25 us + 16 bits at 1 MHz) = 0.902 ms.
    expect(b.wakeToCode.i2cMs).toBeCloseTo(0.435, 9);
    expect(b.wakeToCode.spiMs).toBeCloseTo(0.902, 9);
    // 300 + 6 + 20 + 100 + 2 + 0.435 + 0.902
    expect(b.wakeToCodeMs).toBeCloseTo(429.337, 6);
  });

  it("currents: display on = segments x ISEG x duty + quiescent; sleep = the parts' sum", () => {
    expect(b.displayOnMa).toBeCloseTo(5 * 10 * 0.25 + 8, 9); // 20.5 mA
    expect(b.sleepUa).toBeCloseTo(10 + 2 + 2, 9);
  });

  it("energy per press and battery years", () => {
    // wake 0.429337 s x 50.002 mA + display 8 s x (20.5 + 0.8 + 0.002) mA
    // + DS3231 5 ms x 0.2 mA + button 0.3 s x 0.033 mA = 191.8946 mA*s.
    expect(b.energyPerPress.wakeMas).toBeCloseTo(21.467709, 5);
    expect(b.energyPerPress.displayMas).toBeCloseTo(170.416, 6);
    expect(b.energyPerPressMas).toBeCloseTo(191.894609, 5);
    // A year: 14 uA x 8760 h = 122.64 mAh; 3650 presses x 191.8946 / 3600 = 194.5598 mAh; 1% of 1200 = 12.
    expect(b.perYearMah.sleep).toBeCloseTo(122.64, 6);
    expect(b.perYearMah.presses).toBeCloseTo(194.55981, 4);
    expect(b.perYearMah.total).toBeCloseTo(329.19981, 4);
    // 960 usable mAh / 329.1998 = 2.916 years.
    expect(b.batteryYears).toBeCloseTo(2.91616, 4);
    // The DS3231's own CR2032: 225 mAh / (3 uA x 8760 h) = 8.56 years.
    expect(b.rtcBackupCellYears).toBeCloseTo(225 / (0.003 * 8760), 9);
  });

  it("twice the presses cost twice the press energy a year, and nothing else", () => {
    const b20 = computeBudget({ figures: roundFigures(), battery: BATTERY, pressesPerDay: 20, image: IMAGE });
    expect(b20.perYearMah.presses).toBeCloseTo(2 * b.perYearMah.presses, 9);
    expect(b20.perYearMah.sleep).toBe(b.perYearMah.sleep);
  });

  it("refuses a bad input by name", () => {
    expect(() => computeBudget({ figures: roundFigures(), battery: BATTERY, pressesPerDay: -1, image: IMAGE })).toThrow(/pressesPerDay/);
    expect(() => computeBudget({ figures: roundFigures(), battery: BATTERY, pressesPerDay: 10, image: { ...IMAGE, vmInstructions: Number.NaN } })).toThrow(/vmInstructions/);
    const f = roundFigures();
    f.cpuMhz = { ...f.cpuMhz, value: -160 };
    expect(() => computeBudget({ figures: f, battery: BATTERY, pressesPerDay: 10, image: IMAGE })).toThrow(/cpuMhz/);
    const z = roundFigures();
    z.spiffsBlockBytes = { ...z.spiffsBlockBytes, value: 0 };
    expect(() => computeBudget({ figures: z, battery: BATTERY, pressesPerDay: 10, image: IMAGE })).toThrow(/spiffsBlockBytes/);
    const flat = { ...BATTERY, usableFraction: { ...BATTERY.usableFraction, value: 1.5 } };
    expect(() => computeBudget({ figures: roundFigures(), battery: flat, pressesPerDay: 10, image: IMAGE })).toThrow(/usableFraction/);
  });
});

describe("the figures", () => {
  const all: [string, Figure][] = [
    ...Object.entries(FIGURES),
    ...Object.entries(BATTERIES).flatMap(([name, bat]) =>
      (["capacityMah", "usableFraction", "selfDischargePerYear"] as const).map((k): [string, Figure] => [`${name}.${k}`, bat[k]]),
    ),
  ];

  it("every figure has a value, a unit, a basis and a source", () => {
    expect(all.length).toBeGreaterThan(30);
    for (const [name, f] of all) {
      expect(Number.isFinite(f.value), name).toBe(true);
      expect(f.unit.length, name).toBeGreaterThan(0);
      expect(["seen", "derived", "estimate", "recalled"], name).toContain(f.basis);
      expect(f.source.length, `${name} has no source`).toBeGreaterThan(20);
    }
  });

  it("a datasheet or source figure names its document or file, an estimate its reasoning in docs/power.md", () => {
    const cites = /datasheet|Datasheet|Techpedia|issue #\d+|PR #\d+|\.(c|h|ts|rst|csv|in)(:\d+)?\b|Kconfig|thread \d+/;
    for (const [name, f] of all) {
      if (f.basis === "estimate") expect(f.source, name).toMatch(/docs\/power\.md|estimate/);
      else expect(f.source, `${name}: ${f.source}`).toMatch(cites);
    }
  });

  it("the digit font and the display time are the firmware's (they cite it)", () => {
    const font = readFileSync(resolve(ROOT, "firmware/board/seven-segment-font.ts"), "utf8");
    const digits = /\n\s*((?:0x[0-9a-f]{2},\s*){10})\/\/ 0-9/.exec(font);
    expect(digits, "the 0-9 row of seven-segment-font.ts").not.toBeNull();
    expect(digits![1].split(",").map((s) => s.trim()).filter(Boolean).map(Number)).toEqual(DIGIT_SEGMENTS);
    // 6 + 2 + 5 + 5 + 4 + 5 + 6 + 3 + 7 + 6 = 49 segments over 10 digits.
    expect(averageDigitSegments()).toBeCloseTo(4.9, 9);
    const link = readFileSync(resolve(ROOT, "firmware/app/link.ts"), "utf8");
    expect(Number(/export const SHOW_MS = (\d+);/.exec(link)?.[1])).toBe(FIGURES.showMs.value);
    // What the sleeping keyfob shows is what the budget assumes (issue 12).
    const power = readFileSync(resolve(ROOT, "firmware/app/power.ts"), "utf8");
    expect(Number(/export const LOCKED_SHOW_MS = (\d+);/.exec(power)?.[1])).toBe(FIGURES.lockedShowMs.value);
  });
});
