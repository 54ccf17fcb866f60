/**
 * The keyfob application, as built into build/firmware/fobkit.lua, running
 * in the emulator (fengari, 32-bit integers): every rule of issue 3's
 * "Firmware: the device" section, through the wire protocol only.
 */
import { randomBytes } from "node:crypto";
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, test } from "vitest";
import { ascii, flashDigest, P, TestKeyfob } from "../../support/keyfob.js";
import { nodeBuild } from "../../support/paths.js";

const otp: any = await nodeBuild("firmware/otp/index.js");
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


const hostCode = (seed: number[], unix: number, alg = 1) => (otp.totpAt(seed, unix, 60, 8, alg) as { text: string }).text;

describe("blank keyfob", () => {
  test("INFO reports blank, the model, the firmware version, a hardware id and the RTC time", () => {
    const k = keyfob();
    const i = k.info();
    expect(i.state).toBe(P.STATE_BLANK);
    expect(i.flags).toBe(0);
    expect(Buffer.from(i.model).toString()).toBe("FOBKIT-1");
    expect([i.fwMajor, i.fwMinor]).toEqual([1, 1]);
    expect(i.hwid).toHaveLength(8);
    expect(i.hwid.some((b: number) => b !== 0)).toBe(true);
    expect(Math.abs(k.clock() - k.emu.rtcTime())).toBeLessThanOrEqual(1);
    expect(i.serial).toEqual([]);
  });

  test("a press shows the status word, not a code", () => {
    expect(keyfob().press()).toBe("bLAnK");
  });

  test("SELF_TEST and LOCK before provisioning are refused", () => {
    const k = keyfob();
    expect(k.request({ cmd: P.CMD_SELF_TEST }).status).toBe(P.STATUS_NOT_PROVISIONED);
    expect(k.request({ cmd: P.CMD_LOCK, serial: ascii("FK1") }).status).toBe(P.STATUS_SERIAL_MISMATCH);
    k.request({ cmd: P.CMD_SET_SERIAL, serial: ascii("FK1") });
    expect(k.request({ cmd: P.CMD_LOCK, serial: ascii("FK1") }).status).toBe(P.STATUS_BAD_STATE);
  });
});

describe("malformed input", () => {
  test("the rest of an overlong frame is skipped to the next 0x00, never answered as a frame of its own", () => {
    const k = keyfob();
    // A request's wire bytes without their opening delimiter, right after 129 bytes with no 0x00:
    // a receiver that lost the overlong frame's skip would decode and answer it.
    const tail = P.encodeRequest({ rid: 0x77, cmd: P.CMD_INFO }).slice(1);
    const overlong = [0, 0xff, ...Array(P.MAX_FRAME + 1).fill(0x41)]; // one 254-byte COBS block: 129 decoded bytes overflow
    expect(k.sendRaw([...overlong, ...tail])).toEqual([]);
    // The next frame, properly opened, is answered.
    expect(k.info().state).toBe(P.STATE_BLANK);
  });
});

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

  test("SHA-256 with a 32-byte seed in 2040 (past 2^31 s) gives the host's code", () => {
    const k = keyfob({ time: 2_208_988_800 });
    const seed = ascii("12345678901234567890123456789012");
    expect(k.provision(seed, "FK-256", 2_208_988_800, true, 2)).toEqual([0, 0, 0, 0]);
    const at = k.emu.rtcTime();
    expect(k.press()).toBe(hostCode(seed, at, 2));
  });

  test("the clock never moves backwards without force", () => {
    const k = keyfob();
    const now = k.clock();
    const set = (unix: number, flags: number) =>
      k.request({ cmd: P.CMD_SET_CLOCK, timeHi: Math.floor(unix / 2 ** 32), timeLo: unix | 0, flags }).status;
    expect(set(now - 3600, 0)).toBe(P.STATUS_CLOCK_BACKWARDS);
    expect(Math.abs(k.clock() - now)).toBeLessThanOrEqual(1);
    expect(set(now - 3600, P.CLOCK_FORCE)).toBe(0);
    expect(Math.abs(k.clock() - (now - 3600))).toBeLessThanOrEqual(1);
    expect(set(now + 86400 * 365 * 20, 0)).toBe(0);
  });

  test("wipe before lock returns to blank; the serial must match", () => {
    const k = keyfob();
    k.provision(SEED, "FK-W", T0, false);
    expect(k.request({ cmd: P.CMD_WIPE, serial: ascii("FK-X") }).status).toBe(P.STATUS_SERIAL_MISMATCH);
    expect(k.request({ cmd: P.CMD_WIPE, serial: ascii("FK-W") }).status).toBe(0);
    const i = k.info();
    expect(i.state).toBe(P.STATE_BLANK);
    expect(i.serial).toEqual([]);
    expect(k.press()).toBe("bLAnK");
  });

  test("an unlocked keyfob shows a status word, not a code", () => {
    const k = keyfob();
    k.provision(SEED, "FK-U", T0, false);
    expect(k.press()).toBe("oPEn");
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

  test("the state survives a reboot", () => {
    const k = keyfob();
    k.provision(SEED, "FK-R", T0);
    k.emu.powerCut();
    k.boot();
    expect(k.info().state).toBe(P.STATE_LOCKED);
    expect(k.press()).toBe(hostCode(SEED, k.emu.rtcTime()));
  });
});

describe("fails closed", () => {
  test("no RTC answer: error state, no code, no lock", () => {
    const k = keyfob({ rtc: false });
    const i = k.info();
    expect(i.state).toBe(P.STATE_ERROR);
    expect(i.reason).toBe(P.REASON_RTC_MISSING);
    expect(k.press()).toBe("Err  01");
    expect(k.request({ cmd: P.CMD_SET_CLOCK, timeHi: 0, timeLo: T0, flags: 0 }).status).toBe(P.STATUS_HW_FAULT);
  });

  test("RTC time lost after lock: error, never a code from a reset clock", () => {
    const k = keyfob();
    k.provision(SEED, "FK-T", T0);
    k.emu.removeRtcBattery();
    k.emu.powerCut();
    k.boot();
    const i = k.info();
    expect(i.state).toBe(P.STATE_ERROR);
    expect(i.reason).toBe(P.REASON_RTC_TIME_LOST);
    expect(k.press()).toBe("Err  02");
  });

  test("a corrupt flash record: error state, no code; a wipe recovers it", () => {
    const dir = keyfob().stateDir;
    open.pop()!.close();
    const k = new TestKeyfob({ stateDir: dir });
    open.push(k);
    k.boot();
    k.provision(SEED, "FK-C", T0);
    k.emu.powerCut();
    const rec = readdirSync(dir).find((f) => f.startsWith("token.rec"))!;
    const bytes = readFileSync(join(dir, rec));
    bytes[bytes.length - 5] ^= 0x55;
    writeFileSync(join(dir, rec), bytes);
    k.boot();
    const i = k.info();
    expect(i.state).toBe(P.STATE_ERROR);
    expect(i.reason).toBe(P.REASON_FLASH_CORRUPT);
    expect(k.press()).toBe("Err  04");
    expect(k.request({ cmd: P.CMD_SET_SERIAL, serial: ascii("X") }).status).toBe(P.STATUS_BAD_STATE);
    expect(k.request({ cmd: P.CMD_WIPE, serial: [] }).status).toBe(0);
    expect(k.info().state).toBe(P.STATE_BLANK);
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
        } catch {
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
