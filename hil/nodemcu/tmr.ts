/**
 * `tmr` timer objects (tmr.c of dev-esp32) on the emulator's virtual clock.
 * Modes: ALARM_SINGLE (0) fires once and unregisters, ALARM_SEMI (2) fires
 * once per start(), ALARM_AUTO (1) repeats. Intervals 1..6870947 ms (tmr.md).
 * A running timer keeps itself alive (the C module holds a self reference).
 */
import { argError, lauxlib, lua, type LuaState } from "../fengari.js";
import type { Machine } from "../machine.js";
import type { ScheduledEvent } from "../virtual-clock.js";

const SINGLE = 0;
const AUTO = 1;
const SEMI = 2;
const MAX_INTERVAL_MS = 6870947;
const CLASS = "tmr.timer";

interface Timer {
  intervalMs: number;
  mode: number;
  /** Callback reference; undefined when not registered. */
  cb: number | undefined;
  /** Reference to the timer userdata while it runs. */
  self: number | undefined;
  pending: ScheduledEvent | undefined;
}

export interface TmrPort {
  /** Cancel every timer of this boot (reset/power cut). */
  cancelAll(): void;
}

export function installTmr(m: Machine, runTask: (task: () => string | undefined) => void): TmrPort {
  const all = new Set<Timer>();

  const stop = (t: Timer) => {
    m.hw.clock.cancel(t.pending);
    t.pending = undefined;
    m.unref(t.self);
    t.self = undefined;
  };

  const fire = (t: Timer): string | undefined => {
    t.pending = undefined;
    const cb = t.cb;
    const self = t.self;
    if (cb === undefined || self === undefined || m.halted) return undefined;
    // Push the argument before any unregistering drops the reference.
    lua.lua_rawgeti(m.L, lua.LUA_REGISTRYINDEX, self);
    const selfIdx = lua.lua_gettop(m.L);
    if (t.mode === AUTO) schedule(t);
    else {
      t.self = undefined;
      if (t.mode === SINGLE) t.cb = undefined;
    }
    const err = m.callRef(cb, () => {
      lua.lua_pushvalue(m.L, selfIdx);
      return 1;
    });
    if (!m.halted) lua.lua_remove(m.L, selfIdx);
    if (t.mode !== AUTO) {
      m.unref(self);
      if (t.mode === SINGLE && t.cb === undefined) m.unref(cb);
    }
    return err;
  };

  const schedule = (t: Timer) => {
    t.pending = m.hw.clock.schedule(t.intervalMs, () => runTask(() => fire(t)));
  };

  const register = (L: LuaState, t: Timer) => {
    const ms = lauxlib.luaL_checkinteger(L, 2);
    if (ms < 1 || ms > MAX_INTERVAL_MS) argError(L, 2, `interval must be 1..${MAX_INTERVAL_MS} ms`);
    const mode = lauxlib.luaL_checkinteger(L, 3);
    if (mode !== SINGLE && mode !== SEMI && mode !== AUTO) argError(L, 3, "Invalid mode");
    lauxlib.luaL_checktype(L, 4, lua.LUA_TFUNCTION);
    stop(t);
    m.unref(t.cb);
    lua.lua_pushvalue(L, 4);
    t.cb = m.ref();
    t.intervalMs = ms;
    t.mode = mode;
  };

  const start = (L: LuaState, t: Timer): boolean => {
    if (t.cb === undefined) return false;
    stop(t);
    lua.lua_pushvalue(L, 1);
    t.self = m.ref();
    schedule(t);
    return true;
  };

  const methods = {
    register: (L: LuaState) => {
      register(L, m.checkObject<Timer>(L, 1, CLASS));
      return 0;
    },
    alarm: (L: LuaState) => {
      const t = m.checkObject<Timer>(L, 1, CLASS);
      register(L, t);
      lua.lua_pushboolean(L, start(L, t));
      return 1;
    },
    start: (L: LuaState) => {
      lua.lua_pushboolean(L, start(L, m.checkObject<Timer>(L, 1, CLASS)));
      return 1;
    },
    stop: (L: LuaState) => {
      const t = m.checkObject<Timer>(L, 1, CLASS);
      const wasRegistered = t.cb !== undefined;
      stop(t);
      lua.lua_pushboolean(L, wasRegistered);
      return 1;
    },
    unregister: (L: LuaState) => {
      const t = m.checkObject<Timer>(L, 1, CLASS);
      stop(t);
      m.unref(t.cb);
      t.cb = undefined;
      return 0;
    },
  };

  m.defineModule("tmr", {
    ALARM_SINGLE: SINGLE,
    ALARM_SEMI: SEMI,
    ALARM_AUTO: AUTO,
    create: (L) => {
      const t: Timer = { intervalMs: 0, mode: SINGLE, cb: undefined, self: undefined, pending: undefined };
      all.add(t);
      m.pushObject(L, CLASS, t, methods);
      return 1;
    },
  });

  return {
    cancelAll() {
      for (const t of all) m.hw.clock.cancel(t.pending);
    },
  };
}
