/**
 * HMAC, RFC 2104, with the key schedule split off: prepareKey() compresses
 * K^ipad and K^opad once (RFC 2104 §4 "implementation note"), and the device
 * stores those two chaining states instead of the seed. A code then costs the
 * compressions of the message only: for an 8-byte counter, one inner and one
 * outer compression (the inner digest fits one block for SHA-1 and SHA-256
 * alike).
 *
 * The prepared key is as secret as the seed (it computes every code) but does
 * not reveal it. Scratch words that held key material are zeroed after use;
 * a garbage-collected runtime cannot promise more than that (copies made by
 * the VM, e.g. when a table grows, are out of reach).
 */
import { i32, shr } from "../../core/intrinsics.js";
import {
  blockBytes, clearWords, compress, hashFrom, hashLoaded, initState, isAlg, MAX_MESSAGE_BYTES, SCHEDULE_WORDS, stateBytes, stateWords, W,
} from "./hash.js";
import { ERR_ALG, ERR_BYTES, ERR_LENGTH, ERR_PREPARED } from "../../core/status.js";
import { isBytes, pushWordBytes, readWord } from "../../core/bytes.js";

/** The chaining states after K^ipad and K^opad, as signed int32 words. */
export interface PreparedKey {
  alg: number;
  inner: number[];
  outer: number[];
}

/** RFC 2104 §2: ipad = 0x36, opad = 0x5C repeated; here four to a word. */
const IPAD_WORD = 0x36363636;
const OPAD_WORD = 0x5c5c5c5c;

/** Load one block of (key zero-extended to the block) XOR pad into W. */
function loadPaddedKey(k: number[], blockWords: number, padWord: number): void {
  for (let j = 0; j < blockWords; j++) {
    const at = j << 2;
    // Past the key the bytes are 0, so (0 ^ pad) = pad: read 0 for them.
    const b0 = at < k.length ? k[at] : 0;
    const b1 = at + 1 < k.length ? k[at + 1] : 0;
    const b2 = at + 2 < k.length ? k[at + 2] : 0;
    const b3 = at + 3 < k.length ? k[at + 3] : 0;
    W[j] = ((b0 << 24) | (b1 << 16) | (b2 << 8) | b3) ^ padWord;
  }
}

function canonical(words: number[]): void {
  for (let i = 0; i < words.length; i++) {
    const x = words[i];
    words[i] = i32(x);
  }
}

function wipeBytes(a: number[]): void {
  for (let i = 0; i < a.length; i++) a[i] = 0;
}

/**
 * Prepare an HMAC key. Keys longer than the block are hashed first (RFC 2104
 * §2). Returns ERR_ALG, ERR_LENGTH or ERR_BYTES for bad input.
 */
export function prepareKey(key: number[], alg: number): PreparedKey | number {
  if (!isAlg(alg) || !hashLoaded(alg)) return ERR_ALG;
  if (key.length > MAX_MESSAGE_BYTES) return ERR_LENGTH;
  if (!isBytes(key)) return ERR_BYTES;
  const block = blockBytes(alg);
  let k = key;
  if (key.length > block) {
    const s = initState(alg);
    hashFrom(alg, s, key, 0);
    k = stateBytes(alg, s);
    wipeBytes(s);
  }
  const words = shr(block, 2);
  const inner = initState(alg);
  loadPaddedKey(k, words, IPAD_WORD);
  compress(alg, inner, W);
  const outer = initState(alg);
  loadPaddedKey(k, words, OPAD_WORD);
  compress(alg, outer, W);
  clearWords(W, 0, SCHEDULE_WORDS);
  if (k !== key) wipeBytes(k);
  canonical(inner);
  canonical(outer);
  return { alg: alg, inner: inner, outer: outer };
}

/** True if pk has a known algorithm and states of the right size. */
export function isPreparedKey(pk: PreparedKey): boolean {
  if (!isAlg(pk.alg) || !hashLoaded(pk.alg)) return false;
  const n = stateWords(pk.alg);
  return pk.inner.length === n && pk.outer.length === n;
}

function copyWords(src: number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < src.length; i++) out.push(src[i]);
  return out;
}

/** HMAC of a message of any length (up to MAX_MESSAGE_BYTES) under a prepared key. */
export function hmacPrepared(pk: PreparedKey, msg: number[]): number[] | number {
  if (!isPreparedKey(pk)) return ERR_PREPARED;
  if (msg.length > MAX_MESSAGE_BYTES) return ERR_LENGTH;
  if (!isBytes(msg)) return ERR_BYTES;
  const block = blockBytes(pk.alg);
  const s = copyWords(pk.inner);
  hashFrom(pk.alg, s, msg, block);
  const innerDigest = stateBytes(pk.alg, s);
  const o = copyWords(pk.outer);
  hashFrom(pk.alg, o, innerDigest, block);
  return stateBytes(pk.alg, o);
}

/** HMAC(key, msg) in one call (RFC 2104 §2). */
export function hmac(key: number[], msg: number[], alg: number): number[] | number {
  const pk = prepareKey(key, alg);
  if (typeof pk === "number") return pk;
  return hmacPrepared(pk, msg);
}

/** The hash of msg (SHA-1 or SHA-256 by alg). */
export function digest(msg: number[], alg: number): number[] | number {
  if (!isAlg(alg) || !hashLoaded(alg)) return ERR_ALG;
  if (msg.length > MAX_MESSAGE_BYTES) return ERR_LENGTH;
  if (!isBytes(msg)) return ERR_BYTES;
  const s = initState(alg);
  hashFrom(alg, s, msg, 0);
  return stateBytes(alg, s);
}

/**
 * Flash form of a prepared key: [alg, inner state big-endian, outer state
 * big-endian] -- 41 bytes for SHA-1, 65 for SHA-256. The
 * length follows from alg, so parsing can reject a truncated record.
 */
export function serializePreparedKey(pk: PreparedKey): number[] | number {
  if (!isPreparedKey(pk)) return ERR_PREPARED;
  const out: number[] = [pk.alg];
  pushWordBytes(out, pk.inner, 0, pk.inner.length);
  pushWordBytes(out, pk.outer, 0, pk.outer.length);
  return out;
}

/** Inverse of serializePreparedKey; ERR_PREPARED for a wrong length or algorithm. */
export function parsePreparedKey(bytes: number[]): PreparedKey | number {
  if (bytes.length < 1 || !isBytes(bytes)) return ERR_PREPARED;
  const alg = bytes[0];
  if (!isAlg(alg)) return ERR_PREPARED;
  const n = stateWords(alg);
  if (bytes.length !== 1 + 8 * n) return ERR_PREPARED;
  const inner: number[] = [];
  const outer: number[] = [];
  for (let i = 0; i < n; i++) {
    inner.push(readWord(bytes, 1 + 4 * i));
    outer.push(readWord(bytes, 1 + 4 * (n + i)));
  }
  return { alg: alg, inner: inner, outer: outer };
}
