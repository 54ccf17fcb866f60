/**
 * The token's parameters (host/soft/protocol.ts parseSoftTokenParams): the one parser the app's set-up, `fobkit app`'s
 * store and the web app's keystore share. Every field a set-up makes is checked, and a wrong one is named.
 */
import { describe, expect, it } from "vitest";
import { parseSoftTokenParams, SoftParamsError, SOFT_TOKEN } from "../../host/soft/protocol.js";

const GOOD = { bank: "テスト信用金庫", serviceId: "10112235", userId: "999800000009", algorithm: "SHA256", digits: 8, period: 60, t0: 0 };
const text = (p: Record<string, unknown>) => JSON.stringify(p);

function fieldOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SoftParamsError);
    return (e as SoftParamsError).field;
  }
  return undefined;
}

describe("parseSoftTokenParams", () => {
  it("gives back what the bank sends, as SOFT_TOKEN makes it", () => {
    expect(parseSoftTokenParams(text(GOOD))).toEqual(GOOD);
    expect(parseSoftTokenParams(text(GOOD), { serviceId: "10112235", userId: "999800000009" })).toEqual(GOOD);
    expect({ algorithm: GOOD.algorithm, digits: GOOD.digits, period: GOOD.period, t0: GOOD.t0 }).toEqual({ algorithm: SOFT_TOKEN.algorithm, digits: SOFT_TOKEN.digits, period: SOFT_TOKEN.period, t0: SOFT_TOKEN.t0 });
  });

  it("names the field that is wrong or missing", () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ ...GOOD, bank: "" }, "bank"],
      [{ ...GOOD, bank: 7 }, "bank"],
      [{ ...GOOD, serviceId: "1011223" }, "serviceId"],
      [{ ...GOOD, userId: "999800000019" }, "userId"],
      [{ ...GOOD, algorithm: "SHA1" }, "algorithm"],
      [{ ...GOOD, digits: 6 }, "digits"],
      [{ ...GOOD, digits: "8" }, "digits"],
      [{ ...GOOD, period: 30 }, "period"],
      [{ ...GOOD, period: 0 }, "period"],
      [{ ...GOOD, t0: 5 }, "t0"],
      [Object.fromEntries(Object.entries(GOOD).filter(([k]) => k !== "t0")), "t0"],
    ];
    for (const [p, field] of cases) expect(fieldOf(() => parseSoftTokenParams(text(p))), JSON.stringify(p)).toBe(field);
    expect(() => parseSoftTokenParams(text({ ...GOOD, period: 30 }))).toThrow("the token's period is 30, expected 60");
    expect(() => parseSoftTokenParams(text({ ...GOOD, t0: undefined }))).toThrow("the token's t0 is missing, expected 0");
  });

  it("refuses what is not a JSON object, and IDs other than the set-up's", () => {
    expect(fieldOf(() => parseSoftTokenParams("{"))).toBe("params");
    expect(fieldOf(() => parseSoftTokenParams("[1]"))).toBe("params");
    expect(fieldOf(() => parseSoftTokenParams("null"))).toBe("params");
    expect(fieldOf(() => parseSoftTokenParams(text(GOOD), { serviceId: "10112236", userId: GOOD.userId }))).toBe("serviceId");
    expect(fieldOf(() => parseSoftTokenParams(text(GOOD), { serviceId: GOOD.serviceId, userId: "999800000017" }))).toBe("userId");
  });
});
