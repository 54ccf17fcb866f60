/**
 * `i2c` hardware master interfaces (i2c.c + i2c_hw_master.c of dev-esp32):
 * start/address/write/read/stop only queue commands; i2c.transfer(id
 * [, to_ms]) runs the queue on the bus and returns (data or nil, ack). An
 * address nobody ACKs flushes the rest of the queue: (nil, false). One read
 * per transfer. Setting up a HW interface twice panics on the device: here a
 * Lua error. The bus holds the DS3231 at 68h (when present). The software
 * interface i2c.SW and asynchronous transfers are not emulated.
 *
 * A bus fault (the "i2c-timeout" fault: a dead bus whose controller raises
 * no interrupt) makes i2c_master_cmd_begin return ESP_ERR_TIMEOUT;
 * li2c_hw_master_transfer then resets the queue and raises through
 * i2c_lua_checkerr: "i2c timeout" (i2c_hw_master.c:166-178, :385-388). Only
 * ESP_FAIL (a NACK) gives the quiet (nil, false).
 *
 * How long that takes is the caller's to_ms, i2c.transfer(id [, cb] [, to_ms])
 * (i2c_hw_master.c:331-334: luaL_optint, default 0, negative counts as 0),
 * passed as ticks_to_wait = to_ms / portTICK_PERIOD_MS, or portMAX_DELAY when
 * 0 (i2c_hw_master.c:360-361). ESP-IDF 5.1.3's i2c_master_cmd_begin (the
 * esp-idf NodeMCU pins, components/driver/i2c/i2c.c:1544-1590) waits for the
 * controller's next interrupt event at least I2C_CMD_ALIVE_INTERVAL_TICK
 * (1000 ms, i2c.c:79) and at most what is left of ticks_to_wait; with none it
 * returns ESP_ERR_TIMEOUT. So without to_ms a dead bus blocks the Lua task
 * for good (portMAX_DELAY): the board never answers again until a power
 * cycle. With to_ms the call blocks max(to_ms rounded down to the 10 ms tick,
 * 1000 ms) and raises. FreeRTOS ticks at CONFIG_FREERTOS_HZ 100 (ESP-IDF
 * components/freertos/Kconfig default; NodeMCU's sdkconfig.defaults does not
 * set it).
 */
import { argError, lauxlib, lua, pushBytes, raise, type LuaState } from "../fengari.js";
import type { Machine } from "../machine.js";

/** portTICK_PERIOD_MS at CONFIG_FREERTOS_HZ 100. */
export const FREERTOS_TICK_MS = 10;
/** I2C_CMD_ALIVE_INTERVAL_TICK (esp-idf components/driver/i2c/i2c.c:79): 1000 ms. */
export const I2C_ALIVE_INTERVAL_MS = 1000;
import { DS3231_ADDRESS } from "../ds3231.js";

const SW = 0;
const HW0 = 1;
const HW1 = 2;
const TRANSMITTER = 0;
const RECEIVER = 1;

type Op =
  | { kind: "start" }
  | { kind: "stop" }
  | { kind: "address"; address: number; direction: number; ackCheck: boolean }
  | { kind: "write"; bytes: number[] }
  | { kind: "read"; len: number };

export function installI2c(m: Machine): void {
  const configured = new Set<number>();
  const queues = new Map<number, Op[]>();

  const checkHw = (L: LuaState): number => {
    const id = lauxlib.luaL_checkinteger(L, 1);
    if (id === SW) raise(L, "i2c.SW (bit-banged interface) is not emulated; the board uses i2c.HW0");
    if (id !== HW0 && id !== HW1) argError(L, 1, "invalid i2c interface id");
    if (!configured.has(id)) raise(L, `interface ${id} used before i2c.setup`);
    return id;
  };
  const enqueue = (id: number, op: Op) => queues.get(id)!.push(op);

  m.defineModule("i2c", {
    SW,
    HW0,
    HW1,
    TRANSMITTER,
    RECEIVER,
    SLOW: 100000,
    FAST: 400000,
    FASTPLUS: 1000000,
    setup: (L) => {
      const id = lauxlib.luaL_checkinteger(L, 1);
      if (id === SW) raise(L, "i2c.SW (bit-banged interface) is not emulated; the board uses i2c.HW0");
      if (id !== HW0 && id !== HW1) argError(L, 1, "invalid i2c interface id");
      lauxlib.luaL_checkinteger(L, 2);
      lauxlib.luaL_checkinteger(L, 3);
      const speed = lauxlib.luaL_checkinteger(L, 4);
      if (speed <= 0 || speed > 1000000) raise(L, `speed ${speed} outside 1..1000000 Hz`);
      if (configured.has(id)) raise(L, `interface ${id} is already set up (NodeMCU panics on a second i2c.setup)`);
      configured.add(id);
      queues.set(id, []);
      lua.lua_pushinteger(L, 6400); // timeout in CPU cycles at the default stretch factor
      return 1;
    },
    start: (L) => {
      enqueue(checkHw(L), { kind: "start" });
      return 0;
    },
    stop: (L) => {
      enqueue(checkHw(L), { kind: "stop" });
      return 0;
    },
    address: (L) => {
      const id = checkHw(L);
      const address = lauxlib.luaL_checkinteger(L, 2);
      if (address < 0 || address > 127) argError(L, 2, "i2c address out of 7-bit range");
      const direction = lauxlib.luaL_checkinteger(L, 3);
      if (direction !== TRANSMITTER && direction !== RECEIVER) argError(L, 3, "invalid i2c address direction");
      const ackCheck = lua.lua_isnoneornil(L, 4) ? true : lua.lua_toboolean(L, 4);
      enqueue(id, { kind: "address", address, direction, ackCheck });
      lua.lua_pushboolean(L, true);
      return 1;
    },
    write: (L) => {
      const id = checkHw(L);
      let top = lua.lua_gettop(L);
      if (lua.lua_type(L, top) === lua.LUA_TBOOLEAN) top--;
      if (top < 2) raise(L, "not enough or wrong arg types for i2c.write");
      const bytes: number[] = [];
      const add = (b: number, what: string) => {
        if (!Number.isInteger(b) || b < 0 || b > 255) raise(L, `${what} value for i2c.write does not fit in 1 byte`);
        bytes.push(b);
      };
      for (let i = 2; i <= top; i++) {
        const t = lua.lua_type(L, i);
        if (t === lua.LUA_TNUMBER) add(lauxlib.luaL_checkinteger(L, i), "numeric");
        else if (t === lua.LUA_TTABLE) {
          const n = lua.lua_rawlen(L, i);
          for (let k = 1; k <= n; k++) {
            lua.lua_rawgeti(L, i, k);
            add(lauxlib.luaL_checkinteger(L, -1), "table");
            lua.lua_pop(L, 1);
          }
        } else for (const b of lauxlib.luaL_checklstring(L, i) as Uint8Array) bytes.push(b);
      }
      enqueue(id, { kind: "write", bytes });
      lua.lua_pushinteger(L, bytes.length);
      return 1;
    },
    read: (L) => {
      const id = checkHw(L);
      const len = lauxlib.luaL_checkinteger(L, 2);
      if (len <= 0) argError(L, 2, "i2c read size of 0 is invalid");
      if (queues.get(id)!.some((op) => op.kind === "read")) raise(L, "only one read per transfer supported");
      enqueue(id, { kind: "read", len });
      return 0;
    },
    transfer: (L) => {
      const id = checkHw(L);
      if (lua.lua_type(L, 2) === lua.LUA_TFUNCTION) raise(L, "asynchronous i2c.transfer (with a callback) is not emulated");
      const ops = queues.get(id)!;
      if (ops.length === 0) raise(L, "no commands scheduled");
      // i2c_hw_master.c:331-334.
      const toMs = Math.max(0, lua.lua_isnoneornil(L, 2) ? 0 : lauxlib.luaL_checkinteger(L, 2));
      queues.set(id, []);
      if (m.hw.faults.has("i2c-timeout")) {
        if (toMs === 0) m.halt("hung"); // portMAX_DELAY: the wait never ends
        m.hw.spend(Math.max(Math.floor(toMs / FREERTOS_TICK_MS) * FREERTOS_TICK_MS, I2C_ALIVE_INTERVAL_MS));
        raise(L, "i2c timeout");
      }
      const { data, ack } = runTransfer(m, ops);
      if (data === undefined) lua.lua_pushnil(L);
      else pushBytes(L, data);
      lua.lua_pushboolean(L, ack);
      return 2;
    },
  });
}

/** Execute a queued transaction against the devices on the bus. */
function runTransfer(m: Machine, ops: Op[]): { data: number[] | undefined; ack: boolean } {
  const now = m.hw.clock.nowMs;
  const rtc = m.hw.rtc;
  let target: number | undefined;
  let direction = TRANSMITTER;
  let pending: number[] = [];
  let data: number[] | undefined;
  const flushWrite = () => {
    if (target === DS3231_ADDRESS && direction === TRANSMITTER && pending.length > 0) rtc.write(pending, now);
    pending = [];
  };
  for (const op of ops) {
    switch (op.kind) {
      case "start":
      case "stop":
        flushWrite();
        if (op.kind === "stop") target = undefined;
        break;
      case "address": {
        flushWrite();
        const acked = op.address === DS3231_ADDRESS && rtc.present;
        if (!acked && op.ackCheck) return { data: undefined, ack: false };
        target = acked ? op.address : undefined;
        direction = op.direction;
        break;
      }
      case "write":
        if (target === undefined) return { data: undefined, ack: false };
        if (direction !== TRANSMITTER) throw new Error("write queued after a RECEIVER address");
        pending.push(...op.bytes);
        break;
      case "read":
        if (target === undefined) return { data: undefined, ack: false };
        if (direction !== RECEIVER) throw new Error("read queued after a TRANSMITTER address");
        data = rtc.read(op.len, now);
        break;
    }
  }
  flushWrite();
  return { data, ack: true };
}
