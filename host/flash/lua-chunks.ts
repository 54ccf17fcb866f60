/**
 * The image as REPL lines: each line is `<prefix>"<quoted bytes>")`, printable
 * ASCII only, at most MAX_LINE characters. NodeMCU's console line buffer is
 * LUA_MAXINPUT = 256 bytes with the LF (dev-esp32 lua.h); linput.c silently
 * discards a line that reaches 255 characters, so lines stay well below.
 *
 * Quoting (Lua 5.3 manual §3.1): printable ASCII stands for itself except `"`
 * and `\`; LF, CR, TAB use their short escapes; every other byte is a decimal
 * escape `\ddd`, padded to three digits when a digit follows so the escape
 * cannot swallow it. Every byte value therefore survives the REPL, which
 * would otherwise act on CR/LF, BS and DEL.
 */

/** Longest line sent to the REPL, without its LF (LUA_MAXINPUT 256 leaves 254). */
export const MAX_LINE = 240;

function escapeByte(b: number, next: number | undefined): string {
  if (b === 0x22) return '\\"';
  if (b === 0x5c) return "\\\\";
  if (b === 10) return "\\n";
  if (b === 13) return "\\r";
  if (b === 9) return "\\t";
  if (b >= 0x20 && b < 0x7f) return String.fromCharCode(b);
  const digitNext = next !== undefined && next >= 0x30 && next <= 0x39;
  return "\\" + (digitNext ? String(b).padStart(3, "0") : String(b));
}

export interface LuaChunk {
  /** The REPL line, without LF. */
  line: string;
  /** Where in the data this chunk starts and how many bytes it carries. */
  offset: number;
  length: number;
}

/**
 * Split data[from..] into lines `${prefix}"..."${suffix}` of at most
 * maxLine characters.
 */
export function luaChunks(data: Uint8Array, from: number, prefix: string, suffix: string, maxLine = MAX_LINE): LuaChunk[] {
  const out: LuaChunk[] = [];
  for (let i = from; i < data.length; i += out[out.length - 1].length) out.push(luaChunk(data, i, prefix, suffix, maxLine));
  return out;
}

/** The one line `${prefix}"..."${suffix}` of at most maxLine characters that starts at data[from] (from < data.length). */
export function luaChunk(data: Uint8Array, from: number, prefix: string, suffix: string, maxLine = MAX_LINE): LuaChunk {
  const room = maxLine - prefix.length - suffix.length - 2;
  if (room < 8) throw new RangeError(`luaChunks: maxLine ${maxLine} leaves no room for data`);
  let i = from;
  let body = "";
  while (i < data.length) {
    const e = escapeByte(data[i], data[i + 1]);
    if (body.length + e.length > room) break;
    body += e;
    i++;
  }
  return { line: `${prefix}"${body}"${suffix}`, offset: from, length: i - from };
}

/** A Lua string literal for short text (names, small files). */
export function luaQuote(data: Uint8Array | string): string {
  const bytes = typeof data === "string" ? Uint8Array.from(data, (c) => c.charCodeAt(0) & 255) : data;
  let s = "";
  for (let i = 0; i < bytes.length; i++) s += escapeByte(bytes[i], bytes[i + 1]);
  return `"${s}"`;
}

/**
 * A text-safe LZ77 for the image's data lines (issue 10 item 6: the wire is
 * most of the flash time). A data line's string, once Lua has read it, is
 * literal bytes and references: LZ_MARK, then two LZ_DIGITS of distance back
 * into the file's bytes so far (1..LZ_WINDOW; 0: the byte LZ_MARK itself),
 * then one of length (LZ_MIN..LZ_MIN+63), never longer than the distance (so
 * the board copies with one string.sub). Only printable characters that
 * need no escape, so a reference costs 4 bytes on the wire. The board's
 * decoder is _fk.z (flasher.ts); what it writes is still checked by the CRC
 * of what the board reads back, so a decoder fault cannot pass unseen.
 */
export const LZ_MARK = "`";
export const LZ_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+/";
export const LZ_WINDOW = 64 * 64 - 1;
export const LZ_MIN = 5;
const LZ_MAX = LZ_MIN + 63;
const MARK_BYTE = LZ_MARK.charCodeAt(0);

/** The longest earlier match for data[i..] within data[start..i) (at most LZ_WINDOW back, no overlap). */
function longestMatch(data: Uint8Array, start: number, i: number, chains: Map<number, number[]>): { d: number; n: number } {
  let best = { d: 0, n: 0 };
  if (i + LZ_MIN > data.length) return best;
  const key = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16);
  const list = chains.get(key);
  if (!list) return best;
  for (let k = list.length - 1, tried = 0; k >= 0 && tried < 256; k--, tried++) {
    const p = list[k];
    const d = i - p;
    if (p < start) break;
    if (d > LZ_WINDOW) break;
    const max = Math.min(LZ_MAX, d, data.length - i);
    let n = 0;
    while (n < max && data[p + n] === data[i + n]) n++;
    if (n > best.n) best = { d, n };
    if (n === LZ_MAX) break;
  }
  return best.n >= LZ_MIN ? best : { d: 0, n: 0 };
}

/** Match index over data[start..]: every position's next three bytes. */
export class LzIndex {
  private readonly chains = new Map<number, number[]>();
  private upTo: number;
  constructor(readonly data: Uint8Array, readonly start: number) {
    this.upTo = start;
  }
  /** Positions before i become candidates. */
  private advance(i: number): void {
    for (; this.upTo < i; this.upTo++) {
      const p = this.upTo;
      if (p + 2 >= this.data.length) continue;
      const key = this.data[p] | (this.data[p + 1] << 8) | (this.data[p + 2] << 16);
      let l = this.chains.get(key);
      if (!l) this.chains.set(key, (l = []));
      l.push(p);
    }
  }
  match(i: number): { d: number; n: number } {
    this.advance(i);
    return longestMatch(this.data, this.start, i, this.chains);
  }
}

/**
 * The one line `${prefix}"..."${suffix}` of at most maxLine characters that
 * carries data[from..] LZ-coded (references reach back to index.start, where
 * the board's history begins: the file's open).
 */
export function lzChunk(index: LzIndex, from: number, prefix: string, suffix: string, maxLine = MAX_LINE): LuaChunk {
  const data = index.data;
  const room = maxLine - prefix.length - suffix.length - 2;
  if (room < 8) throw new RangeError(`lzChunk: maxLine ${maxLine} leaves no room for data`);
  let i = from;
  let body = "";
  while (i < data.length) {
    const m = index.match(i);
    let e: string;
    let n: number;
    if (m.n > 0) {
      e = LZ_MARK + LZ_DIGITS[m.d >> 6] + LZ_DIGITS[m.d & 63] + LZ_DIGITS[m.n - LZ_MIN];
      n = m.n;
    } else if (data[i] === MARK_BYTE) {
      e = LZ_MARK + "000";
      n = 1;
    } else {
      // A decimal escape is padded when a digit follows; a reference or the line's end starts with a non-digit.
      const next = index.match(i + 1).n > 0 || data[i + 1] === MARK_BYTE ? undefined : data[i + 1];
      e = escapeByte(data[i], next);
      n = 1;
    }
    if (body.length + e.length > room) break;
    body += e;
    i += n;
  }
  return { line: `${prefix}"${body}"${suffix}`, offset: from, length: i - from };
}

/** What the board's _fk.z makes of a line's string (the host's model of it, for tests). */
export function lzDecode(history: string, s: string): string {
  let t = history;
  for (let i = 0; ; ) {
    const j = s.indexOf(LZ_MARK, i);
    if (j < 0) return (t + s.slice(i)).slice(history.length);
    t += s.slice(i, j);
    const d = LZ_DIGITS.indexOf(s[j + 1]) * 64 + LZ_DIGITS.indexOf(s[j + 2]);
    t += d === 0 ? LZ_MARK : t.substr(t.length - d, LZ_DIGITS.indexOf(s[j + 3]) + LZ_MIN);
    i = j + 4;
  }
}
