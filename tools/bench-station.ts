/**
 * `make bench` part "station": provisioning time per keyfob over a real PTY
 * at 115200 baud (hil's emulated keyfob behind socat, serialport's real
 * binding on the host side), bytes on the wire per keyfob, and the floor the
 * baud rate sets for those bytes: 8N1 framing puts 10 bits on the line per
 * byte, and the exchange is half-duplex request/reply, so the floor is
 * (bytes out + bytes in) * 10 / baud. Goal (issue 10): within 1.5x of it
 * on the realistic board model (the emulator's console receive path, its
 * blocking TX and NodeMCU's task queues, from the build in nodemcu-build/),
 * with no byte lost to a receive overflow.
 * Writes bench/results/station.json when run directly.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { LINK_BAUD } from "../protocol/codes.js";
import { BITS_PER_BYTE } from "../hil/console-rx.js";
import { Emulator } from "../hil/emulator.js";
import { SPIFFS_DATA_PAGE_BYTES, SPIFFS_MS_PER_KB, SPIFFS_OPEN_MS, SPIFFS_READ_US, SPIFFS_RENAME_MS } from "../hil/flash.js";
import { NEWLIB_BUFSIZ } from "../hil/nodemcu/file.js";
import { RECORD_NAME } from "../firmware/app/record.js";
import { PtyLink } from "../hil/pty.js";
import { DeviceSession } from "../host/device/session.js";
import { FactoryRecord } from "../host/station/factory-record.js";
import { provisionKeyfob, type ProvisionStep } from "../host/station/provision.js";
import { SerialTransport } from "../host/transport/serial-transport.js";
import { formatThroughput, runThroughputSeries, type StationThroughput } from "./bench-station-throughput.js";

const BUILD = process.env.FOBKIT_BUILD ? resolve(process.env.FOBKIT_BUILD) : resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const IMAGE = resolve(BUILD, "firmware", "fobkit.lua");
const BAUD = LINK_BAUD;

export interface StationBench {
  baud: number;
  tokens: number;
  /** Unmeasured keyfobs provisioned first (see runStationBench). */
  warmup: number;
  /** The very first keyfob of the process (cold VM), ms. */
  firstKeyfobMs: number;
  /**
   * Wall time per keyfob, ms, from the first INFO to the record marked good,
   * on a keyfob that has finished booting (the station's first INFO has been
   * answered; bootToReadyMs is the boot).
   */
  perTokenMs: { median: number; min: number; max: number; mean: number };
  /**
   * Power-on to the reply of the station's first INFO, ms (median): init.lua
   * loading the image and its boot, including their SPIFFS time, plus that
   * one INFO exchange. Not in perTokenMs: a station provisions a keyfob
   * that answers. The emulator's power-on skips what precedes init.lua on a
   * board (ROM, bootloader, NodeMCU start, the SPIFFS mount: hil/emulator.ts restartDelayMs).
   */
  bootToReadyMs: number;
  /** The keyfob's SPIFFS time during that boot, per call kind (as keyfobSpiffsPerToken). */
  bootSpiffs: Record<string, { calls: number; ms: number }>;
  /** Protocol bytes per keyfob, both directions, delimiters included. */
  bytesPerToken: { toKeyfob: number; fromKeyfob: number; total: number };
  requestsPerToken: number;
  /** (bytes * 10 / baud) in ms: the time the line takes to carry every byte of the flow one after another. */
  floorMs: number;
  /**
   * The flow's own floor, ms: its frames scheduled with an instant keyfob and
   * host, each group of pipelined requests sent back to back while the
   * replies come back (the line is full duplex), each group waiting for the
   * previous one's last reply (the host needs INFO before allocating a
   * serial, and the self-test before LOCK).
   */
  criticalPathMs: number;
  /** max(bytes out, bytes in) * 10 / baud, ms: a full-duplex line busy both ways all the time; no request/reply flow reaches it. */
  fullDuplexBoundMs: number;
  /** median / criticalPathMs. */
  ratioToCriticalPath: number;
  /** median / floor; the goal is <= 1.5 (issue 10). */
  ratioToFloor: number;
  /**
   * The least SPIFFS time, ms, one durable and checked LOCK commit spends on
   * the model (hil/flash.ts, the build's partition), for the record this run
   * wrote: open token.rec.new for writing, its write(s) (newlib hands SPIFFS
   * one per 128 bytes), the read-back's open (a name lookup) and page reads,
   * and the rename into place. LOCK's reply may leave only after it (a lock is
   * durable before it is confirmed), and none of it can go: the write is
   * closed and read back before the rename, and the rename is the only
   * atomic replace SPIFFS has (firmware/board/flash-store.ts).
   */
  commitFloorMs: number;
  /** How commitFloorMs adds up, each term from hil/flash.ts. */
  commitFloorTerms: Record<string, number>;
  /** floorMs + commitFloorMs: the least a keyfob's provisioning can take on this model. */
  lowerBoundMs: number;
  /** lowerBoundMs / floorMs: the best ratioToFloor the model allows. */
  lowerBoundRatio: number;
  /** criticalPathMs + commitFloorMs: the same bound where the line carries both ways at once (full duplex, pipelined). */
  criticalPathBoundMs: number;
  /** median / lowerBoundMs: how far above the model's bound the measured flow is. */
  ratioToLowerBound: number;
  /** Whether <= 1.5x the floor is possible at all on this model (lowerBoundRatio <= 1.5, or criticalPathBoundMs <= 1.5 floor). */
  goalReachable: boolean;
  /** fastest / floor: what the flow costs when nothing else competes for the CPU. */
  bestRatioToFloor: number;
  /** 1-minute load average at the start: this machine is shared, and the emulator, host and socat all need CPU. */
  loadAverage: number;
  withinGoal: boolean;
  /** Over all measured keyfobs: console bytes lost to RX FIFO overflow, and tmr/gpio tasks lost to a full queue (both must be 0). */
  keyfobLosses: { uartRxBytes: number; tasks: number };
  /**
   * Mean time per phase of the flow, ms: the first INFO; allocating the
   * serial (a record commit); SET_CLOCK, WRITE_SEED, SET_SERIAL and SELF_TEST
   * pipelined, with the host's check of the code; LOCK (the keyfob's one
   * flash write) and its confirming INFO pipelined, with the two factory-record
   * commits around them.
   */
  phaseMs: { info: number; allocate: number; writeAndSelfTest: number; lockAndConfirm: number };
  /** Lua VM instructions the keyfob runs for one provisioning (fengari count hook): its CPU cost on any Lua 5.3. */
  keyfobInstructionsPerToken: number;
  /**
   * What the time beyond the floor is spent on, measured separately: the
   * keyfob's Lua, its SPIFFS time (hil/flash.ts's model, charged in realtime
   * mode) and the factory record's commits.
   */
  breakdown: { emulatorLuaMsPerToken: number; keyfobFlashMsPerToken: number; keyfobFlashWritesPerToken: number; factoryRecordMsPerToken: number };
  /**
   * The keyfob's SPIFFS time per keyfob split by the call that paid it
   * (hil/flash.ts FlashStore.calls: exists, list, open-read, read, open-write,
   * write, remove, remove-missing, rename, rename-refused, load): calls and ms.
   */
  keyfobSpiffsPerToken: Record<string, { calls: number; ms: number }>;
  /** The keyfob's SPIFFS ms per keyfob charged within each phase of phaseMs. */
  keyfobSpiffsMsPerPhase: { info: number; allocate: number; writeAndSelfTest: number; lockAndConfirm: number };
  /**
   * Keyfobs per minute for factory operators, by number of ports provisioned
   * in parallel by fobkit station (tools/bench-station-throughput.ts): "1",
   * "2", "4". With no operator swap time; measured, never asserted on.
   */
  perMinute: Record<string, number>;
  throughput: { runs: StationThroughput[]; loadAverage: number; method: string };
  method: string;
}

/**
 * The least SPIFFS time of one durable, checked LOCK commit of a record of
 * `bytes` (its envelope included) on the model, per step (see
 * StationBench.commitFloorMs): each term is what hil/flash.ts charges that
 * call, with nothing the store could still leave out.
 */
export function commitFloor(bytes: number, lookupMs: number): Record<string, number> {
  const writes: number[] = [];
  for (let left = bytes; left > 0; left -= NEWLIB_BUFSIZ) writes.push(Math.min(left, NEWLIB_BUFSIZ));
  return {
    openForWriting: SPIFFS_OPEN_MS,
    write: writes.reduce((a, n) => a + Math.max(1, Math.ceil((n * SPIFFS_MS_PER_KB) / 1024)), 0),
    readBackLookup: lookupMs,
    readBackPages: (Math.ceil(bytes / SPIFFS_DATA_PAGE_BYTES) * SPIFFS_READ_US) / 1000,
    rename: SPIFFS_RENAME_MS,
  };
}

/** A pipelined group: its requests' and their replies' wire lengths, in order. */
interface FrameGroup {
  out: number[];
  in: number[];
}

/** Byte times for the groups with an instant keyfob and host (see criticalPathMs). */
export function criticalPathBytes(groups: FrameGroup[]): number {
  let t = 0;
  for (const g of groups) {
    let arrived = t;
    let replied = t;
    for (let k = 0; k < g.out.length; k++) {
      arrived += g.out[k];
      replied = Math.max(arrived, replied) + (g.in[k] ?? 0);
    }
    t = replied;
  }
  return t;
}

/**
 * Record a transport's frames; groups() sorts them into pipelined groups (a
 * request written while another is unanswered joins its group; replies come
 * in request order). Reply lengths come from the read stream (a frame is
 * 0x00, its non-zero bytes, 0x00).
 */
function tapFrames(transport: SerialTransport): { groups(): FrameGroup[]; reset(): void } {
  const groups: FrameGroup[] = [];
  const replies: number[] = [];
  let requests = 0;
  let run = 0;
  const write = transport.write.bind(transport);
  transport.write = (frame: Uint8Array) => {
    if (requests === replies.length || groups.length === 0) groups.push({ out: [], in: [] });
    groups[groups.length - 1].out.push(frame.length);
    requests++;
    return write(frame);
  };
  const read = transport.read.bind(transport);
  transport.read = async () => {
    const chunk = await read();
    for (const b of chunk) {
      if (b !== 0) run++;
      else if (run > 0) {
        replies.push(run + 2);
        run = 0;
      }
    }
    return chunk;
  };
  return {
    /** Forget what was seen so far (call between exchanges, with nothing in flight). */
    reset() {
      groups.length = 0;
      replies.length = 0;
      requests = 0;
      run = 0;
    },
    groups() {
      let k = 0;
      return groups.map((g) => {
        const inn = replies.slice(k, k + g.out.length);
        k += g.out.length;
        return { out: g.out, in: inn };
      });
    },
  };
}

const r1 = (x: number) => Math.round(x * 10) / 10;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

/** One keyfob's figures from a run (see StationBench). */
interface TokenRun {
  ms: number;
  phases: StationBench["phaseMs"];
  out: number;
  in: number;
  requests: number;
  pathBytes: number;
  luaMs: number;
  /** Lua instructions from boot to the end of provisioning (only when counted). */
  instructions: number;
  /** The keyfob's modelled SPIFFS time and mutating SPIFFS operations during provisioning. */
  flashMs: number;
  flashOps: number;
  spiffs: Map<string, { count: number; ms: number }>;
  phaseFlash: StationBench["phaseMs"];
  rxLost: number;
  tasksLost: number;
  /** The record LOCK wrote (its envelope included), bytes, and the partition's name lookup, ms. */
  recordBytes: number;
  lookupMs: number;
  /** Power-on to the reply of the station's first INFO (see provisionOne). */
  bootToReadyMs: number;
  /** The keyfob's SPIFFS calls during boot (init.lua and the image's start). */
  bootSpiffs: Map<string, { count: number; ms: number }>;
}

function snapshotCalls(m: Map<string, { count: number; ms: number }>): Map<string, { count: number; ms: number }> {
  return new Map([...m].map(([k, v]) => [k, { ...v }]));
}

function addCalls(into: Map<string, { count: number; ms: number }>, from: Map<string, { count: number; ms: number }>): void {
  for (const [k, v] of from) {
    const t = into.get(k) ?? { count: 0, ms: 0 };
    t.count += v.count;
    t.ms += v.ms;
    into.set(k, t);
  }
}

/** Calls per keyfob, dearest first, rounded. */
function perToken(calls: Map<string, { count: number; ms: number }>, tokens: number): Record<string, { calls: number; ms: number }> {
  return Object.fromEntries(
    [...calls].sort((a, b) => b[1].ms - a[1].ms).map(([k, v]) => [k, { calls: Math.round((v.count / tokens) * 100) / 100, ms: Math.round((v.ms / tokens) * 10) / 10 }]),
  );
}

function diffCalls(now: Map<string, { count: number; ms: number }>, before: Map<string, { count: number; ms: number }>): Map<string, { count: number; ms: number }> {
  const out = new Map<string, { count: number; ms: number }>();
  for (const [k, v] of now) {
    const b = before.get(k) ?? { count: 0, ms: 0 };
    if (v.count > b.count) out.set(k, { count: v.count - b.count, ms: v.ms - b.ms });
  }
  return out;
}

/** Provision one fresh emulated keyfob behind its own PTY, as `fobkit emu --pty` + `fobkit provision` would. */
async function provisionOne(dir: string, name: string, record: FactoryRecord, countInstructions = false): Promise<TokenRun> {
  const emu = new Emulator({ stateDir: join(dir, name), imagePath: IMAGE, countInstructions, realtime: true, baud: BAUD });
  // Time spent inside the Lua VM: the keyfob's own processing, not the line's.
  let luaMs = 0;
  const uartWrite = emu.uartWrite.bind(emu);
  emu.uartWrite = (b) => {
    const t = performance.now();
    uartWrite(b);
    luaMs += performance.now() - t;
  };
  const link = await PtyLink.open(emu, { path: join(dir, `${name}.tty`), baud: BAUD });
  try {
    // Power-on, then wait for the keyfob to answer as a station would: its
    // first INFO is answered once init.lua and the image's boot are done
    // (their SPIFFS reads keep Lua busy; the request waits in the UART
    // buffers). That wait is the keyfob's boot, reported on its own
    // (bootToReadyMs); the provisioning is timed from a ready keyfob.
    const bootCalls = snapshotCalls(emu.flash.calls);
    const poweredAt = performance.now();
    emu.boot();
    const bootSpiffs = diffCalls(emu.flash.calls, bootCalls);
    const transport = new SerialTransport({ path: link.path, baudRate: BAUD });
    const tap = tapFrames(transport);
    const session = await DeviceSession.open(transport);
    await session.info();
    const bootToReadyMs = performance.now() - poweredAt;
    tap.reset();
    const out0 = transport.stats.bytesWritten;
    const in0 = transport.stats.bytesRead;
    const requests0 = session.stats.requests;
    const booted = emu.counters.instructions;
    const flashMs0 = emu.counters.flashBusyMs;
    const flashOps0 = emu.flash.writes;
    const calls0 = snapshotCalls(emu.flash.calls);
    const spiffsMs = () => [...emu.flash.calls.values()].reduce((a, c) => a + c.ms, 0);
    try {
      const at: Partial<Record<ProvisionStep, number>> = {};
      const fl: Partial<Record<ProvisionStep, number>> = {};
      const r = await provisionKeyfob(session, record, {
        batch: 1,
        onStep: (s) => {
          at[s] ??= performance.now();
          fl[s] ??= spiffsMs();
        },
      });
      if (r.status !== "good") throw new Error(`bench keyfob ${name} failed: ${r.reason}`);
      return {
        ms: at.done! - at.info!,
        phases: { info: at.allocate! - at.info!, allocate: at.set_clock! - at.allocate!, writeAndSelfTest: at.lock! - at.set_clock!, lockAndConfirm: at.done! - at.lock! },
        out: transport.stats.bytesWritten - out0,
        in: transport.stats.bytesRead - in0,
        requests: session.stats.requests - requests0,
        pathBytes: criticalPathBytes(tap.groups()),
        luaMs,
        instructions: emu.counters.instructions - booted,
        flashMs: emu.counters.flashBusyMs - flashMs0,
        flashOps: emu.flash.writes - flashOps0,
        spiffs: diffCalls(emu.flash.calls, calls0),
        phaseFlash: { info: fl.allocate! - fl.info!, allocate: fl.set_clock! - fl.allocate!, writeAndSelfTest: fl.lock! - fl.set_clock!, lockAndConfirm: fl.done! - fl.lock! },
        rxLost: emu.counters.uartRxLost,
        tasksLost: emu.counters.tasksLost,
        recordBytes: emu.flash.size(RECORD_NAME),
        lookupMs: emu.flash.geometry.lookupMs,
        bootToReadyMs,
        bootSpiffs,
      };
    } finally {
      await session.close();
    }
  } finally {
    await link.close();
    emu.close();
  }
}

/**
 * tokens keyfobs measured after `warmup` unmeasured ones: the emulated
 * keyfob is fengari, a Lua VM in JavaScript, and its first runs are slower
 * while V8 compiles it; a microcontroller has no such start-up cost. The
 * first keyfob's time is reported on its own.
 */
export async function runStationBench(opts: { tokens?: number; warmup?: number } = {}): Promise<StationBench> {
  const tokens = opts.tokens ?? 20;
  const warmup = opts.warmup ?? 3;
  const dir = mkdtempSync(join(tmpdir(), "fobkit-bench-station-"));
  const record = FactoryRecord.open(join(dir, "bench.sqlite"), { create: true, line: 1 });
  const times: number[] = [];
  const load = loadavg()[0];
  const phases = { info: 0, allocate: 0, writeAndSelfTest: 0, lockAndConfirm: 0 };
  const phaseFlash = { info: 0, allocate: 0, writeAndSelfTest: 0, lockAndConfirm: 0 };
  const spiffs = new Map<string, { count: number; ms: number }>();
  const bootSpiffs = new Map<string, { count: number; ms: number }>();
  const readyTimes: number[] = [];
  let recordBytes = 0, lookupMs = 0;
  let out = 0, inn = 0, requests = 0, luaMs = 0, pathBytes = 0, firstMs = 0, rxLost = 0, tasksLost = 0, flashMs = 0, flashOps = 0;
  try {
    for (let i = 0; i < warmup; i++) {
      const run = await provisionOne(dir, `warm${i}`, record);
      if (i === 0) firstMs = run.ms;
    }
    for (let i = 0; i < tokens; i++) {
      const run = await provisionOne(dir, `fob${i}`, record);
      times.push(run.ms);
      for (const k of Object.keys(phases) as (keyof typeof phases)[]) {
        phases[k] += run.phases[k];
        phaseFlash[k] += run.phaseFlash[k];
      }
      addCalls(spiffs, run.spiffs);
      addCalls(bootSpiffs, run.bootSpiffs);
      readyTimes.push(run.bootToReadyMs);
      recordBytes = Math.max(recordBytes, run.recordBytes);
      lookupMs = run.lookupMs;
      out += run.out;
      inn += run.in;
      requests += run.requests;
      pathBytes += run.pathBytes;
      luaMs += run.luaMs;
      flashMs += run.flashMs;
      flashOps += run.flashOps;
      rxLost += run.rxLost;
      tasksLost += run.tasksLost;
    }
    // The keyfob's work in VM instructions, which do not depend on the machine: one more keyfob with the count hook on (not timed).
    const instructions = (await provisionOne(dir, "counted", record, true)).instructions;
    // The record's share: the flow's three commits without a keyfob (allocate, lock_sent, good; each fsync'd).
    const t0 = performance.now();
    for (let i = 0; i < tokens; i++) {
      const { serial } = record.allocate({ batch: 1, seed: new Uint8Array(20) });
      record.setStage(serial, "lock_sent");
      record.markGood(serial);
    }
    const recordMs = (performance.now() - t0) / tokens;
    const { perMinute, ...throughput } = await runThroughputSeries(IMAGE);
    const total = (out + inn) / tokens;
    const byteMs = (BITS_PER_BYTE * 1000) / BAUD;
    const floorMs = total * byteMs;
    const criticalPathMs = (pathBytes / tokens) * byteMs;
    const med = median(times);
    const commit = commitFloor(recordBytes, lookupMs);
    const commitFloorMs = Object.values(commit).reduce((a, b) => a + b, 0);
    const lowerBoundMs = floorMs + commitFloorMs;
    const r2 = (x: number) => Math.round(x * 100) / 100;
    return {
      baud: BAUD,
      tokens,
      perTokenMs: { median: r1(med), min: r1(Math.min(...times)), max: r1(Math.max(...times)), mean: r1(times.reduce((a, b) => a + b, 0) / tokens) },
      bootToReadyMs: r1(median(readyTimes)),
      bootSpiffs: perToken(bootSpiffs, tokens),
      firstKeyfobMs: r1(firstMs),
      warmup,
      bytesPerToken: { toKeyfob: out / tokens, fromKeyfob: inn / tokens, total },
      requestsPerToken: requests / tokens,
      floorMs: Math.round(floorMs * 10) / 10,
      criticalPathMs: Math.round(criticalPathMs * 10) / 10,
      fullDuplexBoundMs: Math.round((Math.max(out, inn) / tokens) * byteMs * 10) / 10,
      ratioToCriticalPath: Math.round((med / criticalPathMs) * 100) / 100,
      ratioToFloor: Math.round((med / floorMs) * 100) / 100,
      bestRatioToFloor: Math.round((Math.min(...times) / floorMs) * 100) / 100,
      commitFloorMs: r2(commitFloorMs),
      commitFloorTerms: Object.fromEntries(Object.entries(commit).map(([k, v]) => [k, r2(v)])),
      lowerBoundMs: r1(lowerBoundMs),
      lowerBoundRatio: r2(lowerBoundMs / floorMs),
      criticalPathBoundMs: r1(criticalPathMs + commitFloorMs),
      ratioToLowerBound: r2(med / lowerBoundMs),
      goalReachable: lowerBoundMs <= 1.5 * floorMs || criticalPathMs + commitFloorMs <= 1.5 * floorMs,
      loadAverage: Math.round(load * 10) / 10,
      withinGoal: med <= 1.5 * floorMs && rxLost === 0,
      keyfobLosses: { uartRxBytes: rxLost, tasks: tasksLost },
      phaseMs: {
        info: Math.round((phases.info / tokens) * 10) / 10,
        allocate: Math.round((phases.allocate / tokens) * 10) / 10,
        writeAndSelfTest: Math.round((phases.writeAndSelfTest / tokens) * 10) / 10,
        lockAndConfirm: Math.round((phases.lockAndConfirm / tokens) * 10) / 10,
      },
      keyfobInstructionsPerToken: instructions,
      breakdown: {
        emulatorLuaMsPerToken: Math.round((luaMs / tokens) * 10) / 10,
        keyfobFlashMsPerToken: Math.round((flashMs / tokens) * 10) / 10,
        keyfobFlashWritesPerToken: flashOps / tokens,
        factoryRecordMsPerToken: Math.round(recordMs * 10) / 10 },
      keyfobSpiffsPerToken: perToken(spiffs, tokens),
      keyfobSpiffsMsPerPhase: {
        info: Math.round((phaseFlash.info / tokens) * 10) / 10,
        allocate: Math.round((phaseFlash.allocate / tokens) * 10) / 10,
        writeAndSelfTest: Math.round((phaseFlash.writeAndSelfTest / tokens) * 10) / 10,
        lockAndConfirm: Math.round((phaseFlash.lockAndConfirm / tokens) * 10) / 10,
      },
      perMinute,
      throughput,
      method: "fobkit provision flow to a fresh emulated keyfob per token, timed once it has booted (its first INFO answered: bootToReadyMs): INFO; SET_CLOCK, WRITE_SEED, SET_SERIAL, SELF_TEST pipelined (staged in the keyfob's RAM); LOCK (the one record write), INFO pipelined; " +
        "hil PtyLink pacing both directions at the baud rate, host on serialport's real binding; one keyfob at a time; " +
        "board model: nodemcu-build/sdkconfig.fobkit, console receive path (128-byte FIFO, 256-byte ring, 100-slot queue), console writes blocking past the 128-byte TX FIFO, SPIFFS time per operation (hil/flash.ts)",
    };
  } finally {
    record.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

export function formatStationBench(b: StationBench): string {
  return [
    `provisioning at ${b.baud} baud over a PTY, ${b.tokens} keyfobs after ${b.warmup} unmeasured:`,
    `  per keyfob: median ${b.perTokenMs.median} ms (min ${b.perTokenMs.min}, max ${b.perTokenMs.max}) from a keyfob that answers; the process's first keyfob took ${b.firstKeyfobMs} ms`,
    `  boot (power-on to the first INFO answered, not in the above): median ${b.bootToReadyMs} ms; its SPIFFS: ${Object.entries(b.bootSpiffs).map(([k, v]) => `${k} ${v.calls}x ${v.ms} ms`).join(", ")}`,
    `  wire: ${b.bytesPerToken.total} bytes per keyfob (${b.bytesPerToken.toKeyfob} out, ${b.bytesPerToken.fromKeyfob} in), ${b.requestsPerToken} requests`,
    `  floor (10 bits/byte): ${b.floorMs} ms; median is ${b.ratioToFloor}x the floor, fastest ${b.bestRatioToFloor}x (goal <= 1.5x: ${b.withinGoal ? "met" : "NOT met"}; load average ${b.loadAverage})`,
    `  lower bound on this model: floor ${b.floorMs} + one checked LOCK commit ${b.commitFloorMs} ms (${Object.entries(b.commitFloorTerms).map(([k, v]) => `${k} ${v}`).join(" + ")}) = ${b.lowerBoundMs} ms = ${b.lowerBoundRatio}x the floor (${b.criticalPathBoundMs} ms with the flow's full-duplex critical path); median is ${b.ratioToLowerBound}x the bound; <= 1.5x ${b.goalReachable ? "reachable" : "NOT reachable on this model"}`,
    `  keyfob side: ${b.keyfobLosses.uartRxBytes} bytes lost to receive overflow, ${b.keyfobLosses.tasks} tasks lost to a full queue`,
    `  this flow with an instant keyfob and host: ${b.criticalPathMs} ms (median is ${b.ratioToCriticalPath}x); full-duplex bound ${b.fullDuplexBoundMs} ms`,
    `  per phase (ms): INFO ${b.phaseMs.info}, allocate ${b.phaseMs.allocate}, clock+seed+serial+self-test ${b.phaseMs.writeAndSelfTest}, LOCK+INFO ${b.phaseMs.lockAndConfirm}`,
    `  keyfob SPIFFS per phase (ms): INFO ${b.keyfobSpiffsMsPerPhase.info}, allocate ${b.keyfobSpiffsMsPerPhase.allocate}, clock+seed+serial+self-test ${b.keyfobSpiffsMsPerPhase.writeAndSelfTest}, LOCK+INFO ${b.keyfobSpiffsMsPerPhase.lockAndConfirm}`,
    `  keyfob SPIFFS per call: ${Object.entries(b.keyfobSpiffsPerToken).map(([k, v]) => `${k} ${v.calls}x ${v.ms} ms`).join(", ")}`,
    formatThroughput({ perMinute: b.perMinute, ...b.throughput }),
    `  beyond the wire: keyfob firmware in the Lua VM ${b.breakdown.emulatorLuaMsPerToken} ms (${b.keyfobInstructionsPerToken} instructions), keyfob SPIFFS ${b.breakdown.keyfobFlashMsPerToken} ms (${b.breakdown.keyfobFlashWritesPerToken} operations), factory record commits ${b.breakdown.factoryRecordMsPerToken} ms per keyfob`,
  ].join("\n");
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const b = await runStationBench();
  const outDir = resolve(process.cwd(), "bench", "results");
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, "station.json"), JSON.stringify(b, null, 2) + "\n");
  process.stdout.write(formatStationBench(b) + "\nwritten bench/results/station.json\n");
}
