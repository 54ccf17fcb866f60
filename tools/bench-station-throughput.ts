/**
 * `make bench` part of "station": keyfobs per minute for factory operators,
 * with 1, 2 and 4 ports provisioned in parallel by `fobkit station`'s own
 * loop (host/station/station.ts runStation: its port polling, one session
 * per keyfob, the factory record shared by all ports).
 *
 * Each port is a PTY with an emulated keyfob (hil's Emulator behind socat,
 * paced at 115200 baud, the realistic board model of nodemcu-build/). When
 * the station reports a keyfob's result, that keyfob is unplugged and a new
 * blank one is plugged into the same port at once, booting as a board does;
 * the station finds it at its next poll. So the figure is the station's
 * cycle with an operator who swaps keyfobs in no time: a real line adds its
 * swap time per keyfob and port. The keyfobs are emulated in this one
 * process, so on a loaded host several ports also compete for its CPU: the
 * figure is then lower than a station with real boards would reach, never
 * higher (loadAverage is recorded with it).
 */
import { cpSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { Emulator } from "../hil/emulator.js";
import { PtyLink } from "../hil/pty.js";
import { FactoryRecord } from "../host/station/factory-record.js";
import { DEFAULT_POLL_MS, runStation } from "../host/station/station.js";

export interface StationThroughput {
  ports: number;
  keyfobs: number;
  /** Wall time from the station's start to its last keyfob recorded good, ms. */
  elapsedMs: number;
  perMinute: number;
  /** elapsedMs per keyfob a port provisioned: the station's cycle on one port. */
  cycleMsPerPort: number;
  failed: number;
  /** Console bytes the keyfobs lost to receive overflow, all ports. */
  uartRxLost: number;
}

interface Slot {
  emu: Emulator;
  link: PtyLink;
}

/** Keyfobs per minute with `ports` ports, `perPort` keyfobs through each. `image` is a state directory holding an installed image to copy. */
export async function runThroughput(ports: number, perPort: number, template: string): Promise<StationThroughput> {
  const dir = mkdtempSync(join(tmpdir(), "fobkit-bench-throughput-"));
  const record = FactoryRecord.open(join(dir, "line.sqlite"), { create: true, line: 1 });
  const slots = new Map<string, Slot>();
  const plugged = new Map<string, number>();
  let n = 0;
  let rxLost = 0;
  const plug = async (path: string): Promise<void> => {
    const stateDir = join(dir, `fob${n++}`);
    cpSync(template, stateDir, { recursive: true });
    const emu = new Emulator({ stateDir, countInstructions: false, realtime: true });
    const link = await PtyLink.open(emu, { path });
    emu.boot();
    slots.set(path, { emu, link });
    plugged.set(path, (plugged.get(path) ?? 0) + 1);
  };
  const unplug = async (path: string): Promise<void> => {
    const s = slots.get(path);
    if (!s) return;
    slots.delete(path);
    rxLost += s.emu.counters.uartRxLost;
    await s.link.close();
    s.emu.close();
  };
  const paths = Array.from({ length: ports }, (_, i) => join(dir, `tty${i}`));
  const swaps: Promise<void>[] = [];
  try {
    for (const p of paths) await plug(p);
    const t0 = performance.now();
    let last = t0;
    const totals = await runStation({
      record,
      ports: paths,
      count: ports * perPort,
      pollMs: DEFAULT_POLL_MS,
      onEvent: (e) => {
        if (e.type !== "result") return;
        last = performance.now();
        const path = e.result.port;
        // The operator takes the keyfob out and, while this port has more to do, puts the next one in.
        swaps.push(unplug(path).then(() => ((plugged.get(path) ?? 0) < perPort ? plug(path) : undefined)));
      },
    });
    await Promise.all(swaps);
    const elapsedMs = last - t0;
    const r1 = (x: number) => Math.round(x * 10) / 10;
    return {
      ports,
      keyfobs: totals.good,
      elapsedMs: r1(elapsedMs),
      perMinute: r1((totals.good * 60_000) / elapsedMs),
      cycleMsPerPort: r1(elapsedMs / perPort),
      failed: totals.failed,
      uartRxLost: rxLost,
    };
  } finally {
    for (const p of [...slots.keys()]) await unplug(p);
    record.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** perMinute for 1, 2 and 4 ports (perPort keyfobs through each), from one installed image. */
export async function runThroughputSeries(image: string, perPort = 6): Promise<{ perMinute: Record<string, number>; runs: StationThroughput[]; loadAverage: number; method: string }> {
  const template = mkdtempSync(join(tmpdir(), "fobkit-bench-template-"));
  try {
    // Installed once (node.compile of each file, as fobkit flash does), copied for every keyfob.
    new Emulator({ stateDir: template, imagePath: image, countInstructions: false }).close();
    const runs: StationThroughput[] = [];
    const load = loadavg()[0];
    for (const ports of [1, 2, 4]) runs.push(await runThroughput(ports, perPort, template));
    return {
      perMinute: Object.fromEntries(runs.map((r) => [String(r.ports), r.perMinute])),
      runs,
      loadAverage: Math.round(load * 10) / 10,
      method:
        `fobkit station's loop (runStation, ${DEFAULT_POLL_MS} ms port polling) over 1, 2 and 4 PTYs, ${perPort} keyfobs through each; ` +
        "a keyfob is swapped for a fresh blank one the moment its result is recorded (no operator swap time), which then boots; " +
        "from the station's start to its last good keyfob. All keyfobs are emulated in one process on this host: on a loaded host parallel ports compete for its CPU",
    };
  } finally {
    rmSync(template, { recursive: true, force: true });
  }
}

export function formatThroughput(t: { perMinute: Record<string, number>; runs: StationThroughput[]; loadAverage: number }): string {
  return [
    `station throughput (fobkit station, ports in parallel, no operator swap time; load average ${t.loadAverage}):`,
    ...t.runs.map((r) => `  ${r.ports} port(s): ${r.perMinute} keyfobs/min (${r.keyfobs} good, ${r.failed} failed in ${r.elapsedMs} ms; ${r.cycleMsPerPort} ms per keyfob and port; ${r.uartRxLost} console bytes lost)`),
  ].join("\n");
}
