/**
 * NodeMCU's Lua REPL on the console UART, as dev-esp32 has it:
 * components/lua/common/linput.c (line assembly, echo) and
 * components/lua/lua-5.3/lua.c (dojob: compile, multi-line, print results).
 *
 * - Input bytes are echoed (unless uart.setup(0, ..., echo = 0) turned echo
 *   off); CR, LF, CR LF and LF CR each end a line; BS/DEL erase one
 *   character ("\b \b" echoed); a line that reaches LUA_MAXINPUT - 1
 *   characters is discarded and assembly starts again (linput.c).
 * - An empty line just prints the current prompt. Any other line is a job:
 *   "=expr" means "return expr" on a first line; a chunk whose syntax error
 *   ends in "<eof>" is incomplete and is kept for the next line (prompt
 *   ">> "); otherwise it runs under pcall, results are printed with print,
 *   an error as print("Lua error: ", msg); then the prompt "> " is written.
 *   REPL errors never restart the chip (docall, not luaL_pcallx).
 * - Whether the REPL sees input at all is uart.on's run_input (see
 *   nodemcu/uart.ts): the lockdown of the firmware.
 */
import { lua, lauxlib, bytesText, latin1, toLuaString } from "./fengari.js";
import type { Machine } from "./machine.js";

/** luaconf.h:487-488 of dev-esp32 (lua-5.3): the console line buffer, terminating LF included. */
export const LUA_MAXINPUT = 256;
/** lua.c:28-30 LUA_PROMPT / LUA_PROMPT2. */
export const LUA_PROMPT = "> ";
export const LUA_PROMPT2 = ">> ";
/**
 * lua.c:245 (pmain): "\n%s build %s powered by %s [%s] on IDF %s\n" with
 * NODE_VERSION, BUILD_DATE, LUA_RELEASE, XLUA_OPT_STR (luaconf.h: int32 and
 * single-precision floats by default), IDF_VER.
 */
export const BANNER = "\nNodeMCU ESP32 build 2024-06-01 powered by Lua 5.3.5 [5.3-int32-singlefp] on IDF v4.4.3\n";
/** lauxlib.c:725-731 errfile() for LUA_INIT_STRING "@init.lua" when SPIFFS has no init.lua. */
export const NO_INIT_MESSAGE = "cannot open init.lua: No such file or directory";

const CR = 13;
const LF = 10;
const BS = 8;
const DEL = 0x7f;
const EOF_MARK = "<eof>";

export class Repl {
  private readonly m: Machine;
  private line: number[] = [];
  private lastNl = 0;
  /** The chunk so far of an incomplete multi-line statement (lua.c:165-199 MLref). */
  private pending: Uint8Array | undefined;
  private prompt = LUA_PROMPT;

  constructor(m: Machine) {
    this.m = m;
  }

  private tx(s: string | Uint8Array): void {
    this.m.hw.uartTx(typeof s === "string" ? latin1(s) : s);
  }

  /**
   * linput.c:51-100 feed_lua_input: assemble lines from UART bytes. Complete lines
   * are handed to submit (which runs them as tasks, like the stdin pipe).
   */
  feed(bytes: Uint8Array, echo: boolean, submit: (line: Uint8Array) => void): void {
    for (const ch of bytes) {
      if ((ch === CR && this.lastNl === LF) || (ch === LF && this.lastNl === CR)) continue;
      if (ch === DEL || ch === BS) {
        if (this.line.length > 0) {
          if (echo) this.tx("\b \b");
          this.line.pop();
        }
        continue;
      }
      if (ch === CR || ch === LF) {
        this.lastNl = ch;
        if (echo) this.tx("\n");
        if (this.line.length === 0) this.tx(this.prompt);
        else {
          const l = Uint8Array.from(this.line);
          this.line = [];
          submit(l);
        }
        continue;
      }
      this.lastNl = 0;
      if (echo) this.tx(Uint8Array.of(ch));
      if (this.line.length + 1 >= LUA_MAXINPUT) this.line = []; // "a large line, discard it"
      this.line.push(ch);
    }
  }

  /** lua.c:164-214 dojob: compile one line (with any pending lines), run it, print, prompt. */
  dojob(input: Uint8Array): string | undefined {
    const m = this.m;
    const L = m.L;
    let chunk: Uint8Array;
    if (this.pending !== undefined) {
      chunk = new Uint8Array(this.pending.length + 1 + input.length);
      chunk.set(this.pending);
      chunk[this.pending.length] = LF;
      chunk.set(input, this.pending.length + 1);
    } else if (input[0] === 0x3d /* '=' */) {
      chunk = new Uint8Array([...latin1("return "), ...input.subarray(1)]);
    } else chunk = input;
    const top = lua.lua_gettop(L);
    const status = lauxlib.luaL_loadbufferx(L, chunk, chunk.length, toLuaString("=stdin"), null);
    if (status === lua.LUA_ERRSYNTAX && bytesText(lua.lua_tolstring(L, -1)).endsWith(EOF_MARK)) {
      lua.lua_settop(L, top);
      this.pending = chunk;
    } else {
      this.pending = undefined;
      let ok = status === lua.LUA_OK;
      if (ok) {
        ok = lua.lua_pcall(L, 0, lua.LUA_MULTRET, 0) === lua.LUA_OK;
        if (m.halted) return undefined; // node.restart() or a power cut inside the line
      }
      const n = lua.lua_gettop(L) - top;
      if (n > 0) {
        if (!ok && !lua.lua_isnil(L, -1)) {
          lua.lua_pushstring(L, toLuaString("Lua error: "));
          lua.lua_insert(L, -2);
        }
        const k = lua.lua_gettop(L) - top;
        lua.lua_getglobal(L, toLuaString("print"));
        lua.lua_insert(L, -k - 1);
        if (lua.lua_pcall(L, k, 0, 0) !== lua.LUA_OK) {
          if (m.halted) return undefined;
          this.tx(`error calling 'print' (${bytesText(lua.lua_tolstring(L, -1) ?? latin1("?"))})\n`);
        }
      }
      lua.lua_settop(L, top);
    }
    this.prompt = this.pending !== undefined ? LUA_PROMPT2 : LUA_PROMPT;
    this.tx(this.prompt);
    return undefined;
  }

  /** Boot without init.lua: the banner, the failed init (printed), the first prompt. */
  bootWithoutInit(): void {
    this.tx(BANNER);
    this.tx(NO_INIT_MESSAGE + "\n");
    // pmain queued " \n" before running init: it yields the first prompt.
    this.dojob(latin1(" "));
  }

  /** Boot with init.lua, as pmain does it: the banner, then init.lua (its error, if any, is the caller's to print). */
  bootWithInit(runInit: () => string | undefined): string | undefined {
    this.tx(BANNER);
    return runInit();
  }

  /**
   * The job pmain queued before running init.lua: it prints the first
   * prompt, after init.lua and its error message, and even when init.lua
   * took the UART away from the REPL. So a host on the line sees this text
   * before the firmware's first frame, as it would from the real board.
   */
  firstPrompt(): undefined {
    this.dojob(latin1(" "));
    return undefined;
  }
}
