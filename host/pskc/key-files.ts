/**
 * The key files of `fobkit export` and `fobkit bank import`: `--psk-file`
 * holds the AES key as hex text, `--password-file` the password. Errors
 * name the file and what is wrong with it, never its content.
 */
import { readFileSync } from "node:fs";
import { PskcError } from "./types.js";

/** §6.1 writes AES-128: a 16-byte key. */
const PSK_BYTES = 16;
/** A key or password file is a few bytes; anything large is the wrong file. */
const MAX_KEY_FILE_BYTES = 64 * 1024;

function readSmall(path: string, what: string): Buffer {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "error";
    throw new PskcError("bad_key_file", `cannot read the ${what} (${code})`, path);
  }
  if (buf.length > MAX_KEY_FILE_BYTES) {
    buf.fill(0);
    throw new PskcError("bad_key_file", `the ${what} has ${buf.length} bytes; a key file is far smaller`, path);
  }
  return buf;
}

/**
 * The pre-shared AES-128 key: hex digits (either case), whitespace and line
 * breaks anywhere ignored, exactly 32 digits. The caller wipes the result.
 */
export function readPskFile(path: string): Buffer {
  const buf = readSmall(path, "PSK file");
  // A UTF-8 byte order mark (Windows editors add one) is not part of the key.
  const bom = buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf ? 3 : 0;
  const text = buf.subarray(bom).toString("latin1").replace(/[ \t\r\n]/g, "");
  buf.fill(0);
  if (text.length === 0) throw new PskcError("bad_key_file", "the PSK file is empty", path);
  const bad = text.search(/[^0-9A-Fa-f]/);
  if (bad >= 0) {
    throw new PskcError("bad_key_file", `the PSK file must hold hex digits only; character ${bad + 1} (whitespace aside) is not one`, path);
  }
  if (text.length !== PSK_BYTES * 2) {
    throw new PskcError(
      "bad_key_file",
      `the PSK file holds ${text.length} hex digits; an AES-128 key is exactly ${PSK_BYTES * 2} (${PSK_BYTES} bytes)`,
      path,
    );
  }
  return Buffer.from(text, "hex");
}

/**
 * The password: the file's UTF-8 text less one trailing newline (LF or
 * CRLF), which editors and `echo` add and which is not part of it.
 */
export function readPasswordFile(path: string): string {
  const buf = readSmall(path, "password file");
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(buf);
  } catch {
    throw new PskcError("bad_key_file", "the password file is not valid UTF-8", path);
  } finally {
    buf.fill(0);
  }
  if (text.endsWith("\r\n")) text = text.slice(0, -2);
  else if (text.endsWith("\n")) text = text.slice(0, -1);
  if (text === "") throw new PskcError("bad_key_file", "the password file is empty", path);
  return text;
}
