/**
 * Fail-closed boot, over a real PTY (socat + the real serialport binding):
 * a locked keyfob whose boot fails at each step never runs a Lua line sent
 * to its UART. NodeMCU leaves the console with the Lua REPL after an error
 * in init.lua (lua.c docall: printed, no restart), so the firmware must
 * take the console first (host/flash/init-lua.ts) and fail without raising
 * into init.lua's caller. Faults are the emulator's (hil/faults.ts), each
 * one modelled from NodeMCU's source.
 *
 * Every case: provision and lock a keyfob, cut the power, break one thing,
 * power on, send Lua source that would create a file (as plain lines in
 * every line ending, and again after the first restart), then check that
 * no file appeared, the record did not change, and nothing echoed.
 */
import { createHash } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Emulator } from "../../hil/emulator.js";
import type { Fault } from "../../hil/faults.js";
import { PtyLink } from "../../hil/pty.js";
import { DeviceSession } from "../../host/device/session.js";
import { BACKOFF_FIRST_MS, MAX_RESTARTS, RESTART_MAGIC, RESTART_SLOT } from "../../host/flash/init-lua.js";
import { SerialTransport } from "../../host/transport/serial-transport.js";
import { IMAGE } from "../support/paths.js";

const SERIAL = "FK00000077";
const RECORD = "token.rec";
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function digest(dir: string): string {
  const h = createHash("sha256");
  for (const f of readdirSync(dir).sort()) h.update(f).update("\0").update(readFileSync(join(dir, f)));
  return h.digest("hex");
}

/** A locked keyfob on a PTY, its power then cut: ready for a broken boot. */
async function lockedKeyfob() {
  const dir = mkdtempSync(join(tmpdir(), "fobkit-failclosed-"));
  const path = join(dir, "tty");
  const stateDir = join(dir, "state");
  const emu = new Emulator({ stateDir, imagePath: IMAGE, time: 1_764_000_000, realtime: true, countInstructions: false });
  const link = await PtyLink.open(emu, { path });
  cleanups.push(async () => {
    await link.close();
    emu.close();
  });
  emu.boot();
  const session = await DeviceSession.open(new SerialTransport({ path }));
  await session.setClock(1_764_003_600); // ahead of the RTC: never "backwards" however slow the machine
  await session.writeSeed({ algorithm: "SHA1", digits: 8, period: 60, seed: Uint8Array.from(Buffer.from("12345678901234567890")) });
  await session.setSerial(SERIAL);
  await session.lock(SERIAL);
  expect((await session.info()).state).toBe("locked");
  await session.close();
  emu.powerCut();
  return { emu, path, stateDir };
}

const EVIL = ['io.open("pwned","w"):write("x")', '=io.open("pwned","w"):write("x")', 'local f = io.open("pwned", "w") f:write("x") f:close()'];

/** Power on, then feed the Lua lines to the UART twice (at once, and after the first back-off restart). */
async function attack(k: Awaited<ReturnType<typeof lockedKeyfob>>): Promise<string> {
  const heard: number[] = [];
  k.emu.on("uart", (x: Uint8Array) => heard.push(...x));
  const t = new SerialTransport({ path: k.path });
  await t.open();
  k.emu.boot();
  for (const round of [0, 1]) {
    if (round === 1) await sleep(BACKOFF_FIRST_MS + 800);
    for (const line of EVIL) for (const end of ["\n", "\r\n", "\r"]) await t.write(Buffer.from(line + end, "latin1"));
    await sleep(700);
  }
  await t.close();
  return Buffer.from(heard).toString("latin1");
}

function expectUntouched(stateDir: string, before: string, said: string): void {
  expect(existsSync(join(stateDir, "pwned"))).toBe(false);
  expect(digest(stateDir)).toBe(before);
  // No REPL answered: nothing came back as echo or as a Lua error.
  expect(said).not.toContain("pwned");
  expect(said).not.toContain("io.open");
  expect(said).not.toMatch(/Lua error|stdin:/);
}

describe("a locked keyfob whose boot fails never runs Lua from its UART", () => {
  const faults: { fault: Fault; why: RegExp }[] = [
    { fault: "no-spi", why: /fobkit: boot failed: .*spi/ },
    { fault: "oom-at-load", why: /fobkit: boot failed: .*not enough memory/ },
  ];
  for (const { fault, why } of faults) {
    it(`${fault}: the boot fails, the console stays deaf, the board restarts with back-off`, async () => {
      const k = await lockedKeyfob();
      const before = digest(k.stateDir);
      k.emu.setFault(fault, true);
      const boots = k.emu.counters.boots;
      const said = await attack(k);
      expect(said, said).toMatch(why);
      expectUntouched(k.stateDir, before, said);
      expect(k.emu.counters.boots).toBeGreaterThan(boots + 1); // the back-off restart came
    }, 120_000);
  }

  // Each file of the core, as node.compile left it (bytecode; the source is gone).
  for (const lc of ["fobkit.lc", "fobkit-3.lc"]) {
    it(`a corrupt image (${lc} cut short): the load fails, the console stays deaf`, async () => {
      const k = await lockedKeyfob();
      expect(existsSync(join(k.stateDir, "fobkit.lua"))).toBe(false);
      const img = readFileSync(join(k.stateDir, lc));
      writeFileSync(join(k.stateDir, lc), img.subarray(0, img.length >> 1));
      const before = digest(k.stateDir);
      const said = await attack(k);
      expect(said).toMatch(new RegExp(`fobkit: boot failed: .*${lc.replace(".lc", "")}`));
      expectUntouched(k.stateDir, before, said);
    }, 120_000);
  }

  it("a corrupt record: the keyfob boots into its error state, answers INFO, runs no Lua", async () => {
    const k = await lockedKeyfob();
    const rec = readFileSync(join(k.stateDir, RECORD));
    rec[rec.length >> 1] ^= 0x55;
    writeFileSync(join(k.stateDir, RECORD), rec);
    const before = digest(k.stateDir);
    const said = await attack(k);
    expectUntouched(k.stateDir, before, said);
    const s = await DeviceSession.open(new SerialTransport({ path: k.path }));
    const info = await s.info();
    await s.close();
    expect(info).toMatchObject({ state: "error", reason: "FLASH_CORRUPT" });
  }, 120_000);

  it("an I2C bus timeout: i2c.transfer raises, INFO still gets a reply (the RTC error state), no Lua runs, no restart", async () => {
    const k = await lockedKeyfob();
    const before = digest(k.stateDir);
    k.emu.setFault("i2c-timeout", true);
    const said = await attack(k);
    expectUntouched(k.stateDir, before, said);
    const boots = k.emu.counters.boots;
    const s = await DeviceSession.open(new SerialTransport({ path: k.path }));
    const info = await s.info();
    await s.close();
    expect(info).toMatchObject({ state: "error", reason: "RTC_MISSING", serial: SERIAL });
    await sleep(500);
    expect(k.emu.counters.luaErrors).toBe(0);
    expect(k.emu.counters.boots).toBe(boots);
    // The bus recovers: the same keyfob answers as locked again, without a restart.
    k.emu.setFault("i2c-timeout", false);
    const s2 = await DeviceSession.open(new SerialTransport({ path: k.path }));
    expect((await s2.info()).state).toBe("locked");
    await s2.close();
  }, 120_000);
});

describe("restarts after a failed boot are bounded and back off (init-lua.ts)", () => {
  function failingBoard(faults: Fault[]) {
    const dir = mkdtempSync(join(tmpdir(), "fobkit-backoff-"));
    const emu = new Emulator({ stateDir: dir, imagePath: IMAGE, time: 1_764_000_000, faults, countInstructions: false });
    const boots: number[] = [];
    let said = "";
    emu.on("event", (e: { event: string }) => e.event === "boot" && boots.push(emu.clock.nowMs));
    emu.on("uart", (x: Uint8Array) => (said += Buffer.from(x).toString("latin1")));
    cleanups.push(() => emu.close());
    return { emu, boots, said: () => said };
  }

  it(`restarts ${MAX_RESTARTS} times, ${BACKOFF_FIRST_MS} ms doubling, then stays down until a power-on`, () => {
    const b = failingBoard(["no-spi"]);
    b.emu.boot();
    b.emu.advance(600);
    expect(b.boots).toHaveLength(1 + MAX_RESTARTS);
    const gaps = b.boots.slice(1).map((t, i) => t - b.boots[i]);
    // each gap: the back-off, plus the restart itself (restartDelayMs) and the boot's own work
    gaps.forEach((g, i) => expect(g).toBeGreaterThanOrEqual(BACKOFF_FIRST_MS * 2 ** i));
    gaps.forEach((g, i) => expect(g).toBeLessThan(BACKOFF_FIRST_MS * 2 ** i + 1000));
    expect(b.said()).toContain(`${MAX_RESTARTS} restarts failed: staying down until power-on`);
    // A power cycle gives it a new series (rtcmem holds garbage after power-on).
    b.emu.powerCut();
    b.emu.boot();
    b.emu.advance(3);
    expect(b.boots).toHaveLength(1 + MAX_RESTARTS + 2);
  });

  it("without rtcmem it cannot count, so it does not restart at all", () => {
    const b = failingBoard(["no-spi", "no-rtcmem"]);
    b.emu.boot();
    b.emu.advance(120);
    expect(b.boots).toHaveLength(1);
    expect(b.said()).toContain("no rtcmem to count restarts: staying down");
  });

  it("a good boot clears the count", () => {
    const b = failingBoard(["no-spi"]);
    b.emu.boot();
    b.emu.advance(7); // two failed boots counted
    b.emu.setFault("no-spi", false);
    b.emu.advance(10); // the third boot succeeds
    expect(b.emu.rtcmemSlot(RESTART_SLOT)).toBe(RESTART_MAGIC);
    expect(b.emu.rtcmemSlot(RESTART_SLOT + 1)).toBe(0);
  });
});
