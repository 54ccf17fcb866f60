/**
 * One suite for the keyfob application (firmware/app: blank -> provisioned ->
 * locked, every refusal, the clock, failing closed, what a press shows), run
 * against every way the real device code runs (otplib's shared-suite
 * pattern, STYLE.md):
 *
 *   - Node: the tsc build of firmware/app on the in-memory board (firmware/sim);
 *   - lua32: the same sources in fobkit-lib.lua on NodeMCU's number model;
 *   - the HIL emulator: the keyfob's image (fobkit.lua) on the emulated
 *     NodeMCU board (hil/), through init.lua, the real drivers and SPIFFS.
 *
 * A case is a script of steps a driver runs in one go (the Lua runner runs
 * one VM per script); the expectations come from outside the code under test:
 * the protocol's own decoder and node:crypto's TOTP (host/station/reference-totp.ts).
 * Each step talks wire bytes, so every driver goes through the frame glue too.
 */
import { expect, it } from "vitest";
import { nodeBuild } from "../../support/paths.js";

const P: any = await nodeBuild("protocol/index.js");
const { referenceTotp } = await nodeBuild("host/station/reference-totp.js");

export type Step =
  /** A factory-fresh board (empty flash) whose RTC shows `time`; rtc false: no RTC on the bus. */
  | { op: "power-on"; time: number; rtc?: boolean }
  /** Host bytes in; result: the bytes the keyfob sent back. */
  | { op: "send"; bytes: number[] }
  /** Press the button; result: what the display shows right after. */
  | { op: "press" }
  /** Result: what the display shows now. */
  | { op: "display" }
  | { op: "advance"; ms: number }
  /** Power off and on: flash and the battery-backed RTC stay. */
  | { op: "reboot" }
  /** The RTC's battery goes, then a power cycle: the RTC has lost its time. */
  | { op: "lose-rtc-time-and-reboot" }
  /** The record's bytes on flash go bad, then a power cycle. */
  | { op: "corrupt-record-and-reboot" }
  /** rtc-bus: the I2C bus times out; flash-write: every flash write fails. */
  | { op: "fault"; fault: "rtc-bus" | "flash-write"; on: boolean }
  /** Result: the RTC's own time, Unix seconds. */
  | { op: "rtc" };

export interface AppDriver {
  name: string;
  /** Run the steps in order; one result per step (undefined where a step has none). */
  run(steps: Step[]): Promise<unknown[]>;
}

const ascii = (s: string): number[] => Array.from(Buffer.from(s, "latin1"));
const SEED = ascii("12345678901234567890");
const T0 = 1_764_000_000;
/** Unix seconds as the protocol's two words. */
const words = (unix: number) => ({ timeHi: Math.floor(unix / 2 ** 32), timeLo: unix | 0 });
const unixOf = (hi: number, lo: number) => hi * 2 ** 32 + (lo >>> 0);
const code = (seed: number[], unix: number, alg: "SHA1" | "SHA256" = "SHA1") => referenceTotp(Uint8Array.from(seed), unix, 60, 8, alg);

/** Builds one script; each method returns a getter for its step's decoded result. */
class Script {
  readonly steps: Step[] = [];
  private rid = 0;
  results: unknown[] = [];

  private push(step: Step): number {
    this.steps.push(step);
    return this.steps.length - 1;
  }

  powerOn(time = T0, rtc = true): void {
    this.push({ op: "power-on", time, rtc });
  }

  /** One request; () => its decoded reply (fails the test unless exactly one well-formed reply came). */
  request(msg: Record<string, unknown>): () => any {
    this.rid = (this.rid + 1) & 255;
    const rid = this.rid;
    const at = this.push({ op: "send", bytes: P.encodeRequest({ rid, ...msg }) });
    return () => {
      const events = P.decodeChunk(P.newDeframer(), this.results[at] as number[], true);
      expect(events.length, `replies to cmd ${msg.cmd} (step ${at})`).toBe(1);
      expect(events[0].event).toBe(P.RX_FRAME);
      expect(events[0].status).toBe(0);
      expect(events[0].msg.rid).toBe(rid);
      return events[0].msg;
    };
  }

  status(msg: Record<string, unknown>): () => number {
    const r = this.request(msg);
    return () => r().status;
  }

  info(): () => any {
    const r = this.request({ cmd: P.CMD_INFO });
    return () => {
      const m = r();
      expect(m.status).toBe(0);
      return m.info;
    };
  }

  raw(bytes: number[]): () => number[] {
    const at = this.push({ op: "send", bytes });
    return () => this.results[at] as number[];
  }

  press(): () => string {
    const at = this.push({ op: "press" });
    return () => String(this.results[at]).trimEnd();
  }

  display(): () => string {
    const at = this.push({ op: "display" });
    return () => String(this.results[at]).trimEnd();
  }

  rtc(): () => number {
    const at = this.push({ op: "rtc" });
    return () => this.results[at] as number;
  }

  step(s: Step): void {
    this.push(s);
  }

  /** WRITE_SEED, SET_SERIAL, SET_CLOCK (and LOCK): () => their statuses. */
  provision(serial: string, unix: number, lock = true, seed = SEED, algorithm = 1): () => number[] {
    const s = [
      this.status({ cmd: P.CMD_WRITE_SEED, algorithm, digits: 8, period: 60, seed }),
      this.status({ cmd: P.CMD_SET_SERIAL, serial: ascii(serial) }),
      this.status({ cmd: P.CMD_SET_CLOCK, ...words(unix), flags: 0 }),
    ];
    if (lock) s.push(this.status({ cmd: P.CMD_LOCK, serial: ascii(serial) }));
    return () => s.map((f) => f());
  }

  async runOn(driver: AppDriver): Promise<void> {
    this.results = await driver.run(this.steps);
    expect(this.results).toHaveLength(this.steps.length);
  }
}

/** The keyfob's rules, against one driver. */
export function createAppTests(driver: () => AppDriver): void {
  it("blank: INFO says blank with the model, version, hardware id and the RTC's time; a press shows bLAnK", async () => {
    const s = new Script();
    s.powerOn();
    const info = s.info();
    const rtc = s.rtc();
    const pressed = s.press();
    await s.runOn(driver());
    const i = info();
    expect(i.state).toBe(P.STATE_BLANK);
    expect(i.flags).toBe(0);
    expect(Buffer.from(i.model).toString()).toBe("FOBKIT-1");
    expect([i.fwMajor, i.fwMinor]).toEqual([1, 1]);
    expect(i.hwid).toHaveLength(8);
    expect(i.hwid.some((b: number) => b !== 0)).toBe(true);
    expect(Math.abs(unixOf(i.timeHi, i.timeLo) - rtc())).toBeLessThanOrEqual(1);
    expect(i.serial).toEqual([]);
    expect(pressed()).toBe("bLAnK");
  });

  it("refuses before provisioning: SELF_TEST, LOCK without a matching serial or a seed, SHA-512", async () => {
    const s = new Script();
    s.powerOn();
    const selfTest = s.status({ cmd: P.CMD_SELF_TEST });
    const lockNoSerial = s.status({ cmd: P.CMD_LOCK, serial: ascii("FK1") });
    const setSerial = s.status({ cmd: P.CMD_SET_SERIAL, serial: ascii("FK1") });
    const lockNoSeed = s.status({ cmd: P.CMD_LOCK, serial: ascii("FK1") });
    const sha512 = s.status({ cmd: P.CMD_WRITE_SEED, algorithm: P.ALG_SHA512, digits: 8, period: 60, seed: SEED });
    const info = s.info();
    await s.runOn(driver());
    expect(selfTest()).toBe(P.STATUS_NOT_PROVISIONED);
    expect(lockNoSerial()).toBe(P.STATUS_SERIAL_MISMATCH);
    expect(setSerial()).toBe(P.STATUS_OK);
    expect(lockNoSeed()).toBe(P.STATUS_BAD_STATE);
    expect(sha512()).toBe(P.STATUS_BAD_ARGUMENT);
    expect(info().flags & P.INFO_SEED_SET).toBe(0);
  });

  it("provisioned -> locked: the self-test code is node:crypto's, a press shows oPEn, then the code, then goes dark", async () => {
    const s = new Script();
    s.powerOn();
    const statuses = s.provision("FK-TEST-1", T0 + 100, false);
    const info = s.info();
    const selfTest = s.request({ cmd: P.CMD_SELF_TEST });
    const open = s.press();
    const lock = s.status({ cmd: P.CMD_LOCK, serial: ascii("FK-TEST-1") });
    const locked = s.info();
    s.step({ op: "advance", ms: 61_000 });
    const shown = s.press();
    const rtc = s.rtc();
    s.step({ op: "advance", ms: 10_500 });
    const dark = s.display();
    await s.runOn(driver());
    expect(statuses()).toEqual([0, 0, 0]);
    const i = info();
    expect(i.state).toBe(P.STATE_PROVISIONED);
    expect(i.flags & (P.INFO_CLOCK_SET | P.INFO_SEED_SET)).toBe(P.INFO_CLOCK_SET | P.INFO_SEED_SET);
    expect([i.algorithm, i.digits, i.period]).toEqual([1, 8, 60]);
    expect(Buffer.from(i.serial).toString()).toBe("FK-TEST-1");
    const st = selfTest();
    expect(st.status).toBe(0);
    const at = unixOf(st.selfTest.timeHi, st.selfTest.timeLo);
    expect(Math.abs(at - (T0 + 100))).toBeLessThanOrEqual(2);
    expect(Buffer.from(st.selfTest.code).toString()).toBe(code(SEED, at));
    expect(open()).toBe("oPEn");
    expect(lock()).toBe(0);
    expect(locked().state).toBe(P.STATE_LOCKED);
    expect(shown()).toBe(code(SEED, rtc()));
    expect(dark()).toBe("");
  });

  it("locked: every write and the self-test are refused with LOCKED, nothing changes, and it survives a reboot", async () => {
    const s = new Script();
    s.powerOn();
    const statuses = s.provision("FK-L", T0);
    const before = s.info();
    const refused = [
      { cmd: P.CMD_SET_SERIAL, serial: ascii("FK-OTHER") },
      { cmd: P.CMD_WRITE_SEED, algorithm: 1, digits: 8, period: 60, seed: ascii("abcdefghijabcdefghij") },
      { cmd: P.CMD_SET_CLOCK, ...words(T0 + 999), flags: 0 },
      { cmd: P.CMD_SET_CLOCK, ...words(1000), flags: P.CLOCK_FORCE },
      { cmd: P.CMD_SELF_TEST },
      { cmd: P.CMD_LOCK, serial: ascii("FK-L") },
      { cmd: P.CMD_WIPE, serial: ascii("FK-L") },
    ].map((r) => [r.cmd, s.status(r)] as const);
    const after = s.info();
    s.step({ op: "reboot" });
    const rebooted = s.info();
    const shown = s.press();
    const rtc = s.rtc();
    await s.runOn(driver());
    expect(statuses()).toEqual([0, 0, 0, 0]);
    for (const [cmd, st] of refused) expect(st(), `cmd ${cmd}`).toBe(P.STATUS_LOCKED);
    expect({ ...after(), timeLo: 0 }).toEqual({ ...before(), timeLo: 0 });
    expect({ ...rebooted(), timeLo: 0 }).toEqual({ ...before(), timeLo: 0 });
    expect(shown()).toBe(code(SEED, rtc()));
  });

  it("the clock never moves backwards without CLOCK_FORCE", async () => {
    const s = new Script();
    s.powerOn();
    const back = s.status({ cmd: P.CMD_SET_CLOCK, ...words(T0 - 3600), flags: 0 });
    const unchanged = s.rtc();
    const forced = s.status({ cmd: P.CMD_SET_CLOCK, ...words(T0 - 3600), flags: P.CLOCK_FORCE });
    const moved = s.rtc();
    const ahead = s.status({ cmd: P.CMD_SET_CLOCK, ...words(T0 + 86400 * 365 * 20), flags: 0 });
    const info = s.info();
    await s.runOn(driver());
    expect(back()).toBe(P.STATUS_CLOCK_BACKWARDS);
    expect(Math.abs(unchanged() - T0)).toBeLessThanOrEqual(1);
    expect(forced()).toBe(0);
    expect(Math.abs(moved() - (T0 - 3600))).toBeLessThanOrEqual(1);
    expect(ahead()).toBe(0);
    expect(info().flags & P.INFO_CLOCK_SET).toBe(P.INFO_CLOCK_SET);
  });

  it("a wipe before lock needs the serial and returns to blank", async () => {
    const s = new Script();
    s.powerOn();
    s.provision("FK-W", T0, false);
    const wrong = s.status({ cmd: P.CMD_WIPE, serial: ascii("FK-X") });
    const right = s.status({ cmd: P.CMD_WIPE, serial: ascii("FK-W") });
    const info = s.info();
    const pressed = s.press();
    await s.runOn(driver());
    expect(wrong()).toBe(P.STATUS_SERIAL_MISMATCH);
    expect(right()).toBe(0);
    expect(info().state).toBe(P.STATE_BLANK);
    expect(info().serial).toEqual([]);
    expect(pressed()).toBe("bLAnK");
  });

  it("SHA-256 with a 32-byte seed in 2040 (past 2^31 s) shows node:crypto's code", async () => {
    const seed = ascii("12345678901234567890123456789012");
    const t = 2_208_988_800;
    const s = new Script();
    s.powerOn(t);
    const statuses = s.provision("FK-256", t, true, seed, 2);
    const shown = s.press();
    const rtc = s.rtc();
    await s.runOn(driver());
    expect(statuses()).toEqual([0, 0, 0, 0]);
    expect(shown()).toBe(code(seed, rtc(), "SHA256"));
  });

  it("answers a malformed request with its status and changes nothing: unknown command, other version, digits 9", async () => {
    const frame = (body: number[]) => P.encodeFrame(body, body.length) as number[];
    const s = new Script();
    s.powerOn();
    const unknown = s.raw(frame([P.PROTOCOL_VERSION, 0x41, 0x42]));
    const version = s.raw(frame([P.PROTOCOL_VERSION + 1, 0x43, P.CMD_INFO]));
    const digits = s.raw(frame([P.PROTOCOL_VERSION, 0x44, P.CMD_WRITE_SEED, 1, 9, 0, 0, 0, 60, SEED.length, ...SEED]));
    const info = s.info();
    await s.runOn(driver());
    const reply = (bytes: number[]) => {
      const events = P.decodeChunk(P.newDeframer(), bytes, true);
      expect(events).toHaveLength(1);
      return events[0].msg;
    };
    expect(reply(unknown())).toMatchObject({ rid: 0x41, status: P.STATUS_UNKNOWN_COMMAND });
    expect(reply(version())).toMatchObject({ rid: 0x43, status: P.STATUS_BAD_VERSION });
    expect(reply(digits())).toMatchObject({ rid: 0x44, cmd: P.CMD_WRITE_SEED, status: P.STATUS_BAD_ARGUMENT });
    expect(info().state).toBe(P.STATE_BLANK);
    expect(info().flags).toBe(0);
  });

  it("the rest of an overlong frame is skipped to the next 0x00, never answered", async () => {
    const tail = P.encodeRequest({ rid: 0x77, cmd: P.CMD_INFO }).slice(1);
    const s = new Script();
    s.powerOn();
    const out = s.raw([0, 0xff, ...Array(P.MAX_FRAME + 1).fill(0x41), ...tail]);
    const info = s.info();
    await s.runOn(driver());
    expect(out()).toEqual([]);
    expect(info().state).toBe(P.STATE_BLANK);
  });

  it("fails closed without an RTC: error state, Err 01, SET_CLOCK refused", async () => {
    const s = new Script();
    s.powerOn(T0, false);
    const info = s.info();
    const pressed = s.press();
    const setClock = s.status({ cmd: P.CMD_SET_CLOCK, ...words(T0), flags: 0 });
    await s.runOn(driver());
    expect(info().state).toBe(P.STATE_ERROR);
    expect(info().reason).toBe(P.REASON_RTC_MISSING);
    expect(pressed()).toBe("Err  01");
    expect(setClock()).toBe(P.STATUS_HW_FAULT);
  });

  it("fails closed when the RTC lost its time after lock: Err 02, never a code from a reset clock", async () => {
    const s = new Script();
    s.powerOn();
    s.provision("FK-T", T0);
    s.step({ op: "lose-rtc-time-and-reboot" });
    const info = s.info();
    const pressed = s.press();
    await s.runOn(driver());
    expect(info().state).toBe(P.STATE_ERROR);
    expect(info().reason).toBe(P.REASON_RTC_TIME_LOST);
    expect(pressed()).toBe("Err  02");
  });

  it("fails closed on an I2C bus timeout (Err 01) and shows codes again once the bus answers", async () => {
    const s = new Script();
    s.powerOn();
    s.provision("FK-B", T0);
    s.step({ op: "fault", fault: "rtc-bus", on: true });
    const info = s.info();
    const pressed = s.press();
    s.step({ op: "fault", fault: "rtc-bus", on: false });
    // The faulted read blocked Lua for I2C's 1 s alive interval (hil/nodemcu/i2c.ts); let it finish.
    s.step({ op: "advance", ms: 1500 });
    const again = s.press();
    const rtc = s.rtc();
    await s.runOn(driver());
    expect(info().state).toBe(P.STATE_ERROR);
    expect(info().reason).toBe(P.REASON_RTC_MISSING);
    expect(pressed()).toBe("Err  01");
    expect(again()).toBe(code(SEED, rtc()));
  });

  it("fails closed on a corrupt record (Err 04, writes refused); a wipe recovers it", async () => {
    const s = new Script();
    s.powerOn();
    s.provision("FK-C", T0);
    s.step({ op: "corrupt-record-and-reboot" });
    const info = s.info();
    const pressed = s.press();
    const setSerial = s.status({ cmd: P.CMD_SET_SERIAL, serial: ascii("X") });
    const wipe = s.status({ cmd: P.CMD_WIPE, serial: [] });
    const after = s.info();
    await s.runOn(driver());
    expect(info().state).toBe(P.STATE_ERROR);
    expect(info().reason).toBe(P.REASON_FLASH_CORRUPT);
    expect(pressed()).toBe("Err  04");
    // protocol/SPEC.md §4: in the error state every command but INFO and WIPE is HW_FAULT.
    expect(setSerial()).toBe(P.STATUS_HW_FAULT);
    expect(wipe()).toBe(0);
    expect(after().state).toBe(P.STATE_BLANK);
  });

  // protocol/SPEC.md §4: "HW_FAULT ... in state error every command but INFO and WIPE";
  // checked after LOCKED and before each command's own checks.
  const writesAndSelfTest = (serial: string) => [
    { cmd: P.CMD_SET_SERIAL, serial: ascii("FK-NEW") },
    { cmd: P.CMD_WRITE_SEED, algorithm: P.ALG_SHA1, digits: 8, period: 60, seed: SEED },
    { cmd: P.CMD_SET_CLOCK, ...words(T0 + 60), flags: P.CLOCK_FORCE },
    { cmd: P.CMD_SELF_TEST },
    { cmd: P.CMD_LOCK, serial: ascii(serial) },
  ];

  it("in the error state every command but INFO and WIPE answers HW_FAULT: a corrupt record, no RTC", async () => {
    const corrupt = new Script();
    corrupt.powerOn();
    corrupt.provision("FK-E", T0);
    corrupt.step({ op: "corrupt-record-and-reboot" });
    const refusedCorrupt = writesAndSelfTest("FK-E").map((r) => corrupt.status(r));
    const info = corrupt.info();
    await corrupt.runOn(driver());
    expect(info().state).toBe(P.STATE_ERROR);
    expect(refusedCorrupt.map((g) => g())).toEqual([P.STATUS_HW_FAULT, P.STATUS_HW_FAULT, P.STATUS_HW_FAULT, P.STATUS_HW_FAULT, P.STATUS_HW_FAULT]);

    const noRtc = new Script();
    noRtc.powerOn(T0, false);
    const refused = writesAndSelfTest("FK-X").map((r) => noRtc.status(r));
    const wipe = noRtc.status({ cmd: P.CMD_WIPE, serial: [] });
    const after = noRtc.info();
    await noRtc.runOn(driver());
    expect(refused.map((g) => g())).toEqual([P.STATUS_HW_FAULT, P.STATUS_HW_FAULT, P.STATUS_HW_FAULT, P.STATUS_HW_FAULT, P.STATUS_HW_FAULT]);
    expect(wipe()).toBe(P.STATUS_OK);
    // Nothing was staged: still blank, still in error for the missing RTC.
    expect(after()).toMatchObject({ state: P.STATE_ERROR, reason: P.REASON_RTC_MISSING, flags: 0, serial: [] });
  });

  it("an RTC that stops answering mid-provisioning puts the keyfob in error: the next write is HW_FAULT, and is taken once the bus answers", async () => {
    const s = new Script();
    s.powerOn();
    const clock = s.status({ cmd: P.CMD_SET_CLOCK, ...words(T0), flags: P.CLOCK_FORCE });
    s.step({ op: "fault", fault: "rtc-bus", on: true });
    const during = s.status({ cmd: P.CMD_WRITE_SEED, algorithm: P.ALG_SHA1, digits: 8, period: 60, seed: SEED });
    s.step({ op: "fault", fault: "rtc-bus", on: false });
    s.step({ op: "advance", ms: 1500 });
    const after = s.status({ cmd: P.CMD_WRITE_SEED, algorithm: P.ALG_SHA1, digits: 8, period: 60, seed: SEED });
    const info = s.info();
    await s.runOn(driver());
    expect(clock()).toBe(P.STATUS_OK);
    expect(during()).toBe(P.STATUS_HW_FAULT);
    expect(after()).toBe(P.STATUS_OK);
    expect(info().state).toBe(P.STATE_PROVISIONED);
  });

  it("a failed flash write answers FLASH_ERROR, leaves the previous record and a healthy keyfob; the retry locks", async () => {
    const s = new Script();
    s.powerOn();
    const statuses = s.provision("FK-F", T0, false);
    s.step({ op: "fault", fault: "flash-write", on: true });
    // Seed, serial and clock are staged in RAM; LOCK is provisioning's one flash write.
    const failed = s.status({ cmd: P.CMD_LOCK, serial: ascii("FK-F") });
    const afterFail = s.info();
    s.step({ op: "fault", fault: "flash-write", on: false });
    const retried = s.status({ cmd: P.CMD_LOCK, serial: ascii("FK-F") });
    s.step({ op: "reboot" });
    const info = s.info();
    await s.runOn(driver());
    expect(statuses()).toEqual([0, 0, 0]);
    expect(failed()).toBe(P.STATUS_FLASH_ERROR);
    expect(afterFail().state).toBe(P.STATE_PROVISIONED);
    expect(afterFail().reason).toBe(P.REASON_NONE);
    expect(retried()).toBe(0);
    expect(info().state).toBe(P.STATE_LOCKED);
    expect(Buffer.from(info().serial).toString()).toBe("FK-F");
  });
}
