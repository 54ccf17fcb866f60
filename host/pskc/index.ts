/**
 * RFC 6030 Portable Symmetric Key Container (PSKC) for fobkit's TOTP
 * keyfobs: the factory's `fobkit export` writes with writePskc, the bank's
 * `fobkit bank import` reads with readPskc. See README.md in this folder.
 */
export { writePskc } from "./writer.js";
export { readPskc, readPskcReport } from "./reader.js";
export { readPskFile, readPasswordFile } from "./key-files.js";
export { PskcError } from "./types.js";
export type {
  PskcAlgorithm,
  PskcErrorCode,
  PskcProtection,
  PskcReadResult,
  PskcSkipped,
  PskcToken,
  ReadPskcOptions,
  WritePskcOptions,
} from "./types.js";
