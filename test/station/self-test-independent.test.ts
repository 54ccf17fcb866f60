/**
 * The station checks a keyfob's self-test code with its own TOTP
 * (host/station/reference-totp.ts, node:crypto), not with the firmware's OTP
 * core (issue 10, item 7): a bug in that core must fail the self-test, not
 * pass its own check. Here the firmware core is replaced, for this file's
 * whole module graph, by one with a plausible bug (the key's last bit
 * flipped, as a byte-order slip would), and the real keyfob code (the tsc
 * build of firmware/app on the in-memory board), which computes its
 * self-test code with that core, is provisioned over a real PTY: the station must refuse it and wipe it. Under the old station,
 * which imported the same core, this keyfob was locked and recorded good.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import * as P from "../../protocol/index.js";
import { DeviceSession } from "../../host/device/session.js";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { provisionKeyfob } from "../../host/station/provision.js";
import { referenceTotp } from "../../host/station/reference-totp.js";
import { SerialTransport } from "../../host/transport/serial-transport.js";
import { FaultyLinkKeyfob } from "../device/link-faults.js";
import { serveKeyfob } from "../device/serve-keyfob.js";
import { nodeBuild } from "../support/paths.js";
import { ptyPair, type PtyPair } from "../transport/pty-pair.js";
import { FIELD_NOTES_TOTP_60, RFC6238_SEEDS, RFC6238_TOTP } from "../vectors/rfc-test-vectors.js";

/**
 * Switched on per test: the firmware core then computes with the key's last bit flipped. (Not a
 * dropped last byte: HMAC pads a short key with zeros, so a seed ending in 0x00, one in 256 of
 * the station's random seeds, would give the same code and pass.)
 */
const broken = { on: false };
// The keyfob's core as the device code imports it: the tsc build (FOBKIT_BUILD, as test/support/paths.ts).
const HMAC_BUILD = vi.hoisted(() => {
  const build = process.env.FOBKIT_BUILD ?? "build";
  return `${build.startsWith("/") ? build : `${import.meta.dirname}/../../${build}`}/node/firmware/otp/hmac.js`;
});
vi.mock(HMAC_BUILD, async (importOriginal) => {
  const real = await importOriginal<any>();
  return {
    ...real,
    prepareKey: (seed: number[], alg: number) => real.prepareKey(broken.on ? seed.map((b, i) => (i === seed.length - 1 ? b ^ 1 : b)) : seed, alg),
  };
});
const otp: any = await nodeBuild("firmware/otp/index.js");

let dir: string;
let pair: PtyPair;
let devEnd: SerialTransport;
let fob: FaultyLinkKeyfob;
let record: FactoryRecord;
let session: DeviceSession;

beforeEach(async () => {
  broken.on = false;
  dir = mkdtempSync(join(tmpdir(), "fobkit-st-"));
  pair = await ptyPair();
  fob = new FaultyLinkKeyfob();
  devEnd = new SerialTransport({ path: pair.device });
  await devEnd.open();
  void serveKeyfob(devEnd, fob);
  record = FactoryRecord.open(join(dir, "f.sqlite"), { create: true, line: 1 });
  // A long timeout: the exchange is exact, and a loaded machine must not add a resend.
  session = await DeviceSession.open(new SerialTransport({ path: pair.host }), { timeoutMs: 5000, retries: 1 });
});

afterEach(async () => {
  await session.close();
  await devEnd.close();
  await pair.dispose();
  record.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the station's self-test check is independent of the firmware's OTP core", () => {
  it("the station's reference TOTP gives RFC 6238's codes and the field notes' 60 s codes", () => {
    let n = 0;
    for (const v of [...RFC6238_TOTP, ...FIELD_NOTES_TOTP_60]) {
      if (v.alg === "sha512") continue; // keyfobs are SHA1 or SHA256
      expect(referenceTotp(Buffer.from(RFC6238_SEEDS[v.alg]), v.time, v.period, 8, v.alg === "sha1" ? "SHA1" : "SHA256"), `${v.alg} t=${v.time}`).toBe(v.code);
      n++;
    }
    expect(n).toBe(28);
  });

  it("the same keyfob with a sound core is provisioned (the injected core is the only difference)", async () => {
    const r = await provisionKeyfob(session, record);
    expect(r).toMatchObject({ status: "good" });
    expect(fob.state).toBe(P.STATE_LOCKED);
  });

  it("a keyfob whose firmware core is wrong fails its self-test: wiped, recorded failed, never locked", async () => {
    broken.on = true;
    // The injected bug is real for this module graph: the firmware core now disagrees with the RFC.
    const seed = [...Buffer.from(RFC6238_SEEDS.sha1)];
    expect(otp.formatCode(otp.totp(otp.prepareKey(seed, 1), { hi: 0, lo: 59 }, 30, 8), 8)).not.toBe("94287082");
    const r = await provisionKeyfob(session, record);
    expect(r).toMatchObject({ status: "failed", wiped: true, reason: "self-test failed: the keyfob's code differs from the host's computation" });
    expect(fob.state).toBe(P.STATE_BLANK);
    expect(record.token(r.serial!)).toMatchObject({ state: "failed" });
    expect(record.counts()).toEqual({ pending: 0, good: 0, failed: 1 });
  });
});
