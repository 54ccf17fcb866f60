/**
 * The HIL suite: the keyfob as the host sees it, over a real serial port.
 *
 * By default the target is `fobkit emu` (the built firmware in fengari) on a
 * real PTY, opened with the real serialport binding. With HIL_PORT and
 * HIL_SERIAL set it runs against a real board on HIL_PORT instead, and
 * refuses to run unless the board reports the serial HIL_SERIAL names (so
 * it never provisions the wrong board). On a real board nobody can press the
 * button for the suite, so the display checks need the emulator's control
 * channel and are skipped there (say so when you run it).
 * The suite locks the keyfob it provisions: use a board you can spare.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { referenceTotp } from "../../host/station/reference-totp.js";
import { EmuProcess } from "../../hil/emu-process.js";
import { DeviceSession } from "../../host/device/session.js";
import { DeviceError } from "../../host/device/device-error.js";
import { SerialTransport } from "../../host/transport/serial-transport.js";
import { ROOT } from "../support/paths.js";

const REAL = process.env.HIL_PORT !== undefined;
const SERIAL = process.env.HIL_SERIAL ?? "FK-HIL-0001";
const seed = randomBytes(20);

let dir: string;
let emu: EmuProcess | undefined;
let session: DeviceSession;
let path: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-hil-"));
  if (REAL) {
    path = process.env.HIL_PORT!;
  } else {
    path = join(dir, "ttyKEYFOB");
    emu = new EmuProcess({ fobkit: join(ROOT, "bin", "fobkit.js"), pty: path, state: join(dir, "flash") });
    await emu.ready();
  }
  session = await DeviceSession.open(new SerialTransport({ path }));
  if (REAL) {
    const info = await session.info();
    if (info.serial !== SERIAL) {
      throw new Error(`refusing to run: the board on ${path} reports serial ${JSON.stringify(info.serial)}, HIL_SERIAL says ${JSON.stringify(SERIAL)}`);
    }
  }
});

afterAll(async () => {
  await session?.close();
  await emu?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const hostCode = (unix: number) => referenceTotp(seed, unix, 60, 8, "SHA1");

describe("provisioning over the serial port", () => {
  test("seed, serial, clock, then the self-test code is the host's own computation", async () => {
    const before = await session.info();
    expect(["blank", "provisioned"]).toContain(before.state);
    await session.writeSeed({ algorithm: "SHA1", digits: 8, period: 60, seed });
    await session.setSerial(SERIAL);
    await session.setClock(Math.floor(Date.now() / 1000));
    const st = await session.selfTest();
    expect(Math.abs(st.time - Date.now() / 1000)).toBeLessThan(5);
    expect(st.code).toBe(hostCode(st.time));
    const info = await session.info();
    expect(info).toMatchObject({ state: "provisioned", seedSet: true, clockSet: true, serial: SERIAL, algorithm: "SHA1", digits: 8, period: 60 });
  });

  test("lock, and INFO shows it locked", async () => {
    await session.lock(SERIAL);
    expect(await session.info()).toMatchObject({ state: "locked", lockSet: true, serial: SERIAL });
  });
});

describe("after lock", () => {
  const refusals: [string, () => Promise<unknown>][] = [
    ["SET_SERIAL", () => session.setSerial("FK-OTHER")],
    ["WRITE_SEED", () => session.writeSeed({ algorithm: "SHA1", digits: 8, period: 60, seed: randomBytes(20) })],
    ["SET_CLOCK", () => session.setClock(Math.floor(Date.now() / 1000) + 3600)],
    ["SET_CLOCK force", () => session.setClock(1_000_000_000, { force: true })],
    ["SELF_TEST", () => session.selfTest()],
    ["LOCK", () => session.lock(SERIAL)],
    ["WIPE", () => session.wipe(SERIAL)],
  ];
  for (const [name, run] of refusals) {
    test(`${name} is refused with LOCKED and the keyfob is unchanged`, async () => {
      const before = await session.info();
      const err = await run().then(() => undefined, (e) => e);
      expect(err).toBeInstanceOf(DeviceError);
      expect((err as DeviceError).statusName).toBe("LOCKED");
      const after = await session.info();
      expect({ ...after, clock: 0 }).toEqual({ ...before, clock: 0 });
      expect(Math.abs(after.clock! - Date.now() / 1000)).toBeLessThan(5);
    });
  }
});

describe.skipIf(REAL)("the button (emulator control channel)", () => {
  test("a press shows the code the host computes for the keyfob's time", async () => {
    const text = await emu!.press();
    expect(text).toMatch(/^\d{8}$/);
    const clock = (await session.info()).clock!;
    // The press and the INFO are a moment apart: the code is for that moment or a second before.
    expect([hostCode(clock), hostCode(clock - 1), hostCode(clock - 2)]).toContain(text);
  });
});
