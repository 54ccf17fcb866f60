import { beforeAll, describe, expect, it } from "vitest";
import { loadHil } from "./support.js";

let Max7219: Awaited<ReturnType<typeof loadHil>>["Max7219"];
beforeAll(async () => {
  ({ Max7219 } = await loadHil());
});

const frame = (reg: number, value: number) => Uint8Array.from([reg, value]);

describe("MAX7219 register model", () => {
  it("powers up blank in shutdown, and lights up when taken out of it", () => {
    const d = new Max7219();
    d.powerOn();
    expect(d.text()).toBe("        ");
    d.transaction(frame(0x0b, 7));
    d.transaction(frame(0x01, 0x30)); // digit 0 (rightmost) = "1"
    expect(d.text()).toBe("        "); // still in shutdown
    d.transaction(frame(0x0c, 1));
    expect(d.text()).toBe("       1"); // the other digit registers power up as 0: blank
  });

  it("renders raw segments leftmost = digit 7, with scan limit and DP", () => {
    const d = new Max7219();
    d.powerOn();
    const word = [0x1f, 0x0e, 0x77, 0x15, 0x57, 0x00, 0x00, 0x00]; // b L A n K
    word.forEach((seg, i) => d.transaction(frame(8 - i, seg)));
    d.transaction(frame(0x0b, 7));
    d.transaction(frame(0x0c, 1));
    expect(d.text()).toBe("bLAnK   ");
    d.transaction(frame(0x08, 0x1f | 0x80));
    expect(d.text()).toBe("b.LAnK   ");
    d.transaction(frame(0x0b, 3)); // only digits 0-3 scanned
    expect(d.text()).toBe("    K   ");
  });

  it("decodes Code B where the decode-mode bit is set", () => {
    const d = new Max7219();
    d.powerOn();
    d.transaction(frame(0x09, 0xff));
    d.transaction(frame(0x0b, 7));
    [1, 2, 3, 0x0a, 0x0b, 0x0c, 0x0d, 0x0f].forEach((v, i) => d.transaction(frame(8 - i, v)));
    d.transaction(frame(0x0c, 1));
    expect(d.text()).toBe("123-EHL ");
  });

  it("display test lights everything even in shutdown; shutdown keeps the digits", () => {
    const d = new Max7219();
    d.powerOn();
    d.transaction(frame(0x0f, 1));
    expect(d.text()).toBe("8.8.8.8.8.8.8.8.");
    d.transaction(frame(0x0f, 0));
    d.transaction(frame(0x0b, 7));
    d.transaction(frame(0x01, 0x7b));
    d.transaction(frame(0x0c, 1));
    expect(d.text()).toBe("       9");
    d.transaction(frame(0x0c, 0));
    expect(d.text()).toBe("        ");
    d.transaction(frame(0x0c, 1));
    expect(d.text()).toBe("       9");
  });

  it("latches only the last 16 bits of a longer transaction, ignores the upper address nibble", () => {
    const d = new Max7219();
    d.powerOn();
    d.transaction(Uint8Array.from([0x01, 0x30, 0xfb, 0x0b, 0x07])); // the last 16 bits, 0x0b07, reach the register: scan limit 7
    expect(d.scanLimit).toBe(7);
    expect(d.digits[0]).toBe(0);
    d.transaction(Uint8Array.from([0xf1, 0x6d])); // address nibble 1 -> digit 0
    expect(d.digits[0]).toBe(0x6d);
  });

  it("shows an unknown segment pattern as '?' rather than guessing", () => {
    const d = new Max7219();
    d.powerOn();
    d.transaction(frame(0x0b, 7));
    d.transaction(frame(0x01, 0x41)); // A + G only: no character
    d.transaction(frame(0x0c, 1));
    expect(d.text()).toBe("       ?");
  });
});
