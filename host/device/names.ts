/**
 * Names for the numbers protocol/codes.ts fixes, for messages and --json.
 * Unknown values (a newer firmware) print as numbers, never as a wrong name.
 */
import * as P from "../../protocol/index.js";

export const COMMAND_NAMES: Record<number, string> = {
  [P.CMD_INFO]: "INFO",
  [P.CMD_SET_SERIAL]: "SET_SERIAL",
  [P.CMD_WRITE_SEED]: "WRITE_SEED",
  [P.CMD_SET_CLOCK]: "SET_CLOCK",
  [P.CMD_SELF_TEST]: "SELF_TEST",
  [P.CMD_LOCK]: "LOCK",
  [P.CMD_WIPE]: "WIPE",
};

export const STATUS_NAMES: Record<number, string> = {
  [P.STATUS_OK]: "OK",
  [P.STATUS_UNKNOWN_COMMAND]: "UNKNOWN_COMMAND",
  [P.STATUS_BAD_LENGTH]: "BAD_LENGTH",
  [P.STATUS_BAD_ARGUMENT]: "BAD_ARGUMENT",
  [P.STATUS_BAD_VERSION]: "BAD_VERSION",
  [P.STATUS_BAD_STATE]: "BAD_STATE",
  [P.STATUS_LOCKED]: "LOCKED",
  [P.STATUS_CLOCK_BACKWARDS]: "CLOCK_BACKWARDS",
  [P.STATUS_FLASH_ERROR]: "FLASH_ERROR",
  [P.STATUS_HW_FAULT]: "HW_FAULT",
  [P.STATUS_NOT_PROVISIONED]: "NOT_PROVISIONED",
  [P.STATUS_SERIAL_MISMATCH]: "SERIAL_MISMATCH",
  [P.STATUS_INTERNAL]: "INTERNAL",
};

export const STATE_NAMES: Record<number, KeyfobState> = {
  [P.STATE_BLANK]: "blank",
  [P.STATE_PROVISIONED]: "provisioned",
  [P.STATE_LOCKED]: "locked",
  [P.STATE_ERROR]: "error",
};

export const REASON_NAMES: Record<number, string> = {
  [P.REASON_NONE]: "NONE",
  [P.REASON_RTC_MISSING]: "RTC_MISSING",
  [P.REASON_RTC_TIME_LOST]: "RTC_TIME_LOST",
  [P.REASON_RNG_MISSING]: "RNG_MISSING",
  [P.REASON_FLASH_CORRUPT]: "FLASH_CORRUPT",
  [P.REASON_FLASH_WRITE]: "FLASH_WRITE",
  [P.REASON_INTERNAL]: "INTERNAL",
};

export type KeyfobState = "blank" | "provisioned" | "locked" | "error";
export type TokenAlgorithm = "SHA1" | "SHA256" | "SHA512";

export const ALGORITHM_CODES: Record<TokenAlgorithm, number> = { SHA1: P.ALG_SHA1, SHA256: P.ALG_SHA256, SHA512: P.ALG_SHA512 };
export const ALGORITHM_NAMES: Record<number, TokenAlgorithm> = { [P.ALG_SHA1]: "SHA1", [P.ALG_SHA256]: "SHA256", [P.ALG_SHA512]: "SHA512" };

export function nameOf(table: Record<number, string>, code: number): string {
  return table[code] ?? String(code);
}
