/**
 * The emulated board's Lua REPL (hil/repl.ts) against what dev-esp32's
 * linput.c and lua.c do, in-process; and the board-side CRC-32 that
 * fobkit flash relies on, on fengari (32-bit integers) and on C Lua 5.3
 * (64-bit), against the host's.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Emulator } from "../../hil/emulator.js";
import { BOARD_CRC_LUA, crc32, crcHex } from "../../host/flash/crc32.js";
import { luaChunks, luaQuote, MAX_LINE } from "../../host/flash/lua-chunks.js";
import { prng } from "../support/prng.js";
import { LINK_BAUD } from "../../protocol/codes.js";

function board(files: Record<string, string> = {}) {
  const dir = mkdtempSync(join(tmpdir(), "fobkit-repl-"));
  for (const [n, t] of Object.entries(files)) writeFileSync(join(dir, n), t, "latin1");
  const emu = new Emulator({ stateDir: dir, time: 1_764_000_000 });
  let out = "";
  emu.on("uart", (b: Uint8Array) => (out += Buffer.from(b).toString("latin1")));
  emu.boot();
  return {
    emu, dir,
    /** Everything the board sent since the last take(). */
    take(): string {
      const o = out;
      out = "";
      return o;
    },
    send(s: string | Uint8Array) {
      emu.uartWrite(s);
    },
  };
}

describe("NodeMCU REPL on a board without init.lua", () => {
  it("boots to the banner, the failed init and the prompt", () => {
    const b = board();
    expect(b.take()).toMatch(/^\nNodeMCU ESP32 build \S+ powered by Lua 5\.3\.5 \[5\.3-int32-singlefp\] on IDF \S+\ncannot open init\.lua: No such file or directory\n> $/);
  });

  it("echoes, runs a line, prints results of =expr, and prompts", () => {
    const b = board();
    b.take();
    b.send("print(6*7)\n");
    expect(b.take()).toBe("print(6*7)\n42\n> ");
    b.send("=1+1, 'x'\r\n");
    expect(b.take()).toBe("=1+1, 'x'\n2\tx\n> ");
    // linput.c pairs CR LF and LF CR: a bare LF right after a CR LF line counts as part of that pair.
    b.send("\n");
    expect(b.take()).toBe("");
    b.send("\r");
    expect(b.take()).toBe("\n> ");
  });

  it("keeps an incomplete statement with the continuation prompt, then runs it", () => {
    const b = board();
    b.take();
    b.send("for i = 1, 2 do\n");
    expect(b.take()).toBe("for i = 1, 2 do\n>> ");
    b.send("print(i)\n");
    expect(b.take()).toBe("print(i)\n>> ");
    b.send("end\n");
    expect(b.take()).toBe("end\n1\n2\n> ");
  });

  it("prints errors as 'Lua error:' and stays up (no restart)", () => {
    const b = board();
    b.take();
    b.send("error('boom')\n");
    expect(b.take()).toBe("error('boom')\nLua error: \tstdin:1: boom\n> ");
    b.send("x = = 1\n");
    expect(b.take()).toMatch(/^x = = 1\nLua error: \tstdin:1: unexpected symbol near '='\n> $/);
    b.emu.advance(5);
    expect(b.emu.counters.boots).toBe(1);
  });

  it("backspace erases with '\\b \\b'; a line of LUA_MAXINPUT characters is discarded", () => {
    const b = board();
    b.take();
    b.send("=1x\b+1\n");
    expect(b.take()).toBe("=1x\b \b+1\n2\n> ");
    // linput.c starts the buffer again at 255 characters: the line's start is lost.
    b.send("z=5" + " ".repeat(300) + "\n");
    expect(b.take()).toMatch(/^z=5 +\n> $/);
    b.send('=rawget(_G, "z")\n');
    expect(b.take()).toBe('=rawget(_G, "z")\nnil\n> ');
  });

  it("writes files with Lua's io library; node.restart() reboots; init.lua runs at the next boot", () => {
    const b = board();
    b.take();
    b.send('f = io.open("init.lua", "w") f:write("print(\\"hello from init\\")") f:close()\n');
    expect(b.take()).toMatch(/\n> $/);
    b.send("node.restart()\n");
    b.emu.advance(1);
    expect(b.emu.counters.boots).toBe(2);
    expect(b.take()).toContain("hello from init\n");
  });

  it("uart.on(..., run_input = 0) takes input away from the REPL; run_input = 1 leaves it", () => {
    const locked = board({ "init.lua": 'uart.on("data", "\\n", function(d) end, 0)' });
    locked.take();
    locked.send('io.open("pwned", "w"):write("x")\n');
    expect(locked.take()).toBe("");
    expect(existsSync(join(locked.dir, "pwned"))).toBe(false);

    const open = board({ "init.lua": 'uart.on("data", "\\n", function(d) end, 1)' });
    open.take();
    open.send('io.open("pwned", "w"):write("x")\n');
    expect(open.take()).toMatch(/\n> $/);
    expect(existsSync(join(open.dir, "pwned"))).toBe(true);
  });

  it("uart.setup's echo argument turns the echo off", () => {
    const b = board();
    b.send(`uart.setup(0, ${LINK_BAUD}, 8, 0, 1, 0)\n`);
    b.take();
    b.send("print(3)\n");
    expect(b.take()).toBe("3\n> ");
  });
});

describe("upload encoding and the board's CRC-32", () => {
  const rnd = prng(0x5eed_f1a5);
  const data = Uint8Array.from([...Array(256).keys(), ...rnd.bytes(3000), 0x31, 0, 0x31, 10, 13, 8, 127, 92, 34]);

  it("host CRC-32 has the check value of ISO-HDLC (0xCBF43926)", () => {
    expect(crcHex(crc32(Buffer.from("123456789")))).toBe("cbf43926");
    expect(crc32(data.subarray(100), crc32(data.subarray(0, 100)))).toBe(crc32(data));
  });

  it("every byte survives the REPL lines, each under the line limit, and the board's CRC agrees (fengari, 32-bit)", () => {
    const b = board();
    b.take();
    b.send("_fk={}\n");
    for (const l of BOARD_CRC_LUA) b.send(l + "\n");
    b.send('f = io.open("data.bin", "wb")\n');
    const chunks = luaChunks(data, 0, "f:write(", ")");
    for (const c of chunks) {
      expect(c.line.length).toBeLessThanOrEqual(MAX_LINE);
      expect(c.line).toMatch(/^[\x20-\x7e]+$/);
      b.send(c.line + "\n");
    }
    b.send("f:close()\n");
    b.take();
    b.send(`=_fk.crc(${luaQuote("data.bin")})\n`);
    expect(b.take()).toContain(`\n${data.length} ${crcHex(crc32(data))}\n> `);
    expect(b.emu.flash.read("data.bin")).toEqual(data);
  });

  it("a read-back started while another is under way closes the other: starting one per file never runs out of SPIFFS's 4 descriptors", () => {
    const files = Object.fromEntries(["a", "b", "c", "d", "e"].map((n, i) => [n, n.repeat(700 + i)]));
    const b = board(files);
    b.take();
    b.send("_fk={}\n");
    for (const l of BOARD_CRC_LUA) b.send(l + "\n");
    // A step each, never finished: what a run that stopped between files leaves.
    for (const n of Object.keys(files)) b.send(`_fk.rb("${n}") _fk.sp()\n`);
    b.take();
    b.send('=_fk.crc("e")\n');
    const e = Buffer.from(files.e, "latin1");
    expect(b.take()).toContain(`\n${e.length} ${crcHex(crc32(e))}\n> `);
    b.send('=io.open("a","rb") ~= nil\n');
    expect(b.take()).toContain("\ntrue\n> ");
  });

  it("the board's CRC code gives the same answer on 64-bit C Lua 5.3", () => {
    const dir = mkdtempSync(join(tmpdir(), "fobkit-crc-"));
    writeFileSync(join(dir, "data.bin"), data);
    const script = ["_fk={}", ...BOARD_CRC_LUA, `print(_fk.crc(${luaQuote(join(dir, "data.bin"))}))`, `print(_fk.crc("${join(dir, "none")}"))`].join("\n");
    const out = execFileSync("lua5.3", ["-e", script], { encoding: "latin1" });
    expect(out).toBe(`${data.length} ${crcHex(crc32(data))}\n-1 00000000\n`);
  });
});

describe("the flasher's board helpers (host/flash/flasher.ts BOARD_HELPERS) after a failed step", () => {
  it("every line fits the REPL; once a check fails, the lines already in flight remove no source and never write init.lua", async () => {
    const { BOARD_HELPERS } = await import("../../host/flash/flasher.js");
    for (const l of [...BOARD_CRC_LUA, ...BOARD_HELPERS]) expect(l.length, l.slice(0, 40)).toBeLessThanOrEqual(MAX_LINE);
    const b = board({ "a.lua": "return 1" });
    b.send("_fk={}\n");
    for (const l of [...BOARD_CRC_LUA, ...BOARD_HELPERS]) b.send(l + "\n");
    b.send("_fk.l=file.list()\n");
    b.take();
    // A compile, then a check against the wrong CRC: it fails and marks the run.
    b.send('=_fk.cc("a.lua")\n');
    expect(b.take()).toContain("\nok\n> ");
    b.send('=_fk.vr("a.lua","8 00000000")\n');
    expect(b.take()).toMatch(/\ncrc 8 [0-9a-f]{8}\n> $/);
    // What the flasher had already sent behind it: the sources' removal, init.lua's open, data and finish.
    b.send('if not _fk.bad then for _,n in ipairs({"a.lua"}) do file.remove(n) end end\n');
    b.send('_fk.o("init.lua.part")\n');
    b.send('W("uart.on(0,\\"data\\",0,function() end,0)")\n');
    b.send('=_fk.fin("init.lua","8 00000000")\n');
    b.send('=_fk.cc("a.lua")\n');
    const out = b.take();
    expect(out).toMatch(/an earlier step failed/);
    expect(out).toMatch(/\nskip\n> =_fk\.cc|\nskip\n> /);
    expect(b.emu.flash.exists("a.lua")).toBe(true);
    expect(b.emu.flash.exists("init.lua")).toBe(false);
    expect(b.emu.flash.exists("init.lua.part")).toBe(false);
  });
  it("init.lua.part is checked before it replaces init.lua: a damaged one is removed and the old init.lua stays", async () => {
    const { BOARD_HELPERS } = await import("../../host/flash/flasher.js");
    const b = board();
    // Written after boot: what a previous install left (the board is at its REPL).
    writeFileSync(join(b.dir, "init.lua"), "-- old\n", "latin1");
    b.send("_fk={}\n");
    for (const l of [...BOARD_CRC_LUA, ...BOARD_HELPERS]) b.send(l + "\n");
    b.take();
    const want = Buffer.from("print(1)\n", "latin1");
    b.send('_fk.o("init.lua.part")\n');
    b.send('F("print(2)\\n")\n'); // one byte differs from what the host says it must be
    b.send(`=_fk.fin("init.lua","${want.length} ${crcHex(crc32(want))}")\n`);
    expect(b.take()).toMatch(/\nerr crc 9 [0-9a-f]{8}\n> $/);
    expect(b.emu.flash.exists("init.lua.part")).toBe(false);
    expect(Buffer.from(b.emu.flash.read("init.lua")!).toString("latin1")).toBe("-- old\n");
    // The same upload, intact: it replaces the old init.lua.
    b.send("_fk.bad=nil\n");
    b.send('_fk.o("init.lua.part")\n');
    b.send('F("print(1)\\n")\n');
    b.send(`=_fk.fin("init.lua","${want.length} ${crcHex(crc32(want))}")\n`);
    expect(b.take()).toMatch(/\nok\n> $/);
    expect(Buffer.from(b.emu.flash.read("init.lua")!).toString("latin1")).toBe("print(1)\n");
  });

  it("a failed write of a data line (SPIFFS full at newlib's flush) marks the run at once, and init.lua is not touched", async () => {
    const { BOARD_HELPERS } = await import("../../host/flash/flasher.js");
    const b = board();
    writeFileSync(join(b.dir, "init.lua"), "-- old\n", "latin1");
    b.send("_fk={}\n");
    for (const l of [...BOARD_CRC_LUA, ...BOARD_HELPERS]) b.send(l + "\n");
    b.send('_fk.o("init.lua.part")\n');
    b.take();
    b.emu.setFault("flash-full", true);
    // 130 bytes: more than newlib's 128-byte buffer, so this write flushes and fails (hil/nodemcu/file.ts).
    b.send(`F("${"x".repeat(130)}")\n`);
    b.send("=_fk.bad\n");
    expect(b.take()).toMatch(/\n1\n> $/);
    b.emu.setFault("flash-full", false);
    b.send('=_fk.fin("init.lua","130 00000000")\n');
    expect(b.take()).toMatch(/\nskip\n> $/);
    expect(Buffer.from(b.emu.flash.read("init.lua")!).toString("latin1")).toBe("-- old\n");
  });
});

