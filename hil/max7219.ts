/**
 * MAX7219 register model (Maxim MAX7219/MAX7221 datasheet 19-4452) rendered
 * as the text a person would read off the 8 digits.
 *
 * - Serial: 16-bit frames shifted in MSB first; the last 16 bits are latched
 *   on the rising edge of LOAD/CS (the end of an SPI transaction). Address is
 *   D11-D8 (Table 2): 0 no-op, 1-8 digit 0-7, 9 decode mode, A intensity,
 *   B scan limit, C shutdown, F display test.
 * - Power-up: "all control registers are reset, the display is blanked, and
 *   the MAX7219 enters shutdown mode"; digit registers are undefined (0 here).
 * - Rendering: leftmost character = digit 7 (digit 0 is the rightmost
 *   position, as wired on the reference board). Shutdown -> all blank unless
 *   display test, which lights every segment. Digits above the scan limit
 *   are blank. Decode mode: Code B font (Table 5); otherwise raw segments
 *   (Table 6: DP A B C D E F G = D7..D0) read back through SEGMENT_CHARS.
 *   A DP shows as '.' after its character.
 */

/** Raw segment patterns (without DP) and the one character each reads as. */
export const SEGMENT_CHARS: ReadonlyMap<number, string> = new Map<number, string>([
  [0x7e, "0"], [0x30, "1"], [0x6d, "2"], [0x79, "3"], [0x33, "4"], [0x5b, "5"], [0x5f, "6"], [0x70, "7"], [0x7f, "8"], [0x7b, "9"],
  [0x00, " "], [0x01, "-"], [0x08, "_"],
  [0x77, "A"], [0x1f, "b"], [0x4e, "C"], [0x0d, "c"], [0x3d, "d"], [0x4f, "E"], [0x47, "F"], [0x5e, "G"], [0x37, "H"], [0x17, "h"],
  [0x3c, "J"], [0x57, "K"], [0x0e, "L"], [0x15, "n"], [0x1d, "o"], [0x67, "P"], [0x73, "q"], [0x05, "r"], [0x0f, "t"], [0x3e, "U"],
  [0x1c, "u"], [0x3b, "y"],
]);
/** Code B (Table 5): 0-9, '-', E, H, L, P, blank. */
const CODE_B = "0123456789-EHLP ";

export class Max7219 {
  readonly digits = new Uint8Array(8);
  decodeMode = 0;
  intensity = 0;
  scanLimit = 0;
  shutdown = true;
  displayTest = false;
  /** False while its supply is off (the display rail, firmware/board/pins.ts DISPLAY_POWER_PIN): dark, deaf to SPI. */
  powered = true;
  private shift = 0;
  private lastText: string;
  /** Called with the new text whenever what the display shows changes. */
  onChange: (text: string) => void = () => {};

  constructor() {
    this.lastText = this.text();
  }

  /** Power-on reset (datasheet "Initial Power-Up"). */
  powerOn(): void {
    this.powered = true;
    this.digits.fill(0);
    this.decodeMode = 0;
    this.intensity = 0;
    this.scanLimit = 0;
    this.shutdown = true;
    this.displayTest = false;
    this.shift = 0;
    this.changed();
  }

  /** Power removed: dark. */
  powerOff(): void {
    this.powered = false;
    this.shutdown = true;
    this.displayTest = false;
    this.changed();
  }

  /** One SPI transaction with CS low for its duration: shift in, latch on CS high. */
  transaction(bytes: Uint8Array): void {
    if (!this.powered) return;
    for (const b of bytes) this.shift = ((this.shift << 8) | b) & 0xffff;
    if (bytes.length === 0) return;
    const address = (this.shift >> 8) & 0x0f;
    const data = this.shift & 0xff;
    if (address >= 1 && address <= 8) this.digits[address - 1] = data;
    else if (address === 0x9) this.decodeMode = data;
    else if (address === 0xa) this.intensity = data & 0x0f;
    else if (address === 0xb) this.scanLimit = data & 0x07;
    else if (address === 0xc) this.shutdown = (data & 1) === 0;
    else if (address === 0xf) this.displayTest = (data & 1) === 1;
    this.changed();
  }

  private charFor(digit: number): string {
    const v = this.digits[digit];
    const dp = v & 0x80 ? "." : "";
    if (this.decodeMode & (1 << digit)) return CODE_B[v & 0x0f] + dp;
    return (SEGMENT_CHARS.get(v & 0x7f) ?? "?") + dp;
  }

  /** What the 8 digits show, leftmost first: 8 characters plus any '.'. */
  text(): string {
    if (this.displayTest) return "8.8.8.8.8.8.8.8.";
    if (this.shutdown) return "        ";
    let s = "";
    for (let digit = 7; digit >= 0; digit--) s += digit > this.scanLimit ? " " : this.charFor(digit);
    return s;
  }

  private changed(): void {
    const t = this.text();
    if (t !== this.lastText) {
      this.lastText = t;
      this.onChange(t);
    }
  }
}
