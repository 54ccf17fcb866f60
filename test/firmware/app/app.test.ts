/**
 * The keyfob application suite (app-suite.ts), three runners, same cases:
 * Node (tsc build of firmware/app on the in-memory board), lua32 (the same
 * sources in fobkit-lib.lua on NodeMCU's number model) and the HIL emulator
 * (the keyfob's image on the emulated NodeMCU board, init.lua and all).
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe } from "vitest";
import { callLua, type LuaCall } from "../../support/lua-vm.js";
import { IMAGE, LIB_IMAGE, nodeBuild } from "../../support/paths.js";
import { createAppTests, type AppDriver, type Step } from "./app-suite.js";

const sim: any = await nodeBuild("firmware/sim/memory-keyfob.js");
const { Emulator } = await nodeBuild("hil/emulator.js");

const unixTime = (seconds: number) => ({ hi: Math.floor(seconds / 65536), lo: seconds % 65536 });
const FAULT = { "rtc-bus": sim.FAULT_RTC_BUS as number, "flash-write": sim.FAULT_FLASH_WRITE as number };
/** A fixed seed for the board's RNG: every run sees the same "random" bytes. */
const RNG_SEED = 0x5eed;

/** Each step as calls into sim (memory-keyfob.ts); the step's result is the last call's. */
function simCalls(step: Step): LuaCall[] {
  switch (step.op) {
    case "power-on":
      return step.rtc === false
        ? [
            { fn: "sim.powerOn", args: [unixTime(step.time), false, RNG_SEED] },
            { fn: "sim.fault", args: [sim.FAULT_RTC_ABSENT, true] },
            { fn: "sim.reboot", args: [] },
          ]
        : [{ fn: "sim.powerOn", args: [unixTime(step.time), false, RNG_SEED] }];
    case "send":
      return [{ fn: "sim.exchange", args: [step.bytes] }];
    case "press":
      return [{ fn: "sim.press", args: [] }];
    case "display":
      return [{ fn: "sim.display", args: [] }];
    case "advance":
      return [{ fn: "sim.advance", args: [step.ms] }];
    case "reboot":
      return [{ fn: "sim.reboot", args: [] }];
    case "lose-rtc-time-and-reboot":
      return [{ fn: "sim.loseRtcTime", args: [] }, { fn: "sim.reboot", args: [] }];
    case "corrupt-record-and-reboot":
      return [{ fn: "sim.corruptRecordAndReboot", args: [] }];
    case "fault":
      return [{ fn: "sim.fault", args: [FAULT[step.fault], step.on] }];
    case "rtc":
      return [{ fn: "sim.rtcTime", args: [] }];
  }
}

function result(step: Step, value: unknown): unknown {
  if (step.op === "rtc") {
    const t = value as { hi: number; lo: number };
    return t.hi * 65536 + t.lo;
  }
  return value;
}

/** The tsc build, in this process. */
const nodeDriver: AppDriver = {
  name: "node (tsc build, in-memory board)",
  async run(steps) {
    return steps.map((step) => {
      let value: unknown;
      for (const c of simCalls(step)) value = sim[c.fn.slice("sim.".length)](...structuredClone(c.args));
      return result(step, value ?? null);
    });
  },
};

/** fobkit-lib.lua on lua32, one VM per script. */
const lua32Driver: AppDriver = {
  name: "lua32 (fobkit-lib.lua, in-memory board)",
  async run(steps) {
    const calls: LuaCall[] = [];
    const last: number[] = [];
    for (const step of steps) {
      calls.push(...simCalls(step));
      last.push(calls.length - 1);
    }
    const out = await callLua("lua32", LIB_IMAGE, calls);
    const failed = out.find((o) => !o.ok);
    if (failed && !failed.ok) throw new Error(`lua32: ${failed.error}`);
    return steps.map((step, i) => {
      const o = out[last[i]];
      return result(step, o.ok ? o.value : undefined);
    });
  },
};

/** The keyfob's image in the HIL emulator; time passes as the board would take it. */
const emulatorDriver: AppDriver = {
  name: "HIL emulator (fobkit.lua on emulated NodeMCU)",
  async run(steps) {
    const dir = mkdtempSync(join(tmpdir(), "fobkit-app-"));
    let emu: any;
    let tx: number[] = [];
    const bootNow = () => {
      emu.boot();
      emu.advance(0.5);
      tx = []; // NodeMCU's banner and prompt, before the firmware's link
    };
    const take = () => {
      const out = tx;
      tx = [];
      return out;
    };
    try {
      return steps.map((step) => {
        switch (step.op) {
          case "power-on":
            emu?.close();
            emu = new Emulator({ stateDir: dir, imagePath: IMAGE, time: step.time, rtc: step.rtc !== false, countInstructions: false });
            emu.on("uart", (bytes: Uint8Array) => tx.push(...bytes));
            bootNow();
            return null;
          case "send":
            emu.uartWrite(step.bytes);
            // Time for the reply as the board takes it: a dead I2C bus blocks Lua for 1 s (hil/nodemcu/i2c.ts).
            for (let waited = 0; waited < 40; waited++) {
              emu.advance(0.05);
              if (tx.some((b) => b !== 0) && tx[tx.length - 1] === 0) break;
            }
            return take();
          case "press":
            emu.press();
            return String(emu.display);
          case "display":
            return String(emu.display);
          case "advance":
            emu.advance(step.ms / 1000);
            return null;
          case "reboot":
            emu.powerCut();
            bootNow();
            return null;
          case "lose-rtc-time-and-reboot":
            emu.removeRtcBattery();
            emu.powerCut();
            bootNow();
            return null;
          case "corrupt-record-and-reboot": {
            emu.powerCut();
            const rec = readdirSync(dir).find((f) => f.startsWith("token.rec"));
            if (rec === undefined) throw new Error("no record on the emulated flash");
            const bytes = readFileSync(join(dir, rec));
            bytes[bytes.length - 5] ^= 0x55;
            writeFileSync(join(dir, rec), bytes);
            bootNow();
            return null;
          }
          case "fault":
            emu.setFault(step.fault === "rtc-bus" ? "i2c-timeout" : "close-error", step.on);
            return null;
          case "rtc":
            return emu.rtcTime();
        }
      });
    } finally {
      emu?.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

for (const driver of [nodeDriver, lua32Driver, emulatorDriver]) {
  describe(driver.name, { timeout: 60_000 }, () => createAppTests(() => driver));
}
