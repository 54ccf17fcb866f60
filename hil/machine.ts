/**
 * One power-on life of the emulated ESP32: a fresh fengari Lua state with
 * NodeMCU's libraries (base, coroutine, table, string, math, utf8, io, debug;
 * no os, as in the dev-esp32 build defaults: components/lua/Kconfig:127-133
 * LUA_REQUIRED_MODULES selects LUA_BUILTIN_DEBUG in every build, and 5.3's
 * ldblib.c:445-463 registers the whole library) and the emulated NodeMCU
 * modules of the build (nodemcu-build.ts). A reset or power cut throws the whole state away, as on the chip.
 *
 * Anything outside the emulated subset fails loudly: reading an unknown
 * global or an unknown field of an emulated module raises a Lua error that
 * names it.
 */
import { lauxlib, lua, lualib, markReadOnly, setRomMetatableStore, throwMemoryError, pushBytes, pushText, raise, toLuaString, bytesText, type LuaJsFunction, type LuaState } from "./fengari.js";
import type { Ds3231 } from "./ds3231.js";
import type { FlashStore } from "./flash.js";
import type { Max7219 } from "./max7219.js";
import type { VirtualClock } from "./virtual-clock.js";
import type { Fault } from "./faults.js";
import { IMAGE_FILE } from "./install.js";
import { luaHeapBytes, markEmulatorOnly } from "./lua-heap.js";
import type { SleepHardware } from "./nodemcu/sleep.js";

/** What the machine's modules reach outside the Lua state: the board's hardware. */
export interface Hardware {
  readonly clock: VirtualClock;
  readonly rtc: Ds3231;
  readonly display: Max7219;
  readonly flash: FlashStore;
  /** Chip-select GPIO the MAX7219's LOAD pin is wired to. */
  readonly displayCsPin: number;
  /** Station MAC, 6 bytes. */
  readonly mac: Uint8Array;
  /** False: the firmware was built without the sodium module (no RNG). */
  readonly rngAvailable: boolean;
  readonly freeHeap: number;
  /** Faults switched on (faults.ts); live: the emulator may change it between tasks. */
  readonly faults: ReadonlySet<Fault>;
  gpioLevel(pin: number): number;
  /** gpio.write on an output pin: the board's power switches react (issue 12). */
  gpioOut(pin: number, level: number): void;
  /** node.bootreason and light sleep (nodemcu/sleep.ts). */
  readonly sleep: SleepHardware;
  uartTx(bytes: Uint8Array): void;
  /**
   * The running task keeps the Lua task pump busy for ms more of virtual time
   * (a blocking UART write, a flash write): tasks posted meanwhile wait in
   * NodeMCU's queues, and console input piles up in the UART buffers.
   */
  spend(ms: number): void;
  event(e: EmulatorEvent): void;
}

export type EmulatorEvent =
  | { event: "display"; text: string }
  | { event: "boot"; init: boolean }
  | { event: "repl"; message: string }
  | { event: "error"; kind: "lua" | "init" | "no-init" | "image"; message: string }
  | { event: "warning"; message: string }
  | { event: "power-cut"; reason: string }
  | { event: "restart"; reason: string }
  | { event: "hung"; reason: string }
  | { event: "print"; text: string }
  | { event: "uart-config"; baud: number }
  | { event: "uart-overrun"; lost: number }
  | { event: "sleep"; pins: number[]; level: number; timerMs: number | null; atMs: number; rtc: number }
  | { event: "wake"; cause: "ext1" | "timer"; atMs: number; rtc: number }
  | { event: "usb"; present: boolean };

/** Thrown by nothing: halting is a flag plus a Lua error, see Machine.halt. */
export type HaltReason = "power-cut" | "restart" | "hung" | "deep-sleep" | "panic";
/**
 * Virtual ms one Lua VM instruction keeps the CPU busy: 300 cycles, the
 * project's conservative estimate (tools/power-budget.ts cyclesPerVmInstruction),
 * at ESP-IDF's default 160 MHz (esp_system/port/soc/esp32/Kconfig.cpu,
 * ESP_DEFAULT_CPU_FREQ_MHZ_160): 1.9 us. The task watchdog counts it; in
 * realtime mode (MachineOptions.chargeCpu) it is spent in virtual time too.
 */
export const MS_PER_VM_INSTRUCTION = 300 / 160_000;
/**
 * The task watchdog: a task that computes for CONFIG_ESP_TASK_WDT_TIMEOUT_S
 * (5 s, ESP-IDF esp_system/Kconfig:447-452) starves IDLE0, which the watchdog
 * watches (:456-459), and NodeMCU makes it panic (sdkconfig.defaults:19
 * CONFIG_ESP_TASK_WDT_PANIC=y). Blocking waits (i2c, sleep) let IDLE run and do not count.
 */
export const TASK_WDT_MS = 5000;
/** What ESP-IDF prints when it fires (esp_system/task_wdt/task_wdt.c:519). */
export const TASK_WDT_MESSAGE = "E task_wdt: Task watchdog got triggered. The following tasks/users did not reset the watchdog in time:\r\nE task_wdt:  - IDLE0 (CPU 0)";
/** Without instruction counting the hook runs every this many instructions, for the watchdog. */
const WDT_HOOK_EVERY = 1000;
/**
 * What ESP-IDF's panic handler prints for a store into flash-mapped
 * read-only data (DROM): EXCCAUSE 3 (panic_arch.c:368, :386; a write to
 * DROM is a LoadStoreError, docs/en/api-guides/fatal-errors.rst:352-359),
 * as panic.c:276-288 writes it (panic_print_dec pads the core to two
 * characters, :157-169). The Lua task's core is not pinned; 0 is printed.
 */
export const LOAD_STORE_ERROR_MESSAGE = "Guru Meditation Error: Core  0 panic'ed (LoadStoreError). Exception was unhandled.";
/**
 * What an allocation the heap cannot take raises, after the emergency full
 * collection (lmem.c:86-94, luaD_throw LUA_ERRMEM): the preregistered
 * message (lstring.c:25 MEMERRMSG, ldo.c:93-95 seterrorobj), no position.
 */
export const NOT_ENOUGH_MEMORY = "not enough memory";
/** Key of Machine.state holding what a panic printed (Machine.panic). */
export const PANIC_STATE = "panic";

export interface MachineOptions {
  countInstructions: boolean;
  /**
   * Each VM instruction keeps Lua busy for MS_PER_VM_INSTRUCTION of virtual
   * time (Hardware.spend), so output and later tasks wait for the computing,
   * as on the board. Realtime only, as the SPIFFS time (emulator.ts chargeFlashTime).
   */
  chargeCpu?: boolean;
  /** NodeMCU module names the build lacks: reading such a global gives nil, as on the board. */
  absentModules?: ReadonlySet<string>;
}

/** Message handler for pcall: the error plus a Lua stack traceback. */
function traceback(L: LuaState): number {
  const msg = lua.lua_type(L, 1) === lua.LUA_TSTRING ? lua.lua_tolstring(L, 1) : toLuaString(String(lua.lua_tojsstring(L, 1)));
  lauxlib.luaL_traceback(L, L, msg, 1);
  return 1;
}

const HALT_MESSAGE = "emulator: execution stopped (power cut, restart or deep sleep)";

export class Machine {
  readonly L: LuaState;
  readonly hw: Hardware;
  /** Set when the chip stops (power cut, node.restart): no more Lua runs. */
  halted: HaltReason | undefined;
  instructions = 0;
  /** Modules hang their per-boot state here. */
  readonly state = new Map<string, unknown>();
  private readonly countInstructions: boolean;
  private readonly chargeCpu: boolean;
  private readonly absentModules: ReadonlySet<string>;
  /** Tables returned by top-level dofile calls, for Emulator.callImage. */
  readonly dofileResults = new Map<string, number>();

  constructor(hw: Hardware, opts: MachineOptions) {
    this.hw = hw;
    this.countInstructions = opts.countInstructions;
    this.chargeCpu = opts.chargeCpu ?? false;
    this.absentModules = opts.absentModules ?? new Set();
    const L = lauxlib.luaL_newstate();
    this.L = L;
    const libs: [string, unknown][] = [
      ["_G", lualib.luaopen_base],
      ["coroutine", lualib.luaopen_coroutine],
      ["table", lualib.luaopen_table],
      ["string", lualib.luaopen_string],
      ["math", lualib.luaopen_math],
      ["utf8", lualib.luaopen_utf8],
      ["debug", lualib.luaopen_debug],
    ];
    for (const [name, open] of libs) {
      lauxlib.luaL_requiref(L, toLuaString(name), open, 1);
      lua.lua_pop(L, 1);
    }
    this.installHook();
    // setmetatable on a ROTable writes into flash on the board: a CPU exception (fengari.ts FENGARI_PATCHES).
    setRomMetatableStore(L, (L1: LuaState) => this.panic(LOAD_STORE_ERROR_MESSAGE, L1));
  }

  /**
   * Set-up is done (the modules are in, the ROTables sealed): from now on
   * the heap is metered (heapCharge), starting from a census.
   */
  meterHeap(): void {
    this.overHeap();
    this.L.l_G.heapCharge = (L1: LuaState, bytes: number) => this.heapCharge(L1, bytes);
  }

  /** Instructions the current task has run (watchdog; startTask resets it). */
  private taskInstructions = 0;

  /** What the last heap census counted (lua-heap.ts). */
  private heapLast = 0;
  /** Bytes allocated since (FENGARI_PATCHES' charges): the heap holds at most heapLast + heapDebt. */
  private heapDebt = 0;

  /**
   * The Lua heap the board would hold now (lua-heap.ts luaHeapBytes: what is
   * reachable, at NodeMCU's sizes; a lower bound).
   */
  heapBytes(): number {
    return luaHeapBytes(this.L, this.dofileResults.values());
  }

  /** Count the heap now; true when what Lua holds is more than the board's heap (Hardware.freeHeap) takes. */
  private overHeap(): boolean {
    this.heapLast = this.heapBytes();
    this.heapDebt = 0;
    return this.heapLast > this.hw.freeHeap;
  }

  /**
   * The heap meter (fengari.ts FENGARI_PATCHES call it at each allocation):
   * while what was counted plus what was allocated since could exceed the
   * heap, count again; if what is reachable does exceed it, the allocation
   * fails with LUA_ERRMEM, as luaM_realloc_ after its emergency collection
   * (lmem.c:86-94: what is unreachable is what that collection frees). Only
   * inside a protected call: the emulator's own pushes outside one are not
   * the firmware's. After a raise nothing is checked until the hook or the
   * next task (the error's own message is allocated on the way out).
   */
  private heapCharge(L: LuaState, bytes: number): void {
    const g = L.l_G;
    this.heapDebt += bytes + (g.heapOwed ?? 0);
    g.heapOwed = 0;
    if (g.heapRaising || !L.errorJmp || this.halted || this.heapLast + this.heapDebt <= this.hw.freeHeap) return;
    if (!this.overHeap()) return;
    g.heapRaising = true;
    throwMemoryError(L);
  }

  /** A NodeMCU task begins: the task watchdog's count starts again (the task loop lets IDLE run). */
  startTask(): void {
    this.taskInstructions = 0;
    this.L.l_G.heapRaising = false;
  }

  private installHook(): void {
    const every = this.countInstructions || this.halted ? 1 : WDT_HOOK_EVERY;
    lua.lua_sethook(
      this.L,
      (L: LuaState) => {
        if (this.halted) raise(L, HALT_MESSAGE);
        if (this.countInstructions) this.instructions += every;
        this.taskInstructions += every;
        if (this.chargeCpu) this.hw.spend(every * MS_PER_VM_INSTRUCTION);
        if (this.taskInstructions * MS_PER_VM_INSTRUCTION > TASK_WDT_MS) this.panic(TASK_WDT_MESSAGE);
        // A memory error has unwound to its pcall (its message is in place): allocations are checked again.
        L.l_G.heapRaising = false;
      },
      lua.LUA_MASKCOUNT,
      every,
    );
  }

  /**
   * Stop the chip from inside a running Lua call: mark halted, make every
   * further instruction and API call fail, and unwind with a Lua error.
   */
  halt(reason: HaltReason, L: LuaState = this.L): never {
    this.halted = reason;
    this.installHook();
    return raise(L, HALT_MESSAGE);
  }

  /**
   * The chip panics (an abort or assert in ESP-IDF or FreeRTOS): what it
   * printed is kept for the Emulator, which prints it and restarts the CPU
   * (the panic handler's esp_restart_noos, components/esp_system/panic.c:446).
   * No pcall catches it.
   */
  panic(message: string, L: LuaState = this.L): never {
    this.state.set(PANIC_STATE, message);
    return this.halt("panic", L);
  }

  /** Wrap a JS implementation so the emulator's own failures become named Lua errors. */
  fn(qualified: string, impl: LuaJsFunction): LuaJsFunction {
    return (L: LuaState) => {
      if (this.halted) return raise(L, HALT_MESSAGE);
      let result: number;
      let failure: string | undefined;
      try {
        result = impl(L);
      } catch (e) {
        // fengari signals Lua errors by throwing a non-Error object: let it through.
        if (!(e instanceof Error)) throw e;
        failure = `${qualified}: ${e.message}`;
        result = 0;
      }
      if (failure !== undefined) return raise(L, failure);
      return result;
    };
  }

  /** Push a table whose unknown fields raise a Lua error naming them. */
  pushStrictTable(qualified: string, fields: Record<string, LuaJsFunction | number | string>, what = "NodeMCU function", L: LuaState = this.L): void {
    lua.lua_newtable(L);
    for (const [k, v] of Object.entries(fields)) {
      if (typeof v === "function") lua.lua_pushcfunction(L, this.fn(`${qualified}.${k}`, v));
      else if (typeof v === "number") lua.lua_pushinteger(L, v);
      else pushText(L, v);
      lua.lua_setfield(L, -2, toLuaString(k));
    }
    this.setStrictMetatable(qualified, what, L);
  }

  /** Give the table on top of the stack an __index that fails loudly. */
  setStrictMetatable(qualified: string, what: string, L: LuaState = this.L): void {
    lua.lua_newtable(L);
    lua.lua_pushcfunction(L, (L2: LuaState) => {
      const key = lua.lua_type(L2, 2) === lua.LUA_TSTRING ? bytesText(lua.lua_tolstring(L2, 2)) : String(lua.lua_tojsstring(L2, 2));
      return raise(L2, `NodeMCU emulator: ${what} ${qualified}.${key} is not provided (outside the emulated NodeMCU subset)`);
    });
    lua.lua_setfield(L, -2, toLuaString("__index"));
    lua.lua_setmetatable(L, -2);
  }

  /** Define a global module table. */
  defineModule(name: string, fields: Record<string, LuaJsFunction | number | string>): void {
    this.pushStrictTable(name, fields);
    lua.lua_setglobal(this.L, toLuaString(name));
    // io is a RAM table on the board (liolib.c:767-768 luaL_newlib); the C modules are ROTables.
    if (name !== "io") this.romModules.push(name);
  }

  private readonly romModules: string[] = [];

  /**
   * After set-up, make the board's ROTables read-only (fengari.ts markReadOnly):
   * the standard libraries in linit.c's rotables (components/lua/common/linit.c:103-123:
   * string, table, coroutine, debug, math, utf8), every C module (LROT tables) with
   * its sub-tables, and their metatables; the strings' metatable is strlib itself
   * (lua-5.3/lstrlib.c:1557-1559, :1583-1587). _G, package and io stay RAM tables.
   */
  sealRomTables(): void {
    const L = this.L;
    const seal = (depth: number): void => {
      markReadOnly(L, -1);
      if (lua.lua_getmetatable(L, -1)) {
        markReadOnly(L, -1);
        lua.lua_pop(L, 1);
      }
      if (depth === 0) return;
      lua.lua_pushnil(L);
      while (lua.lua_next(L, -2) !== 0) {
        if (lua.lua_type(L, -1) === lua.LUA_TTABLE) seal(depth - 1);
        lua.lua_pop(L, 1);
      }
    };
    for (const name of ["string", "table", "coroutine", "debug", "math", "utf8", ...this.romModules]) {
      if (lua.lua_getglobal(L, toLuaString(name)) === lua.LUA_TTABLE) seal(1);
      lua.lua_pop(L, 1);
    }
    pushText(L, "");
    if (lua.lua_getmetatable(L, -1)) {
      seal(0);
      lua.lua_pop(L, 1);
    }
    lua.lua_pop(L, 1);
  }

  /** Userdata object of a named class, carrying a JS object. */
  pushObject(L: LuaState, className: string, obj: object, methods: Record<string, LuaJsFunction>): void {
    const data = lua.lua_newuserdata(L, 0);
    data.obj = obj;
    if (lauxlib.luaL_newmetatable(L, toLuaString(className)) !== 0) {
      this.pushStrictTable(className, methods, "method", L);
      // The class's methods and metatable are ROTables too (luaL_rometatable in the modules).
      markReadOnly(L, -1);
      lua.lua_getmetatable(L, -1);
      markReadOnly(L, -1);
      lua.lua_pop(L, 1);
      lua.lua_setfield(L, -2, toLuaString("__index"));
      markReadOnly(L, -1);
    }
    lua.lua_setmetatable(L, -2);
  }

  /** The JS object of a userdata argument of the given class. */
  checkObject<T>(L: LuaState, idx: number, className: string): T {
    const data = lauxlib.luaL_checkudata(L, idx, toLuaString(className));
    return data.obj as T;
  }

  /**
   * Make reading an undefined global an error. Modules the build lacks
   * (absentModules) and those `absent` by an injected fault read as nil, as on the board.
   */
  strictGlobals(absent: ReadonlySet<string> = new Set()): void {
    const L = this.L;
    lua.lua_pushglobaltable(L);
    lua.lua_newtable(L);
    lua.lua_pushcfunction(L, (L2: LuaState) => {
      const key = lua.lua_type(L2, 2) === lua.LUA_TSTRING ? bytesText(lua.lua_tolstring(L2, 2)) : "?";
      if (this.absentModules.has(key) || absent.has(key)) {
        lua.lua_pushnil(L2);
        return 1;
      }
      return raise(L2, `NodeMCU emulator: global '${key}' is not provided (outside the emulated NodeMCU subset)`);
    });
    lua.lua_setfield(L, -2, toLuaString("__index"));
    // _G has no metatable on the board: the heap census (lua-heap.ts) leaves this one out.
    markEmulatorOnly(L, -1);
    lua.lua_setmetatable(L, -2);
    lua.lua_pop(L, 1);
  }

  /** Keep the value on top of the stack alive; returns a registry reference. */
  ref(): number {
    return lauxlib.luaL_ref(this.L, lua.LUA_REGISTRYINDEX);
  }

  unref(ref: number | undefined): void {
    if (ref !== undefined) lauxlib.luaL_unref(this.L, lua.LUA_REGISTRYINDEX, ref);
  }

  /**
   * Call the function behind `ref` with arguments pushed by pushArgs, the way
   * NodeMCU runs a callback from its task queue (luaL_pcallx). Returns the
   * error message if the callback failed, undefined if it ran.
   */
  callRef(ref: number, pushArgs: () => number): string | undefined {
    if (this.halted) return undefined;
    const L = this.L;
    lua.lua_rawgeti(L, lua.LUA_REGISTRYINDEX, ref);
    return this.pcall(pushArgs(), 0);
  }

  /** pcall the function under nargs arguments with a traceback; leaves nresults on success. */
  pcall(nargs: number, nresults: number): string | undefined {
    const L = this.L;
    const base = lua.lua_gettop(L) - nargs;
    lua.lua_pushcfunction(L, traceback);
    lua.lua_insert(L, base);
    const status = lua.lua_pcall(L, nargs, nresults, base);
    lua.lua_remove(L, base);
    if (status === lua.LUA_OK) return undefined;
    const message = lua.lua_type(L, -1) === lua.LUA_TSTRING ? bytesText(lua.lua_tolstring(L, -1)) : "(non-string error)";
    lua.lua_pop(L, 1);
    if (this.halted) return undefined; // the stop unwound the stack; not a firmware error
    return message;
  }

  /** Load a chunk of bytes under a chunk name; pushes the function. Error message or undefined. */
  load(code: Uint8Array, chunkName: string, mode: string | null = null): string | undefined {
    // lauxlib's message for LUA_ERRMEM: the board compiles the image in RAM.
    if ((chunkName === "@" + IMAGE_FILE || chunkName === "@" + IMAGE_FILE.replace(/\.lua$/, ".lc")) && this.hw.faults.has("oom-at-load")) return "not enough memory";
    // lauxlib.c luaL_loadfilex (lauxlib.c:768-811): mode NULL (dofile, require, node.compile) takes
    // text or the bytecode node.compile wrote; loadfile passes its own (ldo.c:761-767 checkmode).
    const status = lauxlib.luaL_loadbufferx(this.L, code, code.length, toLuaString(chunkName), mode === null ? null : toLuaString(mode));
    if (status === lua.LUA_OK) {
      // The loaded function's Protos and constants are on the heap now (lundump.c allocates each).
      if (!this.overHeap()) return undefined;
      lua.lua_pop(this.L, 1);
      return NOT_ENOUGH_MEMORY;
    }
    const message = bytesText(lua.lua_tolstring(this.L, -1));
    lua.lua_pop(this.L, 1);
    return message;
  }

  pushBytes(bytes: Uint8Array | number[]): void {
    pushBytes(this.L, bytes);
  }
}
