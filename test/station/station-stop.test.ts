/**
 * Stopping the station: Ctrl-C while a keyfob is in hand finishes that
 * keyfob (recorded good, serial printed) and starts no other; and the live
 * progress view on a TTY redraws in place.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { ProgressView } from "../../host/station/progress.js";
import { pace } from "../../host/cli/station.js";
import { attachKeyfob, type EmulatedKeyfob } from "./emulated-keyfob.js";
import { CliRun } from "./cli-io.js";

let dir: string;
const fobs: EmulatedKeyfob[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-stop-"));
});

afterEach(async () => {
  for (const f of fobs.splice(0)) await f.unplug();
  rmSync(dir, { recursive: true, force: true });
});

describe("station stop", () => {
  it("Ctrl-C finishes the keyfob in hand and starts no other", async () => {
    const a = await attachKeyfob(join(dir, "ttyA"));
    fobs.push(a);
    const run = new CliRun();
    let second: Promise<EmulatedKeyfob> | undefined;
    let bReadyAt = Infinity;
    run.onStderr((t) => {
      if (t.includes("writing seed") && !run.abort.signal.aborted) {
        run.abort.abort();
        // A second keyfob arrives after Ctrl-C: it must not be touched.
        second = attachKeyfob(join(dir, "ttyB")).then((f) => ((bReadyAt = Date.now()), f));
      }
    });
    const code = await run.run(["station", "--factory", join(dir, "f.sqlite"), "--line", "1", "--ports", `${join(dir, "ttyA")},${join(dir, "ttyB")}`, "--poll-ms", "20"]);
    const stoppedAt = Date.now();
    const b = await second!;
    // B was there, on a watched port, while the station was still finishing A.
    expect(bReadyAt).toBeLessThan(stoppedAt);
    fobs.push(b);
    expect(code).toBe(0);
    expect(run.out.stdout.trim()).toMatch(/^FK\d{14}$/);
    expect(run.out.stderr).toMatch(/station stopped: 1 good, 0 failed/);
    const rec = FactoryRecord.open(join(dir, "f.sqlite"));
    expect(rec.counts()).toEqual({ pending: 0, good: 1, failed: 0 });
    rec.close();
    expect(b.emu.counters.uartRxBytes).toBe(0);
  });

  it("a keyfob pulled mid-write and one failing its self-test are recorded failed; the station goes on and the next ones succeed", async () => {
    const A = join(dir, "ttyA"), B = join(dir, "ttyB");
    const pulled = await attachKeyfob(A);
    const wrongClock = await attachKeyfob(B, { driftPpm: 1e10 });
    fobs.push(pulled, wrongClock);
    const run = new CliRun();
    let pulling: Promise<void> | undefined;
    run.onStderr((t) => {
      // The moment the writes go out (clock, then seed): the cable is pulled.
      if (!pulling && t.includes(`${A}: setting clock`)) pulling = pulled.unplug();
    });
    const swaps: Promise<void>[] = [];
    run.onLine((line) => {
      const r = JSON.parse(line);
      if (r.status !== "failed") return;
      // The operator puts the failed keyfob aside and plugs in the next.
      const old = r.port === A ? pulled : wrongClock;
      swaps.push((r.port === A ? pulling! : old.unplug()).then(async () => {
        fobs.push(await attachKeyfob(r.port));
      }));
    });
    const code = await run.run(["station", "--factory", join(dir, "f.sqlite"), "--line", "1", "--ports", `${A},${B}`, "--count", "2", "--json", "--poll-ms", "20"]);
    await Promise.all(swaps);
    expect(code).toBe(0);
    const results = run.out.stdout.trim().split("\n").map((l) => JSON.parse(l));
    const failed = results.filter((r) => r.status === "failed");
    expect(failed.map((r) => [r.port, r.reason.replace(/\d+/g, "N")]).sort()).toEqual([
      [A, expect.stringMatching(new RegExp(`^keyfob on ${A.replace(/\d+/g, "N")} was unplugged during (SET_CLOCK|WRITE_SEED)$`))],
      [B, "self-test failed: keyfob clock reads N, host N (off by N s)"],
    ]);
    expect(results.filter((r) => r.status === "good").map((r) => r.port).sort()).toEqual([A, B]);
    const rec = FactoryRecord.open(join(dir, "f.sqlite"));
    expect(rec.counts()).toEqual({ pending: 0, good: 2, failed: 2 });
    for (const f of failed) expect(rec.token(f.serial)).toMatchObject({ state: "failed", reason: expect.stringContaining(f.reason) });
    rec.close();
    expect(run.out.stderr).toMatch(/station stopped: 2 good, 2 failed/);
  });

  it("redraws one line per port and the running count in place on a TTY", () => {
    let text = "";
    const out = Object.assign(new Writable({ write: (c, _e, cb) => ((text += c.toString()), cb()) }), { isTTY: true });
    const view = new ProgressView(out);
    view.handle({ type: "attached", port: "/dev/ttyUSB0" });
    view.handle({ type: "step", port: "/dev/ttyUSB0", step: "write_seed" });
    view.handle({ type: "attached", port: "/dev/ttyUSB1" });
    view.handle({ type: "result", result: { status: "good", serial: "FK000100000114", port: "/dev/ttyUSB0", durationMs: 1200 }, totals: { good: 1, failed: 0 } });
    const frames = text.split(/\x1b\[\d+A/);
    const last = frames[frames.length - 1];
    expect(last).toContain("/dev/ttyUSB0  GOOD FK000100000114 in 1.2 s - remove keyfob");
    expect(last).toContain("/dev/ttyUSB1  keyfob attached");
    expect(last).toContain("good 1  failed 0");
    expect(text).toContain("\x1b[3A");
  });

  it("the stop line gives the run's length, and from a minute on its pace in good keyfobs per hour", () => {
    expect(pace(3, 12_400)).toBe(" in 12 s");
    expect(pace(40, 6 * 60_000)).toBe(" in 6 min 0 s (400 good per hour)");
    expect(pace(412, 3_720_000)).toBe(" in 1 h 2 min (399 good per hour)");
  });
});
