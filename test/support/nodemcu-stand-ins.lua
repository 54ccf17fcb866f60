-- Lua-side stand-ins for the NodeMCU modules the keyfob image uses, so the
-- image can run in a plain C Lua: build/lua32/lua32 (int32, float32, 32-bit
-- pointers: NodeMCU's number model) for the image test and `make bench`'s
-- heap figures. Loaded with dofile(); returns BOARD, the test's side of the
-- board (console bytes, button, virtual time, display log).
--
-- Each behaviour follows NodeMCU's C source, branch dev-esp32 at commit
-- 7c5bb151 (file:line cited), never its docs, and is never more lenient:
-- where the board raises, this raises; where the board drops bytes, this
-- drops them. It models only what firmware/board/ calls; any other module
-- entry raises "stand-in: no <module>.<name>" so a new call is noticed.
--
-- Files are real files in the current directory through Lua's own io and
-- os (the ESP32 has no file.open; the firmware uses io, as on the board).

local BOARD = {
  ms = 0,           -- virtual milliseconds since boot
  tx = {},          -- bytes the image wrote to UART0, in order
  spi = {},         -- MAX7219 transactions (2-byte strings), in order
  log_spi = true,   -- false: keep no log (heap measurements must not count the harness)
  errors = {},      -- errors raised in callbacks (on the board: a restart)
  restarts = 0,
  console = { started = false, dropped = 0 },
  button_level = 1, -- GPIO 27 with its pull-up: 1 released, 0 pressed
  vbus = 1,         -- GPIO 34, USB VBUS sense: 1 plugged in (the keyfob stays awake), 0 on battery
  outputs = {},     -- gpio.write levels by pin (the power switches, GPIO 25 and 26)
  reset_reason = 8, -- node.bootreason()'s second value: 8 power-on (node.c:103-104, 152-153)
  opened = {},      -- every file name passed to loadfile, dofile and io.open, in order
  log_opens = true, -- false: keep no log (heap measurements)
}

-- Count the files the image opens (a locked keyfob must never open fobkit-prov.*).
do
  local lf, df, open = loadfile, dofile, io.open
  local function note(name) if BOARD.log_opens then BOARD.opened[#BOARD.opened + 1] = tostring(name) end end
  loadfile = function(name, ...) note(name) return lf(name, ...) end
  dofile = function(name) note(name) return df(name) end
  io.open = function(name, ...) note(name) return open(name, ...) end
end

local function strict(name, t)
  return setmetatable(t, { __index = function(_, k) error("stand-in: no " .. name .. "." .. tostring(k), 2) end })
end

local function check_integer(v, what)
  if math.type(v) ~= "integer" then error("bad argument (" .. what .. ": number has no integer representation)", 3) end
  return v
end

-- A callback from the event loop: an error there reaches the panic handler
-- and restarts the chip (components/lua/lua-5.3/lua.c: errors in posted
-- tasks go through luaL_pcallx -> lua_error handler -> node restart).
local function run_task(f, ...)
  local ok, err = pcall(f, ...)
  if not ok then BOARD.errors[#BOARD.errors + 1] = tostring(err) end
end

---------------------------------------------------------------------------
-- uart (components/modules/uart.c)
local LUA_MAXINPUT = 256 -- components/lua/lua-5.3/luaconf.h (console line buffer)
local uart_cfg = { need_len = 0, end_char = -1, cb = nil, line = nil, pos = 0 }

uart = strict("uart", {
  -- components/platform/include/platform.h:63-76
  PARITY_NONE = 0, PARITY_EVEN = 1, PARITY_ODD = 2,
  STOPBITS_1 = 1, STOPBITS_2 = 2, STOPBITS_1_5 = 3,
  -- uart.c:181 uart_setup: returns the baud rate it set
  setup = function(id, baud, databits, parity, stopbits, echo)
    check_integer(id, "id") check_integer(baud, "baud")
    if id ~= 0 then error("stand-in: only UART0 is wired") end
    BOARD.console.baud = baud
    BOARD.console.echo = echo
    return baud
  end,
  -- uart.c:96-170 uart_on
  on = function(id, method, len_or_char, cb, run_input)
    if method ~= "data" then error("method not supported") end
    if type(len_or_char) == "number" then
      local n = check_integer(len_or_char, "number/end_char")
      if n > 255 then error("wrong arg range") end
      uart_cfg.need_len, uart_cfg.end_char = n, -1
    elseif type(len_or_char) == "string" then
      if #len_or_char ~= 1 then error("wrong arg range") end
      uart_cfg.end_char, uart_cfg.need_len = len_or_char:byte(), 0
    end
    uart_cfg.cb = cb
    -- uart.c:151-157: run_input 0 takes the console from the interpreter.
    BOARD.console.run_input = not (cb ~= nil and run_input == 0)
  end,
  -- uart.c:288-299 uart_start: allocates the line buffer uart_feed_data needs.
  start = function(id)
    check_integer(id, "id")
    if uart_cfg.line == nil then uart_cfg.line = {} end
    BOARD.console.started = true
    return true
  end,
  -- uart.c uart_write: strings, or numbers as single bytes (0..255).
  write = function(id, ...)
    check_integer(id, "id")
    for i = 1, select("#", ...) do
      local v = select(i, ...)
      if type(v) == "number" then
        check_integer(v, "data")
        if v < 0 or v > 255 then error("wrong arg range") end
        BOARD.tx[#BOARD.tx + 1] = string.char(v)
      elseif type(v) == "string" then
        BOARD.tx[#BOARD.tx + 1] = v
      else
        error("wrong arg type")
      end
    end
  end,
})

-- Bytes arriving on UART0. uart.c:64-89 uart_feed_data: without the line
-- buffer that uart.start allocates, every byte is dropped; otherwise the
-- callback gets each run ending at end_char, or LUA_MAXINPUT bytes, or
-- need_len bytes (need_len 0 and no end_char: one byte).
function BOARD.rx(s)
  if uart_cfg.line == nil or uart_cfg.cb == nil then
    BOARD.console.dropped = BOARD.console.dropped + #s
    return
  end
  for i = 1, #s do
    local ch = s:byte(i)
    uart_cfg.pos = uart_cfg.pos + 1
    uart_cfg.line[uart_cfg.pos] = string.char(ch)
    local max_wanted = (uart_cfg.end_char >= 0 and uart_cfg.need_len == 0) and LUA_MAXINPUT or uart_cfg.need_len
    if uart_cfg.pos >= max_wanted or (uart_cfg.end_char >= 0 and ch == uart_cfg.end_char) then
      local data = table.concat(uart_cfg.line, "", 1, uart_cfg.pos)
      uart_cfg.pos = 0
      run_task(uart_cfg.cb, data)
    end
  end
end

function BOARD.take_tx()
  local s = table.concat(BOARD.tx)
  BOARD.tx = {}
  return s
end

---------------------------------------------------------------------------
-- tmr (components/modules/tmr.c)
local TIMER_MODE_SINGLE, TIMER_MODE_AUTO, TIMER_MODE_SEMI = 0, 1, 2 -- tmr.c:11-13
local MAX_TIMEOUT = 6870947 -- tmr.c:20
local timers = {}

local timer_mt = {}
timer_mt.__index = strict("tmr.timer", {
  -- tmr.c:71-106 tmr_register: replaces any previous timer, leaves it idle.
  register = function(self, interval, mode, cb)
    check_integer(interval, "interval")
    if not (interval > 0 and interval <= MAX_TIMEOUT) then error("bad argument #2 to 'register' (Range: 1-6870947)") end
    if mode ~= TIMER_MODE_SINGLE and mode ~= TIMER_MODE_SEMI and mode ~= TIMER_MODE_AUTO then error("bad argument #3 to 'register' (Invalid mode)") end
    if type(cb) ~= "function" then error("bad argument #4 to 'register' (function expected)") end
    self.interval, self.mode, self.cb, self.running = interval, mode, cb, false
  end,
  -- tmr.c:109-136 tmr_start: raises on a timer never registered; returns
  -- false and does NOT restart a running one.
  start = function(self)
    if self.cb == nil then error("timer not registered") end
    if self.running then return false end
    self.running, self.due = true, BOARD.ms + self.interval
    return true
  end,
  alarm = function(self, interval, mode, cb)
    self:register(interval, mode, cb)
    return self:start()
  end,
  -- tmr.c tmr_stop: false if it was not running.
  stop = function(self)
    if not self.running then return false end
    self.running = false
    return true
  end,
  unregister = function(self)
    self.running, self.cb = false, nil
  end,
})

tmr = strict("tmr", {
  ALARM_SINGLE = TIMER_MODE_SINGLE, ALARM_SEMI = TIMER_MODE_SEMI, ALARM_AUTO = TIMER_MODE_AUTO, -- tmr.c:262-264
  create = function()
    local t = setmetatable({ running = false }, timer_mt)
    timers[#timers + 1] = t
    return t
  end,
})

-- Let virtual time pass, firing due timers in time order (FreeRTOS timer
-- callbacks post a task: tmr.c timer_callback).
function BOARD.advance(ms)
  local target = BOARD.ms + ms
  while true do
    local next_t
    for _, t in ipairs(timers) do
      if t.running and t.due <= target and (next_t == nil or t.due < next_t.due) then next_t = t end
    end
    if next_t == nil then break end
    BOARD.ms = next_t.due
    if next_t.mode == TIMER_MODE_AUTO then next_t.due = next_t.due + next_t.interval else next_t.running = false end
    run_task(next_t.cb, next_t)
  end
  BOARD.ms = target
end

---------------------------------------------------------------------------
-- gpio (components/modules/gpio.c)
local gpio_trig = {}
gpio = strict("gpio", {
  IN = 1, OUT = 2, IN_OUT = 3, FLOATING = 0, PULL_UP = 1, PULL_DOWN = 2, PULL_UP_DOWN = 3,
  INTR_NONE = 0, INTR_UP = 1, INTR_DOWN = 2, INTR_UP_DOWN = 3, INTR_LOW = 4, INTR_HIGH = 5,
  -- gpio.c:110-150 lgpio_config: a table with a 'gpio' field.
  config = function(...)
    for i = 1, select("#", ...) do
      local c = select(i, ...)
      if type(c) ~= "table" or c.gpio == nil then error("missing/bad 'gpio' field") end
    end
  end,
  read = function(pin)
    check_integer(pin, "pin")
    if pin == 34 then return BOARD.vbus end
    if pin ~= 27 then error("stand-in: only the button (GPIO 27) and VBUS (GPIO 34) are wired") end
    return BOARD.button_level
  end,
  -- gpio.c:204-211 lgpio_write: gpio_set_level; an input-only pin (34-39) is
  -- ESP_ERR_INVALID_ARG -> "invalid argument" (gpio.c:48-52).
  write = function(pin, level)
    check_integer(pin, "pin")
    check_integer(level, "level")
    if pin >= 34 then error("invalid argument") end
    BOARD.outputs[pin] = level ~= 0 and 1 or 0
  end,
  -- gpio.c:215-245 lgpio_trig; the ISR (gpio.c:56-66) disables the pin's
  -- interrupt until the posted Lua callback has run (gpio.c:226).
  trig = function(pin, kind, cb)
    check_integer(pin, "pin")
    gpio_trig[pin] = { kind = kind, cb = cb }
  end,
})

local function edge(pin, level)
  local t = gpio_trig[pin]
  if t == nil or t.cb == nil then return end
  local falling = level == 0
  if t.kind == gpio.INTR_UP_DOWN or (t.kind == gpio.INTR_DOWN and falling) or (t.kind == gpio.INTR_UP and not falling) then
    run_task(t.cb, pin, level)
  end
end

function BOARD.press()
  BOARD.button_level = 0
  edge(27, 0)
end

function BOARD.release()
  BOARD.button_level = 1
  edge(27, 1)
end

---------------------------------------------------------------------------
-- i2c (components/modules/i2c.c, i2c_hw_master.c) with a DS3231 at 0x68.
-- The DS3231 keeps registers 00h-12h; its time runs with BOARD.ms. OSF
-- (status bit 7) is set at first power-up (datasheet, "Status Register").
local ds = { reg = {}, base = 0, base_ms = 0, pointer = 0 }
for i = 0, 0x12 do ds.reg[i] = 0 end
ds.reg[0x0e], ds.reg[0x0f] = 0x1c, 0x88

local function days_from_civil(y, m, d) -- proleptic Gregorian (H. Hinnant)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local mp = (m + 9) % 12
  local doy = (153 * mp + 2) // 5 + d - 1
  local doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
  return era * 146097 + doe - 719468
end

local function civil_from_days(z)
  z = z + 719468
  local era = (z >= 0 and z or z - 146096) // 146097
  local doe = z - era * 146097
  local yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
  local y = yoe + era * 400
  local doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
  local mp = (5 * doy + 2) // 153
  local d = doy - (153 * mp + 2) // 5 + 1
  local m = mp < 10 and mp + 3 or mp - 9
  if m <= 2 then y = y + 1 end
  return y, m, d
end

local function bcd(v) return (v // 10) * 16 + v % 10 end
local function unbcd(b) return (b >> 4) * 10 + (b & 15) end

-- Seconds since 2000-01-01 (int32 is enough until 2068).
local function ds_now() return ds.base + (BOARD.ms - ds.base_ms) // 1000 end

local function ds_snapshot()
  local s = ds_now()
  local days, rem = s // 86400, s % 86400
  local y, m, d = civil_from_days(days + days_from_civil(2000, 1, 1))
  ds.reg[0], ds.reg[1], ds.reg[2] = bcd(rem % 60), bcd(rem // 60 % 60), bcd(rem // 3600)
  ds.reg[3] = (days + 5) % 7 + 1 -- 2000-01-01 was a Saturday (ISO 6)
  ds.reg[4], ds.reg[5], ds.reg[6] = bcd(d), bcd(m), bcd(y - 2000)
end

local function ds_write(first, bytes)
  ds_snapshot()
  for i, b in ipairs(bytes) do ds.reg[(first + i - 1) % 0x13] = b end
  if first <= 6 then
    local h = ds.reg[2]
    if h & 0x40 ~= 0 then error("stand-in: DS3231 12-hour mode not modelled") end
    local days = days_from_civil(2000 + unbcd(ds.reg[6]), unbcd(ds.reg[5] & 0x1f), unbcd(ds.reg[4])) - days_from_civil(2000, 1, 1)
    ds.base = days * 86400 + unbcd(h & 0x3f) * 3600 + unbcd(ds.reg[1]) * 60 + unbcd(ds.reg[0] & 0x7f)
    ds.base_ms = BOARD.ms
  end
end

BOARD.ds3231 = ds
BOARD.rtc_present = true

local i2c_ready = {}
local i2c_job = nil
local I2C_HW0 = 1
i2c = strict("i2c", {
  SW = 0, HW0 = I2C_HW0, HW1 = 2, TRANSMITTER = 0, RECEIVER = 1, SLOW = 100000, FAST = 400000, FASTPLUS = 1000000,
  -- i2c.c:12-38 i2c_setup returns the speed.
  setup = function(id, sda, scl, speed)
    check_integer(id, "id")
    if i2c_ready[id] then error("stand-in: i2c.setup twice on a HW interface panics the driver") end
    i2c_ready[id] = true
    return speed
  end,
  start = function(id) i2c_job = i2c_job or {} ; i2c_job[#i2c_job + 1] = { op = "start" } end,
  address = function(id, addr, dir)
    if addr < 0 or addr > 127 then error("i2c address out of 7-bit range") end
    i2c_job[#i2c_job + 1] = { op = "address", addr = addr, dir = dir }
    return true -- i2c.c:100: always true on HWx
  end,
  -- i2c.c:109-183: numbers, strings and tables of bytes.
  write = function(id, ...)
    local bytes = {}
    for i = 1, select("#", ...) do
      local v = select(i, ...)
      if type(v) == "number" then
        if v < 0 or v > 255 then error("numeric value for i2c.write does not fit in 1 byte") end
        bytes[#bytes + 1] = v
      elseif type(v) == "string" then
        for k = 1, #v do bytes[#bytes + 1] = v:byte(k) end
      elseif type(v) == "table" then
        for k = 1, #v do
          if v[k] < 0 or v[k] > 255 then error("table value for i2c.write does not fit in 1 byte") end
          bytes[#bytes + 1] = v[k]
        end
      else
        error("not enough or wrong arg types for i2c.write")
      end
    end
    i2c_job[#i2c_job + 1] = { op = "write", bytes = bytes }
    return #bytes
  end,
  -- i2c_hw_master.c:285-301: one read per transfer.
  read = function(id, len)
    if len <= 0 then error("i2c read size of 0 is invalid") end
    for _, c in ipairs(i2c_job) do if c.op == "read" then error("only one read per transfer supported") end end
    i2c_job[#i2c_job + 1] = { op = "read", len = len }
  end,
  stop = function(id) i2c_job[#i2c_job + 1] = { op = "stop" } end,
  -- i2c_hw_master.c:314-380 synchronous transfer: (data or nil, true) on
  -- ESP_OK; (nil, false) on ESP_FAIL (no ACK); any other error raises.
  transfer = function(id)
    local job = i2c_job
    i2c_job = nil
    if job == nil then error("no commands scheduled") end
    if not BOARD.rtc_present then return nil, false end
    local data
    for _, c in ipairs(job) do
      if c.op == "address" and c.addr ~= 0x68 then return nil, false end
      if c.op == "write" then
        ds.pointer = c.bytes[1]
        if #c.bytes > 1 then ds_write(c.bytes[1], { table.unpack(c.bytes, 2) }) end
      elseif c.op == "read" then
        ds_snapshot()
        local out = {}
        for k = 0, c.len - 1 do out[#out + 1] = string.char(ds.reg[(ds.pointer + k) % 0x13]) end
        data = table.concat(out)
      end
    end
    return data, true
  end,
})

---------------------------------------------------------------------------
-- spi (components/modules/spi_master.c): the MAX7219 on HSPI.
spi = strict("spi", {
  HSPI = 1, VSPI = 2,
  -- spi_master.c:224: the Lua binding accepts HSPI only on ESP32 (finding 8).
  master = function(host, cfg, dma)
    if host ~= 1 then error("bad argument #1 to 'master' (invalid host)") end
    return strict("spi.master", {
      device = function(self, dcfg)
        return strict("spi.device", {
          transfer = function(self2, data)
            if BOARD.log_spi then BOARD.spi[#BOARD.spi + 1] = data end
            return string.rep("\0", #data)
          end,
        })
      end,
    })
  end,
})

---------------------------------------------------------------------------
-- file (components/modules/file.c) over the current directory.
local function exists(name)
  local f = io.open(name, "rb")
  if f then f:close() return true end
  return false
end
file = strict("file", {
  exists = function(name) return exists(name) end,
  -- file.c file_remove: unlink, result ignored, returns nothing.
  remove = function(name) os.remove(name) end,
  -- file.c file_rename -> rename(); SPIFFS refuses an existing target
  -- (SPIFFS_ERR_CONFLICTING_NAME), POSIX would replace it: refuse here.
  rename = function(old, new)
    if exists(new) or not exists(old) then return false end
    return os.rename(old, new) == true
  end,
})

---------------------------------------------------------------------------
-- node, wifi, sodium
node = strict("node", {
  restart = function() BOARD.restarts = BOARD.restarts + 1 error("stand-in: node.restart()") end,
  -- node.c:58-159: rawinfo, ROM reset reason + 7; this harness only powers on (docs/power.md §1).
  bootreason = function() return 1, BOARD.reset_reason end,
  heap = function() return 210 * 1024 - math.floor(collectgarbage("count") * 1024) end,
  -- node.c:718-779 node_compile: NAME.lua -> NAME.lc, debug info stripped.
  compile = function(name)
    if #name < 4 or name:sub(-4) ~= ".lua" then error("not a .lua file") end
    local f, err = loadfile(name)
    if not f then error(err) end
    local out = io.open(name:sub(1, -5) .. ".lc", "wb")
    if not out then error("cannot open/write to file") end
    out:write(string.dump(f, true))
    out:close()
  end,
})

wifi = strict("wifi", {
  NULLMODE = 0, STATION = 1, SOFTAP = 2, STATIONAP = 3,
  mode = function(m, save) end, -- wifi.c wifi_mode returns nothing (finding 8)
  start = function() end,
  stop = function() end,
  sta = strict("wifi.sta", { getmac = function() return "24:0a:c4:12:34:56" end }),
})

sodium = strict("sodium", {
  random = strict("sodium.random", {
    buf = function(n)
      local t = {}
      for i = 1, n do t[i] = string.char(math.random(0, 255)) end
      return table.concat(t)
    end,
  }),
})

-- NodeMCU runs LUA_INIT_STRING "@init.lua" at boot (components/lua/Kconfig);
-- an error there is printed and the console stays a REPL (lua.c).
function BOARD.boot()
  local ok, err = pcall(dofile, "init.lua")
  if not ok then BOARD.init_error = tostring(err) end
  return ok
end

return BOARD
