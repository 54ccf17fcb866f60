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
 * The button: active low, internal pull-up. GPIO27 is an RTC GPIO, so the
 * same pin can wake the chip from deep sleep (node.dsleep wants RTC pins),
 * and it is not a strapping pin (GPIO0 would enter the download mode when
 * held at reset).
 */
export const BUTTON_PIN = 27;
