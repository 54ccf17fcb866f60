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
 * Lua 5.3 for the board (each line under the REPL's line limit; the function
 * spans several lines through the REPL's continuation prompt). Correct on
 * 32-bit integers (NodeMCU: hex literals wrap, >> is logical) and on 64-bit
 * (values stay below 2^32 because the start value is 0xFFFFFFFF, not -1).
 * _fk.crc(name) returns "<size> <crc hex>", "-1 00000000" for no file.
 * Reads 1 KB at a time: the board's heap is small.
 */
export const BOARD_CRC_LUA: readonly string[] = [
  "local t={} for i=0,255 do local c=i for _=1,8 do if c&1==1 then c=(c>>1)~0xEDB88320 else c=c>>1 end end t[i]=c end _fk.t=t",
  "function _fk.crc(n)",
  'local f=io.open(n,"rb") if not f then return "-1 00000000" end',
  "local c,s,t=0xFFFFFFFF,0,_fk.t",
  "while true do local b=f:read(1024) if not b then break end s=s+#b",
  "for i=1,#b do c=t[(c~b:byte(i))&255]~(c>>8) end end",
  'f:close() c=~c return s.." "..string.format("%04x%04x",(c>>16)&65535,c&65535)',
  "end",
];
