/**
 * CRC-32 (ISO-HDLC: reflected polynomial 0xEDB88320, init and final XOR
 * 0xFFFFFFFF; the zlib/PNG CRC, check value 0xCBF43926 for "123456789"),
 * and the same CRC as REPL lines for the board, so a file written through
 * the REPL is checked by a hash the board computes from what it reads back.
 */

const TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xedb88320 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** Running CRC-32: pass the previous result as crc to continue. */
export function crc32(data: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < data.length; i++) c = TABLE[(c ^ data[i]) & 255] ^ (c >>> 8);
  return ~c >>> 0;
}

export function crcHex(crc: number): string {
  return (crc >>> 0).toString(16).padStart(8, "0");
}

/**
 * Lua 5.3 for the board (each line under the REPL's line limit; a function
 * spans several lines through the REPL's continuation prompt). Correct on
 * 32-bit integers (NodeMCU: hex literals wrap, >> is logical) and on 64-bit
 * (values stay below 2^32 because the start value is 0xFFFFFFFF, not -1).
 * - _fk.cs(c, b): the running CRC c continued over the string b. Eight bytes
 *   per string.byte call: the per-byte loop (a method call per byte) took
 *   11 VM instructions and a C call a byte; this takes about 6 and an eighth
 *   of a call, and the board's CPU, not the wire, bounded the read-back
 *   checks (issue 10 item 6: flash time).
 * - _fk.hx(s, c): "<size> <crc hex>" of a running CRC c over s bytes.
 * - _fk.rb(name): start reading NAME back (_fk.g; one at a time: a read-back
 *   under way is closed first). _fk.sp(): one step of it, READ_STEP bytes
 *   into its CRC; at the end of the file it closes it and keeps the answer.
 *   The flasher lets each data line take a step (flasher.ts W).
 * - _fk.crc(name): "<size> <crc hex>" of NAME as read back, "-1 00000000" for
 *   no file: the read-back _fk.rb started, finished here, else a whole one now.
 */
/** Bytes per read-back step: ~4 ms of the board's Lua, inside a data line's idle time (flasher.ts); the board's heap is small. */
export const READ_STEP = 512;
export const BOARD_CRC_LUA: readonly string[] = [
  "local t={} for i=0,255 do local c=i for _=1,8 do if c&1==1 then c=(c>>1)~0xEDB88320 else c=c>>1 end end t[i]=c end _fk.t=t",
  "function _fk.cs(c,b) local t,y,n=_fk.t,string.byte,#b-#b%8 for i=1,n,8 do local a,d,e,f,g,h,j,k=y(b,i,i+7)",
  "c=t[(c~a)&255]~(c>>8) c=t[(c~d)&255]~(c>>8) c=t[(c~e)&255]~(c>>8) c=t[(c~f)&255]~(c>>8)",
  "c=t[(c~g)&255]~(c>>8) c=t[(c~h)&255]~(c>>8) c=t[(c~j)&255]~(c>>8) c=t[(c~k)&255]~(c>>8) end",
  "for i=n+1,#b do c=t[(c~y(b,i))&255]~(c>>8) end return c end",
  'function _fk.hx(s,c) c=~c return s.." "..string.format("%04x%04x",(c>>16)&65535,c&65535) end',
  'function _fk.rb(n) local g=_fk.g if g and g.f then g.f:close() end _fk.g={f=io.open(n,"rb"),c=0xFFFFFFFF,s=0,n=n,h="-1 00000000"} end',
  `function _fk.sp() local g=_fk.g if g and g.f then local b=g.f:read(${READ_STEP}) if b then g.s=g.s+#b g.c=_fk.cs(g.c,b) else g.f:close() g.f=nil g.h=_fk.hx(g.s,g.c) end end end`,
  "function _fk.crc(n) local g=_fk.g if not (g and g.n==n) then _fk.rb(n) g=_fk.g end while g.f do _fk.sp() end _fk.g=nil return g.h end",
];
