/**
 * Every number the wire format fixes: version, limits, command and status
 * codes, device states. protocol/SPEC.md is the normative table; a change
 * here is a change there.
 */

/**
 * The serial link's line speed (SPEC.md "Serial link"): NodeMCU's console
 * default, CONFIG_ESP_CONSOLE_UART_BAUDRATE in nodemcu-build/sdkconfig.fobkit.
 * Written once here for the firmware, the host and the emulator.
 */
export const LINK_BAUD = 115200;

/** Byte 0 of every frame body. Bumped only by an incompatible change (SPEC.md "Versioning"). */
export const PROTOCOL_VERSION = 1;

// Limits (SPEC.md "Limits").
/** Decoded frame: body + 2 CRC bytes. */
export const MAX_FRAME = 128;
/** Body: version, request id, command, [status], payload. */
export const MAX_BODY = 126;
/** On the wire: delimiter + COBS(frame) (one overhead byte below 254) + delimiter. */
export const MAX_WIRE = 131;
/** version + request id + command + CRC. */
export const MIN_FRAME = 5;
export const MAX_SERIAL = 16;
export const MAX_MODEL = 16;
export const MIN_SEED = 16;
export const MAX_SEED = 64;
export const MIN_DIGITS = 6;
export const MAX_DIGITS = 8;
export const HWID_LENGTH = 8;

// Commands (SPEC.md "Commands"). A reply carries the command with REPLY_FLAG set.
export const CMD_INFO = 1;
export const CMD_SET_SERIAL = 2;
export const CMD_WRITE_SEED = 3;
export const CMD_SET_CLOCK = 4;
export const CMD_SELF_TEST = 5;
export const CMD_LOCK = 6;
export const CMD_WIPE = 7;
export const REPLY_FLAG = 0x80;

// Reply status (SPEC.md "Status codes").
export const STATUS_OK = 0;
export const STATUS_UNKNOWN_COMMAND = 1;
export const STATUS_BAD_LENGTH = 2;
export const STATUS_BAD_ARGUMENT = 3;
export const STATUS_BAD_VERSION = 4;
export const STATUS_BAD_STATE = 5;
export const STATUS_LOCKED = 6;
export const STATUS_CLOCK_BACKWARDS = 7;
export const STATUS_FLASH_ERROR = 8;
export const STATUS_HW_FAULT = 9;
export const STATUS_NOT_PROVISIONED = 10;
export const STATUS_SERIAL_MISMATCH = 11;
export const STATUS_INTERNAL = 12;
/**
 * Decoder verdict, never sent: the frame travels the other way (a reply seen
 * by the device, e.g. an echo, or a request seen by the host). No answer,
 * so two ends or an echoing line cannot ping-pong.
 */
export const WRONG_DIRECTION = 255;

// Token algorithms (WRITE_SEED, INFO): one set for the wire and the OTP core.
export { ALG_SHA1, ALG_SHA256, ALG_SHA512 } from "../core/algorithms.js";

// SET_CLOCK flags.
export const CLOCK_FORCE = 1;

// Device state (INFO).
export const STATE_BLANK = 0;
export const STATE_PROVISIONED = 1;
export const STATE_LOCKED = 2;
export const STATE_ERROR = 3;

// INFO flags.
export const INFO_CLOCK_SET = 1;
export const INFO_SEED_SET = 2;
export const INFO_LOCK_SET = 4;

// INFO error reasons (non-zero only in STATE_ERROR). Hosts show unknown values as numbers.
export const REASON_NONE = 0;
export const REASON_RTC_MISSING = 1;
export const REASON_RTC_TIME_LOST = 2;
export const REASON_RNG_MISSING = 3;
export const REASON_FLASH_CORRUPT = 4;
export const REASON_FLASH_WRITE = 5;
export const REASON_INTERNAL = 6;
