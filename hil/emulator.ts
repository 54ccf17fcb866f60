/**
 * The keyfob board, emulated in-process: an ESP32 running NodeMCU (fengari,
 * Lua 5.3 with 32-bit integers) with a DS3231 on I2C, a MAX7219 on SPI, SPIFFS
 * in a state directory, one button and the console UART.
 *
 * Time is virtual (milliseconds since construction). Timers, button bounce
 * and the RTC's oscillator run on it; advance() moves it. hil/pty.ts drives
 * it from the wall clock.
 *
 * NodeMCU behaviour kept: callbacks run one at a time from a task queue. A
 * Lua error in a callback goes to the default onerror handler (node.c
 * default_onerror): the traceback is printed on the console UART, the
 * firmware keeps running, and a timer restarts the chip ERROR_RESTART_MS
 * later. An error in init.lua is different: lua.c pmain (lua.c:222-280) runs it through
 * docall, which prints the traceback (l_print) and returns; nothing restarts
 * and the console stays with the Lua REPL unless init.lua took it away
 * before failing (lua.c near 96-112 and 266-277). node.restart() restarts at once; a restart takes
 * restartDelayMs until init.lua runs again. A power cut stops everything at once: RAM and
 * the display are lost, flash keeps what reached it, the RTC runs on its
 * battery (unless removeRtcBattery()).
 *
 * A board without init.lua boots into NodeMCU's Lua REPL on the console
 * UART (repl.ts): banner, "cannot open init.lua", prompt. Console input goes
 * to the REPL unless the firmware took it with uart.on(..., run_input = 0).
 * A board with init.lua prints the same banner, runs init.lua, then prints
 * the first prompt (lua.c:238, queued before init.lua runs), so a host listening at power-on reads that
 * text before the firmware's first frame, as from the real board.
 * Deviation: the ESP32 ROM and bootloader lines that precede the banner are
 * not sent.
 *
 * SPIFFS work blocks the Lua task on the board (hil/flash.ts has the
 * figures). In realtime mode (the PTY) flash time is charged to the running
 * task as it happens (Hardware.spend, below): the task's later UART output
 * leaves only once that time has passed, and bytes from the host wait in the
 * UART buffers; the station's timing therefore includes it. Inside that
 * time the flash cache is off in stretches (hil/flash.ts cacheOffStretches)
 * and the console's RX ISR cannot run: bytes arriving then stay in the
 * 128-byte RX FIFO and overflow it (console-rx.ts).
 * Deviation: in stepped mode (tests that call advance()) the time is counted
 * in counters.flashBusyMs but not spent, so replies stay synchronous, and
 * no byte meets a cache-off stretch.
 *
 * Deep sleep (issue 12): node.dsleep stops the machine as the chip does;
 * deep-sleep.ts holds it asleep, wakes it on ext1/timer and resets it with
 * node.bootreason() 3, 12 (rtcmem kept). node.sleep (light sleep) runs
 * virtual time on inside the calling task. USB VBUS (GPIO34) is present by
 * default (options.vbus, setUsb): without it the USB bridge is unpowered, so
 * console bytes both ways are lost. Driving DISPLAY_POWER_PIN low powers the
 * MAX7219 down (dark, deaf to SPI); deep sleep and power cuts do too.
 * Deviation: every boot powers the MAX7219 up, as if the rail were on, so
 * images that predate the switch (test fixtures) keep their display; the
 * DS3231 is not gated (with its cell it answers on I2C either way,
 * datasheet Rev 10 "accessible whenever either VCC or VBAT is at a valid level").
 *
 * Faults (faults.ts) are switched on with options.faults or setFault().
 * rtcmem's slots live here, not in the Machine: they survive a software
 * restart and hold random words after a power-on (rtcmem.c:9 RTC_NOINIT_ATTR).
 *
 * The NodeMCU build (nodemcu-build.ts, nodemcu-build/sdkconfig.fobkit by
 * default) decides which modules exist, the console's line endings and the
 * task queues' sizes. Tasks go through NodeMCU's queues (task.c): console
 * bytes and tmr alarms share the high-priority queue, gpio interrupts use the
 * low one, and the pump runs one task at a time. A task can keep Lua busy in
 * virtual time (Hardware.spend: a console write longer than the UART's TX
 * FIFO blocks until the rest fits, when line timing is on); tasks posted
 * meanwhile wait, a full queue loses a tmr alarm or a gpio interrupt as on
 * the board, and console input piles up in the UART's buffers and overflows
 * them (console-rx.ts).
 */
import { createHash, randomFillSync } from "node:crypto";
import { EventEmitter } from "node:events";
import { existsSync, mkdirSync, readdirSync, realpathSync } from "node:fs";
import { BUTTON_PIN, DISPLAY_CS_PIN, DISPLAY_POWER_PIN, VBUS_SENSE_PIN } from "../firmware/board/pins.js";
import { LINK_BAUD } from "../protocol/codes.js";
import { BITS_PER_BYTE, ConsoleRx, TX_FIFO_BYTES, translateTx } from "./console-rx.js";
import { DeepSleep } from "./deep-sleep.js";
import { Ds3231, storedOsf, storeOsf } from "./ds3231.js";
import { lua, pushJs, toJs, toLuaString } from "./fengari.js";
import { FlashStore, type SpiffsGeometry } from "./flash.js";
import { FAULTS, isFault, type Fault } from "./faults.js";
import { installImage, INIT_FILE, IMAGE_FILE } from "./install.js";
import { DEFAULT_FREE_HEAP } from "./compile.js";
import { bytecodeName } from "../host/flash/image-files.js";
import { ESP32_BOOT_MS } from "../host/flash/init-lua.js";
import { Machine, PANIC_STATE, type EmulatorEvent, type Hardware } from "./machine.js";
import { Max7219 } from "./max7219.js";
import { ALL_MODULES, loadNodemcuBuild, type NodemcuBuild } from "./nodemcu-build.js";
import { Repl } from "./repl.js";
import { installBase } from "./nodemcu/base.js";
import { installFile } from "./nodemcu/file.js";
import { GPIO, installGpio, type GpioPort } from "./nodemcu/gpio.js";
import { installI2c } from "./nodemcu/i2c.js";
import { installNode } from "./nodemcu/node.js";
import { installRtcmem, RTC_USER_MEM_NUM_DWORDS } from "./nodemcu/rtcmem.js";
import { BOOT_REASONS, DSLEEP_STATE, type DeepSleepRequest, type ResetKind } from "./nodemcu/sleep.js";
import { installSodium } from "./nodemcu/sodium.js";
import { installSpi } from "./nodemcu/spi.js";
import { installTmr, type TmrPort } from "./nodemcu/tmr.js";
import { installUart, type UartPort } from "./nodemcu/uart.js";
import { installWifi } from "./nodemcu/wifi.js";
import { VirtualClock, type ScheduledEvent } from "./virtual-clock.js";

export type { EmulatorEvent } from "./machine.js";

/**
 * ESP32 reset to init.lua, as docs/power.md's wake table adds it up: ROM,
 * second-stage bootloader and image check to app_main, ESP32_BOOT_MS
 * (host/flash/init-lua.ts: 300 ms, docs/power.md:273, Espressif's figure); NodeMCU's start before init.lua, 20 ms (docs/power.md:275);
 * the SPIFFS mount's scan, three flash reads a block of the build's partition
 * (SpiffsGeometry.mountMs, hil/flash.ts; docs/power.md:274 counts one). The image's own reads are charged as they
 * happen. Until then the chip hears nothing: the machine is stopped, so bytes
 * from the host are lost, as they are to the ROM bootloader.
 */
export function restartDelayMs(spiffs: SpiffsGeometry): number {
  return ESP32_BOOT_MS + 20 + Math.ceil(spiffs.mountMs);
}
/** node.c:29-44 default_onerror: "automatic restart after 2s delay" (node.c:35-39). */
export const ERROR_RESTART_MS = 2000;
/** Wiring of the reference board: firmware/board/pins.ts, the one place it is written. */
export { BUTTON_PIN, DISPLAY_CS_PIN };
/** Espressif's OUI (24:0A:C4) for the emulated station MAC. */
const ESPRESSIF_OUI = [0x24, 0x0a, 0xc4];

export interface EmulatorOptions {
  /** SPIFFS contents live here, one file per SPIFFS name. */
  stateDir: string;
  /** If given, installed into stateDir as fobkit.lua + init.lua (see install.ts). */
  imagePath?: string;
  /** Unix seconds the RTC shows at start (default: now). */
  time?: number;
  /** RTC crystal error in ppm, positive = fast (default 0). */
  driftPpm?: number;
  /** Modelled line speed for the PTY (default LINK_BAUD, 115200). */
  baud?: number;
  /** The NodeMCU build's sdkconfig fragment (default nodemcu-build/sdkconfig.fobkit). */
  build?: string;
  /**
   * Model the console line's timing on the board side: a write blocks Lua
   * until all but the TX FIFO's 128 bytes are on the wire (default: realtime,
   * i.e. when the PTY paces the line).
   */
  lineTiming?: boolean;
  /** false: firmware without the sodium module, i.e. no RNG (default true). */
  rng?: boolean;
  /** false: no DS3231 answers on the bus (default true). */
  rtc?: boolean;
  /**
   * true: the RTC starts with OSF set and its power-on time; false: it holds `time`.
   * Default: what the state directory's DS3231 last had (ds3231.ts storedOsf), else set
   * on a first power-up with an empty flash and no imagePath (a factory-fresh board).
   */
  rtcTimeLost?: boolean;
  /** Count Lua VM instructions with a count hook (default true; costs speed). */
  countInstructions?: boolean;
  /** What node.heap() reports, and the heap Lua gets (machine.ts heap meter, lua-heap.ts): 120,000 bytes unless set. */
  freeHeap?: number;
  /** How long press() holds the button, ms (default 120). */
  pressMs?: number;
  /** true when something else (the PTY ticker) advances time: press() then does not. */
  realtime?: boolean;
  /** Faults switched on from power-on (faults.ts); setFault() changes them later. */
  faults?: Fault[];
  /** USB VBUS present (GPIO34 high; default true): false runs the keyfob on its battery. */
  vbus?: boolean;
  /**
   * Start from a worn SPIFFS (FlashStore.wear): the files in stateDir (after
   * any install) written again and again without a format, so that every
   * create or append on the board garbage-collects first (hil/spiffs-gc.ts).
   */
  spiffsWorn?: boolean;
}

export interface EmulatorCounters {
  /** Lua VM instructions executed since construction (all boots). */
  instructions: number;
  boots: number;
  luaErrors: number;
  uartTxBytes: number;
  uartRxBytes: number;
  /** Milliseconds the firmware spent blocked in SPIFFS (hil/flash.ts figures). */
  flashBusyMs: number;
  /** Console bytes lost to RX FIFO overflow (console-rx.ts). */
  uartRxLost: number;
  /** Tasks NodeMCU's full queues refused: tmr alarms and gpio interrupts lost. */
  tasksLost: number;
}

type Task = () => string | undefined;

export class Emulator extends EventEmitter {
  readonly clock = new VirtualClock();
  readonly rtc: Ds3231;
  readonly max7219 = new Max7219();
  readonly flash: FlashStore;
  readonly mac: Uint8Array;
  readonly baud: number;
  readonly build: NodemcuBuild;
  readonly counters: EmulatorCounters = { instructions: 0, boots: 0, luaErrors: 0, uartTxBytes: 0, uartRxBytes: 0, flashBusyMs: 0, uartRxLost: 0, tasksLost: 0 };
  private readonly opts: Required<Omit<EmulatorOptions, "imagePath" | "time" | "driftPpm" | "baud" | "build" | "faults" | "vbus" | "spiffsWorn">>;
  /** The chip between node.dsleep and its wake (deep-sleep.ts). */
  readonly deepSleep: DeepSleep;
  private vbus: boolean;
  /** What reset the next boot() is (node.bootreason), and the one the running machine had. */
  private wakeReset = false;
  /** The next boot() follows a brown-out (brownOut()). */
  private brownOutReset = false;
  private resetKind: ResetKind = "power-on";
  private readonly faults = new Set<Fault>();
  /** rtcmem.c's RTC_NOINIT slots: kept across software restarts, garbage at power-on. */
  private readonly rtcSlots = new Int32Array(RTC_USER_MEM_NUM_DWORDS);
  /** The next boot() is a software restart (esp_restart), not a power-on or reset pin. */
  private softRestart = false;
  private machine: Machine | undefined;
  private uart: UartPort | undefined;
  private repl: Repl | undefined;
  private gpio: GpioPort | undefined;
  private tmr: TmrPort | undefined;
  private buttonLevel = 1;
  private busy = false;
  private readonly queue: (() => void)[] = [];
  private rtcBattery = true;
  private pendingBoot: ReturnType<VirtualClock["schedule"]> | undefined;
  private instructionsAtBoot = 0;
  private displayDirty = false;
  /** Realtime: output written after flash work in its task, not yet on the wire; a power cut drops it. */
  private waiting: ReturnType<VirtualClock["schedule"]>[] = [];
  private lastDisplay = "        ";
  private rx: ConsoleRx | undefined;
  /** NodeMCU's task queues (task.c): high (console bytes, tmr alarms) and low (gpio). */
  private readonly highQueue: Task[] = [];
  private readonly lowQueue: Task[] = [];
  /** Virtual time until which the running (or last) task keeps Lua busy. */
  private luaFreeAt = 0;
  private spentMs = 0;
  private draining = false;
  private drainEvent: ScheduledEvent | undefined;
  /** Virtual time the console's TX line finishes sending what was written. */
  private txEndsAt = 0;

  constructor(options: EmulatorOptions) {
    super();
    if (!options.stateDir) throw new TypeError("Emulator: stateDir is required");
    mkdirSync(options.stateDir, { recursive: true });
    const time = options.time ?? Math.floor(Date.now() / 1000);
    if (!Number.isFinite(time) || time < 946684800 || time >= 4102444800) throw new RangeError(`Emulator: time must be Unix seconds in 2000..2099, got ${time}`);
    this.build = loadNodemcuBuild(options.build);
    // A DS3231 powered for the first time has OSF set (ds3231.ts storedOsf): the board's first
    // power-up is on an empty flash, as `fobkit emu --blank`; imagePath stands for a board whose
    // clock was set. Later runs on the state directory keep what the chip last had.
    const firstPowerOsf = !options.imagePath && (!existsSync(options.stateDir) || readdirSync(options.stateDir).length === 0);
    const rtcTimeLost = options.rtcTimeLost ?? storedOsf(options.stateDir) ?? firstPowerOsf;
    if (options.imagePath) installImage(options.stateDir, options.imagePath, options.freeHeap ?? DEFAULT_FREE_HEAP, this.build.spiffs);
    this.baud = options.baud ?? LINK_BAUD;
    if (!Number.isInteger(this.baud) || this.baud <= 0) throw new RangeError(`Emulator: baud must be a positive integer, got ${options.baud}`);
    this.opts = {
      stateDir: options.stateDir,
      rng: options.rng ?? true,
      rtc: options.rtc ?? true,
      rtcTimeLost,
      countInstructions: options.countInstructions ?? true,
      freeHeap: options.freeHeap ?? DEFAULT_FREE_HEAP,
      pressMs: options.pressMs ?? 120,
      realtime: options.realtime ?? false,
      lineTiming: options.lineTiming ?? options.realtime ?? false,
    };
    for (const f of options.faults ?? []) {
      if (!isFault(f)) throw new RangeError(`Emulator: unknown fault ${JSON.stringify(f)}; known: ${Object.keys(FAULTS).join(", ")}`);
      this.faults.add(f);
    }
    this.vbus = options.vbus ?? true;
    this.deepSleep = new DeepSleep({
      clock: this.clock,
      bootMs: restartDelayMs(this.build.spiffs),
      level: (pin) => this.boardLevel(pin),
      rtcSeconds: () => this.rtc.chipSeconds(this.clock.nowMs),
      wakeBoot: () => {
        this.wakeReset = true;
        this.boot();
      },
      event: (e) => this.emitEvent(e),
    });
    this.flash = new FlashStore(options.stateDir, this.faults, this.build.spiffs);
    if (options.spiffsWorn) this.flash.wear();
    this.rtc = new Ds3231({ unixSeconds: time, driftPpm: options.driftPpm ?? 0, onOsfChange: (set) => storeOsf(options.stateDir, set) });
    this.rtc.present = this.opts.rtc;
    if (this.opts.rtcTimeLost) this.rtc.loseTime(0);
    storeOsf(options.stateDir, this.rtc.oscillatorStopped);
    const id = createHash("sha256").update(realpathSync(options.stateDir)).digest();
    this.mac = Uint8Array.from([...ESPRESSIF_OUI, id[0], id[1], id[2]]);
    // One display event per firmware task, not one per digit register write.
    this.max7219.onChange = () => {
      this.displayDirty = true;
      if (!this.busy) this.flushDisplay();
    };
  }

  /** What the 8 digits show now (8 characters, blanks when dark). */
  get display(): string {
    return this.max7219.text();
  }

  get powered(): boolean {
    return this.machine !== undefined;
  }

  /** Virtual time in seconds since construction. */
  get now(): number {
    return this.clock.nowMs / 1000;
  }

  /** The RTC's own time, Unix seconds (floor), as the chip would report it. */
  rtcTime(): number {
    return Math.floor(this.rtc.chipSeconds(this.clock.nowMs));
  }

  /** Lua instructions since the last boot. */
  get instructionsSinceBoot(): number {
    return this.counters.instructions - this.instructionsAtBoot;
  }

  private flushDisplay(): void {
    if (!this.displayDirty) return;
    this.displayDirty = false;
    const text = this.max7219.text();
    if (text === this.lastDisplay) return;
    this.lastDisplay = text;
    this.emitEvent({ event: "display", text });
  }

  private emitEvent(e: EmulatorEvent): void {
    this.emit("event", e);
    // EventEmitter throws on an unheard "error": firmware errors are data here.
    if (e.event !== "error") this.emit(e.event, e);
  }

  private hardware(): Hardware {
    const self = this;
    return {
      clock: this.clock,
      rtc: this.rtc,
      display: this.max7219,
      flash: this.flash,
      displayCsPin: DISPLAY_CS_PIN,
      mac: this.mac,
      rngAvailable: this.opts.rng,
      freeHeap: this.opts.freeHeap,
      faults: this.faults,
      gpioLevel(pin: number) {
        const out = self.gpio?.output(pin);
        if (out !== undefined) return out;
        if (pin === BUTTON_PIN || pin === VBUS_SENSE_PIN) return self.boardLevel(pin);
        const pull = self.gpio?.pull(pin) ?? GPIO.FLOATING;
        return pull === GPIO.PULL_UP || pull === GPIO.PULL_UP_DOWN ? 1 : 0;
      },
      gpioOut(pin: number, level: number) {
        // The display rail's load switch (firmware/board/pins.ts).
        if (pin !== DISPLAY_POWER_PIN) return;
        if (level === 0 && self.max7219.powered) self.max7219.powerOff();
        else if (level === 1 && !self.max7219.powered) self.max7219.powerOn();
      },
      sleep: {
        bootReason: () => BOOT_REASONS[self.resetKind],
        lightSleep(ms: number) {
          // The display shows what the task wrote while the CPU sleeps: let it be seen now.
          self.flushDisplay();
          self.clock.advanceTo(self.clock.nowMs + ms);
        },
      },
      uartTx(bytes: Uint8Array) {
        // Everything on the console goes through stdout and the UART VFS's TX line endings.
        const out = translateTx(bytes, self.build.stdoutLineEnding);
        self.counters.uartTxBytes += out.length;
        // Flash work the task did before this write delays it (realtime only; see spend()).
        self.chargeFlashTime();
        self.emitTx(out);
        if (self.opts.lineTiming) self.spend(self.txBlockMs(out.length));
      },
      spend(ms: number) {
        self.spend(ms);
      },
      event(e: EmulatorEvent) {
        self.emitEvent(e);
        if (e.event === "uart-config" && e.baud !== self.baud) {
          self.emitEvent({ event: "warning", message: `firmware set the UART to ${e.baud} baud, the line is modelled at ${self.baud}: a real host would read garbage` });
        }
      },
    };
  }

  /** Power on (or reset, if running): a fresh VM runs init.lua from flash. */
  boot(): void {
    if (this.busy) throw new Error("Emulator.boot: called from inside a firmware callback");
    this.clock.cancel(this.pendingBoot);
    this.pendingBoot = undefined;
    if (!this.machine) this.max7219.powerOn();
    // RTC_NOINIT memory: kept by esp_restart and deep sleep, random after power-on or the reset pin.
    this.resetKind = this.wakeReset ? "deep-sleep" : this.brownOutReset ? "brown-out" : this.softRestart ? "software" : "power-on";
    // A brown-out may take RTC memory too: the emulator keeps nothing it might lose.
    if (this.resetKind === "power-on" || this.resetKind === "brown-out") randomFillSync(this.rtcSlots);
    this.brownOutReset = false;
    this.softRestart = false;
    this.wakeReset = false;
    this.deepSleep.reset();
    this.stopMachine();
    // user_main.c mounts SPIFFS at every start: its RAM state (free blocks, cursor, open files) begins afresh.
    this.flash.mount();
    const has = new Set(this.build.modules);
    if (!this.opts.rng) has.delete("sodium");
    const absentModules = new Set([...ALL_MODULES].filter((name) => !has.has(name)));
    const m = new Machine(this.hardware(), { countInstructions: this.opts.countInstructions, absentModules, chargeCpu: this.opts.realtime });
    this.machine = m;
    this.instructionsAtBoot = this.counters.instructions;
    this.luaFreeAt = this.clock.nowMs;
    installBase(m);
    if (has.has("file")) installFile(m);
    const uart = installUart(m);
    this.uart = uart;
    const repl = new Repl(m);
    this.repl = repl;
    this.rx = new ConsoleRx(
      {
        wanted: () => uart.runInput || uart.hasDataCallback,
        post: (byte) => this.post(m, "high", () => this.consoleTask(m, uart, repl, byte), true),
        overflow: (lost) => {
          this.counters.uartRxLost += lost;
          this.emitEvent({ event: "uart-overrun", lost });
        },
        now: () => this.clock.nowMs,
        at: (atMs, fn) => {
          const ev = this.clock.schedule(Math.max(0, atMs - this.clock.nowMs), fn);
          return () => this.clock.cancel(ev);
        },
      },
      this.build.stdinLineEnding,
      (BITS_PER_BYTE * 1000) / this.baud,
    );
    if (has.has("i2c")) installI2c(m);
    if (has.has("gpio")) this.gpio = installGpio(m, (task) => this.post(m, "low", task));
    if (has.has("tmr")) this.tmr = installTmr(m, (task) => this.post(m, "high", task));
    if (has.has("node")) installNode(m);
    const radio = has.has("wifi") ? installWifi(m) : { on: false };
    if (has.has("sodium")) installSodium(m, radio);
    // Injected faults take a module away as a build without it would.
    const absent = new Set<string>();
    if (has.has("spi") && !this.faults.has("no-spi")) installSpi(m);
    else absent.add("spi");
    if (has.has("rtcmem") && !this.faults.has("no-rtcmem")) installRtcmem(m, this.rtcSlots);
    else absent.add("rtcmem");
    m.strictGlobals(absent);
    m.sealRomTables();
    m.meterHeap();
    this.counters.boots++;
    const hasInit = this.flash.exists(INIT_FILE);
    this.emitEvent({ event: "boot", init: hasInit });
    if (!hasInit) {
      this.emitEvent({ event: "repl", message: `no ${INIT_FILE} in ${this.opts.stateDir}: the Lua REPL has the console UART` });
      this.run(m, () => {
        repl.bootWithoutInit();
        return undefined;
      });
      return;
    }
    this.run(m, () => {
      const err = repl.bootWithInit(() => {
        lua.lua_getglobal(m.L, "dofile");
        lua.lua_pushstring(m.L, toLuaString(INIT_FILE));
        return m.pcall(1, 0);
      });
      // lua.c:267-275 (pmain): docall, then l_print(L, 1) of the traceback; no onerror, no restart.
      if (err !== undefined && !m.halted) {
        this.counters.luaErrors++;
        this.emitEvent({ event: "error", kind: "init", message: err });
        this.hardware().uartTx(Uint8Array.from(err + "\n", (c) => c.charCodeAt(0) & 255));
        const who = this.uart?.runInput ? "the Lua REPL keeps the console UART" : "init.lua took the console UART before failing";
        this.emitEvent({ event: "repl", message: `init.lua failed; no restart (lua.c docall); ${who}` });
      }
      return undefined;
    });
    // A task of its own, after init.lua's error (if any) was printed.
    this.run(m, () => repl.firstPrompt());
  }

  /** Cut the power now. Flash keeps what reached it; the RTC keeps time on its battery. */
  /**
   * The supply dips below the brown-out level (a flat battery under the wake's
   * current) and comes back: the chip resets at once, asleep or awake, and
   * node.bootreason() says 3, 22 (RTCWDT_BROWN_OUT_RESET + 7, node.c:137-139).
   * The MAX7219 and the RAM lose their contents as at a power cut.
   */
  brownOut(): void {
    if (this.busy) throw new Error("Emulator.brownOut: called from inside a firmware callback");
    this.powerOff("brown-out");
    this.brownOutReset = true;
    this.boot();
  }

  powerCut(): void {
    if (this.busy) throw new Error("Emulator.powerCut: called from inside a firmware callback (use powerCutAtWrite)");
    this.powerOff("power-cut");
  }

  /** Cut the power during the n-th flash write from now (1 = the next one). */
  powerCutAtWrite(n: number): void {
    this.flash.cutAtWrite(n);
  }

  /** The coin cell is gone: the next power cut stops the RTC (OSF set, time reset). */
  removeRtcBattery(): void {
    this.rtcBattery = false;
  }

  insertRtcBattery(): void {
    this.rtcBattery = true;
  }

  private powerOff(reason: string): void {
    this.clock.cancel(this.pendingBoot);
    this.pendingBoot = undefined;
    this.flash.disarm();
    for (const w of this.waiting) this.clock.cancel(w);
    this.waiting = [];
    const wasOn = this.machine !== undefined || this.deepSleep.asleep;
    this.deepSleep.reset();
    this.stopMachine();
    this.max7219.powerOff();
    if (!this.rtcBattery) this.rtc.loseTime(this.clock.nowMs);
    if (wasOn) this.emitEvent({ event: "power-cut", reason });
  }

  private stopMachine(): void {
    const m = this.machine;
    if (!m) return;
    this.tmr?.cancelAll();
    this.rx?.reset();
    this.rx = undefined;
    this.highQueue.length = 0;
    this.lowQueue.length = 0;
    this.clock.cancel(this.drainEvent);
    this.drainEvent = undefined;
    this.luaFreeAt = this.clock.nowMs;
    this.machine = undefined;
    this.uart = undefined;
    this.repl = undefined;
    this.gpio = undefined;
    this.tmr = undefined;
    m.halted ??= "power-cut";
  }

  /** Run one task on the machine (NodeMCU's task queue: never nested). */
  private run(m: Machine, task: () => string | undefined): void {
    if (this.busy) {
      this.queue.push(() => this.run(m, task));
      return;
    }
    if (this.machine !== m || m.halted) return;
    this.busy = true;
    this.spentMs = 0;
    const before = m.instructions;
    m.startTask();
    let err: string | undefined;
    try {
      err = task();
    } finally {
      this.counters.instructions += m.instructions - before;
      this.chargeFlashTime();
      this.busy = false;
      if (this.spentMs > 0) this.luaFreeAt = Math.max(this.luaFreeAt, this.clock.nowMs + this.spentMs);
      this.spentMs = 0;
    }
    this.flushDisplay();
    this.afterCall(m, err);
    while (!this.busy && this.queue.length > 0) this.queue.shift()!();
    if (!this.busy) this.drain();
  }

  /** The running task blocks Lua for ms more (Hardware.spend). */
  private spend(ms: number): void {
    if (!(ms >= 0) || !Number.isFinite(ms)) throw new RangeError(`spend: ms must be a finite number >= 0, got ${ms}`);
    if (this.busy) this.spentMs += ms;
    else this.luaFreeAt = Math.max(this.luaFreeAt, this.clock.nowMs) + ms;
  }

  /**
   * A console write of n bytes: the console driver has no TX buffer
   * (user_main.c:254 passes 0), so the write returns once all but the TX
   * FIFO's 128 bytes are out on the wire. Returns how long Lua blocks.
   */
  private txBlockMs(n: number): number {
    const byteMs = (BITS_PER_BYTE * 1000) / this.baud;
    const t = this.clock.nowMs + this.spentMs;
    this.txEndsAt = Math.max(this.txEndsAt, t) + n * byteMs;
    return Math.max(0, this.txEndsAt - TX_FIFO_BYTES * byteMs - t);
  }

  /**
   * task_post to NodeMCU's queue of that priority: the task runs at once if
   * Lua is idle with nothing queued, else it waits for a slot's turn. False
   * when the queue is full (task.c:58-70: a non-blocking post fails; the
   * console reader then waits, see console-rx.ts).
   */
  private post(m: Machine, prio: "high" | "low", task: Task, blocking = false): boolean {
    if (this.machine !== m || m.halted) return true;
    const queue = prio === "high" ? this.highQueue : this.lowQueue;
    const slots = prio === "high" ? this.build.highQueueSlots : this.build.lowQueueSlots;
    if (!this.busy && !this.draining && this.clock.nowMs >= this.luaFreeAt && this.highQueue.length === 0 && this.lowQueue.length === 0) {
      this.run(m, task);
      return true;
    }
    if (queue.length >= slots) {
      if (!blocking) this.counters.tasksLost++;
      return false;
    }
    queue.push(task);
    this.scheduleDrain();
    return true;
  }

  /** The task pump (task.c:155-166): highest priority first, one at a time, while Lua is free. */
  private drain(): void {
    if (this.draining || this.busy) return;
    this.draining = true;
    try {
      while (this.machine && this.clock.nowMs >= this.luaFreeAt) {
        const task = this.highQueue.shift() ?? this.lowQueue.shift();
        if (!task) break;
        this.run(this.machine, task);
        this.rx?.settle();
      }
    } finally {
      this.draining = false;
    }
    this.scheduleDrain();
  }

  private scheduleDrain(): void {
    if (this.highQueue.length === 0 && this.lowQueue.length === 0) return;
    if (this.busy || this.draining) return; // run() and drain() go on with the queues
    const at = Math.max(this.luaFreeAt, this.clock.nowMs);
    if (this.drainEvent && !this.drainEvent.cancelled && this.drainEvent.at === at) return;
    this.clock.cancel(this.drainEvent);
    this.drainEvent = this.clock.schedule(at - this.clock.nowMs, () => {
      this.drainEvent = undefined;
      this.drain();
    });
  }

  /** console_nodemcu_task (user_main.c:179-194) for one received byte. */
  private consoleTask(m: Machine, uart: UartPort, repl: Repl, byte: number): string | undefined {
    const data = Uint8Array.of(byte);
    if (uart.runInput) repl.feed(data, uart.echo, (line) => this.run(m, () => repl.dojob(line)));
    // user_main.c:187-189: uart.c sees the byte only while a data callback is registered.
    return uart.hasDataCallback ? uart.feed(data) : undefined;
  }

  /**
   * Charge the SPIFFS time the running task has run up so far (hil/flash.ts
   * figures). Realtime: it keeps Lua busy (spend), so the task's later UART
   * output and the next tasks wait for it. Stepped: only counted, so replies
   * stay synchronous for tests that call advance().
   */
  private chargeFlashTime(): void {
    const busy = this.flash.busyMs;
    if (busy === 0) return;
    this.flash.busyMs = 0;
    const stretches = this.flash.takeCacheOff();
    this.counters.flashBusyMs += busy;
    if (!this.opts.realtime) return;
    // The flash calls run from where the task has got to: the console's RX ISR cannot run inside
    // their cache-off stretches (console-rx.ts, hil/flash.ts cacheOffStretches).
    this.rx?.cacheOff(this.busy ? this.clock.nowMs + this.spentMs : Math.max(this.luaFreeAt, this.clock.nowMs), stretches);
    this.spend(busy);
  }

  /** Send console output at the virtual time the running task has reached (order kept). */
  private emitTx(out: Uint8Array): void {
    // Without VBUS the USB bridge is unpowered: the bytes go nowhere.
    if (!this.vbus) return;
    const wait = this.busy ? this.spentMs : 0;
    if (wait <= 0) {
      this.emit("uart", out);
      return;
    }
    this.waiting = this.waiting.filter((w) => w.at > this.clock.nowMs);
    this.waiting.push(this.clock.schedule(wait, () => this.emit("uart", out)));
  }

  /** After firmware code ran: handle its error, a restart, or a power cut it hit. */
  private afterCall(m: Machine, err: string | undefined): void {
    if (this.machine !== m) return;
    if (m.halted === "power-cut") {
      this.powerOff("flash write cut");
      return;
    }
    if (m.halted === "restart") {
      this.scheduleRestart("node.restart()");
      return;
    }
    if (m.halted === "panic") {
      // ESP-IDF's panic handler prints the cause and "Rebooting..." (panic.c:446), then a software CPU reset.
      const cause = String(m.state.get(PANIC_STATE));
      this.hardware().uartTx(Uint8Array.from(`\r\n${cause}\r\n\r\nRebooting...\r\n`, (c) => c.charCodeAt(0) & 255));
      this.scheduleRestart(`panic: ${cause}`);
      return;
    }
    if (m.halted === "deep-sleep") {
      const req = m.state.get(DSLEEP_STATE) as DeepSleepRequest;
      this.stopMachine();
      // No pad stays driven: the display rail's switch falls off on its pull-down.
      this.max7219.powerOff();
      this.flushDisplay();
      this.deepSleep.enter(req);
      return;
    }
    if (m.halted === "hung") {
      // A driver call that never returns (i2c.ts): the Lua task stays blocked, so nothing runs or
      // answers again until a power cycle. ESP-IDF's task watchdog watches the idle tasks, which
      // still run, so it does not reset the board.
      this.emitEvent({ event: "hung", reason: "the Lua task is blocked in a driver call that never returns" });
      return;
    }
    if (err !== undefined) {
      this.counters.luaErrors++;
      this.emitEvent({ event: "error", kind: "lua", message: err });
      // default_onerror: print(msg) on the console, restart 2 s later (once).
      this.hardware().uartTx(Uint8Array.from(err + "\n", (c) => c.charCodeAt(0) & 255));
      if (this.pendingBoot === undefined) {
        this.emitEvent({ event: "restart", reason: `Lua error; restart in ${ERROR_RESTART_MS} ms` });
        this.pendingBoot = this.clock.schedule(ERROR_RESTART_MS, () => {
          this.pendingBoot = undefined;
          this.restart();
        });
      }
    }
  }

  private scheduleRestart(reason: string): void {
    this.emitEvent({ event: "restart", reason });
    this.restart();
  }

  /**
   * esp_restart, the one restart path (node.restart() and default_onerror's
   * timer both end here): the machine stops now, init.lua runs again
   * restartDelayMs later, and rtcmem keeps its slots (a software restart).
   */
  private restart(): void {
    this.stopMachine();
    this.pendingBoot = this.clock.schedule(restartDelayMs(this.build.spiffs), () => {
      this.pendingBoot = undefined;
      this.softRestart = true;
      this.boot();
    });
  }

  /** Switch a fault on or off (faults.ts); takes effect from the next firmware call. */
  setFault(fault: Fault, on: boolean): void {
    if (!isFault(fault)) throw new RangeError(`setFault: unknown fault ${JSON.stringify(fault)}; known: ${Object.keys(FAULTS).join(", ")}`);
    if (on) this.faults.add(fault);
    else this.faults.delete(fault);
  }

  /** The faults switched on now. */
  get activeFaults(): Fault[] {
    return [...this.faults];
  }

  /** rtcmem slot i as the firmware would read it (tests). */
  rtcmemSlot(i: number): number {
    return this.rtcSlots[i];
  }

  /** Move virtual time forward, running every timer, bounce and restart due on the way. */
  advance(seconds: number): void {
    if (!(seconds >= 0) || !Number.isFinite(seconds)) throw new RangeError(`advance: seconds must be a finite number >= 0, got ${seconds}`);
    if (this.busy) throw new Error("Emulator.advance: called from inside a firmware callback");
    this.clock.advanceTo(this.clock.nowMs + seconds * 1000);
  }

  /** The button pin changes level: GPIO interrupt callbacks run as a task. */
  private setLevel(level: number): void {
    if (level === this.buttonLevel) return;
    this.buttonLevel = level;
    // The ISR runs outside Lua, at the edge; it posts the callback task itself.
    if (this.machine) this.gpio?.edge(BUTTON_PIN, level);
    else this.deepSleep.check();
  }

  /** The level the board puts on an input pin: the button's pull-up, the VBUS divider. */
  private boardLevel(pin: number): number {
    if (pin === BUTTON_PIN) return this.buttonLevel;
    if (pin === VBUS_SENSE_PIN) return this.vbus ? 1 : 0;
    return 0;
  }

  /** Plug USB in (true) or pull it out: VBUS on GPIO34, and power for the USB bridge. */
  setUsb(present: boolean): void {
    if (present === this.vbus) return;
    this.vbus = present;
    this.emitEvent({ event: "usb", present });
    if (this.machine) this.gpio?.edge(VBUS_SENSE_PIN, present ? 1 : 0);
    else this.deepSleep.check();
  }

  /** Whether USB VBUS is present. */
  get usb(): boolean {
    return this.vbus;
  }

  /** Every node.dsleep the image made, oldest first (the sleep events carry the same). */
  get dsleepCalls(): readonly DeepSleepRequest[] {
    return this.deepSleep.history;
  }

  /**
   * Press the button for holdMs (default pressMs), with contact bounce: the
   * first millisecond toggles twice before the contact settles low. Unless
   * the emulator is in realtime mode, virtual time advances past the release.
   */
  press(holdMs = this.opts.pressMs): void {
    if (!(holdMs >= 5)) throw new RangeError(`press: holdMs must be >= 5, got ${holdMs}`);
    this.setLevel(0);
    this.clock.schedule(0.4, () => this.setLevel(1));
    this.clock.schedule(0.8, () => this.setLevel(0));
    this.clock.schedule(holdMs, () => this.setLevel(1));
    if (!this.opts.realtime) this.advance(holdMs / 1000 + 0.001);
  }

  /**
   * Bytes arriving on the console UART from the host, as one burst now
   * (pty.ts paces them at the line rate). They take the board's path
   * (console-rx.ts): while Lua is busy they wait in its buffers and can
   * overflow them; while it is idle each byte's task runs at once.
   */
  uartWrite(bytes: Uint8Array | number[] | string): void {
    const data = typeof bytes === "string" ? Uint8Array.from(bytes, (c) => c.charCodeAt(0) & 255) : bytes instanceof Uint8Array ? bytes : Uint8Array.from(bytes);
    for (const b of data) if (!Number.isInteger(b) || b < 0 || b > 255) throw new RangeError(`uartWrite: byte ${b} out of 0..255`);
    this.counters.uartRxBytes += data.length;
    // Without VBUS the USB bridge is unpowered: nothing reaches the UART.
    if (!this.vbus) return;
    // A powered-off board drops the bytes; a powered one takes them through its UART buffers.
    this.rx?.arrive(data);
  }

  /**
   * Test hook: call a function of the running image (the table dofile
   * returned for fobkit.lua), e.g. callImage("probe.rtcRead"). Runs as a task
   * like any callback; a Lua error is thrown as a JS Error.
   */
  callImage(path: string, ...args: unknown[]): unknown {
    const m = this.machine;
    if (!m) throw new Error("callImage: the board is not powered");
    const ref = m.dofileResults.get(bytecodeName(IMAGE_FILE)) ?? m.dofileResults.get(IMAGE_FILE);
    if (ref === undefined) throw new Error(`callImage: ${IMAGE_FILE} has not been loaded by the firmware`);
    let result: unknown;
    let failure: string | undefined;
    this.run(m, () => {
      const L = m.L;
      const top = lua.lua_gettop(L);
      lua.lua_rawgeti(L, lua.LUA_REGISTRYINDEX, ref);
      for (const part of path.split(".")) {
        if (lua.lua_type(L, -1) !== lua.LUA_TTABLE) {
          lua.lua_settop(L, top);
          failure = `callImage: ${path} does not exist in the image`;
          return undefined;
        }
        lua.lua_getfield(L, -1, toLuaString(part));
        lua.lua_remove(L, -2);
      }
      if (lua.lua_type(L, -1) !== lua.LUA_TFUNCTION) {
        lua.lua_settop(L, top);
        failure = `callImage: ${path} is not a function in the image`;
        return undefined;
      }
      for (const a of args) pushJs(L, a);
      const err = m.pcall(args.length, 1);
      if (m.halted) return undefined; // stopped inside (power cut, restart): no result
      if (err !== undefined) {
        failure = err;
        return err;
      }
      result = toJs(L, -1);
      lua.lua_settop(L, top);
      return undefined;
    });
    if (failure !== undefined) throw new Error(failure);
    return result;
  }

  /** Run fn and count the Lua instructions it causes (needs countInstructions). */
  measure<T>(fn: () => T): { result: T; instructions: number } {
    if (!this.opts.countInstructions) throw new Error("measure: the emulator was created with countInstructions: false");
    const before = this.counters.instructions;
    const result = fn();
    return { result, instructions: this.counters.instructions - before };
  }

  /** Power down for good (no further events). */
  close(): void {
    this.powerOff("close");
    this.removeAllListeners();
  }
}
