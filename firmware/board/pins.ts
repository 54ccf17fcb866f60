/** @noSelfInFile */
/**
 * Wiring of the reference board (ESP32 DevKitC-style module). One place, so
 * a different PCB changes only this file.
 */

/** Console UART (UART0, the USB bridge): provisioning link. */
export const CONSOLE_UART = 0;
// The console's line speed is LINK_BAUD in protocol/codes.ts (one place for
// firmware, host and emulator; the board layer takes it as a uartStart argument).

/** DS3231 on I2C hardware interface 0; the usual ESP32 SDA/SCL pins. */
export const RTC_SDA_PIN = 21;
export const RTC_SCL_PIN = 22;

/** MAX7219 on HSPI at its IO_MUX pins (MOSI 13, CLK 14, CS 15); MISO unused. */
export const DISPLAY_MOSI_PIN = 13;
export const DISPLAY_SCLK_PIN = 14;
export const DISPLAY_CS_PIN = 15;

/**
 * The button: active low; an external 100 kOhm pull-up to 3.3 V (docs/power.md
 * §1: it holds in deep sleep whatever the RTC pad hold does), the internal one too. GPIO27 is an RTC GPIO, so the
 * same pin can wake the chip from deep sleep (node.dsleep wants RTC pins),
 * and it is not a strapping pin (GPIO0 would enter the download mode when
 * held at reset).
 */
export const BUTTON_PIN = 27;

/**
 * Power switches (docs/power.md §3 and §6.1), each a load switch whose EN has a
 * 100 kOhm pull-down: off whenever nothing drives the pin (reset, boot, deep
 * sleep: NodeMCU holds no pad, ESP-IDF driver/gpio/include/driver/gpio.h:412-424).
 * GPIO25 and 26 are output-capable, not strapping pins, not in the VDD_SDIO domain.
 *
 * RTC_POWER_PIN: the DS3231's VCC and the I2C and 32kHz pull-ups; with it off
 * the DS3231 runs from its own CR2032 (VBAT) and keeps time.
 */
export const RTC_POWER_PIN = 25;
/** DISPLAY_POWER_PIN: the MAX7219's V+ (from the 4.5 V battery) and its 3.3 -> 5 V level buffer. */
export const DISPLAY_POWER_PIN = 26;
/**
 * USB VBUS through a 100k/150k divider (3.0 V when plugged in, 0 V on battery).
 * GPIO34 is input-only with no internal pulls; the divider sets the level.
 */
export const VBUS_SENSE_PIN = 34;
