/**
 * ReplClient against the emulated board's REPL in-process (EmulatorTransport,
 * no PTY): getting a clean prompt out of whatever a broken transfer left.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { Emulator } from "../../hil/emulator.js";
import { ReplClient } from "../../host/flash/repl-client.js";
import { EmulatorTransport } from "../../host/transport/emulator-transport.js";

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
