/**
 * `uart` on the console UART (uart.c of dev-esp32 at 7c5bb151). Received
 * bytes are fed to the "data" callback exactly as uart_feed_data does
 * (uart.c:64-91): with a length n the callback gets n bytes at a time
 * (n = 0: every single byte); with an end character it gets each run up to
 * and including it, or 256 bytes (LUA_MAXINPUT). uart_feed_data returns at
 * once while no line buffer exists (uart.c:70-71), and only uart.start(id)
 * allocates one (uart.c:295-296; commit 53da95b5): a console that was never
 * started delivers nothing to its callback, whatever docs/modules/uart.md
 * says. On the console uart.start returns false all the same, because
 * platform_uart_start refuses the console (platform.c:316-321) after the
 * buffer was allocated. Unless a data callback was registered with
 * run_input = 0, the bytes also go to the Lua REPL (user_main.c:184-189
 * feeds linput.c first, then uart_feed_data); see repl.ts and console-rx.ts.
 */
import { lauxlib, lua, raise, bytesText, type LuaState } from "../fengari.js";
import type { Machine } from "../machine.js";

const CONSOLE = 0;
const LUA_MAXINPUT = 256;
/** What a never-written byte of a freshly malloc'd line buffer reads as (see stop). */
const STALE_BYTE = 0xce;
export const UART_BAUDS = [300, 600, 1200, 2400, 4800, 9600, 19200, 38400, 57600, 74880, 115200, 230400, 256000, 460800, 921600, 1843200, 3686400];

export interface UartPort {
  /** Deliver bytes the host sent; returns an error message if a callback failed. */
  feed(bytes: Uint8Array): string | undefined;
  /** Whether a data callback with run_input = 0 holds the console. */
  readonly captured: boolean;
  /** linput.c run_input: the REPL sees console input. */
  readonly runInput: boolean;
  /** linput.c input_echo: the REPL echoes what it reads (uart.setup's 6th argument). */
  readonly echo: boolean;
  /** uart_has_on_data_cb (uart.c:59-61). */
  readonly hasDataCallback: boolean;
  /** uart.start allocated the line buffer. */
  readonly started: boolean;
}

export function installUart(m: Machine): UartPort {
  let ref: number | undefined;
  let needLen = 0;
  let endChar = -1;
  let runInput = true;
  let echo = true;
  let line: number[] = [];
  /** uart.c line_buffer: allocated by uart.start, freed by uart.stop. */
  let lineBuffer = false;

  const checkId = (L: LuaState, idx: number): number => {
    const id = lauxlib.luaL_checkinteger(L, idx);
    if (id !== CONSOLE) raise(L, `uart id ${id}: only the console UART 0 is emulated`);
    return id;
  };

  m.defineModule("uart", {
    // platform.h:61-77 (the module table maps PLATFORM_UART_* through, uart.c:351-356).
    PARITY_NONE: 0,
    PARITY_EVEN: 1,
    PARITY_ODD: 2,
    STOPBITS_1: 1,
    STOPBITS_2: 2,
    STOPBITS_1_5: 3,
    setup: (L) => {
      checkId(L, 1);
      const baud = lauxlib.luaL_checkinteger(L, 2);
      const databits = lauxlib.luaL_checkinteger(L, 3);
      const parity = lauxlib.luaL_checkinteger(L, 4);
      const stopbits = lauxlib.luaL_checkinteger(L, 5);
      if (!UART_BAUDS.includes(baud)) raise(L, `baud ${baud} is not one uart.setup accepts`);
      if (databits !== 8 || parity !== 0 || stopbits !== 1) raise(L, "only 8N1 is emulated");
      if (lua.lua_type(L, 6) === lua.LUA_TTABLE) raise(L, "pin table is for non-console UARTs");
      if (!lua.lua_isnoneornil(L, 6)) echo = lauxlib.luaL_checkinteger(L, 6) > 0;
      m.hw.event({ event: "uart-config", baud });
      lua.lua_pushinteger(L, baud);
      return 1;
    },
    on: (L) => {
      let stack = 1;
      if (lua.lua_type(L, 1) === lua.LUA_TNUMBER) {
        checkId(L, 1);
        stack++;
      }
      const method = bytesText(lauxlib.luaL_checklstring(L, stack++));
      if (method !== "data") raise(L, `method '${method}' is not emulated (only "data")`);
      if (lua.lua_type(L, stack) === lua.LUA_TNUMBER) {
        // uart.c:118-124 at 7c5bb151: need_len = (uint16_t)n and end_char = -1 are stored on the port
        // before the range check, which clamps need_len to 255 and then raises; the old callback stays
        // registered (the error returns before :140's unref), now cutting chunks of 255. 65536 casts to 0.
        needLen = lauxlib.luaL_checkinteger(L, stack++) & 0xffff;
        endChar = -1;
        if (needLen > 255) {
          needLen = 255;
          raise(L, "wrong arg range");
        }
      } else if (lua.lua_type(L, stack) === lua.LUA_TSTRING) {
        const end = lua.lua_tolstring(L, stack++);
        if (end.length !== 1) raise(L, "wrong arg range");
        endChar = end[0];
        needLen = 0;
      }
      m.unref(ref);
      ref = undefined;
      runInput = true;
      if (lua.lua_type(L, stack) === lua.LUA_TFUNCTION) {
        const run = lua.lua_type(L, stack + 1) === lua.LUA_TNUMBER ? lua.lua_tointeger(L, stack + 1) : 1;
        lua.lua_pushvalue(L, stack);
        ref = m.ref();
        runInput = run !== 0;
      }
      return 0;
    },
    start: (L) => {
      checkId(L, 1);
      lineBuffer = true;
      // platform_uart_start returns -1 for the console: the result is false though input now flows.
      lua.lua_pushboolean(L, false);
      return 1;
    },
    stop: (L) => {
      checkId(L, 1);
      // uart.c:280-284 frees line_buffer and nothing else: line_position is
      // reset only by luaopen_uart (:374) and by a delivered chunk (:88), and
      // platform_uart_stop does nothing on the console (platform.c:344-349).
      // So the half-assembled count survives stop; the next uart.start mallocs
      // a fresh buffer (:295-296) whose first line_position bytes were never
      // written, and the next chunk comes that many bytes early carrying them.
      // luaM_malloc does not clear memory, so those bytes are indeterminate on
      // the board; here they read 0xCE (ESP-IDF's malloc fill pattern under
      // heap poisoning) so firmware that counts on the old bytes fails here too.
      lineBuffer = false;
      line = line.map(() => STALE_BYTE);
      return 0;
    },
    write: (L) => {
      checkId(L, 1);
      const n = lua.lua_gettop(L);
      const out: number[] = [];
      for (let i = 2; i <= n; i++) {
        if (lua.lua_type(L, i) === lua.LUA_TNUMBER) {
          const b = lauxlib.luaL_checkinteger(L, i);
          if (b < 0 || b > 255) raise(L, `byte ${b} out of 0..255`);
          out.push(b);
        } else for (const b of lauxlib.luaL_checklstring(L, i) as Uint8Array) out.push(b);
      }
      m.hw.uartTx(Uint8Array.from(out));
      return 0;
    },
  });

  return {
    get captured() {
      return ref !== undefined && !runInput;
    },
    get runInput() {
      return runInput;
    },
    get echo() {
      return echo;
    },
    get hasDataCallback() {
      return ref !== undefined;
    },
    get started() {
      return lineBuffer;
    },
    feed(bytes: Uint8Array): string | undefined {
      // uart_feed_data (uart.c:65-91). The console task calls it only while a
      // data callback is registered (user_main.c:187-189; Emulator.consoleTask):
      // bytes arriving without one are never stored. uart.c:70-71: no buffer,
      // nothing stored. A half-assembled chunk stays across uart.on (which keeps
      // line_position, :95-175) and goes to the next callback with what follows.
      if (!lineBuffer) return undefined;
      const maxWanted = endChar >= 0 && needLen === 0 ? LUA_MAXINPUT : needLen;
      for (const ch of bytes) {
        line.push(ch);
        if (line.length >= maxWanted || (endChar >= 0 && ch === endChar)) {
          const chunk = Uint8Array.from(line);
          line = [];
          const r = ref;
          if (r === undefined) continue;
          const err = m.callRef(r, () => {
            m.pushBytes(chunk);
            return 1;
          });
          if (err !== undefined || m.halted) return err;
        }
      }
      return undefined;
    },
  };
}
