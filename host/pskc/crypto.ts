/**
 * The cryptography of RFC 6030 §6: AES-CBC with the IV prepended and PKCS #5
 * padding (§6.1), HMAC over IV||ciphertext (§6.1.1), PBKDF2 (§6.2, PKCS #5
 * v2.0 §5.2). node:crypto (OpenSSL) does the work; this file fixes the
 * layout and the checks.
 */
import { createCipheriv, createDecipheriv, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from "node:crypto";
import { AES_BLOCK } from "./constants.js";

/** base64(IV || AES-CBC(key, IV, PKCS#5-pad(plain))) as bytes, fresh random IV. */
export function cbcEncrypt(cipher: string, key: Buffer, plain: Buffer): Buffer {
  const iv = randomBytes(AES_BLOCK);
  const c = createCipheriv(cipher, key, iv);
  return Buffer.concat([iv, c.update(plain), c.final()]);
}

/**
 * Decrypt IV||ciphertext. Returns undefined on bad padding (the caller maps
 * that to the same refusal as a MAC mismatch: it means a wrong key).
 */
export function cbcDecrypt(cipher: string, key: Buffer, ivAndCiphertext: Buffer): Buffer | undefined {
  const iv = ivAndCiphertext.subarray(0, AES_BLOCK);
  const d = createDecipheriv(cipher, key, iv);
  const body = d.update(ivAndCiphertext.subarray(AES_BLOCK));
  try {
    return Buffer.concat([body, d.final()]);
  } catch {
    return undefined;
  } finally {
    body.fill(0);
  }
}

export function hmac(hash: string, key: Buffer, data: Buffer): Buffer {
  return createHmac(hash, key).update(data).digest();
}

/** Constant-time comparison of a computed MAC with the one in the file. */
export function macEqual(expected: Buffer, given: Buffer): boolean {
  // The length is public (it is in the file); only the content must not leak.
  if (expected.length !== given.length) return false;
  return timingSafeEqual(expected, given);
}

export function pbkdf2(password: string, salt: Buffer, iterations: number, keyLength: number, hash: string): Buffer {
  // PKCS #5 v2.0 treats the password as an octet string; UTF-8 is what python-pskc and others use.
  const pw = Buffer.from(password, "utf8");
  try {
    return pbkdf2Sync(pw, salt, iterations, keyLength, hash);
  } finally {
    pw.fill(0);
  }
}

/**
 * Strict base64 (RFC 4648 §4) as xs:base64Binary carries it: whitespace is
 * allowed between characters (XML Schema Part 2 §3.2.16), everything else
 * must be canonical, so a flipped character is never silently ignored.
 */
export function decodeBase64(text: string): Buffer | undefined {
  const s = text.replace(/[ \t\n\r]/g, "");
  if (s.length === 0 || s.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(s)) return undefined;
  const buf = Buffer.from(s, "base64");
  if (buf.toString("base64") !== s) return undefined;
  return buf;
}
