/**
 * Deep and light sleep in the emulator (hil/nodemcu/sleep.ts, hil/deep-sleep.ts),
 * each behaviour from NodeMCU's node.c (dev-esp32 at 7c5bb151) and ESP-IDF
 * v5.1.3 as docs/power.md §1-2 cites them. In-process and stepped: the PTY
 * side is test/hil/sleep-hil.test.ts.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadHil, tempDir } from "./support.js";

type Hil = Awaited<ReturnType<typeof loadHil>>;
let hil: Hil;
beforeAll(async () => {
  hil = await loadHil();
});

type Ev = { event: string; [k: string]: unknown };

function board(init: string, opts: Record<string, unknown> = {}) {
  const dir = tempDir("emu-sleep-");
  writeFileSync(join(dir, "init.lua"), init);
  const emu = new hil.Emulator({ stateDir: dir, time: 1_900_000_000, countInstructions: false, ...opts });
  const events: Ev[] = [];
  const tx: number[] = [];
  emu.on("event", (e: Ev) => events.push(e));
  emu.on("uart", (b: Uint8Array) => tx.push(...b));
  const printed = () => events.filter((e) => e.event === "print").map((e) => String(e.text));
  return { emu, events, printed };
}

describe("node.dsleep's arguments (node.c:315-412, common.c:5-62)", () => {
  it("refuses what the board refuses, with the board's words, and does not sleep", () => {
    const calls = [
      `"x"`,
      `{ gpio = 5 }`,
      `{ gpio = { 27, 5 } }`,
      `{ gpio = 27, level = 2 }`,
      `{ gpio = 27, pull = "yes" }`,
      `{ us = "x" }`,
      `{ gpio = 40 }`,
      `{ gpio = 27, isolate = { 5 } }`,
      `{ gpio = 64 }`,
    ];
    const { emu, printed, events } = board(calls.map((c) => `print(select(2, pcall(function() node.dsleep(${c}) end)))`).join("\n"));
    emu.boot();
    // luaL_error and luaL_argerror prefix the Lua caller's position (luaL_where(L, 1)).
    expect(printed()).toEqual([
      "init.lua:1: bad argument #1 to 'dsleep' (Expected integer or table)",
      "init.lua:2: Pin 5 is not an RTC GPIO and cannot be used for wakeup",
      "init.lua:3: Pin 5 is not an RTC GPIO and cannot be used for wakeup",
      "init.lua:4: bad option level to 'dsleep' (must be in range 0-1)",
      "init.lua:5: bad option pull to 'dsleep' (boolean expected, got string)",
      "init.lua:6: bad option us to 'dsleep' (number expected, got string)",
      "init.lua:7: Error 258 returned from esp_sleep_enable_ext1_wakeup",
      "init.lua:8: Error 258 returned from rtc_gpio_isolate(5)",
      expect.stringContaining("1ULL << 64, undefined in C; refused"),
    ]);
    expect(events.filter((e) => e.event === "sleep")).toEqual([]);
    expect(emu.powered).toBe(true);
  });

  it("a gpio list ends at its first 0 (node.c:340); pcall cannot catch the sleep; nothing after it runs", () => {
    const { emu, printed, events } = board(`pcall(node.dsleep, { gpio = { 27, 0, 5 }, level = 0 })\nprint("after")`);
    emu.boot();
    expect(printed()).toEqual([]);
    expect(events.filter((e) => e.event === "sleep")).toMatchObject([{ pins: [27], level: 0, timerMs: null }]);
    expect(emu.powered).toBe(false);
    expect(emu.dsleepCalls).toHaveLength(1);
  });
});

describe("waking (ext1, node.c:382-394; the timer) and what survives (docs/power.md §2)", () => {
  const init = `
    local raw, reason = node.bootreason()
    print("reason " .. raw .. " " .. reason .. " slot " .. rtcmem.read32(5))
    if reason == 8 then rtcmem.write32(5, 1234) end
    rawset(_G, "KEPT", (rawget(_G, "KEPT") or 0) + 1)
    print("lua " .. rawget(_G, "KEPT"))
    node.dsleep({ gpio = 27, level = 0 })
  `;

  it("a press wakes it, after the boot a restart takes, as a deep-sleep reset (3, 12): rtcmem kept, the Lua state new; a power cut loses rtcmem", () => {
    const { emu, printed, events } = board(init);
    emu.boot();
    expect(printed()[0]).toMatch(/^reason 1 8 slot -?\d+$/);
    expect(printed()[1]).toBe("lua 1");
    emu.advance(3600);
    expect(emu.powered).toBe(false);
    const rtcBefore = emu.rtcTime();
    emu.press();
    emu.advance(1);
    const wake = events.find((e) => e.event === "wake")!;
    const sleep = events.find((e) => e.event === "sleep")!;
    expect(wake).toMatchObject({ cause: "ext1" });
    expect(Number(wake.rtc)).toBeGreaterThanOrEqual(rtcBefore);
    expect(printed().slice(2)).toEqual(["reason 3 12 slot 1234", "lua 1"]);
    expect(Number(wake.atMs) - Number(sleep.atMs)).toBeGreaterThan(3_600_000);

    emu.powerCut();
    emu.advance(60);
    emu.boot();
    expect(printed()[4]).toMatch(/^reason 1 8 slot -?\d+$/);
    expect(printed()[4]).not.toBe("reason 1 8 slot 1234");
  });

  it("ext1 is level-triggered: a button still held at sleep entry wakes it at once; level 1 (ANY_HIGH) wakes on a released button", async () => {
    const held = board(`if select(2, node.bootreason()) == 8 then tmr.create():alarm(50, tmr.ALARM_SINGLE, function() node.dsleep({ gpio = 27, level = 0 }) end) end`);
    held.emu.boot();
    held.emu.press(2000);
    const s = held.events.find((e) => e.event === "sleep")!;
    const w = held.events.find((e) => e.event === "wake")!;
    // At once: the sleep's entry to the wake's boot is the boot alone (a restart's, hil/emulator.ts restartDelayMs).
    const { restartDelayMs } = await import("../../hil/emulator.js");
    expect(Number(w.atMs) - Number(s.atMs)).toBe(restartDelayMs(held.emu.build.spiffs));

    const high = board(`if select(2, node.bootreason()) == 8 then node.dsleep({ gpio = 27, level = 1 }) end`);
    high.emu.boot();
    high.emu.advance(1);
    expect(high.events.find((e) => e.event === "wake")).toMatchObject({ cause: "ext1" });
  });

  it("a timer wake (a number of µs); UART bytes sent while asleep are lost", () => {
    const { emu, events, printed } = board(`
      if select(2, node.bootreason()) == 8 then node.dsleep(2000000) end
      uart.on(0, "data", "\\n", function(d) print("got " .. d) end, 0)
      uart.start(0)
    `);
    emu.boot();
    emu.advance(1);
    emu.uartWrite("lost\n");
    emu.advance(2);
    expect(events.find((e) => e.event === "wake")).toMatchObject({ cause: "timer" });
    emu.uartWrite("kept\n");
    emu.advance(0.1);
    expect(printed().filter((p) => p.startsWith("got"))).toEqual(["got kept\n"]);
  });
});

describe("light sleep, the display rail, VBUS", () => {
  it("node.sleep returns the timer cause after virtual time passed; gpio.write on an input-only pin is refused", () => {
    const { emu, printed } = board(`
      print("cause " .. node.sleep({ secs = 2 }))
      print(select(2, pcall(gpio.write, 34, 1)))
    `);
    const before = emu.now;
    emu.boot();
    expect(printed()).toEqual(["cause 4", "invalid argument"]);
    expect(emu.now - before).toBeGreaterThanOrEqual(2);
  });

  it("driving the display rail low powers the MAX7219 down; VBUS reads on GPIO34, and plugging in is an edge there", () => {
    const { emu, printed } = board(`
      gpio.config({ gpio = { 25, 26 }, dir = gpio.OUT }, { gpio = 34, dir = gpio.IN })
      gpio.write(26, 0)
      print("vbus " .. gpio.read(34))
      gpio.trig(34, gpio.INTR_UP_DOWN, function(_, level) print("edge " .. level) end)
    `, { vbus: false });
    emu.boot();
    expect(emu.max7219.powered).toBe(false);
    emu.setUsb(true);
    emu.advance(0.01);
    expect(printed()).toEqual(["vbus 0", "edge 1"]);
  });
});

describe("the wake's boot (docs/power.md:273-275)", () => {
  it("reaches init.lua as a restart does: ROM and bootloader, NodeMCU's start and the SPIFFS mount (restartDelayMs), not the ROM and bootloader alone", async () => {
    const { Emulator, restartDelayMs } = await import("../../hil/emulator.js");
    const dir = tempDir("emu-wake-boot-");
    writeFileSync(join(dir, "init.lua"), `node.dsleep({ gpio = 27, level = 0 })`);
    const emu = new Emulator({ stateDir: dir, time: 1_900_000_000, countInstructions: false });
    const events: Ev[] = [];
    emu.on("event", (e: Ev) => events.push(e));
    emu.boot();
    emu.advance(10);
    const pressedAt = emu.clock.nowMs;
    emu.press();
    emu.advance(1);
    const wake = events.find((e) => e.event === "wake")!;
    expect(Number(wake.atMs) - pressedAt).toBeCloseTo(restartDelayMs(emu.build.spiffs), 6);
    emu.close();
  });
});
