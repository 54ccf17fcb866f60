/**
 * The keyfob sleeps (issue 12), over a real PTY: `fobkit emu --battery` runs
 * the built image; the host speaks to it through SerialTransport while USB is
 * plugged in (`usb on`), and drives the button, USB and time through the
 * emulator's control channel. One keyfob for the whole file, in order:
 * provisioned on USB, locked, unplugged; then it sleeps between presses.
 *
 * Codes are checked against the host's reference (host/station/reference-totp.ts,
 * node:crypto) at the DS3231's own time, which the emulator reports in each
 * "wake" event; the month test also checks that time against the virtual
 * clock and the crystal's drift, so a DS3231 that stopped or lost its drift
 * in sleep would fail it.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { EmuProcess, type EmuEvent } from "../../hil/emu-process.js";
import { DeviceSession } from "../../host/device/session.js";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { provisionKeyfob } from "../../host/station/provision.js";
import { referenceTotp } from "../../host/station/reference-totp.js";
import { SerialTransport } from "../../host/transport/serial-transport.js";
import { ROOT } from "../support/paths.js";

const SERIAL = "FK-SLEEP-0001";
/** 2030-03-17: the RTC's time at start. */
const T0 = 1_900_000_000;
/** The DS3231's limit at 0-40 degC (datasheet Rev 10, Features: +-2 ppm). */
const DRIFT_PPM = 2;
const seed = randomBytes(20);
const ref = (unix: number) => referenceTotp(seed, unix, 60, 8, "SHA1");

let dir: string;
let emu: EmuProcess;
let session: DeviceSession;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-sleep-"));
  const pty = join(dir, "ttyKEYFOB");
  emu = new EmuProcess({ fobkit: join(ROOT, "bin", "fobkit.js"), pty, state: join(dir, "flash"), battery: true, args: ["--time", String(T0), "--drift-ppm", String(DRIFT_PPM)] });
  await emu.ready();
  // Short timeouts: a keyfob asleep or on battery answers nothing, and the tests wait for that.
  session = await DeviceSession.open(new SerialTransport({ path: pty }), { timeoutMs: 1500, retries: 1 });
});

afterAll(async () => {
  await session?.close();
  await emu?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const after = (from: number, kind: string) => emu.events.slice(from).filter((e) => e.event === kind);

/** Resolves once every control command sent before it has run (a command error names the marker). */
async function sync(): Promise<void> {
  const from = emu.events.length;
  emu.send("sync-marker");
  await emu.next((e) => e.event === "error" && String(e.message).includes("sync-marker"), "sync marker", from);
}

/** A press that wakes the keyfob: its wake event and the code it then shows. */
async function wakePress(): Promise<{ wake: EmuEvent; code: string; sleep: Promise<EmuEvent> }> {
  const from = emu.events.length;
  emu.send("press");
  const wake = await emu.next((e) => e.event === "wake", "wake after a press", from);
  const at = emu.events.indexOf(wake);
  const shown = await emu.next((e) => e.event === "display" && String(e.text).trim() !== "", "code after the wake", at);
  const sleep = emu.next((e) => e.event === "sleep", "sleep after the code", emu.events.indexOf(shown));
  return { wake, code: String(shown.text).trim(), sleep };
}

describe("a keyfob that sleeps once locked", () => {
  test("blank and provisioned on battery it never sleeps; locked it stays awake on USB and sleeps when unplugged", async () => {
    const start = emu.events.length;
    expect(await emu.press()).toBe("bLAnK");
    emu.advance(3600);
    await sync();

    emu.usb(true);
    await sync();
    expect((await session.info()).state).toBe("blank");
    await session.writeSeed({ algorithm: "SHA1", digits: 8, period: 60, seed });
    await session.setSerial(SERIAL);
    await session.setClock(T0 + 7200);
    const st = await session.selfTest();
    expect(st.code).toBe(ref(st.time));

    emu.usb(false);
    await sync();
    expect(await emu.press()).toBe("oPEn");
    emu.advance(3600);
    await sync();
    expect(after(start, "sleep")).toEqual([]);

    emu.usb(true);
    await sync();
    await session.lock(SERIAL);
    expect(await session.info()).toMatchObject({ state: "locked", serial: SERIAL });
    emu.advance(600);
    await sync();
    // Locked, but on USB: awake, and still answering.
    expect(after(start, "sleep")).toEqual([]);
    expect((await session.info()).state).toBe("locked");

    const sleeps = emu.events.length;
    emu.usb(false);
    const sleep = await emu.next((e) => e.event === "sleep", "sleep once unplugged", sleeps);
    // ext1 on the button alone, level 0 (docs/power.md §6.2); no timer.
    expect(sleep).toMatchObject({ pins: [27], level: 0, timerMs: null });
  });

  test("sleep, press, wake, code, sleep again", async () => {
    for (let i = 0; i < 2; i++) {
      const { wake, code, sleep } = await wakePress();
      expect(wake.cause).toBe("ext1");
      expect(code).toBe(ref(Math.floor(Number(wake.rtc))));
      const slept = await sleep;
      // The code was shown for LOCKED_SHOW_MS (7 s) of light sleep before the deep sleep.
      expect(Number(slept.atMs) - Number(wake.atMs)).toBeGreaterThanOrEqual(7000);
      emu.advance(100);
    }
  });

  test("asleep, INFO on USB is lost; a press wakes it and it answers while USB stays; unplugged, it sleeps", async () => {
    emu.usb(true);
    await sync();
    await expect(session.info()).rejects.toThrow(/no reply|timeout|timed out/i);
    const from = emu.events.length;
    emu.send("press");
    const wake = await emu.next((e) => e.event === "wake", "wake on USB", from);
    const shown = await emu.next((e) => e.event === "display" && String(e.text).trim() !== "", "code on USB", emu.events.indexOf(wake));
    expect(String(shown.text).trim()).toBe(ref(Math.floor(Number(wake.rtc))));
    const info = await session.info();
    expect(info).toMatchObject({ state: "locked", serial: SERIAL });
    emu.advance(120);
    await sync();
    expect(after(from, "sleep")).toEqual([]);
    const sleeps = emu.events.length;
    emu.usb(false);
    await emu.next((e) => e.event === "sleep", "sleep once unplugged again", sleeps);
  });

  test("a power cut during sleep: the keyfob comes back locked, with its time, and sleeps", async () => {
    const from = emu.events.length;
    emu.send("power-cut");
    await emu.next((e) => e.event === "power-cut", "power cut", from);
    emu.advance(86_400);
    emu.send("boot");
    // A power-on of a locked keyfob on battery: it shows its code once, then sleeps.
    const boot = await emu.next((e) => e.event === "boot", "boot", from);
    const sleep = await emu.next((e) => e.event === "sleep", "sleep after the power-on", emu.events.indexOf(boot));
    expect(after(emu.events.indexOf(boot), "display").some((e) => /^\d{8}$/.test(String(e.text).trim()))).toBe(true);
    expect(Number(sleep.rtc)).toBeGreaterThan(T0 + 86_400);
    const { wake, code, sleep: again } = await wakePress();
    expect(code).toBe(ref(Math.floor(Number(wake.rtc))));
    await again;
    emu.usb(true);
    await sync();
    const from2 = emu.events.length;
    emu.send("press");
    const w2 = await emu.next((e) => e.event === "wake", "wake on USB after the cut", from2);
    const info = await session.info();
    expect(info).toMatchObject({ state: "locked", serial: SERIAL, clockSet: true });
    expect(Math.abs(info.clock! - Number(w2.rtc))).toBeLessThan(5);
    emu.usb(false);
    await emu.next((e) => e.event === "sleep", "sleep once unplugged", emu.events.indexOf(w2));
  });

  test("a brown-out (a flat battery) resets it: it goes back to sleep at once without lighting the display", async () => {
    const from = emu.events.length;
    emu.send("brown-out");
    const boot = await emu.next((e) => e.event === "boot", "boot after the brown-out", from);
    const at = emu.events.indexOf(boot);
    await emu.next((e) => e.event === "sleep", "sleep after the brown-out", at);
    expect(after(at, "display").filter((e) => String(e.text).trim() !== "")).toEqual([]);
    // The next press is a normal wake with the right code.
    const { wake, code, sleep } = await wakePress();
    expect(code).toBe(ref(Math.floor(Number(wake.rtc))));
    await sleep;
  });

  test("a month of sleep, 10 presses a day: every code is the reference at the drifting DS3231's time", async () => {
    const DAYS = 30;
    const PER_DAY = 10;
    const from = emu.events.length;
    // Presses at uneven times of day (never two in one 60 s step), all sent at once: the emulator runs them in order.
    for (let d = 0; d < DAYS; d++) {
      for (let p = 0; p < PER_DAY; p++) {
        emu.advance(86_400 / PER_DAY + ((d * 7 + p * 13) % 37) - 18);
        emu.send("press");
      }
    }
    emu.advance(30);
    await sync();
    const wakes = after(from, "wake");
    expect(wakes).toHaveLength(DAYS * PER_DAY);
    const events = emu.events.slice(from);
    const codes: string[] = [];
    for (const w of wakes) {
      const i = events.indexOf(w);
      const shown = events.slice(i).find((e) => e.event === "display" && String(e.text).trim() !== "");
      codes.push(String(shown?.text).trim());
    }
    expect(codes).toEqual(wakes.map((w) => ref(Math.floor(Number(w.rtc)))));
    // The DS3231 kept counting through every sleep at its crystal's rate: 2 ppm fast.
    const first = wakes[0];
    const last = wakes[wakes.length - 1];
    const virtualS = (Number(last.atMs) - Number(first.atMs)) / 1000;
    const rtcS = Number(last.rtc) - Number(first.rtc);
    expect(virtualS).toBeGreaterThan(29 * 86_400);
    expect(rtcS - virtualS).toBeCloseTo(virtualS * DRIFT_PPM * 1e-6, 2);
    expect(after(from, "sleep").length).toBeGreaterThanOrEqual(DAYS * PER_DAY);
  });
});

describe("the station's flow", () => {
  test("provisioned by the station on USB (no battery in), it stays awake until unplugged, then sleeps and wakes to a code", async () => {
    const d = mkdtempSync(join(tmpdir(), "fobkit-sleep-station-"));
    const pty = join(d, "ttyKEYFOB");
    const fob = new EmuProcess({ fobkit: join(ROOT, "bin", "fobkit.js"), pty, state: join(d, "flash") });
    let s: DeviceSession | undefined;
    const rec = FactoryRecord.open(join(d, "line.sqlite"), { create: true, line: 1 });
    try {
      await fob.ready();
      s = await DeviceSession.open(new SerialTransport({ path: pty }));
      const r = await provisionKeyfob(s, rec, { operator: "ana", station: "line-1" });
      expect(r).toMatchObject({ status: "good" });
      expect(rec.token(r.serial!)).toMatchObject({ state: "good", stage: "locked" });
      expect((await s.info()).state).toBe("locked");
      expect(fob.events.filter((e) => e.event === "sleep")).toEqual([]);
      const from = fob.events.length;
      fob.usb(false);
      await fob.next((e) => e.event === "sleep", "sleep once unplugged", from);
      fob.send("press");
      const wake = await fob.next((e) => e.event === "wake", "wake", from);
      const shown = await fob.next((e) => e.event === "display" && /^\d{8}$/.test(String(e.text).trim()), "code", fob.events.indexOf(wake));
      expect(String(shown.text).trim()).toMatch(/^\d{8}$/);
      await fob.next((e) => e.event === "sleep", "sleep again", fob.events.indexOf(shown));
    } finally {
      rec.close();
      await s?.close();
      await fob.stop();
      rmSync(d, { recursive: true, force: true });
    }
  });
});
