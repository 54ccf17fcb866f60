/**
 * Install the firmware on a factory-fresh NodeMCU board through its Lua REPL
 * (the board boots into the REPL while SPIFFS has no init.lua).
 *
 * 1. Get a clean prompt. No prompt: ask the protocol's INFO; a board that
 *    answers already runs fobkit and keeps its UART from the REPL, so there
 *    is nothing to install (refused; "locked" if it says so).
 * 2. Define _fk.crc (crc32.ts) on the board: every check is a CRC-32 the
 *    board computes over what it reads back from flash.
 * 3. For each file of the image (the core fobkit.lua, then fobkit-prov.lua:
 *    image-files.ts): already right: skip. Else the upload goes to NAME.part
 *    with Lua's io library (dev-esp32 has no file.open; flash-store.ts uses
 *    io too). If a .part is there, its size and CRC decide: a prefix of the
 *    image (what a broken transfer or a power cut leaves) is continued from
 *    its end, anything else is rewritten from the start.
 * 4. Lines of at most MAX_LINE characters (lua-chunks.ts), each
 *    acknowledged by its prompt. With the echo off (uart.setup's last
 *    argument) the answer to a data line is just "> ", so WINDOW lines are
 *    kept in flight; the board's stdin pipe queues them. If the echo stays
 *    on, one line at a time (uploader style).
 * 5. CRC of the .part = host CRC, then rename to fobkit.lua (SPIFFS rename
 *    refuses an existing target: remove first) and check again; then the
 *    same for init.lua, last, so the board boots the firmware only once the
 *    image is complete.
 * 6. node.compile each file (NAME.lc), which must then load; then the
 *    sources are removed; init.lua boots fobkit.lc.
 * 7. node.restart(); the firmware must answer INFO over the protocol.
 */
import { LINK_BAUD } from "../../protocol/codes.js";
import { DeviceSession, type KeyfobInfo } from "../device/session.js";
import { SerialTransport } from "../transport/serial-transport.js";
import type { Transport, TransportKind } from "../transport/transport.js";
import { kindOfName } from "../transport/discover.js";
import { BOARD_CRC_LUA, crc32, crcHex } from "./crc32.js";
import { luaChunks, luaQuote } from "./lua-chunks.js";
import { ReplClient, ReplError } from "./repl-client.js";
import { bytecodeName } from "./image-files.js";

export const IMAGE_NAME = "fobkit.lua";
export const INIT_NAME = "init.lua";
/** Kconfig LUA_INIT_STRING "@init.lua" runs this at boot (init-lua.ts: fail-closed). */
export { INIT_SOURCE } from "./init-lua.js";
import { INIT_SOURCE } from "./init-lua.js";
const PART = ".part";
/** _fk.w: one data line's write (it prints nothing); _fk.sz: a file's size (-1: none). */
const BOARD_HELPERS: readonly string[] = [
  "function _fk.w(s) _fk.f:write(s) end",
  'function _fk.sz(n) local f=io.open(n,"rb") if not f then return -1 end local s=0 while true do local b=f:read(1024) if not b then break end s=s+#b end f:close() return s end',
];
/** node.compile parses a whole file in RAM and writes its .lc to SPIFFS: give it longer than a line. */
const COMPILE_MS = 30000;
/** Data lines in flight: 2 x 241 bytes, well inside the UART driver's buffer and the stdin pipe. */
export const WINDOW = 2;

export type FlashErrorCode = "locked" | "firmware" | "no_board" | "verify" | "aborted" | "repl" | "transport";

/**
 * The links flashing works over: only the UART reaches NodeMCU's Lua REPL.
 * A keyfob's HID interface is its firmware's own, so a board that has one
 * already runs fobkit.
 */
export const FLASH_TRANSPORTS: readonly TransportKind[] = ["serial"];

export class FlashError extends Error {
  constructor(
    readonly code: FlashErrorCode,
    message: string,
    readonly info?: KeyfobInfo,
  ) {
    super(message);
    this.name = "FlashError";
  }
}

export interface FlashProgress {
  /** Image bytes on the board so far (resumed ones included). */
  done: number;
  total: number;
  /** Where this run started writing. */
  from: number;
}

export interface FlashOptions {
  port: string;
  /** The image's core, installed as fobkit.lua. */
  image: Uint8Array;
  /** The image's other files (image-files.ts: fobkit-prov.lua), each installed and checked the same way. */
  files?: { name: string; data: Uint8Array }[];
  baudRate?: number;
  /** How to reach the board (default: SerialTransport on port). */
  openTransport?: () => Transport;
  onProgress?: (p: FlashProgress) => void;
  signal?: AbortSignal;
  /** Wait for the prompt after a line (default 5000 ms). */
  lineTimeoutMs?: number;
  /** After node.restart(), before INFO (default 1000 ms). */
  restartWaitMs?: number;
}

export interface FlashResult {
  port: string;
  imageBytes: number;
  crc: string;
  /** Every file of the image was already complete on the board. */
  alreadyThere: boolean;
  /**
   * Offset in the whole image (its files in install order) where this run's
   * upload started: files already complete on the board and the verified
   * prefix of a .part count as done (0: from the start).
   */
  resumedFrom: number;
  /** REPL lines carrying image data this run. */
  lines: number;
  /** Bytes on the wire this run, both directions (REPL and protocol). */
  wireBytesOut: number;
  wireBytesIn: number;
  uploadMs: number;
  totalMs: number;
  /** The .lc files node.compile wrote on the board: size and CRC-32 as the board reads them. */
  bytecode: { name: string; bytes: number }[];
  info: KeyfobInfo;
}

interface Remote {
  size: number;
  crc: string;
}

async function remoteCrc(repl: ReplClient, name: string): Promise<Remote> {
  const out = await repl.exec(`=_fk.crc(${luaQuote(name)})`, 60000);
  const m = /(-?\d+) ([0-9a-f]{8})\s*$/.exec(out);
  if (!m) throw new FlashError("repl", `unexpected answer from the board's CRC of ${name}: ${JSON.stringify(out.slice(0, 80))}`);
  return { size: Number(m[1]), crc: m[2] };
}

/** Bytes in a file on the board (-1: none), read through without a CRC. */
async function remoteSize(repl: ReplClient, name: string): Promise<number> {
  const out = await repl.exec(`=_fk.sz(${luaQuote(name)})`, 60000);
  const m = /(-?\d+)\s*$/.exec(out);
  if (!m) throw new FlashError("repl", `unexpected answer from the board's size of ${name}: ${JSON.stringify(out.slice(0, 80))}`);
  return Number(m[1]);
}

/** Write a small file in one line to NAME.part, check it, rename it over NAME. */
async function putVerified(repl: ReplClient, name: string, data: Uint8Array, t: number): Promise<void> {
  await repl.exec(`_fk.f=assert(io.open(${luaQuote(name + PART)},"wb"))`, t);
  // Lines stay below the REPL's LUA_MAXINPUT (init.lua is longer than one line).
  for (const c of luaChunks(data, 0, "assert(_fk.f:write(", "))")) await repl.exec(c.line, t);
  // newlib buffers writes: a full SPIFFS may show only at close.
  await repl.exec("local f=_fk.f _fk.f=nil assert(f:close())", t);
  await commit(repl, name, data, t);
}

/** NAME.part holds data (checked by CRC on the board): make it NAME, and check NAME. */
async function commit(repl: ReplClient, name: string, data: Uint8Array, t: number): Promise<void> {
  const want = { size: data.length, crc: crcHex(crc32(data)) };
  const part = await remoteCrc(repl, name + PART);
  if (part.size !== want.size || part.crc !== want.crc) {
    throw new FlashError("verify", `${name}${PART} on the board has ${part.size} bytes, CRC-32 ${part.crc}; expected ${want.size} bytes, ${want.crc}`);
  }
  const renamed = await repl.exec(`file.remove(${luaQuote(name)}) print(file.rename(${luaQuote(name + PART)},${luaQuote(name)}))`, t);
  if (!/true/.test(renamed)) throw new FlashError("verify", `the board could not rename ${name}${PART} to ${name}`);
  // SPIFFS rename rewrites only the object's index header (its name): the data checked above stays. The size says the name now holds it.
  const done = await remoteSize(repl, name);
  if (done !== want.size) throw new FlashError("verify", `${name} on the board has ${done} bytes after the rename; expected ${want.size}`);
}

/** No REPL answered: is it a board that runs fobkit? */
async function probeFirmware(open: () => Transport, port: string): Promise<never> {
  const t = open();
  let session: DeviceSession | undefined;
  let info: KeyfobInfo | undefined;
  try {
    await t.open();
    // End whatever the REPL probe left in the firmware's deframer (COBS frames end at 0x00).
    await t.write(Uint8Array.of(0));
    session = new DeviceSession(t, { timeoutMs: 1000, retries: 1 });
    info = await session.info();
  } catch {
    info = undefined;
  } finally {
    if (session) await session.close();
    else await t.close().catch(() => undefined);
  }
  if (!info) throw new FlashError("no_board", `${port}: neither a Lua prompt nor a fobkit keyfob answers`);
  if (info.state === "locked") {
    throw new FlashError("locked", `${port}: the keyfob runs fobkit ${info.firmware} and is locked (serial ${info.serial || "none"}); its UART never reaches Lua: nothing to do`, info);
  }
  throw new FlashError("firmware", `${port}: the board already runs fobkit ${info.firmware} (state ${info.state}); its UART no longer reaches the Lua REPL: nothing to do`, info);
}

export async function flashBoard(opts: FlashOptions): Promise<FlashResult> {
  const t0 = performance.now();
  if (opts.openTransport === undefined && !FLASH_TRANSPORTS.includes(kindOfName(opts.port))) {
    throw new FlashError("transport", `${opts.port}: flashing works over ${FLASH_TRANSPORTS.join(" or ")} only (NodeMCU's Lua REPL is on the UART); a HID path is a keyfob that already runs fobkit`);
  }
  const open = opts.openTransport ?? (() => new SerialTransport({ path: opts.port, baudRate: opts.baudRate }));
  const lineMs = opts.lineTimeoutMs ?? 5000;
  const image = opts.image;
  const total = image.length + (opts.files ?? []).reduce((n, f) => n + f.data.length, 0);
  const wire = { out: 0, in: 0 };
  const count = (t: Transport) => {
    wire.out += t.stats.bytesWritten;
    wire.in += t.stats.bytesRead;
  };

  const t = open();
  await t.open();
  const repl = new ReplClient(t);
  let resumedFrom = 0;
  let lines = 0;
  let alreadyThere = true;
  const bytecode: { name: string; bytes: number }[] = [];
  let uploadMs = 0;
  let done = 0;
  try {
    if (!(await repl.sync())) {
      await repl.close();
      count(t);
      return await probeFirmware(open, opts.port);
    }
    await repl.exec('local o=rawget(_G,"_fk") if o and o.f then pcall(o.f.close,o.f) end _fk={}', lineMs);
    for (const l of [...BOARD_CRC_LUA, ...BOARD_HELPERS]) {
      const a = await repl.run(l, lineMs);
      if (/Lua error/.test(a.output)) throw new FlashError("repl", `the board rejected the CRC helper: ${a.output.slice(0, 200)}`);
    }
    const tu = performance.now();
    const baud = t.kind === "serial" ? (t as SerialTransport).baudRate : LINK_BAUD;
    let echoOff: boolean | undefined;
    // Every file of the image, the core first: each uploaded (or found complete), checked by CRC on the board.
    for (const file of [{ name: IMAGE_NAME, data: image }, ...(opts.files ?? [])]) {
      const data = file.data;
      const base = done;
      const installed = await remoteCrc(repl, file.name);
      if (installed.size === data.length && installed.crc === crcHex(crc32(data))) {
        done += data.length;
        opts.onProgress?.({ done, total, from: base });
        continue;
      }
      let from = 0;
      const part = await remoteCrc(repl, file.name + PART);
      if (part.size > 0 && part.size <= data.length && part.crc === crcHex(crc32(data.subarray(0, part.size)))) from = part.size;
      if (alreadyThere) resumedFrom = base + from; // the first file this run writes to
      alreadyThere = false;
      await repl.exec(`_fk.f=assert(io.open(${luaQuote(file.name + PART)},"${from > 0 ? "ab" : "wb"}"))`, lineMs);
      opts.onProgress?.({ done: base + from, total, from: base + from });
      // _fk.w (BOARD_HELPERS): 5 characters of each 240-character line instead of 13.
      const chunks = luaChunks(data, from, "_fk.w", "");
      if (echoOff === undefined) {
        await repl.exec(`uart.setup(0,${baud},8,0,1,0)`, lineMs);
        const probe = await repl.run("=1", lineMs);
        echoOff = probe.output === "1" && !probe.echoed;
      }
      const ack = (i: number) => opts.onProgress?.({ done: base + chunks[i].offset + chunks[i].length, total, from: base + from });
      if (echoOff) {
        await repl.pipeline(chunks.map((c) => c.line), WINDOW, lineMs, (i) => {
          lines++;
          ack(i);
        }, opts.signal);
      } else {
        for (let i = 0; i < chunks.length; i++) {
          if (opts.signal?.aborted) throw new FlashError("aborted", "interrupted; run fobkit flash again to continue where it stopped");
          await repl.exec(chunks[i].line, lineMs);
          lines++;
          ack(i);
        }
      }
      await repl.exec("local f=_fk.f _fk.f=nil assert(f:close())", lineMs);
      await commit(repl, file.name, data, lineMs);
      done += data.length;
    }
    if (echoOff) await repl.exec(`uart.setup(0,${baud},8,0,1,1)`, lineMs);
    if (alreadyThere) resumedFrom = total;
    // Compile each file on the board (node.c:718-779: NAME.lua -> NAME.lc, debug
    // information stripped, written in place), every time: an .lc left by an
    // older image or a broken run is never trusted. The host cannot predict the
    // board's bytecode, so the check is the board's own loader: the .lc must
    // load (a truncated or damaged one does not), and it must not be empty.
    for (const name of [IMAGE_NAME, ...(opts.files ?? []).map((f) => f.name)]) {
      const lc = bytecodeName(name);
      const compiled = await repl.run(`node.compile(${luaQuote(name)})`, COMPILE_MS);
      if (/Lua error/.test(compiled.output)) throw new FlashError("verify", `${opts.port}: node.compile of ${name} failed on the board: ${compiled.output.replace(/^.*Lua error:\s*/s, "").slice(0, 200)}`);
      const loads = await repl.exec(`=(loadfile(${luaQuote(lc)}))~=nil`, COMPILE_MS);
      const have = await remoteSize(repl, lc);
      if (!/true/.test(loads) || have <= 0) throw new FlashError("verify", `${opts.port}: ${lc} on the board (${have} bytes) does not load after node.compile`);
      bytecode.push({ name: lc, bytes: have });
    }
    // The sources go only now that every .lc loads: the board boots bytecode or
    // nothing (a damaged .lc fails closed, never falls back to parsing source).
    for (const name of [IMAGE_NAME, ...(opts.files ?? []).map((f) => f.name)]) await repl.exec(`file.remove(${luaQuote(name)})`, lineMs);
    uploadMs = performance.now() - tu;
    const init = Buffer.from(INIT_SOURCE, "latin1");
    const haveInit = await remoteCrc(repl, INIT_NAME);
    if (haveInit.size !== init.length || haveInit.crc !== crcHex(crc32(init))) await putVerified(repl, INIT_NAME, init, lineMs);
    await repl.fire("node.restart()");
    // Let the line leave before the port closes.
    await new Promise((r) => setTimeout(r, 100));
  } catch (e) {
    await repl.close();
    if (e instanceof ReplError) throw new FlashError(e.code === "lua_error" ? "repl" : "aborted", `${opts.port}: ${e.message}; run fobkit flash again to continue where it stopped`);
    if (e instanceof FlashError && e.code === "aborted") throw new FlashError("aborted", `${opts.port}: ${e.message}`);
    throw e;
  }
  await repl.close();
  count(t);

  await new Promise((r) => setTimeout(r, opts.restartWaitMs ?? 1000));
  const t2 = open();
  let info: KeyfobInfo;
  try {
    const session = await DeviceSession.open(t2, { timeoutMs: 2000, retries: 3 });
    try {
      info = await session.info();
    } finally {
      await session.close();
    }
  } catch (e) {
    await t2.close().catch(() => undefined);
    throw new FlashError("verify", `${opts.port}: the image is written and checked, but after the restart the firmware did not answer INFO (${(e as Error).message})`);
  }
  count(t2);
  return {
    port: opts.port, imageBytes: total, crc: crcHex(crc32(image)), alreadyThere, resumedFrom, lines,
    wireBytesOut: wire.out, wireBytesIn: wire.in, uploadMs, totalMs: performance.now() - t0, bytecode, info,
  };
}
