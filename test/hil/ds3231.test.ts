import { beforeAll, describe, expect, it } from "vitest";
import { loadHil } from "./support.js";

let Ds3231: Awaited<ReturnType<typeof loadHil>>["Ds3231"];
beforeAll(async () => {
  ({ Ds3231 } = await loadHil());
});

const bcd = (v: number) => ((Math.floor(v / 10) << 4) | v % 10);
const YEAR = 365 * 86400;

describe("DS3231 register model", () => {
  it("shows the configured time as BCD registers 00h-06h", () => {
    // 2023-11-14T22:13:20Z, a Tuesday (ISO weekday 2)
    const rtc = new Ds3231({ unixSeconds: 1700000000 });
    rtc.write([0x00], 0);
    expect(rtc.read(7, 0)).toEqual([bcd(20), bcd(13), bcd(22), 2, bcd(14), bcd(11), bcd(23)]);
  });

  it("round-trips every BCD field it is written, in 24- and 12-hour mode", () => {
    const rtc = new Ds3231({ unixSeconds: 1700000000 });
    // 2099-12-31 23:59:58, day 4
    rtc.write([0x00, bcd(58), bcd(59), bcd(23), 4, bcd(31), bcd(12), bcd(99)], 0);
    rtc.write([0x00], 0);
    expect(rtc.read(7, 0)).toEqual([bcd(58), bcd(59), bcd(23), 4, bcd(31), bcd(12), bcd(99)]);
    // two seconds later the century bit flips and the year wraps to 00
    rtc.write([0x00], 2000);
    expect(rtc.read(7, 2000)).toEqual([0, 0, 0, 5, 1, 0x80 | 1, 0]);
    // 12-hour mode: 11 PM is 0x40 | PM 0x20 | 11
    rtc.write([0x02, 0x40 | 0x20 | bcd(11)], 2000);
    rtc.write([0x02], 2000);
    expect(rtc.read(1, 2000)).toEqual([0x40 | 0x20 | bcd(11)]);
    expect(Math.floor(rtc.chipSeconds(2000)) % 86400).toBe(23 * 3600);
  });

  it("wraps the register pointer after 12h and reads control/status", () => {
    const rtc = new Ds3231({ unixSeconds: 1700000000 });
    rtc.write([0x0e], 0);
    const r = rtc.read(7, 0);
    expect(r[0]).toBe(0x1c); // control at power-on
    expect(r[1] & 0x80).toBe(0); // OSF clear on a set clock
    expect(r[5]).toBe(bcd(20)); // wrapped to 00h: seconds
  });

  it("sets OSF and resets the time when the oscillator stops; only writing 0 clears it", () => {
    const rtc = new Ds3231({ unixSeconds: 1700000000 });
    rtc.loseTime(0);
    rtc.write([0x0f], 0);
    expect(rtc.read(1, 0)[0] & 0x80).toBe(0x80);
    rtc.write([0x00], 0);
    expect(rtc.read(7, 0)).toEqual([0, 0, 0, 1, 1, 1, 0]);
    rtc.write([0x0f, 0x80], 0); // writing 1 keeps it set
    expect(rtc.oscillatorStopped).toBe(true);
    rtc.write([0x0f, 0x00], 0);
    expect(rtc.oscillatorStopped).toBe(false);
  });

  it("drifts +20 ppm to about 631 s fast over a simulated year", () => {
    const rtc = new Ds3231({ unixSeconds: 1700000000, driftPpm: 20 });
    const ahead = rtc.chipSeconds(YEAR * 1000) - (1700000000 + YEAR);
    expect(ahead).toBeCloseTo(630.72, 2);
    rtc.write([0x00], YEAR * 1000);
    // 2023-11-14 22:13:20 + 365 days (2024 is a leap year) + 630 s = 2024-11-13 22:23:50
    expect(rtc.read(7, YEAR * 1000)).toEqual([bcd(50), bcd(23), bcd(22), 3, bcd(13), bcd(11), bcd(24)]);
  });

  it("the aging register trims the rate by about 0.1 ppm per LSB", () => {
    const rtc = new Ds3231({ unixSeconds: 1700000000, driftPpm: 20 });
    rtc.write([0x10, 100], 0); // +100 LSB slows by ~10 ppm
    expect(rtc.chipSeconds(YEAR * 1000) - (1700000000 + YEAR)).toBeCloseTo(315.36, 1);
  });

  it("refuses illogical values loudly (datasheet: undefined operation)", () => {
    const rtc = new Ds3231({ unixSeconds: 1700000000 });
    expect(() => rtc.write([0x04, bcd(31), bcd(2)], 0)).toThrow(/illogical/);
    expect(() => rtc.write([0x00, 0x6a], 0)).toThrow(/not BCD/);
  });
});
