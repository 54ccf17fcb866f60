/** @noSelfInFile */
/**
 * The provisioning link on the console UART (UART0).
 *
 * uart.on(..., run_input = 0) takes the console away from the Lua
 * interpreter, so bytes from the host are data and can never be executed as
 * Lua. uart.setup also ends NodeMCU's boot-time auto-baud detection
 * (uart.md) and turns echo off. uart.start(0) is what makes the console
 * deliver bytes to the callback at all: uart_feed_data drops everything
 * until uart.start has allocated its line buffer (NodeMCU uart.c:70-71 and
 * :295-296, commit 53da95b5), whatever docs/modules/uart.md says.
 */
import { appendStringBytes, bytesToString } from "./lua-bytes.js";
import { CONSOLE_UART } from "./pins.js";
import { BOARD_ERR_ARG, BOARD_ERR_NOT_STARTED, BOARD_OK } from "./status.js";

let receiver: ((bytes: number[]) => void) | undefined = undefined;

function onUartData(data: string): void {
  const handler = receiver;
  if (handler === undefined) {
    return;
  }
  const bytes: number[] = [];
  appendStringBytes(data, bytes);
  handler(bytes);
}

/**
 * Start receiving. onBytes gets a fresh array per delivery (the app may keep
 * it). delimiter -1: one delivery per byte (NodeMCU's n = 0 mode, which
 * uart.c implements as one callback per byte); a byte value 0..255:
 * deliveries end at that byte or after 256 bytes (end_char mode,
 * LUA_MAXINPUT), one Lua callback per frame for a delimiter-framed protocol
 * such as COBS. Prefer a delimiter: a callback costs far more than a byte.
 */
export function uartStart(onBytes: (bytes: number[]) => void, baud: number, delimiter: number): number {
  if (delimiter < -1 || delimiter > 255 || math.type(delimiter) !== "integer") {
    return BOARD_ERR_ARG;
  }
  receiver = onBytes;
  uart.setup(CONSOLE_UART, baud, 8, uart.PARITY_NONE, uart.STOPBITS_1, 0);
  if (delimiter < 0) {
    uart.on(CONSOLE_UART, "data", 0, onUartData, 0);
  } else {
    uart.on(CONSOLE_UART, "data", string.char(delimiter), onUartData, 0);
  }
  // Its result is false on the console even though input now flows
  // (platform_uart_start refuses the console after the buffer was made), so
  // it is not a failure to report.
  uart.start(CONSOLE_UART);
  return BOARD_OK;
}

/** Send bytes (0..255) on the console UART. */
export function uartWrite(bytes: number[]): number {
  if (receiver === undefined) {
    return BOARD_ERR_NOT_STARTED;
  }
  // string.char checks every byte as it converts (an integer 0..255, or a
  // float or numeric string with such a value) and raises on anything else:
  // under pcall that is the argument check, without a second pass over the bytes.
  const [ok, s] = pcall(bytesToString, bytes, 0, bytes.length);
  if (!ok) {
    return BOARD_ERR_ARG;
  }
  uart.write(CONSOLE_UART, s);
  return BOARD_OK;
}
