/** @noSelfInFile */
/**
 * The NodeMCU runtime API that firmware/board/ uses — and nothing more.
 *
 * Source: NodeMCU firmware, branch dev-esp32 (docs/modules/*.md at commit
 * 7c5bb15154f6766987bf3f119335b08dfcc51a40, 2024-10-25), checked against the
 * C sources where the docs are silent. Each declaration links its doc section.
 * Target: ESP32, Lua 5.3, 32-bit integers and 32-bit floats.
 *
 * Facts checked in the sources that the docs get wrong or leave out:
 * - There is no `file.open` on ESP32: file.c registers only list, format,
 *   remove, rename, exists, fsinfo, mkdir, rmdir. File contents go through
 *   Lua's standard `io` library (io.open, f:read, f:write, f:close), which the
 *   types of lua-types/5.3 already declare.
 * - There is no `node.random` on ESP32 (node.c has no such entry). The only
 *   random source is `sodium.random.*` (esp_random()), true random only while
 *   the RF subsystem runs (ESP-IDF "Random Number Generation"), hence `wifi`.
 * - `uart.on(id, "data", 0, cb, 0)` calls cb once per received byte (uart.c
 *   uart_feed_data: max_wanted = need_len = 0), not "every char in buffer".
 * - The console delivers nothing to a data callback until `uart.start(0)`
 *   (uart.c:70-71, :295-296); uart.md says the console needs no start.
 * - `tmr` start() does not restart a running timer (it returns false) and
 *   raises on a timer never registered (tmr.c:110-135).
 * - `wifi.mode` returns nothing (wifi.c:61-78); `spi.master` refuses VSPI
 *   (spi_master.c:222-226 tests SPI2_HOST twice, never SPI3_HOST).
 * - A gpio interrupt is switched off from the edge until its Lua callback has
 *   run (gpio.c:61-66, :226-241): edges in between are not seen.
 * - The `debug` library is in every build (components/lua/Kconfig
 *   LUA_REQUIRED_MODULES selects LUA_BUILTIN_DEBUG).
 * - `gpio.INTR_DISABLE` in gpio.md does not exist; the table has INTR_NONE.
 * - `i2c.transfer` raises a Lua error (i2c_lua_checkerr) on a bus timeout;
 *   a missing device is not an error but (nil, false).
 * - SPIFFS `rename` fails when the new name exists (SPIFFS_rename returns
 *   SPIFFS_ERR_CONFLICTING_NAME; esp_spiffs.c passes it through).
 */

// ---------------------------------------------------------------------------
// uart — https://nodemcu.readthedocs.io/en/dev-esp32/modules/uart/
declare namespace uart {
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/uart/#uartsetup ; values from platform.h:61-77: PARITY_NONE 0, EVEN 1, ODD 2; STOPBITS_1 1, STOPBITS_2 2, STOPBITS_1_5 3. */
  const PARITY_NONE: number;
  const PARITY_EVEN: number;
  const PARITY_ODD: number;
  const STOPBITS_1: number;
  const STOPBITS_1_5: number;
  const STOPBITS_2: number;
  /**
   * https://nodemcu.readthedocs.io/en/dev-esp32/modules/uart/#uarton
   * `uart.on([id], method, [number/end_char], [function], [run_input])`.
   * `run_input` 0: console input never reaches the Lua interpreter.
   */
  function on(id: number, method: "data", lenOrEndChar: number | string, cb: (data: string) => void, runInput: 0 | 1): void;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/uart/#uartsetup ; echo is an int on the console UART. Returns the baud rate. */
  function setup(id: number, baud: number, databits: number, parity: number, stopbits: number, echo: number): number;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/uart/#uartwrite — strings or single bytes. */
  function write(id: number, ...data: (string | number)[]): void;
  /**
   * https://nodemcu.readthedocs.io/en/dev-esp32/modules/uart/#uartstart —
   * allocates the buffer without which no byte reaches a data callback
   * (uart.c:289-300). On the console it returns false all the same
   * (platform.c:316-321 refuses to install a second driver there).
   */
  function start(id: number): boolean;
}

// ---------------------------------------------------------------------------
// i2c — https://nodemcu.readthedocs.io/en/dev-esp32/modules/i2c/
// On ESP32 the HW interfaces queue start/address/write/read/stop and
// i2c.transfer executes the queue (one read per transfer).
declare namespace i2c {
  const SW: number;
  const HW0: number;
  const HW1: number;
  const TRANSMITTER: number;
  const RECEIVER: number;
  const SLOW: number;
  const FAST: number;
  const FASTPLUS: number;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/i2c/#i2csetup — calling it twice on a HW interface panics. */
  function setup(id: number, pinSDA: number, pinSCL: number, speed: number): number;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/i2c/#i2cstart */
  function start(id: number): void;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/i2c/#i2caddress — always true on HWx. */
  function address(id: number, deviceAddr: number, direction: number): boolean;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/i2c/#i2cwrite — numbers, strings or tables of bytes. */
  function write(id: number, ...data: (number | string | number[])[]): number;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/i2c/#i2cread — on HWx the data comes from transfer(). */
  function read(id: number, len: number): void;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/i2c/#i2cstop */
  function stop(id: number): void;
  /**
   * https://nodemcu.readthedocs.io/en/dev-esp32/modules/i2c/#i2ctransfer — synchronous form: (data or nil, ack).
   * toMs bounds the wait (i2c_hw_master.c:331-334, :360-361); omitted or 0 is portMAX_DELAY, so a
   * dead bus blocks Lua for good. Even with toMs the driver waits at least 1000 ms for an
   * interrupt that never comes (esp-idf driver/i2c/i2c.c:79, :1544-1590) before it raises "i2c timeout".
   */
  function transfer(id: number, toMs?: number): LuaMultiReturn<[string | undefined, boolean]>;
}

// ---------------------------------------------------------------------------
// file — https://nodemcu.readthedocs.io/en/dev-esp32/modules/file/
// (contents: Lua's io library, see the header.)
declare namespace file {
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/file/#fileexists */
  function exists(filename: string): boolean;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/file/#fileremove — returns nothing; unlink errors are ignored. */
  function remove(filename: string): void;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/file/#filerename — false on error, including "new name exists" on SPIFFS. */
  function rename(oldname: string, newname: string): boolean;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/file/#filelist — {name: size}. */
  function list(): LuaTable<string, number>;
}

// ---------------------------------------------------------------------------
// gpio — https://nodemcu.readthedocs.io/en/dev-esp32/modules/gpio/
interface GpioConfig {
  gpio: number | number[];
  dir: number;
  opendrain?: number;
  pull?: number;
}
declare namespace gpio {
  const IN: number;
  const OUT: number;
  const IN_OUT: number;
  const FLOATING: number;
  const PULL_UP: number;
  const PULL_DOWN: number;
  const PULL_UP_DOWN: number;
  const INTR_UP: number;
  const INTR_DOWN: number;
  const INTR_UP_DOWN: number;
  const INTR_LOW: number;
  const INTR_HIGH: number;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/gpio/#gpioconfig */
  function config(...cfg: GpioConfig[]): void;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/gpio/#gpioread — 0 low, 1 high. */
  function read(pin: number): number;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/gpio/#gpiotrig — callback(pin, level). */
  function trig(pin: number, type: number, callback: (pin: number, level: number) => void): void;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/gpio/#gpiowrite — gpio.c:204-211 lgpio_write; an input-only pin raises "invalid argument" (gpio.c:48-52). */
  function write(pin: number, level: number): void;
}

// ---------------------------------------------------------------------------
// tmr — https://nodemcu.readthedocs.io/en/dev-esp32/modules/tmr/
/** https://nodemcu.readthedocs.io/en/dev-esp32/modules/tmr/#tmr-object */
interface TmrObj {
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/tmr/#tmrobjalarm */
  alarm(this: TmrObj, intervalMs: number, mode: number, cb: (t: TmrObj) => void): boolean;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/tmr/#tmrobjregister — does not start; stops a running timer (tmr.c:86-101). */
  register(this: TmrObj, intervalMs: number, mode: number, cb: (t: TmrObj) => void): void;
  /**
   * https://nodemcu.readthedocs.io/en/dev-esp32/modules/tmr/#tmrobjstart —
   * starts an idle timer (true). A running timer is NOT restarted: false
   * (tmr.c:124-127); stop() first to restart a countdown. Raises "timer not
   * registered" on a timer never registered or a SINGLE one that has fired.
   */
  start(this: TmrObj): boolean;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/tmr/#tmrobjstop — true only if it was running (tmr.c:144-160). */
  stop(this: TmrObj): boolean;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/tmr/#tmrobjunregister */
  unregister(this: TmrObj): void;
}
declare namespace tmr {
  const ALARM_SINGLE: number;
  const ALARM_SEMI: number;
  const ALARM_AUTO: number;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/tmr/#tmrcreate */
  function create(): TmrObj;
}

// ---------------------------------------------------------------------------
// node — https://nodemcu.readthedocs.io/en/dev-esp32/modules/node/
declare namespace node {
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/node/#noderestart */
  function restart(): void;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/node/#nodeheap */
  function heap(): number;
  /**
   * https://nodemcu.readthedocs.io/en/dev-esp32/modules/node/#nodebootreason —
   * node.c:58-159: (rawinfo, ROM reset reason + 7 [, panicval]); docs/power.md §1
   * has the table (8 power-on, 12 deep-sleep wake, 22 brown-out, 19 node.restart).
   */
  function bootreason(): LuaMultiReturn<[number, number, number | undefined]>;
  /** node.c:234-312 node_sleep: light sleep; RAM and driven pins are kept; returns the wake cause. */
  function sleep(opts: { us?: number; secs?: number; uart?: number; gpio?: boolean; touch?: boolean }): number;
  /**
   * node.c:315-412 node_dsleep: deep sleep, never returns; waking restarts the
   * chip. gpio wake is ext1 (level 0: all pins low, 1: any pin high) on RTC GPIOs only.
   */
  function dsleep(opts: { us?: number; secs?: number; gpio?: number | number[]; level?: number; pull?: boolean; isolate?: number[]; touch?: boolean }): void;
}

// ---------------------------------------------------------------------------
// wifi — https://nodemcu.readthedocs.io/en/dev-esp32/modules/wifi/
// Used for two things only: the factory-unique station MAC (the hardware id)
// and switching the RF subsystem on while drawing random bytes.
declare namespace wifi {
  const STATION: number;
  const NULLMODE: number;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/wifi/#wifimode — returns nothing, raises on failure (wifi.c:61-78). */
  function mode(mode: number, save: boolean): void;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/wifi/#wifistart */
  function start(): void;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/wifi/#wifistop */
  function stop(): void;
  namespace sta {
    /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/wifi/#wifistagetmac — "aa:bb:cc:dd:ee:ff" (ip_fmt.c macstr). */
    function getmac(): string;
  }
}

// ---------------------------------------------------------------------------
// sodium — https://nodemcu.readthedocs.io/en/dev-esp32/modules/sodium/
// An optional module: a firmware built without it has no RNG at all, so the
// global may be nil and the board must check.
interface SodiumRandom {
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/sodium/#sodiumrandombuf — n random bytes. */
  buf(this: void, n: number): string;
}
interface SodiumModule {
  random: SodiumRandom;
}
declare const sodium: SodiumModule | undefined;

// ---------------------------------------------------------------------------
// spi — https://nodemcu.readthedocs.io/en/dev-esp32/modules/spi/
interface SpiBusConfig {
  sclk?: number;
  mosi?: number;
  miso?: number;
}
interface SpiDeviceConfig {
  cs?: number;
  mode: number;
  freq: number;
}
/** https://nodemcu.readthedocs.io/en/dev-esp32/modules/spi/#spimasterdevicetransfer */
interface SpiDevice {
  /** Asserts CS, shifts txdata out MSB first, deasserts CS; returns #txdata received bytes. */
  transfer(this: SpiDevice, txdata: string): string;
}
/** https://nodemcu.readthedocs.io/en/dev-esp32/modules/spi/#bus-master-object */
interface SpiBusMaster {
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/spi/#spimasterdevice */
  device(this: SpiBusMaster, config: SpiDeviceConfig): SpiDevice;
}
declare namespace spi {
  const HSPI: number;
  /** Exists, but spi.master refuses it: "invalid host" (spi_master.c:222-226). Use HSPI. */
  const VSPI: number;
  /** https://nodemcu.readthedocs.io/en/dev-esp32/modules/spi/#spimaster — dma 0: at most 32 bytes per transaction. */
  function master(host: number, config: SpiBusConfig, dma: number): SpiBusMaster;
}
