/**
 * The in-memory board (firmware/sim/memory-board.ts) is a double of the
 * NodeMCU board, so it must answer like it: the same calls go to both (the
 * NodeMCU board through the HIL fixture's probe table, test/hil/fixtures/
 * echo-app.ts, on the emulated ESP32) and every status and value must agree.
 * A leniency here would let the app suite pass on Node what the board refuses.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { nodeBuild } from "../../support/paths.js";
import { buildFixture, loadHil, tempDir } from "../../hil/support.js";

const mem: any = await nodeBuild("firmware/sim/memory-board.js");
const T0 = 1_700_000_000;
const split = (t: number) => [Math.floor(t / 65536), t % 65536];

/** The probe table's calls, on the memory board (echo-app.ts's wrappers, restated for the tsc build). */
function memoryProbe(fn: string, ...args: any[]): unknown {
  // The write side (ProvisioningBoard) on the same state; its hooks have names of their own.
  const b = { ...mem.MEMORY_BOARD, ...mem.MEMORY_PROVISIONING_BOARD };
  const withOut = (st: number, out: number[]) => [st, ...out];
  switch (fn) {
    case "rtcRead": {
      const t = { hi: -1, lo: -1 };
      const st = b.rtcRead(t);
      return [st, t.hi, t.lo];
    }
    case "rtcWrite":
      return b.rtcWrite({ hi: args[0], lo: args[1] });
    case "flashRead": {
      const out: number[] = [];
      return withOut(b.flashRead(args[0], out), out);
    }
    case "hardwareId": {
      const out: number[] = [];
      const st = b.hardwareId(out);
      return [st, out.length];
    }
    case "rng": {
      const out: number[] = [];
      const st = b.rngBytes(out, args[0]);
      return [st, out.length];
    }
    default:
      return b[fn](...args);
  }
}

const CALLS: [string, ...unknown[]][] = [
  ["rtcWrite", ...split(4102444800)], // 2100-01-01: the DS3231 would count 2100 as a leap year
  ["rtcWrite", ...split(946684799)], // 1999-12-31
  ["rtcWrite", ...split(2147483648 + 1000)],
  ["rtcRead"],
  ["flashRead", "nothing"],
  ["flashExists", "nothing"],
  ["flashWrite", "a".repeat(28), [1]],
  ["flashWrite", "", [1]],
  ["flashWrite", "rec", [1, 256]],
  ["flashWrite", "rec", [1, 1.5]],
  ["flashWrite", "rec", new Array(4097).fill(7)],
  ["flashWrite", "rec", [1, 2, 3]],
  ["flashRead", "rec"],
  ["flashExists", "rec"],
  ["flashWrite", "rec", [4]],
  ["flashRead", "rec"],
  ["flashRemove", "rec"],
  ["flashExists", "rec"],
  ["flashRead", "rec"],
  ["displayText", "123456789"],
  ["displayText", "12345678"],
  ["displayNumber", 123, 9],
  ["displayNumber", 123, 0],
  ["displayNumber", 1000, 3],
  ["displayNumber", -1, 3],
  ["displayNumber", 42, 8],
  ["displayOff"],
  ["hardwareId"],
  ["rng", 0],
  ["rng", 65],
  ["rng", 8],
];

describe("the in-memory board answers like the NodeMCU board", () => {
  let image: string;
  let hil: any;
  beforeAll(async () => {
    image = buildFixture();
    hil = await loadHil();
  }, 120_000);

  it("the same statuses and values for every hook, valid and invalid arguments alike", () => {
    const emu = new hil.Emulator({ stateDir: tempDir("memboard-"), imagePath: image, time: T0, countInstructions: false });
    emu.boot();
    const nodemcu = CALLS.map(([fn, ...args]) => {
      const r = emu.callImage(`probe.${fn}`, ...args);
      return fn === "hardwareId" || fn === "rng" ? [(r as number[])[0], (r as number[]).length - 1] : r;
    });
    emu.close();
    // The fixture app's start(): display initialised, the RTC as the emulator's.
    mem.memoryBoardPowerOn({ hi: split(T0)[0], lo: split(T0)[1] }, false, 1);
    mem.MEMORY_BOARD.displayInit();
    const memory = CALLS.map(([fn, ...args]) => memoryProbe(fn, ...args));
    const differ = CALLS.map((c, i) => ({ call: c.map((x) => (Array.isArray(x) && x.length > 8 ? `[${x.length} bytes]` : x)), nodemcu: nodemcu[i], memory: memory[i] })).filter(
      (r) => JSON.stringify(r.nodemcu) !== JSON.stringify(r.memory),
    );
    expect(differ).toEqual([]);
  });
});
