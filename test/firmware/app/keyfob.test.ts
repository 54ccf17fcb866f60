/**
 * The keyfob application, as built into build/firmware/fobkit.lua, running
 * in the emulator (fengari, 32-bit integers), for what only the emulated
 * board can show: oathtool's code for the self-test, a locked keyfob's flash
 * untouched byte for byte, a power cut at every flash operation, a year of
 * RTC drift. The rules themselves (blank -> provisioned -> locked, refusals,
 * the clock, failing closed) are app-suite.ts, run on Node, lua32 and here.
 */
import { randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { afterEach, describe, expect, test } from "vitest";
import { ascii, flashDigest, P, TestKeyfob } from "../../support/keyfob.js";
import { nodeBuild } from "../../support/paths.js";

const { referenceTotp } = await nodeBuild("host/station/reference-totp.js");
const SEED = ascii("12345678901234567890");
const T0 = 1_764_000_000;

const open: TestKeyfob[] = [];
function keyfob(opts: ConstructorParameters<typeof TestKeyfob>[0] = {}): TestKeyfob {
  const k = new TestKeyfob(opts).boot();
  open.push(k);
  return k;
}
afterEach(() => {
  while (open.length) open.pop()!.close();
});


const hostCode = (seed: number[], unix: number, alg = 1) => referenceTotp(Uint8Array.from(seed), unix, 60, 8, alg === 1 ? "SHA1" : "SHA256") as string;

describe("provisioning", () => {
  test("seed, serial, clock, self-test, lock: the self-test code is the host's and oathtool's", () => {
    const k = keyfob();
    expect(k.provision(SEED, "FK-TEST-1", T0 + 100, false)).toEqual([0, 0, 0]);
    const i = k.info();
    expect(i.state).toBe(P.STATE_PROVISIONED);
    expect(i.flags & (P.INFO_CLOCK_SET | P.INFO_SEED_SET)).toBe(P.INFO_CLOCK_SET | P.INFO_SEED_SET);
    expect([i.algorithm, i.digits, i.period]).toEqual([1, 8, 60]);
    expect(Buffer.from(i.serial).toString()).toBe("FK-TEST-1");
    const st = k.request({ cmd: P.CMD_SELF_TEST });
    expect(st.status).toBe(0);
    const at = st.selfTest.timeHi * 2 ** 32 + (st.selfTest.timeLo >>> 0);
    expect(Math.abs(at - (T0 + 100))).toBeLessThanOrEqual(2);
    const code = Buffer.from(st.selfTest.code).toString();
    expect(code).toBe(hostCode(SEED, at));
    const oath = execFileSync("oathtool", ["--totp", "-d", "8", "-s", "60", "-N", `@${at}`, Buffer.from(SEED).toString("hex")]).toString().trim();
    expect(code).toBe(oath);
    expect(k.request({ cmd: P.CMD_LOCK, serial: ascii("FK-TEST-1") }).status).toBe(0);
    expect(k.info().state).toBe(P.STATE_LOCKED);
  });

});

describe("locked keyfob", () => {
  test("every write and the self-test are refused with LOCKED and nothing changes", () => {
    const k = keyfob();
    k.provision(SEED, "FK-L", T0);
    const before = flashDigest(k.stateDir);
    const infoBefore = k.info();
    const refused = [
      { cmd: P.CMD_SET_SERIAL, serial: ascii("FK-OTHER") },
      { cmd: P.CMD_WRITE_SEED, algorithm: 1, digits: 8, period: 60, seed: Array.from(randomBytes(20)) },
      { cmd: P.CMD_SET_CLOCK, timeHi: 0, timeLo: T0 + 999, flags: 0 },
      { cmd: P.CMD_SET_CLOCK, timeHi: 0, timeLo: 1000, flags: P.CLOCK_FORCE },
      { cmd: P.CMD_SELF_TEST },
      { cmd: P.CMD_LOCK, serial: ascii("FK-L") },
      { cmd: P.CMD_WIPE, serial: ascii("FK-L") },
    ];
    for (const r of refused) expect(k.request(r).status, `cmd ${r.cmd}`).toBe(P.STATUS_LOCKED);
    expect(flashDigest(k.stateDir)).toBe(before);
    const after = k.info();
    expect({ ...after, timeLo: 0 }).toEqual({ ...infoBefore, timeLo: 0 });
  });

  test("a press shows the code the host computes for the emulator's time, then blanks", () => {
    const k = keyfob();
    k.provision(SEED, "FK-P", T0);
    for (const wait of [0, 61, 3600, 86400 * 30]) {
      k.emu.advance(wait);
      const shown = k.press();
      expect(shown).toBe(hostCode(SEED, k.emu.rtcTime()));
    }
    k.emu.advance(11);
    expect(k.emu.display.trim()).toBe("");
  });

});

describe("one flash write per provisioning", () => {
  test("seed, serial and clock are staged in RAM; LOCK writes the record once; a reboot before LOCK leaves the keyfob blank", () => {
    const k = keyfob();
    const ops = () => k.emu.flash.writes;
    const before = ops();
    expect(k.provision(SEED, "FK-1W", k.clock(), false)).toEqual([0, 0, 0]);
    expect(k.request({ cmd: P.CMD_SELF_TEST }).status).toBe(0);
    expect(ops() - before).toBe(0);
    expect(readdirSync(k.stateDir).filter((f) => f.startsWith("token.rec"))).toEqual([]);
    expect(k.info().state).toBe(P.STATE_PROVISIONED);
    expect(k.request({ cmd: P.CMD_LOCK, serial: ascii("FK-1W") }).status).toBe(0);
    const lockOps = ops() - before;
    expect(lockOps).toBeGreaterThan(0);
    expect(readdirSync(k.stateDir).filter((f) => f.startsWith("token.rec"))).toEqual(["token.rec"]);

    const j = keyfob();
    expect(j.provision(SEED, "FK-1X", j.clock(), false)).toEqual([0, 0, 0]);
    j.emu.powerCut();
    j.boot();
    expect(j.info()).toMatchObject({ state: P.STATE_BLANK, flags: 0, serial: [] });
  });
});

describe("power cut at every flash operation of provisioning", () => {
  const steps = (k: TestKeyfob) => [
    () => k.request({ cmd: P.CMD_WRITE_SEED, algorithm: 1, digits: 8, period: 60, seed: SEED }),
    () => k.request({ cmd: P.CMD_SET_SERIAL, serial: ascii("FK-PC") }),
    () => k.request({ cmd: P.CMD_SET_CLOCK, timeHi: 0, timeLo: k.emu.rtcTime() | 0, flags: 0 }),
    () => k.request({ cmd: P.CMD_LOCK, serial: ascii("FK-PC") }),
  ];
  /** What INFO may say after each completed step (flags, serial, state). */
  const snapshot = (i: any) => ({ state: i.state, flags: i.flags, serial: Buffer.from(i.serial).toString(), alg: i.algorithm });

  test("after boot the record is as before or as after the cut write, and provisioning can be redone", () => {
    // Count the flash operations of a whole provisioning and the state after each step.
    const ref = keyfob();
    const opsBefore = ref.emu.flash.writes;
    const states = [snapshot(ref.info())];
    for (const s of steps(ref)) {
      expect(s().status).toBe(0);
      states.push(snapshot(ref.info()));
    }
    const total = ref.emu.flash.writes - opsBefore;
    expect(total).toBeGreaterThanOrEqual(3); // LOCK's one record write: open, the flush at close, rename

    for (let n = 1; n <= total; n++) {
      const k = keyfob();
      k.emu.powerCutAtWrite(n);
      for (const s of steps(k)) {
        try {
          s();
        } catch (e) {
          if (k.emu.powered) throw e; // a failure with the power on is a bug, not the cut
          break; // no reply: the power died inside this step
        }
      }
      k.boot();
      const now = snapshot(k.info());
      expect(states, `cut at flash op ${n}/${total}`).toContainEqual(now);
      // Redo from wherever it stands: wipe unless locked, then the full sequence.
      if (now.state !== P.STATE_LOCKED) {
        expect(k.request({ cmd: P.CMD_WIPE, serial: ascii(now.serial) }).status).toBe(0);
        for (const s of steps(k)) expect(s().status).toBe(0);
      }
      expect(k.info().state).toBe(P.STATE_LOCKED);
      expect(k.press()).toBe(hostCode(SEED, k.emu.rtcTime()));
      open.pop()!.close();
    }
  });
});

describe("clock drift", () => {
  test("+20 ppm for a simulated year: every monthly code maps to the step the drift predicts", () => {
    const k = keyfob({ driftPpm: 20 });
    expect(k.provision(SEED, "FK-DRIFT", k.emu.rtcTime())).toEqual([0, 0, 0, 0]);
    // The emulator's RTC showed T0 at virtual time 0; true time runs with the virtual clock.
    const start = k.emu.clock.nowMs / 1000;
    const offsets: number[] = [];
    for (let month = 1; month <= 12; month++) {
      k.emu.advance(30.4 * 86400);
      const elapsed = k.emu.clock.nowMs / 1000 - start;
      const trueNow = Math.floor(T0 + k.emu.clock.nowMs / 1000);
      const shown = k.press();
      // The host knows only true time: search ±20 steps around it, as a verifier would.
      const matches: number[] = [];
      for (let d = -20; d <= 20; d++) if (hostCode(SEED, trueNow + d * 60) === shown) matches.push(d);
      expect(matches, `month ${month}`).toHaveLength(1);
      offsets.push(matches[0]);
      // 20 ppm of the elapsed time, in steps, within one step of rounding.
      expect(Math.abs(matches[0] - (elapsed * 20e-6) / 60)).toBeLessThanOrEqual(1);
    }
    // A year at +20 ppm is about 631 s: ten or eleven steps ahead.
    expect(offsets[11]).toBeGreaterThanOrEqual(10);
    expect(offsets[11]).toBeLessThanOrEqual(11);
    for (let i = 1; i < offsets.length; i++) expect(offsets[i]).toBeGreaterThanOrEqual(offsets[i - 1]);
  });
});
