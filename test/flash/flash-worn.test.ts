/**
 * `fobkit flash` onto a worn board: a NodeMCU board whose SPIFFS was written
 * again and again without a format (hil/spiffs-gc.ts wear), booting into its
 * REPL, so that every file the install creates or appends to makes SPIFFS
 * garbage-collect first, each collected block a 500 ms sector erase with the
 * flash cache off. The console's RX ISR cannot run meanwhile (ESP-IDF
 * CONFIG_UART_ISR_IN_IRAM n, hil/console-rx.ts): only the 128-byte RX FIFO
 * takes what the host keeps sending. The install must still succeed, with no
 * byte lost, on a real PTY at 115200 baud.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Emulator } from "../../hil/emulator.js";
import { PtyLink } from "../../hil/pty.js";
import { flashBoard } from "../../host/flash/flasher.js";
import { imageFilePaths, bytecodeName } from "../../host/flash/image-files.js";
import { IMAGE } from "../support/paths.js";
import { prng } from "../support/prng.js";

const image = readFileSync(IMAGE);
const files = imageFilePaths(IMAGE).slice(1).map((f) => ({ name: f.name, data: readFileSync(f.path) }));
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

/** A board a user had before: files of its own (no init.lua: it boots into the REPL); worn, or freshly written once. */
async function usedBoard(worn: boolean) {
  const dir = mkdtempSync(join(tmpdir(), "fobkit-flash-worn-"));
  const stateDir = join(dir, "state");
  const path = join(dir, "tty");
  mkdirSync(stateDir);
  const rnd = prng(0x3017);
  for (const [name, size] of [["app.lua", 9000], ["data.bin", 20000], ["log.txt", 3000]] as const) writeFileSync(join(stateDir, name), Buffer.from(rnd.bytes(size)));
  const emu = new Emulator({ stateDir, time: 1_764_000_000, realtime: true, countInstructions: false, spiffsWorn: worn });
  const link = await PtyLink.open(emu, { path });
  emu.boot();
  cleanups.push(async () => {
    await link.close();
    emu.close();
  });
  return { emu, path, stateDir };
}

function report(what: string, emu: Emulator, r: { uploadMs: number; totalMs: number; wireBytesOut: number }): void {
  const gc = emu.flash.calls.get("gc");
  console.log(`${what}: upload ${(r.uploadMs / 1000).toFixed(1)} s, total ${(r.totalMs / 1000).toFixed(1)} s, wire ${r.wireBytesOut} B out, gc ${gc?.count ?? 0} runs ${((gc?.ms ?? 0) / 1000).toFixed(1)} s, flash ${(emu.counters.flashBusyMs / 1000).toFixed(1)} s, rx lost ${emu.counters.uartRxLost}`);
}

describe("fobkit flash onto a used board", () => {
  it("worn SPIFFS: installs the image with no console byte lost, though SPIFFS garbage-collects (500 ms erases, RX ISR stopped) during the upload", async () => {
    const b = await usedBoard(true);
    const r = await flashBoard({ port: b.path, image, files });
    report("worn board", b.emu, r);
    // It did collect while the host was sending: the case this test is about.
    expect(b.emu.flash.calls.get("gc")?.ms ?? 0).toBeGreaterThanOrEqual(500);
    expect(b.emu.counters.uartRxLost).toBe(0);
    expect(r.info.state).toBe("blank");
    expect(readFileSync(join(b.stateDir, bytecodeName("fobkit.lua"))).length).toBeGreaterThan(0);
  }, 300_000);

  it("the same files written once (no wear): the install collects nothing and loses no byte", async () => {
    const b = await usedBoard(false);
    const r = await flashBoard({ port: b.path, image, files });
    report("fresh board", b.emu, r);
    expect(b.emu.flash.calls.get("gc")).toBeUndefined();
    expect(b.emu.counters.uartRxLost).toBe(0);
    expect(r.info.state).toBe("blank");
  }, 300_000);
});
