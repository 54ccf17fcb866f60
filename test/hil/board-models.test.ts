/**
 * The emulator is never more lenient than the board: the models behind the
 * fail-closed boot and the flash store, each against the NodeMCU source it
 * cites (dev-esp32 at 7c5bb151).
 */
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Emulator } from "../../hil/emulator.js";
import { SPIFFS_DATA_PAGE_BYTES, spiffsGeometry, spiffsPages } from "../../hil/flash.js";
import type { Fault } from "../../hil/faults.js";
import { NEWLIB_BUFSIZ } from "../../hil/nodemcu/file.js";
import { tempDir } from "./support.js";

type Ev = { event: string; kind?: string; message?: string };

function board(init: string, faults: Fault[] = []) {
  const dir = tempDir("emu-model-");
  writeFileSync(join(dir, "init.lua"), init);
  const emu = new Emulator({ stateDir: dir, time: 1_764_000_000, faults, countInstructions: false });
  const events: Ev[] = [];
  const tx: number[] = [];
  emu.on("event", (e: Ev) => events.push(e));
  emu.on("uart", (b: Uint8Array) => tx.push(...b));
  const said = () => Buffer.from(tx).toString("latin1");
  return { emu, dir, events, said, boots: () => events.filter((e) => e.event === "boot").length };
}

describe("init.lua errors (lua.c pmain: docall, l_print, no restart)", () => {
  it("prints the error, does not restart, and leaves the console with the Lua REPL", () => {
    const b = board('error("boom")');
    b.emu.boot();
    expect(b.said()).toMatch(/init\.lua:1: boom\nstack traceback:/);
    b.emu.advance(30);
    expect(b.boots()).toBe(1);
    expect(b.events.some((e) => e.event === "restart")).toBe(false);
    b.emu.uartWrite("print(6*7)\n");
    expect(b.said()).toMatch(/print\(6\*7\)\n42\n> $/);
    b.emu.close();
  });

  it("after init.lua took the console (uart.on run_input 0), its error leaves nobody listening", () => {
    const b = board('uart.on(0, "data", 0, function() end, 0)\nerror("boom")');
    b.emu.boot();
    b.emu.uartWrite('io.open("pwned","w"):write("x")\n');
    b.emu.advance(5);
    expect(b.emu.flash.exists("pwned")).toBe(false);
    expect(b.said()).not.toContain("pwned");
    expect(b.boots()).toBe(1);
    b.emu.close();
  });

  it("an error in a callback still restarts 2 s later (node.c default_onerror)", () => {
    const b = board('tmr.create():alarm(10, tmr.ALARM_SINGLE, function() error("late") end)');
    b.emu.boot();
    b.emu.advance(2.5);
    expect(b.boots()).toBe(2);
    b.emu.close();
  });
});

describe("faults modelled from the source", () => {
  const queueOne = "i2c.start(i2c.HW0) i2c.address(i2c.HW0, 0x68, i2c.TRANSMITTER) i2c.write(i2c.HW0, 0) i2c.stop(i2c.HW0)";

  it("i2c-timeout with to_ms: i2c.transfer blocks max(to_ms, 1000 ms) and raises \"i2c timeout\" (i2c_hw_master.c 331-334, 360-388; esp-idf i2c.c 1544-1590)", () => {
    const b = board(
      [
        "i2c.setup(i2c.HW0, 21, 22, i2c.FAST)",
        queueOne,
        "print(pcall(i2c.transfer, i2c.HW0, 50))",
        // The queue was reset before the raise: a second transfer has nothing to run.
        "print(pcall(i2c.transfer, i2c.HW0, 50))",
        queueOne,
        "print(pcall(i2c.transfer, i2c.HW0, 2500))",
        'print("done")',
      ].join("\n"),
      ["i2c-timeout"],
    );
    b.emu.boot();
    // The first transfer keeps Lua busy 1000 ms (the driver's alive interval outlasts 50 ms): what
    // init.lua prints after it leaves the UART only then.
    b.emu.advance(0.9);
    expect(b.said()).not.toContain("i2c timeout");
    b.emu.advance(0.2);
    expect(b.said()).toMatch(/false\ti2c timeout\nfalse\tno commands scheduled/);
    // The third keeps it busy 2500 ms more.
    b.emu.advance(2.3);
    expect(b.said()).not.toContain("done");
    b.emu.advance(0.2);
    expect(b.said()).toMatch(/false\ti2c timeout\ndone\n/);
    b.emu.close();
  });

  it("i2c-timeout without to_ms: portMAX_DELAY, the transfer never returns and the board hangs until a power cycle", () => {
    const b = board(["i2c.setup(i2c.HW0, 21, 22, i2c.FAST)", queueOne, "print(pcall(i2c.transfer, i2c.HW0))", 'print("after")'].join("\n"), ["i2c-timeout"]);
    b.emu.boot();
    b.emu.advance(30);
    expect(b.said()).not.toContain("i2c timeout");
    expect(b.said()).not.toContain("after");
    expect(b.events.some((e) => e.event === "hung")).toBe(true);
    b.emu.uartWrite('print("anyone")\n');
    b.emu.advance(1);
    expect(b.said()).not.toContain("anyone");
    b.emu.close();
  });

  it("no-spi / no-rtcmem: the module is nil, as in a build without it (Kconfig defaults n)", () => {
    const b = board("print(type(spi), type(rtcmem), type(i2c))", ["no-spi", "no-rtcmem"]);
    b.emu.boot();
    expect(b.said()).toContain("nil\tnil\ttable");
    b.emu.close();
  });

  it("oom-at-load: compiling fobkit.lua raises \"not enough memory\"; other files still load", () => {
    const b = board('print(pcall(dofile, "fobkit.lua"))\nprint(dofile("other.lua"))', ["oom-at-load"]);
    writeFileSync(join(b.dir, "fobkit.lua"), "return 1");
    writeFileSync(join(b.dir, "other.lua"), "return 2");
    b.emu.boot();
    expect(b.said()).toMatch(/false\t.*not enough memory\n2\n/);
    b.emu.close();
  });
});

describe("rtcmem (rtcmem.c, RTC_NOINIT_ATTR)", () => {
  const init = [
    "local a, b = rtcmem.read32(7, 2)",
    "print('slots', a, b)",
    "if a ~= 12345 then rtcmem.write32(7, 12345, 0x7fffffff) node.restart() end",
    "print(pcall(rtcmem.write32, 127, 1, 2))",
    "print('past end', select('#', rtcmem.read32(128)), select('#', rtcmem.read32(126, 5)))",
  ].join("\n");

  it("keeps its words across node.restart, and checks its range", () => {
    const b = board(init);
    b.emu.boot();
    b.emu.advance(1);
    expect(b.boots()).toBe(2);
    expect(b.said()).toMatch(/slots\t12345\t2147483647\n/);
    expect(b.said()).toMatch(/false\t.*RTC mem would overrun/);
    expect(b.said()).toContain("past end\t0\t2");
    b.emu.close();
  });

  it("holds garbage after a power cut, so a count needs a magic word", () => {
    const b = board("print('slot', rtcmem.read32(7)) rtcmem.write32(7, 12345)");
    b.emu.boot();
    expect(b.emu.rtcmemSlot(7)).toBe(12345);
    b.emu.powerCut();
    b.emu.boot();
    const seen = [...b.said().matchAll(/slot\t(-?\d+)/g)].map((m) => Number(m[1]));
    expect(seen).toHaveLength(2);
    expect(seen[1]).not.toBe(12345);
    b.emu.close();
  });
});

describe("SPIFFS through newlib (file writes)", () => {
  const write = (bytes: number, how = "wb") => `f = assert(io.open("data", "${how}")) print("w", f:write(string.rep("x", ${bytes})) ~= nil)`;

  it("buffers 128 bytes: nothing reaches flash before the buffer fills or the file closes", () => {
    const b = board([write(NEWLIB_BUFSIZ - 1), "print('size', file.list().data)", "f:write('y')", "print('size', file.list().data)", "f:write('z')", "print('size', file.list().data)", "print(f:close())", "print('size', file.list().data)"].join("\n"));
    b.emu.boot();
    expect(b.said()).toMatch(/size\t0\nsize\t128\nsize\t128\ntrue\nsize\t129\n/);
    b.emu.close();
  });

  it("close-error: f:write succeeds, f:close() returns nil, strerror, errno, and the buffered tail is lost", () => {
    const b = board([write(200), "print(f:close())"].join("\n"), ["close-error"]);
    b.emu.boot();
    expect(b.said()).toMatch(/w\ttrue\nnil\tInput\/output error\t5\n/);
    // newlib's first 128 bytes went to SPIFFS at the flush, but into its write cache
    // (spiffs_hydrogen.c:505-569 at 0dbb3f71: a run shorter than a page), which only the
    // failing close would have written: none of the 200 bytes reached flash.
    expect(statSync(join(b.dir, "data")).size).toBe(0);
    b.emu.close();
  });

  it("flash-full: a new file cannot be created (ENOSPC from open)", () => {
    const b = board('print(io.open("data", "wb"))', ["flash-full"]);
    b.emu.boot();
    expect(b.said()).toMatch(/nil\tdata: No space left on device\t28\n/);
    b.emu.close();
  });

  it("capacity: the keyfob's 0x50000-byte SPIFFS holds 1171 pages of 251 bytes (partitions-fobkit.csv); a write past it fails at the flush", () => {
    expect(spiffsGeometry(0x50000).totalPages).toBe(1171);
    expect(spiffsGeometry(0x50000).totalPages * SPIFFS_DATA_PAGE_BYTES).toBe(293_921);
    expect(spiffsPages(0)).toBe(1);
    expect(spiffsPages(251)).toBe(2);
    expect(spiffsPages(252)).toBe(3);
    // A 280,000-byte filler (1117 pages) and init.lua leave a few dozen pages free.
    const b = board([write(20000), "print(f:close())"].join("\n"));
    expect(b.emu.flash.geometry.totalPages).toBe(1171);
    writeFileSync(join(b.dir, "filler"), Buffer.alloc(280_000));
    const free = b.emu.flash.freePages();
    expect(free).toBeLessThan(60);
    b.emu.boot();
    expect(b.said()).toMatch(/w\tfalse\nnil\tNo space left on device\t28\n/);
    const kept = statSync(join(b.dir, "data")).size;
    expect(kept % NEWLIB_BUFSIZ).toBe(0); // whole buffers only
    // Never more than was free, less one index header. SPIFFS itself gives up sooner than
    // SPIFFS_info's count suggests: every append after the first writes a new copy of the file's
    // index header (spiffs_nucleus.c:1455-1457), and with at most 3 blocks wholly free every
    // append first collects garbage (spiffs_gc.c:118-121), which finds no deleted block to win
    // back before the pages run out (hil/spiffs-gc.ts).
    expect(kept).toBeLessThanOrEqual((free - 1) * SPIFFS_DATA_PAGE_BYTES);
    expect(kept).toBeGreaterThan(0);
    expect(b.emu.flash.pages.work.runs).toBeGreaterThan(0);
    b.emu.close();
  });

  it("SPIFFS work takes time the way a board takes it: tens of ms per record write", () => {
    const b = board([write(60), "print(f:close())", 'print(file.rename("data", "data2"))'].join("\n"));
    b.emu.boot();
    expect(b.said()).toContain("true\ntrue\n");
    // open 15 + one flush of 60 bytes (>= 1) + rename 15 (hil/flash.ts header figures)
    expect(b.emu.counters.flashBusyMs).toBeGreaterThanOrEqual(31);
    expect(readFileSync(join(b.dir, "data2"), "latin1")).toBe("x".repeat(60));
    b.emu.close();
  });

  it("reading takes time too: opening a file to read scans every block's lookup page, each page read costs one flash read", () => {
    const writeOnly = board([write(600), "print(f:close())"].join("\n"));
    writeOnly.emu.boot();
    const base = writeOnly.emu.counters.flashBusyMs;
    writeOnly.emu.close();
    const writeRead = board([write(600), "print(f:close())", 'g = io.open("data", "r") print(#g:read("a")) g:close()', 'print(loadfile("nothing"))'].join("\n"));
    writeRead.emu.boot();
    expect(writeRead.said()).toContain("600\n");
    // Two lookups (io.open "r", loadfile of a missing file) at 80 blocks x 110 us (the keyfob's partition), and 3 data pages of 251 bytes (hil/flash.ts).
    expect(writeRead.emu.flash.geometry.blocks).toBe(80);
    expect(writeRead.emu.counters.flashBusyMs - base).toBeGreaterThanOrEqual(2 * 8.8 + 0.33 - 0.01);
    writeRead.emu.close();
  });

  it("on the PTY (realtime) the reply of a task that wrote flash leaves only after the flash time", () => {
    const dir = tempDir("emu-model-");
    writeFileSync(join(dir, "init.lua"), 'uart.start(0) uart.on(0, "data", 0, function(d) local f = io.open("log", "ab") f:write(d) f:close() uart.write(0, "ok") end, 0)');
    const emu = new Emulator({ stateDir: dir, time: 1_764_000_000, realtime: true, countInstructions: false });
    const tx: number[] = [];
    emu.boot();
    emu.on("uart", (x: Uint8Array) => tx.push(...x));
    emu.uartWrite("a");
    expect(tx).toEqual([]); // open 15 ms + flush + close: the Lua task is still in SPIFFS
    emu.advance(0.010);
    expect(tx).toEqual([]);
    emu.advance(0.020);
    expect(Buffer.from(tx).toString("latin1")).toBe("ok");
    expect(emu.counters.flashBusyMs).toBeGreaterThanOrEqual(16);
    emu.close();
  });
});
