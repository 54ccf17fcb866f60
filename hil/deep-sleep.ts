/**
 * The ESP32 in deep sleep, as the Emulator holds it between node.dsleep and
 * the wake (issue 12; docs/power.md §2 and §6.4, ESP-IDF v5.1.3 = e7771c75).
 *
 * What deep sleep keeps and loses is decided by the Emulator, which owns the
 * parts: the Lua state, timers, gpio.trig callbacks, UART/I2C/SPI set-up and
 * console bytes are gone (the CPUs and digital peripherals are powered down,
 * sleep_modes.rst "overview"; a wake restarts through the ROM and bootloader,
 * Espressif ESP-FAQ "Why does ESP32 reboot when it is woken up from
 * Deep-sleep mode?"); no pad the firmware drove stays driven (NodeMCU calls no
 * gpio_hold_en; driver/gpio/include/driver/gpio.h:412-424), so the power
 * switches fall off on their pull-downs and the MAX7219 loses its supply;
 * SPIFFS and rtcmem (RTC slow memory, RTC_NOINIT_ATTR, kept powered while it
 * holds data: sleep_modes.c:1779-1797) are kept; the DS3231 keeps counting on
 * its cell, with its drift, on the same virtual clock.
 *
 * The wake: ext1 (node.c:382-394) on its pins' board levels, level-triggered
 * and evaluated at sleep entry too (a held button wakes at once), or the
 * timer. Then the ROM, bootloader, NodeMCU's start and the SPIFFS mount take
 * the host's bootMs before init.lua runs, and node.bootreason() says 3, 12
 * (DEEPSLEEP_RESET + 7).
 */
import type { EmulatorEvent } from "./machine.js";
import type { DeepSleepRequest } from "./nodemcu/sleep.js";
import type { ScheduledEvent, VirtualClock } from "./virtual-clock.js";

export interface DeepSleepHost {
  readonly clock: VirtualClock;
  /**
   * Wake to the first line of init.lua: the path a restart takes
   * (hil/emulator.ts restartDelayMs: ROM, second-stage bootloader and image
   * validation, ESP32_BOOT_MS; a deep-sleep wake takes the same path, esp-idf
   * docs/en/api-guides/performance/speed.rst:124-136; then NodeMCU's start and
   * the SPIFFS mount, docs/power.md:273-275). It was ESP32_BOOT_MS alone, 47 ms
   * short of the board on the keyfob's partition.
   */
  readonly bootMs: number;
  /** The board level of a pin while the chip sleeps (the button's pull-up, VBUS). */
  level(pin: number): number;
  /** The DS3231's own time now, Unix seconds with the fraction. */
  rtcSeconds(): number;
  /** Reset the chip with DEEPSLEEP_RESET (keeps rtcmem). */
  wakeBoot(): void;
  event(e: EmulatorEvent): void;
}

export class DeepSleep {
  private req: DeepSleepRequest | undefined;
  private timer: ScheduledEvent | undefined;
  private booting: ScheduledEvent | undefined;
  /** Every node.dsleep the image made since the emulator started, oldest first. */
  readonly history: DeepSleepRequest[] = [];

  constructor(private readonly host: DeepSleepHost) {}

  /** True from node.dsleep until the wake's boot starts. */
  get asleep(): boolean {
    return this.req !== undefined || this.booting !== undefined;
  }

  /** The chip has gone into deep sleep with these wake sources (the Emulator has stopped the machine). */
  enter(req: DeepSleepRequest): void {
    this.reset();
    this.req = req;
    this.history.push(req);
    const clock = this.host.clock;
    const timerMs = req.timerUs === undefined ? null : req.timerUs / 1000;
    this.host.event({ event: "sleep", pins: req.pins, level: req.level, timerMs, atMs: clock.nowMs, rtc: this.host.rtcSeconds() });
    if (timerMs !== null) this.timer = clock.schedule(timerMs, () => this.wake("timer"));
    this.check();
  }

  /** A wake pin may have changed level: ext1 ALL_LOW (level 0) or ANY_HIGH (level 1). */
  check(): void {
    const req = this.req;
    if (req === undefined || req.pins.length === 0) return;
    const levels = req.pins.map((p) => this.host.level(p));
    const wakes = req.level === 0 ? levels.every((l) => l === 0) : levels.some((l) => l === 1);
    if (wakes) this.wake("ext1");
  }

  private wake(cause: "ext1" | "timer"): void {
    if (this.req === undefined) return;
    this.req = undefined;
    this.host.clock.cancel(this.timer);
    this.timer = undefined;
    this.booting = this.host.clock.schedule(this.host.bootMs, () => {
      this.booting = undefined;
      const clock = this.host.clock;
      this.host.event({ event: "wake", cause, atMs: clock.nowMs, rtc: this.host.rtcSeconds() });
      this.host.wakeBoot();
    });
  }

  /** Power cut or reset pin: the chip is no longer asleep and no wake is pending. */
  reset(): void {
    this.req = undefined;
    this.host.clock.cancel(this.timer);
    this.host.clock.cancel(this.booting);
    this.timer = undefined;
    this.booting = undefined;
  }
}
