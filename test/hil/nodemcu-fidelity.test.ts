/**
 * The emulator is never more lenient than the board: each model here is
 * taken from NodeMCU's source (nodemcu-firmware dev-esp32 at 7c5bb151; file
 * and line beside each test) and fails against the emulator as it was
 * before the model.
 */
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { P } from "../support/keyfob.js";
import { IMAGE, ROOT } from "../support/paths.js";
import { buildFixture, loadHil, tempDir } from "./support.js";

type Hil = Awaited<ReturnType<typeof loadHil>>;
let hil: Hil;
let image: string;
beforeAll(async () => {
  image = buildFixture();
  hil = await loadHil();
}, 120_000);

type Ev = { event: string; kind?: string; message?: string; lost?: number };
const KEYFOB_BUILD = join(ROOT, "nodemcu-build", "sdkconfig.fobkit");

/** Boot a board whose init.lua is `init`; tx collects the UART after boot. */
function bootLua(init: string, opts: Record<string, unknown> = {}) {
  const dir = tempDir("emu-fid-");
  writeFileSync(join(dir, "init.lua"), init);
  const emu = new hil.Emulator({ stateDir: dir, time: 1700000000, countInstructions: false, ...opts });
  const events: Ev[] = [];
  const tx: number[] = [];
  emu.on("event", (e: Ev) => events.push(e));
  emu.on("uart", (b: Uint8Array) => tx.push(...b));
  emu.boot();
  const bootText = Buffer.from(tx.splice(0)).toString("latin1");
  const text = () => Buffer.from(tx).toString("latin1");
  return { emu, events, tx, text, bootText, errors: () => events.filter((e) => e.event === "error").map((e) => e.message ?? "") };
}

/** A build file: the keyfob's with some lines replaced or dropped, beside the partition table it names. */
function buildVariant(edit: (text: string) => string): string {
  const dir = tempDir("build-");
  const p = join(dir, "sdkconfig.variant");
  writeFileSync(p, edit(readFileSync(KEYFOB_BUILD, "utf8")));
  copyFileSync(join(ROOT, "nodemcu-build", "partitions-fobkit.csv"), join(dir, "partitions-fobkit.csv"));
  return p;
}

describe("uart: the console is deaf until uart.start (uart.c:70-71, :295-296; commit 53da95b5)", () => {
  it("a data callback gets nothing before uart.start(0), everything after; start returns false on the console", () => {
    // The REPL no longer has the console either (run_input = 0), so start it from a timer.
    const { emu: emu2, text: text2 } = bootLua(`
      uart.on(0, "data", "\\n", function(d) uart.write(0, "got:" .. d) end, 0)
      local t = tmr.create()
      t:alarm(100, tmr.ALARM_SINGLE, function() uart.write(0, "start=" .. tostring(uart.start(0)) .. "\\n") end)
    `);
    emu2.uartWrite("early\n");
    emu2.advance(0.2);
    emu2.uartWrite("late\n");
    expect(text2()).toBe("start=false\ngot:late\n");
  });

  it("uart.stop(0) frees the buffer: input stops reaching the callback", () => {
    const { emu, text } = bootLua(`
      uart.on(0, "data", 0, function(d) uart.write(0, d) if d == "s" then uart.stop(0) end end, 0)
      uart.start(0)
    `);
    emu.uartWrite("abs");
    emu.uartWrite("cd");
    expect(text()).toBe("abs");
  });

  it("uart.stop keeps the half-assembled count (uart.c:280-284 frees line_buffer only; :88 alone resets line_position): after stop/start the next chunk comes early, its old bytes not kept", () => {
    // Chunks of 4. "ab" is half a chunk; a timer stops and restarts the console.
    // On the board line_position is still 2, so "cd" completes a 4-byte chunk
    // whose first 2 bytes were never written into the new buffer (:296).
    const { emu, text } = bootLua(`
      uart.on(0, "data", 4, function(d) uart.write(0, #d .. ":" .. d:gsub(".", function(c) return string.format("%02x", c:byte()) end) .. ";") end, 0)
      uart.start(0)
      local t = tmr.create()
      t:alarm(100, tmr.ALARM_SINGLE, function() uart.stop(0) uart.start(0) end)
    `);
    emu.uartWrite("ab");
    emu.advance(0.2);
    emu.uartWrite("cd");
    expect(text()).toBe("4:cece6364;");
  });

  it("with the buffer started but no callback, console bytes are dropped (user_main.c:187-189 feeds uart.c only while a callback exists): a later callback gets only what follows", () => {
    const { emu, text } = bootLua(`
      uart.on(0, "data", 4, nil)
      uart.start(0)
      local t = tmr.create()
      t:alarm(100, tmr.ALARM_SINGLE, function() uart.on(0, "data", 4, function(d) uart.write(0, "[" .. d .. "]") end, 0) end)
    `);
    emu.uartWrite("ab");
    emu.advance(0.2);
    emu.uartWrite("cdef");
    expect(text()).toContain("[cdef]");
    expect(text()).not.toContain("[abcd]");
  });

  it("uart.on with a length the source refuses leaves need_len 255 and end_char -1 on the port (uart.c:118-124: (uint16_t) cast, clamp, then the error); the old callback stays", () => {
    // Chunks of 4 first; then a refused length of 300 (and -1, 65535 after the cast): the callback
    // now waits for 255 bytes. 4 bytes give nothing, 251 more give one chunk of 255.
    const { emu, text, bootText } = bootLua(`
      uart.on(0, "data", 4, function(d) uart.write(0, "<" .. #d .. ">") end, 0)
      uart.start(0)
      local ok1 = pcall(uart.on, 0, "data", 300, function() end, 0)
      local ok2 = pcall(uart.on, 0, "data", -1, function() end, 0)
      print(tostring(ok1) .. tostring(ok2))
    `);
    expect(bootText).toContain("\nfalsefalse\n");
    emu.uartWrite("abcd");
    emu.advance(0.1);
    expect(text()).toBe("");
    emu.uartWrite("x".repeat(251));
    emu.advance(0.1);
    expect(text()).toBe("<255>");
  });

  it("uart.on's length is cast to uint16_t (uart.c:118): 65536 becomes 0, accepted", () => {
    const { bootText } = bootLua(`print(pcall(uart.on, 0, "data", 65536, function() end, 0))`);
    expect(bootText).toContain("\ntrue\n");
  });

  it("parity and stop-bit constants are platform.h's (63-76)", () => {
    const { bootText } = bootLua(`print(table.concat({uart.PARITY_NONE, uart.PARITY_EVEN, uart.PARITY_ODD, uart.STOPBITS_1, uart.STOPBITS_2, uart.STOPBITS_1_5}, ","))`);
    expect(bootText).toContain("\n0,1,2,1,2,3\n");
  });
});

describe("tmr (tmr.c:110-160)", () => {
  it("start() on a running timer returns false and does not restart it; stop() then start() does", () => {
    const { emu, text } = bootLua(`
      local t = tmr.create()
      t:register(100, tmr.ALARM_SEMI, function() uart.write(0, "fired@" .. tostring(probe_ms) .. ";") end)
      probe_ms = 0
      uart.write(0, tostring(t:start()) .. ",")
      local u = tmr.create()
      u:alarm(60, tmr.ALARM_SINGLE, function()
        probe_ms = 60
        uart.write(0, "again=" .. tostring(t:start()) .. ";")
      end)
      local v = tmr.create()
      v:alarm(80, tmr.ALARM_SINGLE, function()
        probe_ms = 80
        uart.write(0, "stop=" .. tostring(t:stop()) .. ",start=" .. tostring(t:start()) .. ";")
      end)
    `);
    emu.advance(0.15);
    // Not restarted at 60 ms (it would have fired at 160), restarted at 80 ms (fires at 180).
    expect(text()).toBe("again=false;stop=true,start=true;");
    emu.advance(0.05);
    expect(text()).toBe("again=false;stop=true,start=true;fired@80;");
  });

  it("start() on a timer never registered raises; so does a SINGLE timer after it fired", () => {
    const { errors } = bootLua(`local t = tmr.create(); t:start()`);
    expect(errors()[0]).toMatch(/timer not registered/);
    const { emu, errors: errors2, text } = bootLua(`
      local t = tmr.create()
      t:alarm(10, tmr.ALARM_SINGLE, function() uart.write(0, "once;") end)
      local u = tmr.create()
      u:alarm(50, tmr.ALARM_SINGLE, function() uart.write(0, "stop=" .. tostring(t:stop()) .. ";") t:start() end)
    `);
    emu.advance(0.1);
    expect(text()).toMatch(/^once;stop=false;/);
    expect(errors2()[0]).toMatch(/timer not registered/);
  });
});

describe("constants and returns", () => {
  it("wifi.mode returns nothing (wifi.c:61-78)", () => {
    const { bootText } = bootLua(`print(select("#", wifi.mode(wifi.STATION, false)))`);
    expect(bootText).toMatch(/\n0\n> $/);
  });

  it("spi.master refuses VSPI: spi_master.c:224 checks SPI2_HOST twice", () => {
    const { errors } = bootLua(`spi.master(spi.VSPI, { sclk = 18, mosi = 23 }, 0)`);
    expect(errors()[0]).toMatch(/bad argument #1 .*invalid host/);
    const { errors: ok } = bootLua(`spi.master(spi.HSPI, { sclk = 14, mosi = 13 }, 0)`);
    expect(ok()).toEqual([]);
  });

  it("the debug library is in every build (components/lua/Kconfig LUA_REQUIRED_MODULES)", () => {
    const { bootText } = bootLua(`print(type(debug), type(debug.getregistry), type(debug.traceback))`);
    expect(bootText).toContain("table\tfunction\tfunction\n");
  });
});

describe("files: SPIFFS names under base path \"\" (user_main.c:138-139; esp-idf vfs.c:308-316)", () => {
  it("\"/x\" and \"x\" are two files; file.list shows \"/x\" as \"x\" with the stat of \"x\" (esp_spiffs.c:734-738, file.c:39-75)", () => {
    const { bootText, emu } = bootLua(
      [
        'local f = io.open("/x", "w") f:write("slash") f:close()',
        'f = io.open("x", "w") f:write("no") f:close()',
        'print(io.open("/x"):read("a"), io.open("x"):read("a"))',
        'file.remove("x")',
        'print(file.exists("/x"), file.exists("x"), io.open("x"))',
        'print(file.list()["x"], file.list()["/x"])',
        'print(file.rename("/x", "x"), file.exists("/x"), io.open("x"):read("a"))',
      ].join("\n"),
    );
    expect(bootText).toContain("slash\tno\n");
    expect(bootText).toContain("true\tfalse\tnil\tx: No such file or directory\t2\n");
    expect(bootText).toContain("0\tnil\n");
    expect(bootText).toContain("true\tfalse\tslash\n");
    expect(emu.flash.list().has("x")).toBe(true);
  });

  it("a name longer than 31 bytes: fopen fails with ENAMETOOLONG (esp_spiffs.c:495-496)", () => {
    const { bootText } = bootLua(`print(io.open("/${"n".repeat(31)}", "w"))`);
    expect(bootText).toContain(`/${"n".repeat(31)}: File name too long\t91\n`);
  });
});

describe("io (liolib.c) and the base library's file loaders (lbaselib.c, lauxlib.c, loadlib.c)", () => {
  it("read(0) is nil at the end (test_eof, liolib.c:474-479); an unknown format is a bad argument (:563-564); mode takes any number of b (:40-44)", () => {
    const { bootText } = bootLua(
      [
        'local f = io.open("r.txt", "w") f:write("ab") f:close()',
        'f = io.open("r.txt", "rbb")',
        'print(f:read(0), f:read(2), f:read(0))',
        'print(pcall(f.read, f, "x"))',
      ].join("\n"),
    );
    expect(bootText).toContain("\tab\tnil\n");
    expect(bootText).toMatch(/false\t.*bad argument #1 to '\?' \(invalid format\)|false\t.*invalid format/);
  });

  it("loadfile returns nil and lauxlib's message; dofile raises it unprefixed; no name is \"filename is NULL\" (lbaselib.c:269-292, :361-368; lauxlib.c:725-731, :774-780)", () => {
    const { bootText } = bootLua(
      ["print(loadfile(\"nope.lua\"))", "print(pcall(dofile, \"nope.lua\"))", "print(pcall(dofile))"].join("\n"),
    );
    expect(bootText).toContain("nil\tcannot open nope.lua: No such file or directory\n");
    expect(bootText).toContain("false\tcannot open nope.lua: No such file or directory\n");
    expect(bootText).toMatch(/false\t\S*filename is NULL\n/);
  });

  it("require searches package.path \"?.lc;?.lua\" with dots as \"/\" and calls the loader with (name, file) (luaconf.h:86; loadlib.c:455-519)", () => {
    const dir = tempDir("emu-fid-req-");
    writeFileSync(join(dir, "a%2Fb.lua"), "local name, file = ... return name .. '|' .. file");
    writeFileSync(join(dir, "init.lua"), 'print(require("a.b"))\nprint(pcall(require, "c.d"))');
    const emu = new hil.Emulator({ stateDir: dir, time: 1700000000, countInstructions: false });
    const tx: number[] = [];
    emu.on("uart", (b: Uint8Array) => tx.push(...b));
    emu.boot();
    const text = Buffer.from(tx).toString("latin1");
    expect(text).toContain("a.b|a/b.lua\n");
    expect(text).toContain("module 'c.d' not found:\n\tno field package.preload['c.d']\n\tno file 'c/d.lc'\n\tno file 'c/d.lua'");
  });
});

describe("the NodeMCU build file (nodemcu-build/sdkconfig.fobkit)", () => {
  const probeGlobals = (build?: string) => {
    return bootLua(`print(type(spi), type(sodium), type(net), type(http), type(file), type(bit))`, build ? { build } : {}).bootText;
  };

  it("a module the build lacks is a nil global, as on the board; the keyfob's build has spi and sodium", () => {
    expect(probeGlobals()).toContain("table\ttable\tnil\tnil\ttable\tnil\n");
    const noSpi = buildVariant((t) => t.replace("CONFIG_NODEMCU_CMODULE_SPI=y", "CONFIG_NODEMCU_CMODULE_SPI=n"));
    expect(probeGlobals(noSpi)).toContain("nil\ttable\tnil\tnil\ttable\tnil\n");
    // Not set at all: NodeMCU's Kconfig default, which for sodium and spi is off.
    const defaults = buildVariant((t) => t.replace(/^CONFIG_NODEMCU_CMODULE_(SPI|SODIUM)=y$/gm, ""));
    expect(probeGlobals(defaults)).toContain("nil\tnil\tnil\tnil\ttable\tnil\n");
  });

  it("refuses a build it cannot model, naming the setting", () => {
    const int64 = buildVariant((t) => t.replace("CONFIG_LUA_NUMBER_INT64=n", "CONFIG_LUA_NUMBER_INT64=y"));
    expect(() => new hil.Emulator({ stateDir: tempDir("emu-fid-"), build: int64 })).toThrow(/CONFIG_LUA_NUMBER_INT64/);
    const noUart = buildVariant((t) => t.replace("CONFIG_NODEMCU_CMODULE_UART=y", "CONFIG_NODEMCU_CMODULE_UART=n"));
    expect(() => new hil.Emulator({ stateDir: tempDir("emu-fid-"), build: noUart })).toThrow(/CMODULE_UART=n/);
    const typo = buildVariant((t) => t + "\nCONFIG_NODEMCU_CMODULE_SPII=y\n");
    expect(() => new hil.Emulator({ stateDir: tempDir("emu-fid-"), build: typo })).toThrow(/CMODULE_SPII: no such module/);
    expect(() => new hil.Emulator({ stateDir: tempDir("emu-fid-"), build: "/nonexistent/sdkconfig" })).toThrow(/cannot read the NodeMCU build file/);
  });

  it("without newlib's LF settings the console translates CR and LF (user_main.c:39-54, :234-237): binary frames break", () => {
    const init = `uart.on(0, "data", 0, function(d) uart.write(0, string.format("%02x;", d:byte())) end, 0) uart.start(0)`;
    const lf = bootLua(init);
    lf.emu.uartWrite([0x0d, 0x41, 0x0d, 0x0a]);
    expect(lf.text()).toBe("0d;41;0d;0a;");
    // ESP-IDF's newlib defaults: stdin CR (CR -> LF), stdout CRLF (LF -> CR LF).
    const idfDefaults = buildVariant((t) => t.replace(/^CONFIG_NEWLIB_STD(IN|OUT)_LINE_ENDING_LF=y$/gm, ""));
    const cr = bootLua(init + ` uart.write(0, "\\n")`, { build: idfDefaults });
    cr.emu.uartWrite([0x0d, 0x41, 0x0d, 0x0a]);
    expect(cr.text()).toBe("0a;41;0a;0a;");
    const crlfIn = buildVariant((t) => t.replace("CONFIG_NEWLIB_STDIN_LINE_ENDING_LF=y", "CONFIG_NEWLIB_STDIN_LINE_ENDING_CRLF=y"));
    const crlf = bootLua(init, { build: crlfIn });
    crlf.emu.uartWrite([0x0d, 0x41, 0x0d, 0x0a, 0x0d]);
    expect(crlf.text()).toBe("0d;41;0a;"); // CR LF became LF; the last CR waits for the byte after it
    // and on the way out, the default CRLF adds a CR before every LF
    const out = bootLua(`uart.on(0, "data", 0, function(d) uart.write(0, d) end, 0) uart.start(0)`, { build: idfDefaults });
    out.emu.uartWrite([0x0a]);
    expect(out.tx).toEqual([0x0d, 0x0a]); // the LF echoed goes out as CR LF
  });
});

describe("the keyfob image on a build without the LF settings", () => {
  it("answers INFO on the keyfob's build; on ESP-IDF's default line endings a frame holding 0x0D is damaged on the way in", () => {
    const infoWithCr = () => P.encodeRequest({ rid: 13, cmd: P.CMD_INFO }) as number[]; // rid 13 = CR on the wire
    expect(infoWithCr()).toContain(0x0d);
    const replies = (build?: string) => {
      const emu = new hil.Emulator({ stateDir: tempDir("emu-fid-"), imagePath: IMAGE, time: 1700000000, countInstructions: false, ...(build ? { build } : {}) });
      const d = P.newDeframer();
      const events: { event: number; status?: number; rid?: number }[] = [];
      emu.on("uart", (b: Uint8Array) => events.push(...P.decodeChunk(d, Array.from(b), true)));
      emu.boot();
      emu.advance(0.5);
      P.deframerReset(d);
      events.length = 0;
      emu.uartWrite(infoWithCr());
      emu.advance(0.05);
      return events.filter((e) => e.event === P.RX_FRAME);
    };
    expect(replies()).toMatchObject([{ rid: 13, status: 0 }]);
    const idfDefaults = buildVariant((t) => t.replace(/^CONFIG_NEWLIB_STD(IN|OUT)_LINE_ENDING_LF=y$/gm, ""));
    expect(replies(idfDefaults).filter((e) => e.status === 0)).toEqual([]);
  });
});

describe("console receive path: 256-byte ring buffer, 100-slot queue, overflow (console-rx.ts)", () => {
  // A per-byte callback that counts; the first byte makes it write 2000 bytes,
  // which blocks Lua until all but the TX FIFO's 128 are out: (2000-128) bytes
  // at 115200 baud = 162.5 ms (lineTiming models the driver without TX buffer).
  const init = `
    n = 0
    uart.on(0, "data", 0, function(d)
      n = n + 1
      if n == 1 then uart.write(0, string.rep("x", 2000)) end
      if d == "?" then uart.write(0, "n=" .. n) end
    end, 0)
    uart.start(0)
  `;

  it("a burst while Lua is busy: 101 queued, 256 in the ring, a 120-byte stash, 128 in the FIFO; the next byte overflows the FIFO and empties it", () => {
    const { emu, events, text, tx } = bootLua(init, { lineTiming: true });
    emu.uartWrite("!");
    expect(tx.length).toBe(2000);
    tx.length = 0;
    const burst = new Uint8Array(600).fill(0x61);
    emu.uartWrite(burst);
    // 120-byte chunks: ring 120 -> 101 to the queue and the reader's hand; 139; the
    // third chunk does not fit (259 > 256): stashed, RX interrupts off; the FIFO
    // takes 128 more; byte 489 overflows it: 129 lost; the last 111 wait in the FIFO.
    expect(emu.counters.uartRxLost).toBe(129);
    expect(events.filter((e) => e.event === "uart-overrun")).toEqual([{ event: "uart-overrun", lost: 129 }]);
    emu.advance(0.2);
    emu.uartWrite("?");
    expect(text()).toBe(`n=${1 + 600 - 129 + 1}`);
  });

  it("the station's window (128 bytes in flight) fits while Lua is busy: nothing is lost", () => {
    const { emu, text, tx } = bootLua(init, { lineTiming: true });
    emu.uartWrite("!");
    tx.length = 0;
    emu.uartWrite(new Uint8Array(128).fill(0x62));
    expect(emu.counters.uartRxLost).toBe(0);
    emu.advance(0.2);
    emu.uartWrite("?");
    expect(text()).toBe("n=130");
  });
});

describe("gpio: the pin's interrupt is off until its Lua callback ran (gpio.c:61-66, :226-241)", () => {
  it("edges while the callback waits for a busy Lua are not seen; the level is the one at the interrupt", () => {
    const { emu, text } = bootLua(`
      calls = {}
      gpio.config({ gpio = 27, dir = gpio.IN, pull = gpio.PULL_UP })
      gpio.trig(27, gpio.INTR_UP_DOWN, function(pin, level) calls[#calls + 1] = level end)
      uart.on(0, "data", 0, function(d)
        if d == "!" then uart.write(0, string.rep("x", 2000)) end
        if d == "?" then uart.write(0, "calls=" .. table.concat(calls, ",")) end
      end, 0)
      uart.start(0)
    `, { lineTiming: true });
    emu.uartWrite("!"); // Lua busy for 162.5 ms
    emu.press(120); // four edges (bounce at 0.4 and 0.8 ms, release at 120 ms), all while Lua is busy
    emu.advance(0.2);
    emu.press(120); // Lua idle now: every edge is seen
    emu.advance(0.2);
    const before = text().length;
    emu.uartWrite("?");
    expect(text().slice(before)).toBe("calls=0,0,1,0,1");
  });

  it("the keyfob's debounced button still counts one press per press, also after a lost debounce alarm", () => {
    // realtime: press() leaves time to the test
    const emu = new hil.Emulator({ stateDir: tempDir("emu-fid-"), imagePath: image, time: 1700000000, countInstructions: false, realtime: true, lineTiming: true });
    const pressAndWait = () => {
      emu.press(120);
      emu.advance(0.2);
    };
    emu.boot();
    // Let the boot's SPIFFS work end first (each file.exists is a name lookup, hil/nodemcu/file.ts):
    // a press while Lua is still busy booting is a different case (the test above).
    emu.advance(0.5);
    pressAndWait();
    expect(emu.callImage("probe.presses")).toBe(1);
    // Press, and 15 ms later 500 bytes for the echo app: once the TX FIFO is
    // full every echo blocks a byte time, so the 100-slot high queue stays
    // full while the 30 ms debounce alarm expires. task_post_high fails, the
    // alarm is lost (tmr.c:39) and the SEMI timer stays "running".
    emu.press(120);
    emu.advance(0.015);
    emu.uartWrite(new Uint8Array(500).fill(0x55));
    emu.advance(0.2);
    expect(emu.counters.tasksLost).toBe(1);
    expect(emu.counters.uartRxLost).toBe(0);
    expect(emu.callImage("probe.presses")).toBe(1);
    // The next presses count again: stop() then start() puts the stranded timer back to work.
    pressAndWait();
    pressAndWait();
    expect(emu.callImage("probe.presses")).toBe(3);
  });
});

describe("SPIFFS: at most CONFIG_NODEMCU_MAX_OPEN_FILES files open (user_main.c:141; platform/Kconfig:29-31, default 4)", () => {
  it("a fifth io.open fails with EIO (SPIFFS_ERR_OUT_OF_FILE_DESCS, esp_spiffs.c spiffs_res_to_errno's default); closing one frees its place", () => {
    const { text, bootText, errors } = bootLua(`
      local fs = {}
      for i = 1, 4 do fs[i] = assert(io.open("f" .. i, "w")) end
      local f5, msg, errno = io.open("f5", "w")
      uart.write(0, tostring(f5) .. "|" .. tostring(msg) .. "|" .. tostring(errno) .. "\\n")
      fs[1]:close()
      local again = io.open("f5", "w")
      uart.write(0, tostring(again ~= nil) .. "\\n")
    `);
    expect(errors()).toEqual([]);
    expect(bootText + text()).toContain("nil|f5: Input/output error|5\ntrue\n");
  });
});

describe("require follows package.loaded; loadfile honours its mode; node.sleep refuses a too-short sleep", () => {
  it("package.loaded is require's cache (loadlib.c:614-639, :807-809): a value put there is returned, a module cleared from it loads again, a module's own entry wins", () => {
    const { bootText } = bootLua(
      [
        'local f = io.open("m.lua", "w") f:write("runs = (rawget(_G, \\"runs\\") or 0) + 1 return { n = runs }") f:close()',
        'f = io.open("s.lua", "w") f:write("package.loaded[...] = \\"self\\"") f:close()',
        'package.loaded.ready = 42',
        'print("ready", require("ready"))',
        'local a = require("m")',
        'print("cached", package.loaded.m == a, require("m") == a, runs)',
        'package.loaded.m = nil',
        'print("again", require("m").n, runs)',
        'print("self", require("s"), package.loaded.s)',
        'package.preload.p = function(name, extra) return name .. extra end',
        'print("preload", require("p"))',
        'package.path = "lib_?.lua"',
        'f = io.open("lib_q.lua", "w") f:write("return 7") f:close()',
        'print("path", require("q"), pcall(require, "m2"))',
      ].join("\n"),
    );
    expect(bootText).toContain("ready\t42\n");
    expect(bootText).toContain("cached\ttrue\ttrue\t1\n");
    expect(bootText).toContain("again\t2\t2\n");
    expect(bootText).toContain("self\tself\tself\n");
    expect(bootText).toContain("preload\tp:preload:\n");
    expect(bootText).toMatch(/path\t7\tfalse\t.*module 'm2' not found:\n\tno field package.preload\['m2'\]\n\tno file 'lib_m2.lua'/);
  });

  it("loadfile(name, mode): a binary chunk under \"t\" and text under \"b\" are refused, \"bt\" takes both (lbaselib.c:286-292, ldo.c:761-780)", () => {
    const { bootText } = bootLua(
      [
        'local f = io.open("c.lua", "w") f:write("return 5") f:close()',
        'node.compile("c.lua")',
        'print("t-lc", loadfile("c.lc", "t"))',
        'print("b-lua", loadfile("c.lua", "b"))',
        'print("bt", loadfile("c.lc", "bt")(), loadfile("c.lua", "bt")(), loadfile("c.lc", "b")(), loadfile("c.lua", "t")(), loadfile("c.lc")())',
      ].join("\n"),
    );
    expect(bootText).toContain("t-lc\tnil\tattempt to load a binary chunk (mode is 't')\n");
    expect(bootText).toContain("b-lua\tnil\tattempt to load a text chunk (mode is 'b')\n");
    expect(bootText).toContain("bt\t5\t5\t5\t5\t5\n");
  });

  it("node.sleep: a timer sleep no longer than ESP-IDF's light-sleep overhead is refused as node.c raises it (node.c:302-307); options are type-checked in node.c's order", () => {
    const { bootText } = bootLua(
      [
        "print(pcall(node.sleep, { us = 0 }))",
        "print(pcall(node.sleep, { us = 500 }))",
        "print(pcall(node.sleep, { secs = 0 }))",
        'print(pcall(node.sleep, { us = "x" }))',
        'print(pcall(node.sleep, { uart = "x", us = "x" }))',
        'print(pcall(node.sleep, { us = 20000, touch = 1 }))',
        "print(pcall(node.sleep, 5))",
        "print(pcall(node.sleep, { us = 20000 }))",
      ].join("\n"),
    );
    const lines = bootText.split("\n").filter((l) => l.startsWith("true") || l.startsWith("false"));
    expect(lines[0]).toMatch(/^false\t.*Error 258 returned from esp_light_sleep_start\(\)$/);
    expect(lines[1]).toMatch(/^false\t.*Error 258 returned from esp_light_sleep_start\(\)$/);
    expect(lines[2]).toMatch(/^false\t.*Error 258 returned from esp_light_sleep_start\(\)$/);
    expect(lines[3]).toMatch(/^false\t.*bad option us to 'sleep' \(number expected, got string\)$/);
    expect(lines[4]).toMatch(/^false\t.*bad option uart to 'sleep' \(must be integer or table\)$/);
    expect(lines[5]).toMatch(/^false\t.*bad option touch to 'sleep' \(boolean expected, got number\)$/);
    expect(lines[6]).toMatch(/^false\t.*bad argument #1 to '\?' \(table expected, got number\)$|^false\t.*table expected, got number/);
    expect(lines[7]).toBe("true\t4");
  });
});
