/** @noSelfInFile */
/**
 * Characters the 8-digit display can show, as MAX7219 no-decode segment
 * bytes (datasheet Table 6: D7 = DP, D6 = A, D5 = B, D4 = C, D3 = D, D2 = E,
 * D1 = F, D0 = G; A is the top bar, then clockwise, G the middle bar).
 *
 * Digits, blank, '-', '_' and the letters that have a readable and distinct
 * seven-segment form, enough for status words such as "bLAnK", "Err",
 * "LOCKEd", "ProG", "notImE". Letters that would look like a digit (O, S,
 * I, Z, B, g) are left out so the emulator can read every pattern back as
 * exactly one character: write "0" for O, "5" for S.
 */

export const FONT_CHARS = "0123456789 -_AbCcdEFGHhJKLnoPqrtUuy";
export const FONT_SEGMENTS: number[] = [
  0x7e, 0x30, 0x6d, 0x79, 0x33, 0x5b, 0x5f, 0x70, 0x7f, 0x7b, // 0-9
  0x00, 0x01, 0x08, // blank - _
  0x77, 0x1f, 0x4e, 0x0d, 0x3d, 0x4f, 0x47, 0x5e, 0x37, 0x17, // A b C c d E F G H h
  0x3c, 0x57, 0x0e, 0x15, 0x1d, 0x67, 0x73, 0x05, 0x0f, 0x3e, // J K L n o P q r t U
  0x1c, 0x3b, // u y
];

/** Segment byte for a character code, or -1 if the display cannot show it. */
export function segmentsFor(charCode: number): number {
  const n = FONT_CHARS.length;
  for (let i = 1; i <= n; i++) {
    if (string.byte(FONT_CHARS, i) === charCode) {
      return FONT_SEGMENTS[i - 1];
    }
  }
  return -1;
}
