/**
 * The vector file itself, checked against implementations we did not write
 * (node:crypto, OATH Toolkit's oathtool), so a typo in a transcribed vector
 * shows up here rather than as a puzzling failure of the OTP suite.
 */
import { execFileSync } from "node:child_process";
import { createHash, createHmac } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  FIELD_NOTES_TOTP_60,
  FIPS180_DIGESTS,
  RFC2202_HMAC_SHA1,
  RFC4226_HOTP,
  RFC4226_SECRET,
  RFC4231_HMAC,
  RFC6238_SEEDS,
  RFC6238_TOTP,
} from "./rfc-test-vectors.js";

describe("rfc-test-vectors", () => {
  it("FIPS 180-4 digests agree with node:crypto", () => {
    for (const d of FIPS180_DIGESTS) {
      for (const alg of ["sha1", "sha256", "sha512"] as const) {
        expect(createHash(alg).update(d.message, "latin1").digest("hex"), `${alg} ${d.name}`).toBe(d[alg]);
      }
    }
  });

  it("RFC 2202 / RFC 4231 MACs and the RFC 4226 HMAC values agree with node:crypto", () => {
    for (const v of [...RFC2202_HMAC_SHA1, ...RFC4231_HMAC]) {
      const mac = createHmac(v.alg, Buffer.from(v.key, "hex")).update(Buffer.from(v.data, "hex")).digest("hex");
      expect(mac.slice(0, v.mac.length), `${v.source} ${v.alg}`).toBe(v.mac);
    }
    for (const v of RFC4226_HOTP) {
      const counter = Buffer.alloc(8);
      counter.writeBigUInt64BE(BigInt(v.counter));
      expect(createHmac("sha1", RFC4226_SECRET).update(counter).digest("hex"), `count ${v.counter}`).toBe(v.hmac);
    }
  });

  it("TOTP rows agree with oathtool, and the RFC's T values with t / 30", () => {
    for (const v of [...RFC6238_TOTP, ...FIELD_NOTES_TOTP_60]) {
      const seedHex = Buffer.from(RFC6238_SEEDS[v.alg], "latin1").toString("hex");
      const args = [`--totp=${v.alg.toUpperCase()}`, "--digits=8", `--time-step-size=${v.period}s`, `--now=@${v.time}`, seedHex];
      expect(execFileSync("oathtool", args).toString().trim(), `${v.alg} t=${v.time} X=${v.period}`).toBe(v.code);
      if (v.stepHex !== undefined) expect(BigInt("0x" + v.stepHex)).toBe(BigInt(v.time) / 30n);
    }
    for (const v of RFC4226_HOTP) {
      const args = ["--hotp", `--counter=${v.counter}`, Buffer.from(RFC4226_SECRET).toString("hex")];
      expect(execFileSync("oathtool", args).toString().trim(), `HOTP count ${v.counter}`).toBe(v.code);
    }
  });
});
