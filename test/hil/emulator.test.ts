import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { BANNER } from "../../hil/repl.js";
import { buildFixture, loadHil, tempDir } from "./support.js";

type Hil = Awaited<ReturnType<typeof loadHil>>;
let hil: Hil;
let image: string;
beforeAll(async () => {
  image = buildFixture();
  hil = await loadHil();
}, 120_000);

type Ev = { event: string; kind?: string; message?: string; text?: string };

/**
 * Boot a state dir whose init.lua is the given Lua; collect events. bootText
 * is what the UART carried during boot (banner, init.lua's output, prompt);
 * tx collects what comes after.
 */
function bootLua(init: string, opts: Record<string, unknown> = {}) {
  const dir = tempDir("emu-lua-");
  writeFileSync(join(dir, "init.lua"), init);
  const emu = new hil.Emulator({ stateDir: dir, time: 1700000000, ...opts });
  const events: Ev[] = [];
  const tx: number[] = [];
  emu.on("event", (e: Ev) => events.push(e));
  emu.on("uart", (b: Uint8Array) => tx.push(...b));
  emu.boot();
  const bootText = Buffer.from(tx.splice(0)).toString("latin1");
  return { emu, events, tx, bootText, errors: () => events.filter((e) => e.event === "error") };
}

describe("NodeMCU subset: calls outside it fail loudly", () => {
  it("names a missing function of an emulated module (node.random does not exist on ESP32)", () => {
    const { errors } = bootLua("local x = node.random(1, 10)");
    expect(errors()).toHaveLength(1);
    expect(errors()[0].message).toMatch(/node\.random is not provided/);
    expect(errors()[0].message).toMatch(/init\.lua:1/);
  });

  it("names a missing module or global (no os library on NodeMCU)", () => {
    const { errors } = bootLua("print(os.time())");
    expect(errors()[0].message).toMatch(/global 'os' is not provided/);
  });

  it("names a missing method of an emulated object", () => {
    const { errors } = bootLua("local t = tmr.create(); t:interval(5)");
    expect(errors()[0].message).toMatch(/tmr\.timer\.interval is not provided/);
  });

  it("refuses what the device would refuse: a second i2c.setup panics on NodeMCU", () => {
    const { errors } = bootLua("i2c.setup(i2c.HW0, 21, 22, i2c.FAST); i2c.setup(i2c.HW0, 21, 22, i2c.FAST)");
    expect(errors()[0].message).toMatch(/already set up/);
  });

  it("a Lua error is printed on the UART and restarts the chip 2 s later (node.c default_onerror)", () => {
    const { emu, events, tx } = bootLua("uart.on(0, 'data', 0, function(d) error('boom ' .. d) end, 0) uart.start(0)");
    emu.uartWrite("x");
    expect(events.map((e) => e.event)).toEqual(["boot", "error", "restart"]);
    expect(Buffer.from(tx).toString("latin1")).toMatch(/^init\.lua:1: boom x\nstack traceback:/);
    expect(emu.powered).toBe(true); // still running until the restart timer fires
    emu.advance(1.9);
    expect(events.filter((e) => e.event === "boot")).toHaveLength(1);
    emu.advance(0.5);
    expect(events.filter((e) => e.event === "boot")).toHaveLength(2);
  });

  it("without init.lua the board boots into the Lua REPL (test/flash covers the REPL itself)", () => {
    const dir = tempDir("emu-empty-");
    const emu = new hil.Emulator({ stateDir: dir, time: 1700000000 });
    const events: Ev[] = [];
    const tx: number[] = [];
    emu.on("event", (e: Ev) => events.push(e));
    emu.on("uart", (b: Uint8Array) => tx.push(...b));
    emu.boot();
    expect(events[1]).toMatchObject({ event: "repl" });
    expect(Buffer.from(tx).toString("latin1")).toMatch(/NodeMCU ESP32 build .*\ncannot open init\.lua: No such file or directory\n> $/);
  });

  it("with init.lua the board prints NodeMCU's banner, runs init.lua, then the first prompt (lua.c pmain)", () => {
    const { bootText } = bootLua("uart.on(0, 'data', 0, function() end, 0)");
    expect(bootText).toBe(BANNER + "> ");
    expect(bootText).toMatch(/^\nNodeMCU ESP32 build .* powered by Lua 5\.3\.\d \[5\.3-int32-singlefp\] on IDF v4\.4\.\d\n> $/);
  });

  it("an error in init.lua is printed before the first prompt", () => {
    const { bootText, errors } = bootLua("print('a'); error('boom')");
    expect(errors()).toHaveLength(1);
    expect(bootText).toMatch(new RegExp(`^${BANNER.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}a\ninit\.lua:1: boom\nstack traceback:[^]*\n> $`));
  });

  it("print goes to the console UART, as on the device", () => {
    const { bootText } = bootLua('print("hi", 42)');
    expect(bootText).toBe(BANNER + "hi\t42\n> ");
  });

  it("integers are 32-bit, as on NodeMCU's default build", () => {
    const { bootText } = bootLua("uart.write(0, tostring(math.maxinteger), ' ', tostring(2147483647 + 1))");
    expect(bootText).toBe(BANNER + "2147483647 -2147483648> ");
  });
});

describe("tmr on virtual time", () => {
  it("SINGLE fires once, AUTO repeats, SEMI waits for start()", () => {
    const { emu, tx } = bootLua(`
      local s = tmr.create(); s:alarm(100, tmr.ALARM_SINGLE, function() uart.write(0, "s") end)
      local a = tmr.create(); a:alarm(250, tmr.ALARM_AUTO, function() uart.write(0, "a") end)
      local m = tmr.create(); m:register(50, tmr.ALARM_SEMI, function(t) uart.write(0, "m") end)
      m:start()
    `);
    emu.advance(1);
    expect(Buffer.from(tx).toString("latin1")).toBe("msaaaa");
  });
});

describe("the fixture image (echo app over the real board layer)", () => {
  it("boots from init.lua + fobkit.lua, echoes UART bytes, counts debounced presses", () => {
    const emu = new hil.Emulator({ stateDir: tempDir("emu-echo-"), imagePath: image, time: 1700000000 });
    const displays: string[] = [];
    const tx: number[] = [];
    emu.on("display", (e: { text: string }) => displays.push(e.text));
    emu.on("uart", (b: Uint8Array) => tx.push(...b));
    emu.boot();
    expect(Buffer.from(tx.splice(0)).toString("latin1")).toBe(BANNER + "> ");
    expect(emu.display).toBe("rEAdy   ");
    emu.uartWrite([0, 1, 0x7f, 0x80, 0xff]);
    expect(tx).toEqual([0, 1, 0x7f, 0x80, 0xff]);
    emu.press(); // bounces twice: still one press
    expect(emu.display).toBe("00000001");
    emu.press();
    expect(displays).toEqual(["rEAdy   ", "00000001", "00000002"]);
    // the count survives a power cut (flash); the display does not
    emu.powerCut();
    expect(emu.display).toBe("        ");
    emu.boot();
    expect(emu.callImage("probe.presses")).toBe(2);
  });

  it("counts Lua VM instructions per button press", () => {
    const emu = new hil.Emulator({ stateDir: tempDir("emu-count-"), imagePath: image, time: 1700000000 });
    emu.boot();
    const { instructions } = emu.measure(() => emu.press());
    // a press runs the debounce timer, the display update and a flash write
    expect(instructions).toBeGreaterThan(200);
    expect(instructions).toBeLessThan(20000);
    console.log(`fixture: ${instructions} Lua instructions per press (boot: ${emu.instructionsSinceBoot - instructions})`);
  });
});
