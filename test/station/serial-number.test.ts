/** Serial numbers: format, ISO 7064 MOD 97-10 check, and that the typos people make are caught. */
import { describe, expect, it } from "vitest";
import { formatSerial, isValidSerial, mod97CheckDigits, parseSerial, SerialNumberError } from "../../host/station/serial-number.js";

describe("serial numbers", () => {
  it("uses ISO 7064 MOD 97-10 check digits (IBAN's: GB82 WEST 1234 5698 7654 32)", () => {
    // IBAN check = MOD 97-10 over BBAN + country digits (G=16, B=11) + "00" (ISO 13616).
    expect(mod97CheckDigits("WEST12345698765432".replace(/[A-Z]/g, (c) => String(c.charCodeAt(0) - 55)) + "1611")).toBe("82");
    expect(formatSerial(1, 42)).toMatch(/^FK0001000042\d\d$/);
    expect(formatSerial(9999, 999999)).toHaveLength(14);
  });

  it("round-trips and forgives case, spaces and hyphens", () => {
    const s = formatSerial(12, 3456);
    expect(parseSerial(s)).toEqual({ serial: s, batch: 12, sequence: 3456 });
    const spaced = `${s.slice(0, 2).toLowerCase()}-${s.slice(2, 6)} ${s.slice(6, 12)}-${s.slice(12)}`;
    expect(parseSerial(spaced).serial).toBe(s);
  });

  it("catches every single-digit error in a sample of serials", () => {
    let tried = 0;
    for (const [b, q] of [[1, 1], [1, 42], [17, 999999], [9999, 123456], [2026, 314159]]) {
      const s = formatSerial(b, q);
      for (let i = 2; i < s.length; i++) {
        for (let d = 0; d <= 9; d++) {
          if (String(d) === s[i]) continue;
          const typo = s.slice(0, i) + d + s.slice(i + 1);
          expect(isValidSerial(typo), typo).toBe(false);
          tried++;
        }
      }
    }
    expect(tried).toBe(5 * 12 * 9);
  });

  it("catches every adjacent transposition, including 09 <-> 90 that Luhn misses", () => {
    let tried = 0;
    for (let q = 1; q <= 3000; q += 7) {
      const s = formatSerial(1 + (q % 50), q * 331 % 999999 || 1);
      for (let i = 2; i < s.length - 1; i++) {
        if (s[i] === s[i + 1]) continue;
        const swapped = s.slice(0, i) + s[i + 1] + s[i] + s.slice(i + 2);
        expect(isValidSerial(swapped), swapped).toBe(false);
        tried++;
      }
    }
    expect(tried).toBeGreaterThan(3000);
    const s = formatSerial(9, 90);
    expect(s.slice(2, 12)).toBe("0009000090");
    expect(s.slice(4, 6)).toBe("09");
    expect(isValidSerial(s.slice(0, 4) + "90" + s.slice(6))).toBe(false);
  });

  it("says what is wrong", () => {
    expect(() => parseSerial("FK123")).toThrow(SerialNumberError);
    expect(() => parseSerial("FK123")).toThrow(/not a fobkit serial/);
    const s = formatSerial(1, 42);
    const bad = s.slice(0, 13) + ((Number(s[13]) + 1) % 10);
    expect(() => parseSerial(bad)).toThrow(/check digits do not match/);
    expect(() => formatSerial(0, 1)).toThrow(RangeError);
    expect(() => formatSerial(1, 1_000_000)).toThrow(RangeError);
  });
});
