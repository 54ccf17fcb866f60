/**
 * ReplClient against the emulated board's REPL in-process (EmulatorTransport,
 * no PTY): getting a clean prompt out of whatever a broken transfer left.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { Emulator } from "../../hil/emulator.js";
import { MAX_PENDING_OUTPUT, ReplClient, ReplError } from "../../host/flash/repl-client.js";
import { EmulatorTransport } from "../../host/transport/emulator-transport.js";
import { SerialTransport } from "../../host/transport/serial-transport.js";
import { ptyPair } from "../transport/pty-pair.js";

const open: ReplClient[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

async function client(init?: string): Promise<{ emu: Emulator; repl: ReplClient }> {
  const stateDir = mkdtempSync(join(tmpdir(), "fobkit-replc-"));
  if (init !== undefined) writeFileSync(join(stateDir, "init.lua"), init);
  const emu = new Emulator({ stateDir, time: 1_764_000_000, countInstructions: false });
  emu.boot();
  const t = new EmulatorTransport(emu);
  await t.open();
  const repl = new ReplClient(t);
  open.push(repl);
  return { emu, repl };
}

it.each([
  ["a half line", "_fk.f:write(\"abc"],
  ["an unfinished statement (continuation prompt)", "for i = 1, 3 do"],
  ["a half call (continuation prompt)", "_fk.f:wr"],
  ["a string cut after a backslash", "x = \"ab\\"],
  ["a CR LF line just before", "print(1)\r\n"],
])("sync gets a clean prompt after %s", async (_what, left) => {
  const { emu, repl } = await client();
  emu.uartWrite(left);
  expect(await repl.sync(500)).toBe(true);
  expect(await repl.exec("=6*7")).toBe("42");
  expect((await repl.run("if true then")).continuation).toBe(true);
  expect((await repl.run("end")).continuation).toBe(false);
});

it("exec reports a Lua error and the REPL goes on", async () => {
  const { repl } = await client();
  await expect(repl.exec("error('no')")).rejects.toMatchObject({ code: "lua_error" });
  await expect(repl.exec("=1")).resolves.toBe("1");
});

it("a board whose firmware holds the UART (run_input = 0) fails sync and times out a line", async () => {
  const { repl } = await client('uart.on("data", "\\n", function() end, 0)');
  expect(await repl.sync(300)).toBe(false);
  await expect(repl.run("=1", 300)).rejects.toMatchObject({ code: "no_prompt" });
});

/**
 * A broken board that never stops printing (a print loop, a boot loop), over
 * a link without a baud limit (a PTY here; an ESP32-S3's USB-CDC console is
 * near that): the client keeps at most MAX_PENDING_OUTPUT bytes of it and
 * says why it gave up, instead of holding and rescanning all of it (the
 * station's other ports share this process). A real PTY pair, serialport's
 * binding, `yes` as the board.
 */
it("a board flooding its console is given up on as such, after at most MAX_PENDING_OUTPUT bytes kept", async () => {
  const pair = await ptyPair();
  const flood = spawn("sh", ["-c", `exec yes "rst:0x10 (RTCWDT_RTC_RESET),boot:0x13 (SPI_FAST_FLASH_BOOT)" > ${pair.device}`], { stdio: "ignore" });
  const t = new SerialTransport({ path: pair.host });
  await t.open();
  const repl = new ReplClient(t);
  try {
    const err = await repl.run("=1", 20_000).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(ReplError);
    expect(err).toMatchObject({ code: "flood", message: `${pair.host}: the board sent more than ${MAX_PENDING_OUTPUT} bytes without the answer awaited (a print or boot loop?)` });
    // It stays given up: the next line fails at once the same way.
    await expect(repl.run("=1", 20_000)).rejects.toMatchObject({ code: "flood" });
  } finally {
    flood.kill("SIGKILL");
    await repl.close();
    await pair.dispose();
  }
}, 60_000);
