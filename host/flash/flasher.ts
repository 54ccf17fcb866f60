/**
 * Install the firmware on a factory-fresh NodeMCU board through its Lua REPL
 * (the board boots into the REPL while SPIFFS has no init.lua).
 *
 * 1. Get a clean prompt. No prompt: ask the protocol's INFO; a board that
 *    answers already runs fobkit and keeps its UART from the REPL, so there
 *    is nothing to install (refused; "locked" if it says so).
 * 2. Define the board's helpers (BOARD_HELPERS, crc32.ts's _fk.crc): every
 *    check is a CRC-32 the board computes over what it reads back from flash,
 *    compared on the board with what the host says it must be.
 * 3. Where every file stands, in one batch: already right: skip. A source
 *    file (fobkit.lua, fobkit-2.lua ...: image-files.ts) is written under its
 *    own name with Lua's io library (dev-esp32 has no file.open); if one is
 *    there, its size and CRC decide: a prefix of the file (what a broken
 *    transfer or a power cut leaves) is continued from its end, anything
 *    else is rewritten from the start.
 * 4. One batch for the whole image (REPL lines of at most MAX_LINE
 *    characters, lua-chunks.ts; data lines imageDataLines), pipelined with
 *    the echo off (uart.setup's last argument: a line's answer is then its
 *    output and "> "): WINDOW_BYTES behind a line that writes flash,
 *    RX_PATH_BYTES behind one that does not (data lines gather the file in
 *    RAM; an F line every FLUSH_BYTES writes it); one at a time if the echo
 *    stays on. Per file: open, data lines, then the board closes it and
 *    checks its CRC, then node.compile (NAME.lc), which must then load.
 * 5. Only then are the sources removed, and init.lua written last, through
 *    init.lua.part, checked by CRC before a rename puts it in place, so the
 *    board boots the firmware only once the image is complete; init.lua boots
 *    fobkit.lc. An init.lua already there (a run that got through but never
 *    restarted) is removed at the head of the batch, before any upload or
 *    compile: every run compiles every .lc, and a cut or failed check then
 *    leaves a board that boots into the REPL, never one that boots a damaged
 *    .lc (or a damaged init.lua, which could leave the console deaf).
 * 6. node.restart(); the firmware must answer INFO over the protocol (asked
 *    from BOOT_MIN_MS on, INFO_TIMEOUTS_MS).
 */
import { LINK_BAUD } from "../../protocol/codes.js";
import { DeviceSession, type KeyfobInfo } from "../device/session.js";
import { SerialTransport } from "../transport/serial-transport.js";
import type { Transport, TransportKind } from "../transport/transport.js";
import { kindOfName } from "../transport/discover.js";
import { BOARD_CRC_LUA, crc32, crcHex, READ_STEP } from "./crc32.js";
import { LZ_DIGITS, LZ_MARK, LZ_MIN, LZ_WINDOW, LzIndex, lzChunk, luaQuote, MAX_LINE, type LuaChunk } from "./lua-chunks.js";
import { ReplClient, ReplError, type PipelineLine } from "./repl-client.js";
import { SharedPort } from "./shared-port.js";
import { bytecodeName, CORE_FILE } from "./image-files.js";

export const IMAGE_NAME = CORE_FILE;
export const INIT_NAME = "init.lua";
/** Kconfig LUA_INIT_STRING "@init.lua" runs this at boot (init-lua.ts: fail-closed). */
export { INIT_SOURCE } from "./init-lua.js";
import { ESP32_BOOT_MS, INIT_SOURCE } from "./init-lua.js";
const PART = ".part";
/**
 * The board's side of the install, defined once per run (each line under
 * MAX_LINE). Every check is still the board's CRC of what it reads back
 * (_fk.crc, crc32.ts); the host says what it expects ("SIZE CRC", as
 * _fk.crc answers) and the board compares, so one line does what took a
 * prompt round trip per step (issue 10 item 6: flash time).
 * - _fk.z(s): a data line's string decoded (lua-chunks.ts lzChunk: literal
 *   bytes and back references into the file's last LZ_WINDOW bytes, _fk.h,
 *   which _fk.o empties): the wire carries ~0.67 of the image (issue 10 item
 *   6). A decoder fault cannot pass: the CRC below is over what the board
 *   reads back from flash, against the host's CRC of the file itself.
 * - W(s): one data line (it prints nothing): s, decoded, joins the upload's buffer in
 *   RAM (_fk.b), and no flash is written, so the lines behind it may fill the
 *   board's whole receive path (RX_PATH_BYTES) while it runs. A global of one
 *   letter: 4 bytes of each line instead of 8 (the board restarts after the
 *   install). Then one step of the read-back check under way (_fk.sp, crc32.ts).
 * - F(s): a data line that also writes the buffer to the file (FLUSH_BYTES of
 *   lines at most, and the last line of each file), so only WINDOW_BYTES may
 *   follow it. A failed write (f:write's nil, liolib g_write), or no file
 *   open, sets _fk.bad and keeps the first such error in _fk.why (a data line
 *   answers nothing, so _fk.vr reports it): the lines behind it answer "skip".
 * - _fk.rb(n) (crc32.ts): start reading NAME back for its check (_fk.g): each
 *   data line after it reads and CRCs READ_STEP bytes of it (_fk.sp). A data line
 *   leaves the board idle for ~19 of its 21 ms while the wire brings the
 *   next one; reading back a whole file in one line kept the board busy
 *   for ~150 ms per 10 KB (the CRC runs in Lua), longer than the
 *   WINDOW_BYTES in flight cover, so the wire stood still (issue 10 item 6).
 *   The check is the same: the CRC of every byte read back from flash after
 *   the file was closed, compared on the board with what the host sent;
 *   _fk.crc(n) finishes it (or reads the whole file, where no step began).
 * - _fk.cl(): close the upload's file (newlib shows a full SPIFFS only at
 *   close): nil, else "skip" or "err MESSAGE".
 * - _fk.l: file.list() taken once per run (one pass over SPIFFS and a stat
 *   per file, file.c:39-75), so a file that is not there costs no lookup.
 * - _fk.st(n, w): "ok" when NAME holds w, else NAME's "SIZE CRC" ("-1 00000000":
 *   none); the host decides whether that is a prefix of the file to continue.
 * - _fk.fin(n, w): for init.lua, which must appear whole or not at all:
 *   close the upload's file (_fk.cl), check NAME.part holds w (else it is
 *   removed: "err crc SIZE CRC"), and only then remove NAME and rename
 *   NAME.part to NAME (SPIFFS rename refuses an existing target): "ok", else
 *   what failed. A source is written under its own name: only node.compile
 *   reads it, its check follows, and it is removed once every .lc loads.
 * - _fk.ld(l): load a .lc as a binary chunk, streamed as loadfile does; the
 *   chunk (nil: does not load) and the bytes read.
 * - _fk.o(n, a): open NAME for the upload (a: append, to continue a prefix).
 * - _fk.x(e): a failure: sets _fk.bad, answers "err MESSAGE".
 * - _fk.cc(n): close the upload's file (_fk.cl), then node.compile
 *   (node.c:718-779: NAME.lua -> NAME.lc, debug information stripped): "ok",
 *   else "err MESSAGE".
 * - _fk.vr(n, w): the checks of one file, after its compile: NAME holds w
 *   (_fk.crc; else "crc SIZE CRC"), and NAME.lc loads as a binary chunk:
 *   "ok SIZE", else "bad SIZE". Sent once the next file's data lines have
 *   stepped through the read-back (or before that file's compile, or at the
 *   end), so what is left is the .lc's load (~20 ms, inside a data line's
 *   idle time). A compile of a source that fails its check later is
 *   harmless: nothing is trusted until every check passed, and init.lua
 *   comes last.
 * Once a step failed (_fk.bad) every one answers "skip" (_fk.o raises, and
 * the sources' removal is skipped too): the lines already in flight behind
 * the failure, up to WINDOW_BYTES, change nothing. So the sources' removal
 * and init.lua ride in the same batch as the uploads.
 */
export const DATA_PREFIX = "W";
/** The data line that writes the buffer (see F above). */
export const FLUSH_PREFIX = "F";
export const BOARD_HELPERS: readonly string[] = [
  `_fk.a={} for i=1,64 do _fk.a[(${luaQuote(LZ_DIGITS)}):byte(i)]=i-1 end`,
  `function _fk.r(t,s,j) local a=_fk.a local x,y,z=s:byte(j+1,j+3) local d=a[x]*64+a[y] if d==0 then return t.."${LZ_MARK}" end local p=#t-d+1 return t..t:sub(p,p+a[z]+${LZ_MIN - 1}) end`,
  `function _fk.z(s) local t,i=_fk.h,1 local n=#t while 1 do local j=s:find("${LZ_MARK}",i,1) if not j then t=t..s:sub(i) break end t=_fk.r(t..s:sub(i,j-1),s,j) i=j+4 end _fk.h=t:sub(-${LZ_WINDOW + 1}) return t:sub(n+1) end`,
  `function ${DATA_PREFIX}(s) local b=_fk.b b[#b+1]=_fk.z(s) _fk.sp() end`,
  `function ${FLUSH_PREFIX}(s) local b,f,o,e=_fk.b,_fk.f b[#b+1]=_fk.z(s) _fk.b={} if f then o,e=f:write(table.concat(b)) end if not o then _fk.bad=1 _fk.why=_fk.why or "write: "..tostring(e or "no file open") end end`,
  'function _fk.st(n,w) if not _fk.l[n] then return "-1 00000000" end local h=_fk.crc(n) return h==w and "ok" or h end',
  'function _fk.cl() if _fk.bad then return "skip" end local f=_fk.f _fk.f=nil if f then local o,e=f:close() if not o then return _fk.x(e) end end end',
  'function _fk.fin(n,w) local p,r=n..".part",_fk.cl() if r then return r end r=_fk.crc(p) if r~=w then file.remove(p) return _fk.x("crc "..r) end file.remove(n) return file.rename(p,n) and "ok" or _fk.x("rename") end',
  'function _fk.ld(l) local f,s=io.open(l,"rb"),0 if not f then return nil,-1 end local function r() local b=f:read(256) s=s+(b and #b or 0) return b end local g=load(r,"=lc","b") while r() do end f:close() return g,s end',
  'function _fk.x(e) _fk.bad=1 return "err "..tostring(e) end',
  'function _fk.cc(n) local o,e=_fk.cl() if o then return o end o,e=pcall(node.compile,n) if not o then return _fk.x(e) end return "ok" end',
  'function _fk.vr(n,w) if _fk.bad then return "skip",_fk.why end local h=_fk.crc(n) if h~=w then _fk.bad=1 return "crc "..h end local g,s=_fk.ld(n:sub(1,-5)..".lc") if not g then _fk.bad=1 end return (g and "ok " or "bad ")..s end',
  'function _fk.o(n,a) assert(not _fk.bad,"an earlier step failed") local f,e=io.open(n,a and "ab" or "wb") if not f then _fk.bad=1 _fk.why="open "..n..": "..tostring(e) error(e) end _fk.f=f _fk.b={} _fk.h="" end',
];
/**
 * After node.restart(): nothing can answer before the ESP32's ROM, bootloader
 * and image check are through (ESP32_BOOT_MS, init-lua.ts), so the first INFO
 * goes then. Each try is one request with a new
 * id (a reply after its timeout is dropped), so the timeouts grow: a request
 * every 50 ms, then 100 ms, while a board is most likely to come up, then
 * doubling. What is sent while the board boots is lost, and at most 16 requests are ever
 * outstanding, so a slow board is never buried under INFO frames it must answer
 * one by one before it gets to the current one.
 */
export const BOOT_MIN_MS = ESP32_BOOT_MS;
const INFO_TIMEOUTS_MS: readonly number[] = [50, 50, 50, 50, 50, 50, 100, 100, 100, 100, 100, 200, 400, 800, 1600, 3200];
/** node.compile parses a whole file in RAM and writes its .lc to SPIFFS: give it longer than a line. */
const COMPILE_MS = 30000;
/**
 * Bytes of REPL lines in flight behind the oldest unanswered one (LFs
 * included; ReplClient.pipeline): what the board takes without its console
 * RX ISR, the ESP32's 128-byte RX FIFO. While a line writes flash, the cache
 * is off for each flash call and the console driver's ISR, which is not in
 * IRAM (ESP-IDF v5.1.3 CONFIG_UART_ISR_IN_IRAM default n, components/driver/
 * Kconfig:230-237; NodeMCU does not set it), cannot run: a sector erase
 * keeps it off for the whole erase (tens of ms, up to the driver's 600 ms
 * timeout), and a board whose SPIFFS was written again and again without a
 * format erases a block before most writes (garbage collection). Only the
 * FIFO takes bytes then; the 129th overflows it and the RXFIFO_OVF handler
 * resets it (uart.c:979-991; hil/README.md has the chain). So at most 128
 * bytes may be on their way while a line runs. With the ISR running the
 * task queue, the driver's ring buffer and the FIFO would hold 485 (the
 * window was 482, two full lines: 159 bytes were lost on a worn board).
 * The running line is not among them: it was read out byte by byte before
 * it ran.
 */
export const WINDOW_BYTES = 128;
/**
 * Bytes that may be behind a line that writes no flash (it computes, or
 * reads SPIFFS): the console's whole receive path while Lua is busy and the
 * RX ISR runs (hil/console-rx.ts has the chain): 100 task-queue slots
 * (task.c:143-151), the byte console_task holds, the driver's 256-byte ring
 * (user_main.c:254) and the chunk the ISR stashes when the ring cannot take
 * it (ring and stash then hold at least 257), and the 128-byte FIFO, which
 * overflows at the next byte: 486. A SPIFFS read turns the cache off for one
 * page at most (110 us, SPIFFS_READ_US in hil/flash.ts: under 2 bytes at
 * 115200 baud), which the FIFO's room above the ISR's full threshold (120)
 * takes; between two reads the ISR runs. A few bytes under 486.
 */
export const RX_PATH_BYTES = 480;
/**
 * Data bytes the board keeps in RAM (_fk.b) before a line writes them (F):
 * their write (newlib's 128-byte flushes, 1 ms each on the model) lasts about
 * as long as the WINDOW_BYTES that may follow it take on the wire, so the
 * wire hardly stops for it; the board's heap holds a few KB easily.
 */
export const FLUSH_BYTES = 1024;
/**
 * A data line's length without its LF: two of them fit RX_PATH_BYTES behind
 * the one running (its read-back step keeps the board busy ~12 ms of the
 * 21 ms the next line takes on the wire), so the wire never waits for an answer.
 */
export const DATA_LINE = Math.min(MAX_LINE, Math.floor(RX_PATH_BYTES / 2) - 1);

/**
 * A file's data lines as the install sends them from byte `from` on: W lines,
 * and an F line where FLUSH_BYTES are buffered and at the file's end. The
 * first line (behind the file's open) and the one behind each F are short
 * enough to go while that line writes flash (WINDOW_BYTES), so the wire keeps
 * going; the open and the first line both go while the line before the
 * open (a compile) writes.
 */
/** The line that opens NAME for the upload (appending to a prefix of from bytes). */
export function uploadOpenLine(name: string, from: number): string {
  return `_fk.o(${luaQuote(name)}${from > 0 ? ",1" : ""})`;
}

export function imageDataLines(name: string, data: Uint8Array, from: number): LuaChunk[] {
  // The open and the first line both fit behind the line before it (a compile, or init.lua's removal).
  const first = WINDOW_BYTES - (uploadOpenLine(name, from).length + 1) - 1;
  const out: LuaChunk[] = [];
  // References reach back to where the board's history starts: the open (_fk.o resets _fk.h).
  const index = new LzIndex(data, from);
  let buffered = 0;
  let afterFlash = true;
  for (let i = from; i < data.length; ) {
    const c = lzChunk(index, i, DATA_PREFIX, "", Math.min(DATA_LINE, i === from ? first : afterFlash ? WINDOW_BYTES - 1 : DATA_LINE));
    i += c.length;
    buffered += c.length;
    afterFlash = buffered >= FLUSH_BYTES || i >= data.length;
    if (afterFlash) {
      buffered = 0;
      c.line = FLUSH_PREFIX + c.line.slice(DATA_PREFIX.length);
    }
    out.push(c);
  }
  return out;
}

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
  /** After node.restart(), before the first INFO (default BOOT_MIN_MS; then INFO_TIMEOUTS_MS). */
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
  // The port stays open until the restarted board has answered INFO (shared-port.ts: no reopen per try).
  const port = new SharedPort(t);
  const rt = port.lease();
  await rt.open();
  const repl = new ReplClient(rt);
  let resumedFrom = 0;
  let lines = 0;
  let alreadyThere = true;
  const bytecode: { name: string; bytes: number }[] = [];
  let uploadMs = 0;
  let done = 0;
  let imageCrc = "";
  try {
    if (!(await repl.sync())) {
      await repl.close();
      await port.close();
      count(t);
      return await probeFirmware(open, opts.port);
    }
    const baud = t.kind === "serial" ? (t as SerialTransport).baudRate : LINK_BAUD;
    // Files an earlier run left open (its upload, newlib flushes what it
    // buffered, and a read-back) are closed. With the echo off (uart.setup's last argument) a line's only
    // answer is its output and "> ", so lines can be kept in flight
    // (pipeline). If the echo stays on, one line at a time (uploader style).
    await repl.exec(`local o=rawget(_G,"_fk") or {} for _,f in pairs({o.f,o.g and o.g.f}) do pcall(f.close,f) end _fk={b={}} uart.setup(0,${baud},8,0,1,0)`, lineMs);
    const probe = await repl.run("=1", lineMs);
    const echoOff = probe.output === "1" && !probe.echoed;
    const runLines = async (batch: PipelineLine[], onAck: (i: number, output: string) => void): Promise<string[]> => {
      // A line that writes flash keeps WINDOW_BYTES behind it, unless it says RX_PATH_BYTES (it writes none).
      if (echoOff) return repl.pipeline(batch, WINDOW_BYTES, lineMs, onAck, opts.signal);
      const outs: string[] = [];
      for (let i = 0; i < batch.length; i++) {
        if (opts.signal?.aborted) throw new FlashError("aborted", "interrupted; run fobkit flash again to continue where it stopped");
        const a = await repl.run(batch[i].line, batch[i].timeoutMs ?? lineMs);
        const err = /(^|\n)Lua error: \t?(.*)/.exec(a.output);
        if (err) throw new ReplError("lua_error", `the board's Lua said: ${err[2].slice(0, 200)}`);
        outs.push(a.output);
        onAck(i, a.output);
      }
      return outs;
    };
    const tu = performance.now();
    const init = Buffer.from(INIT_SOURCE, "latin1");
    const all = [{ name: IMAGE_NAME, data: image }, ...(opts.files ?? [])];
    // What each file must hold, "SIZE CRC" as _fk.crc answers: the host's CRC once per file.
    const want = (d: Uint8Array) => `${d.length} ${crcHex(crc32(d))}`;
    const wants = all.map((f) => want(f.data));
    imageCrc = wants[0].split(" ")[1];
    const initWant = want(init);
    // The helpers, then where every file stands, in one batch (init.lua is not
    // asked: it is removed at the head of the next batch and always written last).
    const helpers = [...BOARD_CRC_LUA, ...BOARD_HELPERS, "_fk.l=file.list()"];
    const checks = all.map((f, k) => `=_fk.st(${luaQuote(f.name)},"${wants[k]}")`);
    let status: string[];
    try {
      // Definitions, file.list and read-backs: none writes flash.
      status = (await runLines([...helpers, ...checks].map((line) => ({ line, windowBytes: RX_PATH_BYTES })), () => undefined)).slice(helpers.length);
    } catch (e) {
      if (e instanceof ReplError && e.code === "lua_error") throw new FlashError("repl", `the board rejected the install helpers: ${e.message}`);
      throw e;
    }
    // One batch for every file: [open, data lines] where the board lacks it,
    // then its close and compile, every time (an .lc left by an older image or
    // a broken run is never trusted); its read-back (_fk.rb) starts a few data
    // lines into the next file, whose data lines step through it, and its
    // checks (_fk.vr) follow once those steps have read it all. The host cannot predict the board's bytecode,
    // so that check is the board's own loader: the .lc must load (a truncated
    // or damaged one does not), and it must not be empty.
    /** windowBytes: RX_PATH_BYTES for a line that writes no flash (else WINDOW_BYTES, ReplClient.pipeline). */
    type Step = { line: string; timeoutMs?: number; windowBytes?: number; ack: (output: string) => void };
    const quiet = RX_PATH_BYTES;
    const fail = (msg: string): never => {
      throw new FlashError("verify", `${opts.port}: ${msg}`);
    };
    // Every run compiles every file (below), so init.lua goes first: a power cut
    // or a failed check from here on leaves a board that boots into the REPL,
    // never an init.lua that boots a half-written .lc (review item 2). Only
    // when file.list saw one: a blank board pays no SPIFFS lookup for it. A
    // remove that failed (file.remove says nothing, file.c:92-98) stops the run.
    const initQ = luaQuote(INIT_NAME);
    const steps: Step[] = [{ line: `=_fk.l[${initQ}] and (file.remove(${initQ}) or file.exists(${initQ})) and _fk.x("still there") or "ok"`, ack: (out) => {
      if (out !== "ok") fail(`the board could not remove its ${INIT_NAME} before the install (${out}); nothing was written`);
    } }];
    /** Data lines of the next file before the previous file's read-back starts (after its open and first writes). */
    const READ_AFTER_LINES = 2;
    // The previous file's read-back and checks: each goes out after `after`
    // more data lines, or at the latest before the next compile (flushCheck).
    let pending: { step: Step; after: number }[] = [];
    let dataLines = 0;
    const flushCheck = () => {
      for (const p of pending) steps.push(p.step);
      pending = [];
    };
    /** A data line (it steps the read-back under way), then whatever of the pending checks is due. */
    const pushData = (step: Step) => {
      steps.push(step);
      dataLines++;
      while (pending.length > 0 && pending[0].after <= dataLines) steps.push(pending.shift()!.step);
    };
    all.forEach((file, k) => {
      const data = file.data;
      const base = done;
      done += data.length;
      const uploaded = status[k] !== "ok";
      if (uploaded) {
        const m = /^(-?\d+) ([0-9a-f]{8})$/.exec(status[k]);
        if (!m) throw new FlashError("repl", `unexpected answer from the board's check of ${file.name}: ${JSON.stringify(status[k].slice(0, 80))}`);
        const partSize = Number(m[1]);
        const from = partSize > 0 && partSize <= data.length && m[2] === crcHex(crc32(data.subarray(0, partSize))) ? partSize : 0;
        if (alreadyThere) resumedFrom = base + from; // the first file this run writes to
        alreadyThere = false;
        steps.push({ line: uploadOpenLine(file.name, from), ack: () => opts.onProgress?.({ done: base + from, total, from: resumedFrom }) });
        imageDataLines(file.name, data, from).forEach((c) => {
          pushData({ line: c.line, windowBytes: c.line.startsWith(DATA_PREFIX) ? quiet : undefined, ack: () => {
            lines++;
            opts.onProgress?.({ done: base + c.offset + c.length, total, from: resumedFrom });
          } });
        });
      }
      flushCheck();
      steps.push({ line: `=_fk.cc(${luaQuote(file.name)})`, timeoutMs: COMPILE_MS, ack: (out) => {
        if (out.startsWith("err ")) fail(`node.compile of ${file.name} failed on the board: ${out.slice(4, 204)}`);
        if (out !== "ok") fail(`${file.name}: the board skipped its compile after an earlier failure (${out})`);
        // Complete on the board: counted as done once the batch reaches it.
        if (!uploaded) opts.onProgress?.({ done: base + data.length, total, from: alreadyThere ? base + data.length : resumedFrom });
      } });
      const lc = bytecodeName(file.name);
      // The read-back needs one data line per READ_STEP bytes and one that finds the end.
      pending = [
        { after: dataLines + READ_AFTER_LINES, step: { line: `_fk.rb(${luaQuote(file.name)})`, windowBytes: quiet, ack: () => undefined } },
        { after: dataLines + READ_AFTER_LINES + Math.ceil(data.length / READ_STEP) + 1, step: { line: `=_fk.vr(${luaQuote(file.name)},"${wants[k]}")`, timeoutMs: COMPILE_MS, windowBytes: quiet, ack: (out) => {
        // An earlier step failed: a failed compile or check said so in its own answer; a data line's
        // write and an upload's open answer nothing, so their error comes here (_fk.why).
        const skipped = /^skip\t(.*)$/s.exec(out);
        if (skipped) fail(`${file.name} not checked: an earlier step failed on the board${skipped[1] === "nil" ? "" : ` (${skipped[1].slice(0, 200)})`}; ${INIT_NAME} not written, the board boots into the REPL`);
        if (out.startsWith("crc ")) fail(`${file.name} on the board has ${out.slice(4)} (bytes, CRC-32) after the upload; expected ${wants[k]}`);
        const have = /^ok (\d+)$/.exec(out);
        if (!have || Number(have[1]) <= 0) fail(`${lc} on the board (${out.replace(/^\w+ /, "")} bytes) does not load after node.compile`);
        bytecode.push({ name: lc, bytes: Number(have![1]) });
      } } },
      ];
    });
    // The last file's read-back, at once (no data lines follow to step it).
    flushCheck();
    // The sources go only once every .lc loads (the board skips this line after
    // any failure): the board boots bytecode or nothing (a damaged .lc fails
    // closed, never falls back to parsing source). Then init.lua, last, so the
    // board boots the firmware only once the image is complete. The removals
    // keep the board busy while init.lua's first lines arrive (WINDOW_BYTES).
    const last: Step[] = [{ line: `if not _fk.bad then for _,n in ipairs({${all.map((f) => luaQuote(f.name)).join(",")}}) do file.remove(n) end end`, ack: () => undefined }];
    if (last[0].line.length > MAX_LINE) throw new RangeError("flasher: too many image files for one remove line");
    // init.lua is always written (it was removed above): through init.lua.part,
    // whose CRC the board checks before it renames it into place (_fk.fin).
    last.push({ line: uploadOpenLine(INIT_NAME + PART, 0), ack: () => undefined });
    // Lines stay below the REPL's LUA_MAXINPUT (init.lua is longer than one line).
    for (const c of imageDataLines(INIT_NAME + PART, init, 0)) last.push({ line: c.line, windowBytes: c.line.startsWith(DATA_PREFIX) ? quiet : undefined, ack: () => undefined });
    last.push({ line: `=_fk.fin(${initQ},"${initWant}")`, ack: (out) => {
      if (out === "skip") fail(`${INIT_NAME} not written: a write of its upload failed; the board has no ${INIT_NAME} and boots into the REPL`);
      if (out.startsWith("err crc ")) fail(`${INIT_NAME + PART} on the board has ${out.slice(8)} (bytes, CRC-32) after the upload, expected ${initWant} (damaged on the wire?); removed, the board has no ${INIT_NAME} and boots into the REPL`);
      if (out !== "ok") fail(`${INIT_NAME} on the board: ${out.replace(/^err /, "")}; the board has no ${INIT_NAME} and boots into the REPL`);
    } });
    // No echo back on: node.restart() follows, and input_echo starts true at every boot (linput.c:25).
    steps.push(...last);
    await runLines(steps, (i, out) => steps[i].ack(out));
    if (alreadyThere) resumedFrom = total;
    uploadMs = performance.now() - tu;
    const restart = "node.restart()";
    await repl.fire(restart);
    // The restart begins once the line has left: its time on the wire.
    await new Promise((r) => setTimeout(r, Math.ceil(((restart.length + 1) * 10 * 1000) / baud)));
  } catch (e) {
    await repl.close();
    await port.close();
    if (e instanceof ReplError) throw new FlashError(e.code === "lua_error" ? "repl" : "aborted", `${opts.port}: ${e.message}; run fobkit flash again to continue where it stopped`);
    if (e instanceof FlashError && e.code === "aborted") throw new FlashError("aborted", `${opts.port}: ${e.message}`);
    throw e;
  }
  await repl.close();

  // The board restarts (ROM, bootloader, NodeMCU, init.lua): ask INFO until it
  // answers (BOOT_MIN_MS, INFO_TIMEOUTS_MS).
  await new Promise((r) => setTimeout(r, opts.restartWaitMs ?? BOOT_MIN_MS));
  const ask = async (timeoutMs: number, retries: number): Promise<KeyfobInfo> => {
    // A lease of the port that stayed open (its close keeps the port open).
    const tr = port.lease();
    try {
      const session = await DeviceSession.open(tr, { timeoutMs, retries });
      try {
        return await session.info();
      } finally {
        await session.close();
      }
    } catch (e) {
      await tr.close().catch(() => undefined);
      throw e;
    }
  };
  let info: KeyfobInfo | undefined;
  let last: unknown;
  try {
    for (const timeoutMs of INFO_TIMEOUTS_MS) {
      try {
        info = await ask(timeoutMs, 0);
        break;
      } catch (e) {
        last = e;
      }
    }
  } finally {
    await port.close();
    count(t);
  }
  if (info === undefined) {
    throw new FlashError("verify", `${opts.port}: the image is written and checked, but after the restart the firmware did not answer INFO in ${INFO_TIMEOUTS_MS.length} tries over ${(BOOT_MIN_MS + INFO_TIMEOUTS_MS.reduce((a, b) => a + b, 0)) / 1000} s (${(last as Error).message})`);
  }
  return {
    port: opts.port, imageBytes: total, crc: imageCrc, alreadyThere, resumedFrom, lines,
    wireBytesOut: wire.out, wireBytesIn: wire.in, uploadMs, totalMs: performance.now() - t0, bytecode, info,
  };
}
