/**
 * What one button press costs the keyfob: Lua VM instructions from the
 * press edge to the code on the display (debounce timer, RTC read over I2C,
 * TOTP, formatting, MAX7219 writes), counted by the emulator's count hook in
 * fengari (32-bit integers), for SHA-1 and SHA-256 tokens. Heap per press is
 * not measurable in fengari (no collectgarbage); the OTP part's heap comes
 * from a C Lua in bench-otp.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { Emulator } from "../hil/emulator.js";
import * as P from "../protocol/index.js";

const BUILD = process.env.FOBKIT_BUILD ? resolve(process.env.FOBKIT_BUILD) : resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const IMAGE = join(BUILD, "firmware", "fobkit.lua");

export interface PressBench {
  rows: { algorithm: string; presses: number; instructionsPerPress: { min: number; median: number; max: number } }[];
  bootInstructions: number;
  method: string;
}

function provisioned(alg: number, seedLength: number): { emu: Emulator; dir: string; boot: number } {
  const dir = mkdtempSync(join(tmpdir(), "fobkit-bench-press-"));
  const emu = new Emulator({ stateDir: dir, imagePath: IMAGE, time: 1_764_000_000, countInstructions: true });
  emu.boot();
  emu.advance(0.5);
  const boot = emu.counters.instructions;
  const ascii = (s: string) => Array.from(Buffer.from(s));
  const seed = Array.from({ length: seedLength }, (_, i) => (i * 37 + 11) & 255);
  let rid = 0;
  const send = (m: any) => {
    emu.uartWrite(P.encodeRequest({ rid: ++rid, ...m }));
    emu.advance(0.05);
  };
  send({ cmd: P.CMD_WRITE_SEED, algorithm: alg, digits: 8, period: 60, seed });
  send({ cmd: P.CMD_SET_SERIAL, serial: ascii("FK-BENCH") });
  send({ cmd: P.CMD_SET_CLOCK, timeHi: 0, timeLo: emu.rtcTime() | 0, flags: 0 });
  send({ cmd: P.CMD_LOCK, serial: ascii("FK-BENCH") });
  return { emu, dir, boot };
}

export function runPressBench(presses = 25): PressBench {
  const rows: PressBench["rows"] = [];
  let bootInstructions = 0;
  for (const [name, alg, len] of [["SHA1", P.ALG_SHA1, 20], ["SHA256", P.ALG_SHA256, 32]] as const) {
    const { emu, dir, boot } = provisioned(alg, len);
    bootInstructions = boot;
    const counts: number[] = [];
    for (let i = 0; i < presses; i++) {
      emu.advance(61); // a new time step each press, and the display has blanked
      const before = emu.counters.instructions;
      emu.press();
      if (!/^\d{8}$/.test(String(emu.display).trim())) throw new Error(`bench-press: the display shows ${JSON.stringify(emu.display)}, not a code`);
      counts.push(emu.counters.instructions - before);
    }
    emu.close();
    rmSync(dir, { recursive: true, force: true });
    counts.sort((a, b) => a - b);
    rows.push({ algorithm: name, presses, instructionsPerPress: { min: counts[0], median: counts[counts.length >> 1], max: counts[counts.length - 1] } });
  }
  return {
    rows,
    bootInstructions,
    method: "fengari count hook (every VM instruction) in the HIL emulator, from the press edge until the button is released with the code on the display; each press in a new 60 s step",
  };
}

export function formatPressBench(b: PressBench): string {
  return [
    ...b.rows.map((r) => `press (${r.algorithm}, 8 digits): ${r.instructionsPerPress.median} Lua instructions (min ${r.instructionsPerPress.min}, max ${r.instructionsPerPress.max}, ${r.presses} presses)`),
    `boot: ${b.bootInstructions} Lua instructions`,
  ].join("\n");
}
