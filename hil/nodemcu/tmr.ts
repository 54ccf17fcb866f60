/**
 * `tmr` timer objects (components/modules/tmr.c of dev-esp32 at 7c5bb151) on
 * the emulator's virtual clock. Modes: ALARM_SINGLE (0) fires once and
 * unregisters, ALARM_SEMI (2) fires once per start(), ALARM_AUTO (1) repeats.
 * Intervals 1..6870947 ms (tmr.c:20-23, :78).
 *
 * What the source says and the docs leave out:
 * - register() deletes the FreeRTOS timer (a running timer stops) and leaves
 *   the new one idle (tmr.c:86-101).
 * - start() on a running timer returns false and does NOT restart it; on a
 *   timer never registered (or a SINGLE one that already fired) it raises
 *   "timer not registered" (tmr.c:110-135). To restart a countdown: stop()
 *   then start().
 * - stop() returns true only if the timer was running (tmr.c:143-160).
 * - An expiry posts a task with task_post_high, which does not wait: with the
 *   high-priority queue full the alarm is lost (tmr.c:35-40), and a SEMI
 *   timer then stays "running" (only the task sets it idle again, tmr.c:55-57)
 *   until stop() or register().
 * - The task runs the callback only while the timer is still registered and
 *   holds its self reference (tmr.c:46-47): a stop() between expiry and task
 *   cancels it.
 * - The interval becomes FreeRTOS ticks, pdMS_TO_TICKS(interval) (tmr.c:97-98;
 *   ESP-IDF e7771c75 FreeRTOS-Kernel/include/freertos/projdefs.h:48, rounding
 *   down) at CONFIG_FREERTOS_HZ 100 (components/freertos/Kconfig:31-35 default;
 *   nodemcu-build.ts refuses another rate). Under 10 ms that is 0 ticks and
 *   prvInitialiseNewTimer's configASSERT (FreeRTOS-Kernel/timers.c:367;
 *   configASSERT is assert(), esp_additions/include/freertos/FreeRTOSConfig.h:123)
 *   aborts: the chip panics and restarts, whatever pcall is around it.
 * - Alarms come on tick boundaries: a start at tick n expires at tick n + period
 *   (xTimerStart's command carries xTaskGetTickCount(), timers.c:852), an AUTO
 *   timer reloads from its expiry tick (prvProcessExpiredTimer, timers.c:567).
 *   So an alarm comes up to one tick (10 ms) early, never late.
 */
import { argError, lauxlib, lua, raise, type LuaState } from "../fengari.js";
import type { Machine } from "../machine.js";
import type { ScheduledEvent } from "../virtual-clock.js";

const SINGLE = 0;
const AUTO = 1;
const SEMI = 2;
/** TIMER_MODE_OFF (tmr.c:10): not registered. */
const OFF = 3;
/** TIMER_IDLE_FLAG (tmr.c:14). */
const IDLE = 1 << 7;
const MAX_INTERVAL_MS = 6870947;
/** configTICK_RATE_HZ: CONFIG_FREERTOS_HZ's default, 100 (ESP-IDF components/freertos/Kconfig:31-35). */
export const TICK_RATE_HZ = 100;
const TICK_MS = 1000 / TICK_RATE_HZ;
/** What ESP-IDF's __assert_func prints for timers.c:367 (components/newlib/assert.c: "assert failed: " func " " file ":" line " (" expr ")"). */
export const TIMER_PERIOD_ASSERT = "assert failed: prvInitialiseNewTimer timers.c:367 (( xTimerPeriodInTicks > 0 ))";
const CLASS = "tmr.timer";

interface Timer {
  intervalMs: number;
  /** pdMS_TO_TICKS(intervalMs): the FreeRTOS timer's period. */
  periodTicks: number;
  /** tmr->mode: OFF, or SINGLE/SEMI/AUTO with IDLE set while not running. */
  mode: number;
  /** tmr->timer != NULL: a FreeRTOS timer exists. */
  exists: boolean;
  /** cb_ref; undefined = LUA_NOREF. */
  cb: number | undefined;
  /** self_ref; undefined = LUA_NOREF. */
  self: number | undefined;
  pending: ScheduledEvent | undefined;
}

export interface TmrPort {
  /** Cancel every timer of this boot (reset/power cut). */
  cancelAll(): void;
}

/**
 * postHigh: task_post_high of the alarm task; false when the queue is full
 * (the alarm is then lost).
 */
export function installTmr(m: Machine, postHigh: (task: () => string | undefined) => boolean): TmrPort {
  const all = new Set<Timer>();

  const cancel = (t: Timer) => {
    m.hw.clock.cancel(t.pending);
    t.pending = undefined;
  };

  // alarm_timer_task (tmr.c:42-63)
  const alarmTask = (t: Timer): string | undefined => {
    if (t.cb === undefined || t.self === undefined || m.halted) return undefined;
    const cb = t.cb;
    const self = t.self;
    lua.lua_rawgeti(m.L, lua.LUA_REGISTRYINDEX, self);
    const selfIdx = lua.lua_gettop(m.L);
    let dropCb = false;
    if (t.mode === SINGLE) {
      t.cb = undefined;
      t.mode = OFF;
      dropCb = true;
    } else if (t.mode === SEMI) {
      t.mode |= IDLE;
    }
    let dropSelf = false;
    if (t.mode !== AUTO) {
      t.self = undefined;
      dropSelf = true;
    }
    const err = m.callRef(cb, () => {
      lua.lua_pushvalue(m.L, selfIdx);
      return 1;
    });
    if (!m.halted) lua.lua_remove(m.L, selfIdx);
    if (dropSelf) m.unref(self);
    if (dropCb) m.unref(cb);
    return err;
  };

  // The FreeRTOS timer expires: timer_callback (tmr.c:35-40). AUTO reloads by itself, from
  // the tick it expired at (timers.c:567); a start counts from the current tick (timers.c:852).
  const arm = (t: Timer, fromTick = Math.floor(m.hw.clock.nowMs / TICK_MS)) => {
    const expiryTick = fromTick + t.periodTicks;
    t.pending = m.hw.clock.schedule(expiryTick * TICK_MS - m.hw.clock.nowMs, () => {
      t.pending = undefined;
      if (t.mode === AUTO) arm(t, expiryTick);
      postHigh(() => alarmTask(t));
    });
  };

  const checkTimer = (L: LuaState) => m.checkObject<Timer>(L, 1, CLASS);

  // tmr_register (tmr.c:71-108)
  const register = (L: LuaState, t: Timer) => {
    const ms = lauxlib.luaL_checkinteger(L, 2);
    if (ms < 1 || ms > MAX_INTERVAL_MS) argError(L, 2, `Range: 1-${MAX_INTERVAL_MS}`);
    const mode = lauxlib.luaL_checkinteger(L, 3);
    if (mode !== SINGLE && mode !== SEMI && mode !== AUTO) argError(L, 3, "Invalid mode");
    lauxlib.luaL_checktype(L, 4, lua.LUA_TFUNCTION);
    cancel(t); // xTimerDelete of the previous timer
    m.unref(t.cb);
    lua.lua_pushvalue(L, 4);
    t.cb = m.ref();
    t.mode = mode | IDLE;
    t.intervalMs = ms;
    t.periodTicks = Math.floor((ms * TICK_RATE_HZ) / 1000); // pdMS_TO_TICKS (projdefs.h:48)
    if (t.periodTicks === 0) m.panic(TIMER_PERIOD_ASSERT); // xTimerCreate: configASSERT (timers.c:367)
    t.exists = true;
  };

  // tmr_start (tmr.c:111-135)
  const start = (L: LuaState, t: Timer): boolean => {
    if (t.self === undefined) {
      lua.lua_pushvalue(L, 1);
      t.self = m.ref();
    }
    if (!t.exists || t.cb === undefined) raise(L, "timer not registered");
    if ((t.mode & IDLE) === 0) return false;
    t.mode &= ~IDLE;
    arm(t);
    return true;
  };

  const methods = {
    register: (L: LuaState) => {
      register(L, checkTimer(L));
      return 0;
    },
    alarm: (L: LuaState) => {
      const t = checkTimer(L);
      register(L, t);
      lua.lua_pushboolean(L, start(L, t));
      return 1;
    },
    start: (L: LuaState) => {
      lua.lua_pushboolean(L, start(L, checkTimer(L)));
      return 1;
    },
    // tmr_stop (tmr.c:144-160)
    stop: (L: LuaState) => {
      const t = checkTimer(L);
      m.unref(t.self);
      t.self = undefined;
      const running = (t.mode & IDLE) === 0 && t.mode !== OFF;
      if (running) {
        t.mode |= IDLE;
        cancel(t);
      }
      lua.lua_pushboolean(L, running);
      return 1;
    },
    // tmr_unregister (tmr.c:163-184)
    unregister: (L: LuaState) => {
      const t = checkTimer(L);
      m.unref(t.self);
      t.self = undefined;
      cancel(t);
      t.exists = false;
      m.unref(t.cb);
      t.cb = undefined;
      t.mode = OFF;
      return 0;
    },
  };

  m.defineModule("tmr", {
    ALARM_SINGLE: SINGLE,
    ALARM_SEMI: SEMI,
    ALARM_AUTO: AUTO,
    create: (L) => {
      const t: Timer = { intervalMs: 0, periodTicks: 0, mode: OFF, exists: false, cb: undefined, self: undefined, pending: undefined };
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
