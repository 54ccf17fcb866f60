/** Serial numbers: format, line, ISO 7064 MOD 97-10 check, legacy serials, and that the typos people make are caught. */
import { describe, expect, it } from "vitest";
import {
  formatLegacySerial, formatSerial, groupSerial, isMistypedFobkitSerial, isValidSerial, mod97CheckDigits, parseSerial, SerialNumberError,
} from "../../host/serial/serial-number.js";

describe("serial numbers", () => {
  it("uses ISO 7064 MOD 97-10 check digits (IBAN's: GB82 WEST 1234 5698 7654 32)", () => {
    // IBAN check = MOD 97-10 over BBAN + country digits (G=16, B=11) + "00" (ISO 13616).
    expect(mod97CheckDigits("WEST12345698765432".replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55)) + "1611")).toBe("82");
    expect(formatSerial(7, 1, 42)).toMatch(/^FK070001000042\d\d$/);
    // 16 characters: the device's whole serial field (protocol MAX_SERIAL), four groups of four on the label.
    expect(formatSerial(99, 9999, 999999)).toHaveLength(16);
    expect(groupSerial(formatSerial(7, 1, 42))).toMatch(/^FK07 0001 0000 42\d\d$/);
  });

  it("the same batch and sequence on two lines are two serials", () => {
    expect(formatSerial(1, 1, 1)).not.toBe(formatSerial(2, 1, 1));
    expect(parseSerial(formatSerial(2, 1, 1)).line).toBe(2);
  });

  it("round-trips and forgives case, spaces and hyphens (the label's groups of four too)", () => {
    const s = formatSerial(12, 34, 3456);
    expect(parseSerial(s)).toEqual({ serial: s, line: 12, batch: 34, sequence: 3456 });
    const spaced = `${s.slice(0, 2).toLowerCase()}-${s.slice(2, 4)} ${s.slice(4, 8)} ${s.slice(8, 14)}-${s.slice(14)}`;
    expect(parseSerial(spaced).serial).toBe(s);
    expect(parseSerial(groupSerial(s).toLowerCase()).serial).toBe(s);
  });

  it("still reads serials from before line numbers (FK + 12 digits), as line null", () => {
    const old = formatLegacySerial(1, 42);
    expect(old).toMatch(/^FK0001000042\d\d$/);
    expect(parseSerial(old)).toEqual({ serial: old, line: null, batch: 1, sequence: 42 });
    expect(isValidSerial(old)).toBe(true);
    // A legacy serial never equals a new one: their lengths differ.
    expect(formatSerial(1, 1, 42)).not.toBe(old);
  });

  it("catches every single-digit error in a sample of serials, new and legacy", () => {
    let tried = 0;
    const samples = [formatSerial(1, 1, 1), formatSerial(3, 1, 42), formatSerial(42, 17, 999999), formatSerial(99, 9999, 123456), formatSerial(8, 2026, 314159),
      formatLegacySerial(1, 42), formatLegacySerial(2026, 314159)];
    for (const s of samples) {
      for (let i = 2; i < s.length; i++) {
        for (let d = 0; d <= 9; d++) {
          if (String(d) === s[i]) continue;
          const typo = s.slice(0, i) + d + s.slice(i + 1);
          expect(isValidSerial(typo), typo).toBe(false);
          expect(isMistypedFobkitSerial(typo), typo).toBe(true);
          tried++;
        }
      }
    }
    expect(tried).toBe((5 * 14 + 2 * 12) * 9);
  });

  it("catches every adjacent transposition, including 09 <-> 90 that Luhn misses", () => {
    let tried = 0;
    for (let q = 1; q <= 3000; q += 7) {
      const s = formatSerial(1 + (q % 99), 1 + (q % 50), q * 331 % 999999 || 1);
      for (let i = 2; i < s.length - 1; i++) {
        if (s[i] === s[i + 1]) continue;
        const swapped = s.slice(0, i) + s[i + 1] + s[i] + s.slice(i + 2);
        expect(isValidSerial(swapped), swapped).toBe(false);
        tried++;
      }
    }
    expect(tried).toBeGreaterThan(3000);
    const s = formatSerial(9, 9, 90);
    expect(s.slice(2, 14)).toBe("090009000090");
    expect(isValidSerial("FK90" + s.slice(4))).toBe(false);
  });

  it("says what is wrong", () => {
    expect(() => parseSerial("FK123")).toThrow(SerialNumberError);
    expect(() => parseSerial("FK123")).toThrow(/not a fobkit serial \(FK \+ 14 digits, e.g. FK07 0001 0000 42\d\d\)/);
    const s = formatSerial(1, 1, 42);
    const bad = s.slice(0, 15) + ((Number(s[15]) + 1) % 10);
    expect(() => parseSerial(bad)).toThrow(/check digits do not match/);
    expect(() => formatSerial(0, 1, 1)).toThrow(/line must be 1..99/);
    expect(() => formatSerial(100, 1, 1)).toThrow(RangeError);
    expect(() => formatSerial(1, 0, 1)).toThrow(RangeError);
    expect(() => formatSerial(1, 1, 1_000_000)).toThrow(RangeError);
    // Line 00 is never issued: a serial with it is refused even when its check digits add up.
    const body = "000001000001";
    expect(() => parseSerial("FK" + body + mod97CheckDigits(body))).toThrow(/start at 1/);
    // Other vendors' serials are not judged as mistyped fobkit ones.
    expect(isMistypedFobkitSerial("FT-C200-0042")).toBe(false);
    expect(isMistypedFobkitSerial(s)).toBe(false);
  });
});
