/**
 * The registry fed by a keyfob, not by a code generator: the firmware image
 * runs in the emulator (fengari), its button is pressed, its display read,
 * and that text is what the bank verifies. On SQLite and PostgreSQL.
 */
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { KeyRing } from "../../host/registry/key-ring.js";
import { Registry } from "../../host/registry/registry.js";
import { RegistryError } from "../../host/registry/types.js";
import { formatSerial } from "../../host/serial/serial-number.js";
import { TestKeyfob } from "../support/keyfob.js";
import { ENGINES, freshDb } from "./support.js";

const ACTOR = { name: "staff:test", source: "test" };
const T0 = 1_764_000_000;
const open: { close(): unknown }[] = [];
afterEach(async () => {
  while (open.length) await open.pop()!.close();
});

async function refusal(p: Promise<unknown>): Promise<RegistryError> {
  const e = await p.then(() => undefined, (x) => x);
  if (!(e instanceof RegistryError)) throw new Error(`expected a refusal, got ${e}`);
  return e;
}

describe.each(ENGINES)("codes from an emulated keyfob, registry on $name", (engine) => {
  it("a keyfob 20 ppm fast keeps verifying for two simulated years, pressed once a month", async () => {
    const { db, drop } = await freshDb(engine);
    open.push({ close: drop });
    const seed = randomBytes(20);
    const serial = formatSerial(1, 7, 1);
    const k = new TestKeyfob({ time: T0, driftPpm: 20 }).boot();
    open.push(k);
    expect(k.provision(Array.from(seed), serial, k.emu.rtcTime())).toEqual([0, 0, 0, 0]);
    // True time: the RTC showed T0 at virtual time 0; the bank's clock is true time.
    const trueNowMs = () => T0 * 1000 + k.emu.clock.nowMs;
    const reg = new Registry(db, { keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), now: trueNowMs });
    await reg.register([{ serial, manufacturer: "fobkit", model: "FOBKIT-1", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: seed }], ACTOR, "test");
    await reg.issue(serial, "cust-drift", ACTOR);
    k.emu.advance(120);
    await reg.activate({ serial }, k.press(), ACTOR);
    let lastDrift = 0;
    for (let month = 1; month <= 24; month++) {
      k.emu.advance(30.44 * 86400);
      const shown = k.press();
      const a = await reg.verify("cust-drift", shown, ACTOR);
      expect(a.state).toBe("active");
      lastDrift = a.drift;
      // The same code again: refused, whatever the drift.
      expect((await refusal(reg.verify("cust-drift", shown, ACTOR))).code).toBe("replayed");
    }
    // Two years at +20 ppm is about 1262 s: some 21 steps ahead, learned as drift.
    expect(lastDrift).toBeGreaterThanOrEqual(19);
    expect(lastDrift).toBeLessThanOrEqual(22);
  }, 240_000);

  it("a mistyped fobkit serial is named as mistyped, not as a token that does not exist", async () => {
    const { db, drop } = await freshDb(engine);
    open.push({ close: drop });
    const reg = new Registry(db, { keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]) });
    const good = formatSerial(1, 3, 42);
    const typo = good.slice(0, 8) + String((Number(good[8]) + 1) % 10) + good.slice(9);
    const e = await refusal(reg.issue(typo, "cust-1", ACTOR));
    expect(e.code).toBe("bad_serial");
    expect(e.message).toMatch(/mistyped/);
    // A well-formed serial that is simply not in stock is "unknown", and another vendor's serial is taken as it is.
    expect((await refusal(reg.issue(good, "cust-1", ACTOR))).code).toBe("unknown_serial");
    expect((await refusal(reg.issue("FT-C200-0042", "cust-1", ACTOR))).code).toBe("unknown_serial");
  });
});
