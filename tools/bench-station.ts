/**
 * `make bench` part "station": provisioning time per keyfob over a real PTY
 * at 115200 baud (hil's emulated keyfob behind socat, serialport's real
 * binding on the host side), bytes on the wire per keyfob, and the floor the
 * baud rate sets for those bytes: 8N1 framing puts 10 bits on the line per
 * byte, and the exchange is half-duplex request/reply, so the floor is
 * (bytes out + bytes in) * 10 / baud. Goal (issue 4): within 2x of it.
 * Writes bench/results/station.json when run directly.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { Emulator } from "../hil/emulator.js";
import { PtyLink } from "../hil/pty.js";
import { DeviceSession } from "../host/device/session.js";
import { FactoryRecord } from "../host/station/factory-record.js";
import { provisionKeyfob } from "../host/station/provision.js";
import { SerialTransport } from "../host/transport/serial-transport.js";

const BUILD = process.env.FOBKIT_BUILD ? resolve(process.env.FOBKIT_BUILD) : resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const IMAGE = resolve(BUILD, "firmware", "fobkit.lua");
const BAUD = 115200;
/** 8N1: start bit, 8 data bits, stop bit. */
const BITS_PER_BYTE = 10;

export interface StationBench {
  baud: number;
  tokens: number;
  /** Wall time per keyfob, ms, from the first INFO to the record marked good. */
  perTokenMs: { median: number; min: number; max: number; mean: number };
  /** Protocol bytes per keyfob, both directions, delimiters included. */
  bytesPerToken: { toKeyfob: number; fromKeyfob: number; total: number };
  requestsPerToken: number;
  /** (bytes * 10 / baud) in ms: no provisioning over this line can be faster. */
  floorMs: number;
  /** median / floor; the goal is <= 2. */
  ratioToFloor: number;
  /** fastest / floor: what the flow costs when nothing else competes for the CPU. */
  bestRatioToFloor: number;
  /** 1-minute load average at the start: this machine is shared, and the emulator, host and socat all need CPU. */
  loadAverage: number;
  withinGoal: boolean;
  /** Mean round trip per command as the station sees it (request written to reply decoded), ms. */
  commandMs: Record<string, number>;
  /** What the time beyond the floor is spent on, measured separately. */
  breakdown: { emulatorLuaMsPerToken: number; factoryRecordMsPerToken: number };
  method: string;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

export async function runStationBench(opts: { tokens?: number } = {}): Promise<StationBench> {
  const tokens = opts.tokens ?? 10;
  const dir = mkdtempSync(join(tmpdir(), "fobkit-bench-station-"));
  const record = FactoryRecord.open(join(dir, "bench.sqlite"), { create: true });
  const times: number[] = [];
  const load = loadavg()[0];
  const cmdTimes: Record<string, number[]> = {};
  const proto = DeviceSession.prototype as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
  const originals: Record<string, (...a: unknown[]) => Promise<unknown>> = {};
  for (const m of ["info", "writeSeed", "setClock", "setSerial", "selfTest", "lock", "wipe"]) {
    originals[m] = proto[m];
    proto[m] = async function (this: unknown, ...a: unknown[]) {
      const t = performance.now();
      try {
        return await originals[m].apply(this, a);
      } finally {
        (cmdTimes[m] ??= []).push(performance.now() - t);
      }
    };
  }
  let out = 0, inn = 0, requests = 0, luaMs = 0;
  try {
    for (let i = 0; i < tokens; i++) {
      const emu = new Emulator({ stateDir: join(dir, `fob${i}`), imagePath: IMAGE, countInstructions: false, realtime: true, baud: BAUD });
      // Time spent inside the Lua VM: the keyfob's own processing, not the line's.
      const uartWrite = emu.uartWrite.bind(emu);
      emu.uartWrite = (b) => {
        const t = performance.now();
        uartWrite(b);
        luaMs += performance.now() - t;
      };
      const link = await PtyLink.open(emu, { path: join(dir, `tty${i}`), baud: BAUD });
      emu.boot();
      await new Promise((r) => setTimeout(r, 50));
      const transport = new SerialTransport({ path: link.path, baudRate: BAUD });
      const session = await DeviceSession.open(transport);
      const r = await provisionKeyfob(session, record, { batch: 1 });
      if (r.status !== "good") throw new Error(`bench keyfob ${i} failed: ${r.reason}`);
      times.push(r.durationMs);
      out += transport.stats.bytesWritten;
      inn += transport.stats.bytesRead;
      requests += session.stats.requests;
      await session.close();
      await link.close();
      emu.close();
    }
    // The record's share: the same sequence of writes without a keyfob (fsync'd commits).
    const t0 = performance.now();
    for (let i = 0; i < tokens; i++) {
      const { serial } = record.allocate({ batch: 1, seed: new Uint8Array(20) });
      for (const s of ["seed_written", "clock_set", "serial_set", "self_tested", "lock_sent"] as const) record.setStage(serial, s);
      record.markGood(serial);
    }
    const recordMs = (performance.now() - t0) / tokens;
    const total = (out + inn) / tokens;
    const floorMs = (total * BITS_PER_BYTE * 1000) / BAUD;
    const med = median(times);
    return {
      baud: BAUD,
      tokens,
      perTokenMs: { median: med, min: Math.min(...times), max: Math.max(...times), mean: times.reduce((a, b) => a + b, 0) / tokens },
      bytesPerToken: { toKeyfob: out / tokens, fromKeyfob: inn / tokens, total },
      requestsPerToken: requests / tokens,
      floorMs: Math.round(floorMs * 10) / 10,
      ratioToFloor: Math.round((med / floorMs) * 100) / 100,
      bestRatioToFloor: Math.round((Math.min(...times) / floorMs) * 100) / 100,
      loadAverage: Math.round(load * 10) / 10,
      withinGoal: med <= 2 * floorMs,
      commandMs: Object.fromEntries(Object.entries(cmdTimes).map(([k, v]) => [k, Math.round((v.reduce((a, b) => a + b, 0) / v.length) * 10) / 10])),
      breakdown: { emulatorLuaMsPerToken: Math.round((luaMs / tokens) * 10) / 10, factoryRecordMsPerToken: Math.round(recordMs * 10) / 10 },
      method: "fobkit provision flow (INFO, WRITE_SEED, SET_CLOCK, SET_SERIAL, SELF_TEST, LOCK, INFO) to a fresh emulated keyfob per token, " +
        "hil PtyLink pacing both directions at the baud rate, host on serialport's real binding; one keyfob at a time",
    };
  } finally {
    for (const m of Object.keys(originals)) proto[m] = originals[m];
    record.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatStationBench(b: StationBench): string {
  return [
    `provisioning at ${b.baud} baud over a PTY, ${b.tokens} keyfobs:`,
    `  per keyfob: median ${b.perTokenMs.median} ms (min ${b.perTokenMs.min}, max ${b.perTokenMs.max})`,
    `  wire: ${b.bytesPerToken.total} bytes per keyfob (${b.bytesPerToken.toKeyfob} out, ${b.bytesPerToken.fromKeyfob} in), ${b.requestsPerToken} requests`,
    `  floor (10 bits/byte): ${b.floorMs} ms; median is ${b.ratioToFloor}x the floor, fastest ${b.bestRatioToFloor}x (goal <= 2x: ${b.withinGoal ? "met" : "NOT met"}; load average ${b.loadAverage})`,
    `  round trip per command (ms): ${Object.entries(b.commandMs).map(([k, v]) => `${k} ${v}`).join(", ")}`,
    `  beyond the wire: keyfob firmware in the Lua VM ${b.breakdown.emulatorLuaMsPerToken} ms, factory record commits ${b.breakdown.factoryRecordMsPerToken} ms per keyfob`,
  ].join("\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const b = await runStationBench();
  const outDir = resolve(process.cwd(), "bench", "results");
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "station.json"), JSON.stringify(b, null, 2) + "\n");
  process.stdout.write(formatStationBench(b) + "\nwritten bench/results/station.json\n");
}
