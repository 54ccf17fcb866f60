/** @noSelfInFile */
/**
 * The display: a MAX7219 driving eight 7-segment digits over SPI.
 *
 * Why this controller: the product shows exactly one 8-digit code, and the
 * MAX7219 is exactly an 8-digit 7-segment driver. It multiplexes the digits
 * itself from one register per digit, so the ESP32 writes 8 bytes per code
 * and can sleep; a graphic OLED (SSD1306 via u8g2) needs a 1 KB frame buffer
 * and font code in a heap of tens of KB. Its shutdown mode (register 0Ch = 0)
 * blanks the display, keeps the digit registers and draws about 150 uA
 * (datasheet "Shutdown Mode", I+ in shutdown), which is what a battery
 * keyfob wants between presses.
 *
 * Registers (MAX7219 datasheet Table 2): 01h-08h digit 0-7, 09h decode mode,
 * 0Ah intensity, 0Bh scan limit, 0Ch shutdown, 0Fh display test. Each write
 * is one 16-bit frame, address byte first, latched on the rising edge of
 * LOAD/CS, SPI mode 0, up to 10 MHz. Digit 0 is the rightmost position on
 * the reference board.
 */
import { idiv } from "../../core/intrinsics.js";
import { DISPLAY_CS_PIN, DISPLAY_MOSI_PIN, DISPLAY_SCLK_PIN } from "./pins.js";
import { segmentsFor } from "./seven-segment-font.js";
import { BOARD_ERR_ARG, BOARD_ERR_NOT_STARTED, BOARD_OK } from "./status.js";

const REG_DIGIT0 = 0x01;
const REG_DECODE_MODE = 0x09;
const REG_INTENSITY = 0x0a;
const REG_SCAN_LIMIT = 0x0b;
const REG_SHUTDOWN = 0x0c;
const REG_DISPLAY_TEST = 0x0f;

export const DISPLAY_WIDTH = 8;
/** Duty 7/32 (datasheet Table 7): readable indoors, gentle on the battery. */
const INTENSITY = 0x03;
const SPI_FREQ_HZ = 1000000;

/** Held for the life of the program: spi.md says a collected bus master closes the bus. */
let bus: SpiBusMaster | undefined = undefined;
let device: SpiDevice | undefined = undefined;
const segments: number[] = [0, 0, 0, 0, 0, 0, 0, 0];

function writeRegister(dev: SpiDevice, address: number, value: number): void {
  dev.transfer(string.char(address, value));
}

/**
 * Configure the controller and leave it in shutdown (dark). After power-up
 * the MAX7219 is in shutdown with undefined digit registers, and display test
 * overrides shutdown, so each register is set explicitly.
 */
export function displayInit(): number {
  if (device === undefined) {
    // DMA channel 0: transactions are 2 bytes, far below the 32-byte limit.
    const b = spi.master(spi.HSPI, { sclk: DISPLAY_SCLK_PIN, mosi: DISPLAY_MOSI_PIN }, 0);
    bus = b;
    device = b.device({ cs: DISPLAY_CS_PIN, mode: 0, freq: SPI_FREQ_HZ });
  }
  const dev = device;
  writeRegister(dev, REG_DISPLAY_TEST, 0);
  writeRegister(dev, REG_SHUTDOWN, 0);
  writeRegister(dev, REG_DECODE_MODE, 0); // raw segments: letters need them
  writeRegister(dev, REG_SCAN_LIMIT, 7); // all 8 digits
  writeRegister(dev, REG_INTENSITY, INTENSITY);
  for (let i = 0; i < DISPLAY_WIDTH; i++) {
    writeRegister(dev, REG_DIGIT0 + i, 0);
  }
  return BOARD_OK;
}

function showSegments(dev: SpiDevice): void {
  // segments[0] is the leftmost character; digit 0 the rightmost position.
  for (let i = 0; i < DISPLAY_WIDTH; i++) {
    writeRegister(dev, REG_DIGIT0 + i, segments[DISPLAY_WIDTH - 1 - i]);
  }
  writeRegister(dev, REG_SHUTDOWN, 1);
}

/**
 * Show up to 8 characters, left-aligned, padded with blanks (see
 * seven-segment-font.ts for the characters). BOARD_ERR_ARG, and nothing
 * changes, if the text is too long or has a character the font lacks.
 */
export function displayText(text: string): number {
  const dev = device;
  if (dev === undefined) {
    return BOARD_ERR_NOT_STARTED;
  }
  const n = text.length;
  if (n > DISPLAY_WIDTH) {
    return BOARD_ERR_ARG;
  }
  for (let i = 0; i < n; i++) {
    if (segmentsFor(string.byte(text, i + 1)) < 0) {
      return BOARD_ERR_ARG;
    }
  }
  for (let i = 0; i < DISPLAY_WIDTH; i++) {
    let seg = 0;
    if (i < n) {
      seg = segmentsFor(string.byte(text, i + 1));
    }
    segments[i] = seg;
  }
  showSegments(dev);
  return BOARD_OK;
}

/**
 * Show a non-negative number as exactly `width` decimal digits with leading
 * zeros (an OTP code: value < 10^width), right-aligned. No string building.
 */
export function displayNumber(value: number, width: number): number {
  const dev = device;
  if (dev === undefined) {
    return BOARD_ERR_NOT_STARTED;
  }
  if (width < 1 || width > DISPLAY_WIDTH || value < 0 || math.type(value) !== "integer") {
    return BOARD_ERR_ARG;
  }
  let limit = 1;
  for (let i = 0; i < width; i++) {
    limit = limit * 10;
  }
  if (value >= limit) {
    return BOARD_ERR_ARG;
  }
  let v = value;
  for (let i = DISPLAY_WIDTH - 1; i >= 0; i--) {
    let seg = 0;
    if (i >= DISPLAY_WIDTH - width) {
      seg = segmentsFor(48 + (v % 10));
      v = idiv(v, 10);
    }
    segments[i] = seg;
  }
  showSegments(dev);
  return BOARD_OK;
}

/** Dark and low-power: shutdown mode. The digit registers are kept. */
export function displayOff(): number {
  const dev = device;
  if (dev === undefined) {
    return BOARD_ERR_NOT_STARTED;
  }
  writeRegister(dev, REG_SHUTDOWN, 0);
  return BOARD_OK;
}
