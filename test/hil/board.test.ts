/**
 * The firmware/board layer, running as Lua in fengari on the emulator: each
 * board hook is called through the fixture image's probe table.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { buildFixture, loadHil, tempDir } from "./support.js";

type Hil = Awaited<ReturnType<typeof loadHil>>;
let hil: Hil;
let image: string;
beforeAll(async () => {
  image = buildFixture();
  hil = await loadHil();
}, 120_000);

// firmware/board/status.ts
const OK = 0, ERR_ARG = 1, RTC_ABSENT = 2, RTC_TIME_LOST = 3, RTC_RANGE = 4, NO_RNG = 5, NOT_FOUND = 7;

const bcd = (v: number) => ((Math.floor(v / 10) << 4) | v % 10);
const split = (t: number) => [Math.floor(t / 65536), t % 65536];

function start(opts: Record<string, unknown> = {}) {
  const emu = new hil.Emulator({ stateDir: tempDir("board-"), imagePath: image, time: 1700000000, countInstructions: false, ...opts });
  const events: { event: string; message?: string }[] = [];
  emu.on("event", (e: { event: string }) => events.push(e));
  emu.boot();
  const call = (fn: string, ...args: unknown[]) => emu.callImage(`probe.${fn}`, ...args);
  return { emu, call, events };
}

describe("board display timer (firmware/board/display-timer.ts)", () => {
  it("refuses a blanking delay under one FreeRTOS tick, which would panic the board (tmr.c:97-101, timers.c:367), and takes 10 ms", () => {
    const { emu, call, events } = start();
    expect(call("displayBlankAfter", 9)).toBe(ERR_ARG);
    expect(call("displayBlankAfter", 0)).toBe(ERR_ARG);
    expect(call("displayBlankAfter", 600001)).toBe(ERR_ARG);
    expect(call("displayText", "12345678")).toBe(OK);
    expect(call("displayBlankAfter", 10)).toBe(OK);
    emu.advance(0.05);
    expect(emu.display).toBe("        ");
    expect(events.filter((e) => e.event === "restart")).toEqual([]);
  });
});

describe("board RTC (DS3231 over i2c)", () => {
  it("reads the emulator's RTC time as the OTP core's UnixTime, also with drift", () => {
    const { emu, call } = start({ driftPpm: 20 });
    const [st, hi, lo] = call("rtcRead") as number[];
    expect(st).toBe(OK);
    expect(hi * 65536 + lo).toBe(emu.rtcTime());
    expect(emu.rtcTime()).toBe(1700000000);
    emu.advance(86400 * 10);
    const [st2, hi2, lo2] = call("rtcRead") as number[];
    expect(st2).toBe(OK);
    expect(hi2 * 65536 + lo2).toBe(emu.rtcTime());
    expect(emu.rtcTime() - (1700000000 + 864000)).toBe(17); // 20 ppm of 10 days = 17.28 s
  });

  it("a simulated year at +20 ppm: the board reads the clock 630 s ahead", () => {
    const { emu, call } = start({ driftPpm: 20 });
    emu.advance(365 * 86400);
    const [st, hi, lo] = call("rtcRead") as number[];
    expect(st).toBe(OK);
    expect(hi * 65536 + lo - (1700000000 + 365 * 86400)).toBe(630); // 20e-6 * 31536000 = 630.72
  });

  it("writes the time (24-hour BCD, OSF cleared) and reads it back, past 2038 too", () => {
    const { emu, call } = start();
    for (const t of [946684800, 2147483647, 2147483648 + 1000, 4102444799]) {
      expect(call("rtcWrite", ...split(t))).toBe(OK);
      expect(emu.rtcTime()).toBe(t);
      const [st, hi, lo] = call("rtcRead") as number[];
      expect([st, hi * 65536 + lo]).toEqual([OK, t]);
    }
    emu.rtc.write([0x02], emu.clock.nowMs);
    expect(emu.rtc.read(1, emu.clock.nowMs)[0] & 0x40).toBe(0); // 24-hour mode
    expect(call("rtcWrite", ...split(4102444800))).toBe(RTC_RANGE); // 2100: the chip's leap rule breaks
  });

  it("decodes a clock left in 12-hour mode", () => {
    const { emu, call } = start();
    // 2023-11-14 11:13:20 PM in 12-hour format
    emu.rtc.write([0x02, 0x40 | 0x20 | bcd(11)], emu.clock.nowMs);
    const [st, hi, lo] = call("rtcRead") as number[];
    expect(st).toBe(OK);
    expect(hi * 65536 + lo).toBe(1700000000 + 3600); // 22:13:20 became 23:13:20
  });

  it("fails closed: OSF set -> TIME_LOST until written; no chip -> ABSENT", () => {
    const { emu, call } = start();
    emu.rtc.loseTime(emu.clock.nowMs);
    expect(call("rtcRead")).toEqual([RTC_TIME_LOST, -1, -1]); // output untouched: no zero clock
    expect(call("rtcWrite", ...split(1800000000))).toBe(OK);
    expect((call("rtcRead") as number[])[0]).toBe(OK);
    const absent = start({ rtc: false });
    expect(absent.call("rtcRead")).toEqual([RTC_ABSENT, -1, -1]);
    expect(absent.call("rtcWrite", ...split(1800000000))).toBe(RTC_ABSENT);
  });

  it("a power cut with the RTC battery removed loses the time", () => {
    const { emu, call } = start();
    emu.removeRtcBattery();
    emu.powerCut();
    emu.boot();
    expect((call("rtcRead") as number[])[0]).toBe(RTC_TIME_LOST);
  });
});

describe("board flash store: atomic across power cuts", () => {
  const OLD = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const NEW = Array.from({ length: 40 }, (_, i) => (i * 37 + 5) & 255);

  it("round-trips records; a missing record is NOT_FOUND", () => {
    const { call } = start();
    expect(call("flashRead", "rec")).toEqual([NOT_FOUND]);
    expect(call("flashWrite", "rec", OLD)).toBe(OK);
    expect(call("flashRead", "rec")).toEqual([OK, ...OLD]);
    expect(call("flashWrite", "rec", NEW)).toBe(OK);
    expect(call("flashRead", "rec")).toEqual([OK, ...NEW]);
    expect(call("flashWrite", "rec", [256])).toBe(ERR_ARG);
    expect(call("flashWrite", "a/b", OLD)).toBe(ERR_ARG);
  });

  /** Cut the power at every flash write of `action` in turn; after reboot read the record. */
  function cutEverywhere(prepare: (call: (fn: string, ...a: unknown[]) => unknown, emu: any) => void, action: [string, ...unknown[]]) {
    const outcomes: unknown[] = [];
    for (let n = 1; n < 50; n++) {
      const { emu, call } = start();
      prepare(call, emu);
      emu.powerCutAtWrite(n);
      const result = call(...action);
      const cut = !emu.powered;
      if (cut) emu.boot();
      outcomes.push(call("flashRead", "rec"));
      if (!cut) {
        expect(result).toBe(OK);
        return { outcomes, writes: n - 1 };
      }
    }
    throw new Error("the operation never completed");
  }

  it("replacing a record: every cut leaves the old or the new record, never a mix", () => {
    const { outcomes, writes } = cutEverywhere((call) => call("flashWrite", "rec", OLD), ["flashWrite", "rec", NEW]);
    const old = [OK, ...OLD];
    const neu = [OK, ...NEW];
    for (const o of outcomes) expect([old, neu]).toContainEqual(o);
    expect(outcomes).toContainEqual(old); // the cuts really fell before the switch...
    expect(outcomes.slice(0, -1)).toContainEqual(neu); // ...and after it
    console.log(`flashWrite over an existing record: ${writes} flash writes, each cut checked`);
  });

  it("first write of a record: every cut leaves nothing or the new record", () => {
    const { outcomes } = cutEverywhere(() => {}, ["flashWrite", "rec", NEW]);
    for (const o of outcomes) expect([[NOT_FOUND], [OK, ...NEW]]).toContainEqual(o);
    expect(outcomes).toContainEqual([NOT_FOUND]);
  });

  it("removing a record: every cut leaves the record or nothing", () => {
    const { outcomes } = cutEverywhere((call) => call("flashWrite", "rec", OLD), ["flashRemove", "rec"]);
    for (const o of outcomes) expect([[OK, ...OLD], [NOT_FOUND]]).toContainEqual(o);
  });

  it("removing a record: a cut in its last remove leaves no part of the record once a read finds none", () => {
    // flashRemove's last step removes NAME.old; a cut there leaves part of it (flash.ts remove()).
    let leftovers = 0;
    for (let n = 1; n < 10; n++) {
      const { emu, call } = start();
      call("flashWrite", "rec", OLD);
      emu.powerCutAtWrite(n);
      call("flashRemove", "rec");
      if (emu.powered) break;
      if (emu.flash.exists("rec.old")) leftovers++;
      emu.boot();
      if (call("flashRead", "rec")[0] !== NOT_FOUND) continue;
      expect([...emu.flash.list().keys()].filter((k) => k.startsWith("rec"))).toEqual([]);
    }
    expect(leftovers).toBeGreaterThan(0); // the cut really fell where it leaves one
  });

  it("pays SPIFFS's name lookup only where it learns something: first write 4 (1 after a read found none), replacing write 3, reading a record 1", () => {
    // Each of these scans every block's lookup page on the board (hil/flash.ts: 12.3 ms apiece).
    const LOOKUPS = new Set(["exists", "list", "open-read", "load", "remove-missing", "rename-refused"]);
    const { emu, call } = start();
    const lookups = (fn: () => unknown): number => {
      const count = () => [...emu.flash.calls].reduce((n, [k, v]) => n + (LOOKUPS.has(k) ? v.count : 0), 0);
      const before = count();
      fn();
      return count() - before;
    };
    // NAME, then NAME.new (an interrupted write to finish?), NAME.old (leftover), the read-back of NAME.new.
    expect(lookups(() => expect(call("flashWrite", "rec", OLD)).toBe(OK))).toBe(4);
    // NAME (present: nothing to roll forward), NAME.old, the read-back.
    expect(lookups(() => expect(call("flashWrite", "rec", NEW)).toBe(OK))).toBe(3);
    expect(lookups(() => expect(call("flashRead", "rec")).toEqual([OK, ...NEW]))).toBe(1);
    expect(emu.flash.list().size).toBeGreaterThan(0);
    expect([...emu.flash.list().keys()].filter((n) => n.startsWith("rec"))).toEqual(["rec"]); // no leftovers
    // A blank keyfob's read (its boot): NAME, then NAME.new, then NAME.old removed (a wipe's leftover).
    expect(lookups(() => expect(call("flashRead", "other")).toEqual([NOT_FOUND]))).toBe(3);
    // What that read learnt and did stands until a record is written: only the read-back.
    expect(lookups(() => expect(call("flashWrite", "other", OLD)).toBe(OK))).toBe(1);
    // ...and no longer after: this is a replacing write again (it would fail, renaming over "other", if it were not).
    expect(lookups(() => expect(call("flashWrite", "other", NEW)).toBe(OK))).toBe(3);
    expect(call("flashRead", "other")).toEqual([OK, ...NEW]);
    // A write of another record forgets it too.
    expect(call("flashRead", "third")).toEqual([NOT_FOUND]);
    expect(call("flashWrite", "rec", OLD)).toBe(OK);
    expect(call("flashRead", "third")).toEqual([NOT_FOUND]);
    expect(call("flashRemove", "third")).toBe(OK);
    expect(lookups(() => expect(call("flashWrite", "third", NEW)).toBe(OK))).toBe(4);
  });

  // A complete record left as rec.new (a write cut between its renames, or one whose last rename failed).
  const STALE = [0x5a, 0xa5, 0x5a];
  const leaveStaleNew = (call: (fn: string, ...a: unknown[]) => unknown, emu: any) => {
    expect(call("flashWrite", "stale", STALE)).toBe(OK);
    expect(emu.flash.rename("stale", "rec.new")).toBe("ok");
  };

  it("a write over a leftover complete rec.new (rec present): every cut leaves the old record or the new, never the leftover", () => {
    const { outcomes } = cutEverywhere((call, emu) => {
      call("flashWrite", "rec", OLD);
      leaveStaleNew(call, emu);
    }, ["flashWrite", "rec", NEW]);
    for (const o of outcomes) expect([[OK, ...OLD], [OK, ...NEW]]).toContainEqual(o);
    expect(outcomes.at(-1)).toEqual([OK, ...NEW]);
  });

  it("a write while rec.new waits to be rolled forward (rec absent): every cut leaves that record or the new one, never none", () => {
    const { outcomes } = cutEverywhere(leaveStaleNew, ["flashWrite", "rec", NEW]);
    for (const o of outcomes) expect([[OK, ...STALE], [OK, ...NEW]]).toContainEqual(o);
    expect(outcomes).toContainEqual([OK, ...STALE]);
  });

  it("a second write after an interrupted one still ends with the newest record", () => {
    const { emu, call } = start();
    call("flashWrite", "rec", OLD);
    emu.powerCutAtWrite(4); // open .new, write len+payload... cut inside the envelope write
    call("flashWrite", "rec", NEW);
    emu.boot();
    expect(call("flashWrite", "rec", [42])).toBe(OK);
    expect(call("flashRead", "rec")).toEqual([OK, 42]);
    expect(call("flashExists", "rec")).toBe(true);
    expect(call("flashRemove", "rec")).toBe(OK);
    expect(call("flashExists", "rec")).toBe(false);
  });
});

describe("board UART", () => {
  it("sends bytes as they are; anything but bytes 0..255 is ERR_ARG and sends nothing", () => {
    const { emu, call } = start();
    const tx: number[] = [];
    emu.on("uart", (b: Uint8Array) => tx.push(...b));
    expect(call("uartWrite", [0, 0x41, 0x7f, 0x80, 0xff, 1, 2, 3, 4, 5])).toBe(OK);
    expect(tx).toEqual([0, 0x41, 0x7f, 0x80, 0xff, 1, 2, 3, 4, 5]);
    for (const bad of [[0x41, 256], [-1], [0x41, 0x42, 1.5], [1, 2, 3, 4, 5, 6, 7, 8, 9, "x"], [{}]]) {
      expect(call("uartWrite", bad)).toBe(ERR_ARG);
    }
    expect(tx).toHaveLength(10);
  });
});

describe("board identity, RNG, display", () => {
  it("hardware id is the station MAC as EUI-64 (FF FE after the OUI)", () => {
    const { emu, call } = start();
    const mac = Array.from(emu.mac);
    expect(call("hardwareId")).toEqual([OK, mac[0], mac[1], mac[2], 0xff, 0xfe, mac[3], mac[4], mac[5]]);
    const other = start();
    expect(other.call("hardwareId")).not.toEqual(call("hardwareId")); // derived from the state dir
  });

  it("RNG: bytes with the radio on; a board without an RNG reports NO_RNG, never zeros", () => {
    const { call, events } = start();
    const a = call("rng", 32) as number[];
    const b = call("rng", 32) as number[];
    expect(a[0]).toBe(OK);
    expect(a).toHaveLength(33);
    expect(a.slice(1)).not.toEqual(b.slice(1));
    expect(a.slice(1).some((x) => x !== 0)).toBe(true);
    expect(events.filter((e) => e.event === "warning")).toEqual([]); // radio was on for the draw
    expect(call("rng", 0)).toEqual([ERR_ARG]);
    const none = start({ rng: false });
    expect(none.call("rng", 16)).toEqual([NO_RNG]);
  });

  it("display: status words, zero-padded codes, refusal of what the font lacks, shutdown", () => {
    const { emu, call } = start();
    expect(call("displayText", "LoCKEd")).toBe(OK);
    expect(emu.display).toBe("LoCKEd  ");
    expect(call("displayText", "bLAnK")).toBe(OK);
    expect(emu.display).toBe("bLAnK   ");
    expect(call("displayText", "SOS")).toBe(ERR_ARG); // S/O would read as 5/0
    expect(emu.display).toBe("bLAnK   ");
    expect(call("displayNumber", 1234, 8)).toBe(OK);
    expect(emu.display).toBe("00001234");
    expect(call("displayNumber", 38320531, 8)).toBe(OK);
    expect(emu.display).toBe("38320531");
    expect(call("displayNumber", 123456789, 8)).toBe(ERR_ARG);
    expect(call("displayNumber", 42, 6)).toBe(OK);
    expect(emu.display).toBe("  000042");
    expect(call("displayOff")).toBe(OK);
    expect(emu.display).toBe("        ");
    expect(emu.max7219.shutdown).toBe(true);
  });
});
