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
