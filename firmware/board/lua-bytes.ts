/** @noSelfInFile */
/**
 * Bytes between the board and the app are number[] (0..255); the NodeMCU
 * API speaks Lua strings. The conversion lives here and only here.
 */

/** Append the bytes of a Lua string to out. */
export function appendStringBytes(s: string, out: number[]): void {
  const n = s.length;
  for (let i = 1; i <= n; i++) {
    out.push(string.byte(s, i));
  }
}

/** True if every element is an integer byte 0..255. */
export function isByteArray(bytes: number[]): boolean {
  const n = bytes.length;
  for (let i = 0; i < n; i++) {
    const b = bytes[i];
    if (math.type(b) !== "integer" || b < 0 || b > 255) {
      return false;
    }
  }
  return true;
}

/**
 * A Lua string holding bytes[from .. from+count-1]. string.char raises on an
 * element that is not a byte: check with isByteArray first, or call this
 * under pcall. Eight bytes per string.char call keeps the number of
 * temporary strings low without a variadic spread.
 */
export function bytesToString(bytes: number[], from: number, count: number): string {
  const parts: string[] = [];
  let i = from;
  const end = from + count;
  while (i + 8 <= end) {
    parts.push(
      string.char(bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3], bytes[i + 4], bytes[i + 5], bytes[i + 6], bytes[i + 7]),
    );
    i = i + 8;
  }
  while (i < end) {
    parts.push(string.char(bytes[i]));
    i = i + 1;
  }
  return table.concat(parts);
}
