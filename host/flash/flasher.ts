/**
 * Install the firmware on a factory-fresh NodeMCU board through its Lua REPL
 * (the board boots into the REPL while SPIFFS has no init.lua).
 *
 * 1. Get a clean prompt. No prompt: ask the protocol's INFO; a board that
 *    answers already runs fobkit and keeps its UART from the REPL, so there
 *    is nothing to install (refused; "locked" if it says so).
 * 2. Define _fk.crc (crc32.ts) on the board: every check is a CRC-32 the
 *    board computes over what it reads back from flash.
 * 3. fobkit.lua already right: skip. Else the upload goes to fobkit.lua.part
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
 * 6. node.restart(); the firmware must answer INFO over the protocol.
 */
import { LINK_BAUD } from "../../protocol/codes.js";
import { DeviceSession, type KeyfobInfo } from "../device/session.js";
import { SerialTransport } from "../transport/serial-transport.js";
import type { Transport, TransportKind } from "../transport/transport.js";
import { kindOfName } from "../transport/discover.js";
import { BOARD_CRC_LUA, crc32, crcHex } from "./crc32.js";
import { luaChunks, luaQuote } from "./lua-chunks.js";
import { ReplClient, ReplError } from "./repl-client.js";

export const IMAGE_NAME = "fobkit.lua";
export const INIT_NAME = "init.lua";
/** Kconfig LUA_INIT_STRING "@init.lua" runs this at boot (init-lua.ts: fail-closed). */
export { INIT_SOURCE } from "./init-lua.js";
import { INIT_SOURCE } from "./init-lua.js";
const PART = ".part";
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
  image: Uint8Array;
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
  /** The image was already complete on the board. */
  alreadyThere: boolean;
  /** Offset the upload continued from (0: from the start). */
  resumedFrom: number;
  /** REPL lines carrying image data this run. */
  lines: number;
  /** Bytes on the wire this run, both directions (REPL and protocol). */
  wireBytesOut: number;
  wireBytesIn: number;
  uploadMs: number;
  totalMs: number;
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
  const done = await remoteCrc(repl, name);
  if (done.size !== want.size || done.crc !== want.crc) {
    throw new FlashError("verify", `${name} on the board has ${done.size} bytes, CRC-32 ${done.crc} after the rename; expected ${want.size} bytes, ${want.crc}`);
  }
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
  const total = image.length;
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
  let alreadyThere = false;
  let uploadMs = 0;
  try {
    if (!(await repl.sync())) {
      await repl.close();
      count(t);
      return await probeFirmware(open, opts.port);
    }
    await repl.exec('local o=rawget(_G,"_fk") if o and o.f then pcall(o.f.close,o.f) end _fk={}', lineMs);
    for (const l of BOARD_CRC_LUA) {
      const a = await repl.run(l, lineMs);
      if (/Lua error/.test(a.output)) throw new FlashError("repl", `the board rejected the CRC helper: ${a.output.slice(0, 200)}`);
    }
    const imageCrc = crcHex(crc32(image));
    const installed = await remoteCrc(repl, IMAGE_NAME);
    const tu = performance.now();
    if (installed.size === total && installed.crc === imageCrc) {
      alreadyThere = true;
      resumedFrom = total;
      opts.onProgress?.({ done: total, total, from: total });
    } else {
      const part = await remoteCrc(repl, IMAGE_NAME + PART);
      if (part.size > 0 && part.size <= total && part.crc === crcHex(crc32(image.subarray(0, part.size)))) resumedFrom = part.size;
      await repl.exec(`_fk.f=assert(io.open(${luaQuote(IMAGE_NAME + PART)},"${resumedFrom > 0 ? "ab" : "wb"}"))`, lineMs);
      opts.onProgress?.({ done: resumedFrom, total, from: resumedFrom });
      const chunks = luaChunks(image, resumedFrom, "_fk.f:write(", ")");
      const baud = t.kind === "serial" ? (t as SerialTransport).baudRate : LINK_BAUD;
      await repl.exec(`uart.setup(0,${baud},8,0,1,0)`, lineMs);
      const probe = await repl.run("=1", lineMs);
      const echoOff = probe.output === "1" && !probe.echoed;
      const ack = (i: number) => opts.onProgress?.({ done: chunks[i].offset + chunks[i].length, total, from: resumedFrom });
      if (echoOff) {
        await repl.pipeline(chunks.map((c) => c.line), WINDOW, lineMs, (i) => {
          lines++;
          ack(i);
        }, opts.signal);
        await repl.exec(`uart.setup(0,${baud},8,0,1,1)`, lineMs);
      } else {
        for (let i = 0; i < chunks.length; i++) {
          if (opts.signal?.aborted) throw new FlashError("aborted", "interrupted; run fobkit flash again to continue where it stopped");
          await repl.exec(chunks[i].line, lineMs);
          lines++;
          ack(i);
        }
      }
      await repl.exec("local f=_fk.f _fk.f=nil assert(f:close())", lineMs);
      await commit(repl, IMAGE_NAME, image, lineMs);
    }
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
    wireBytesOut: wire.out, wireBytesIn: wire.in, uploadMs, totalMs: performance.now() - t0, info,
  };
}
