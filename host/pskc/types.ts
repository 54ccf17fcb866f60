/**
 * Types of the RFC 6030 (PSKC) library: what a token looks like on either
 * side of the file, how the file is protected, and the one error type.
 */

/** The TOTP hash, RFC 6238 §1.2 (HMAC-SHA-1 default, SHA-256/512 allowed). */
export type PskcAlgorithm = "SHA1" | "SHA256" | "SHA512";

/**
 * One TOTP keyfob as carried by a KeyPackage.
 *
 * `secret` is the plaintext seed. Buffers the reader hands out are the
 * caller's to wipe (`secret.fill(0)`) once the seed is stored encrypted;
 * the library wipes its own intermediate copies but a garbage-collected
 * runtime cannot promise that no other copy ever existed.
 */
export interface PskcToken {
  /** DeviceInfo/SerialNo, taken as it is (surrounding whitespace trimmed). */
  serial: string;
  /** DeviceInfo/Manufacturer. */
  manufacturer: string;
  /** DeviceInfo/Model. */
  model?: string;
  /** CryptoModuleInfo/Id: e.g. the keyfob's hardware id (optional in RFC 6030 §4.3.2). */
  cryptoModuleId?: string;
  /** Key/Issuer. */
  issuer?: string;
  /** Key@Id (the reader falls back to the serial when a vendor omits it). */
  keyId: string;
  algorithm: PskcAlgorithm;
  /** AlgorithmParameters/ResponseFormat@Length, Encoding DECIMAL. */
  digits: number;
  /** Data/TimeInterval, seconds per step. */
  period: number;
  /** Data/Time: T0 in unix seconds, usually 0. */
  t0: number;
  /** Data/TimeDrift: clock drift counted in time intervals, not seconds (RFC 6030 §4.1). */
  timeDrift?: number;
  /**
   * Unix milliseconds before which the key must not be used: the later of
   * Policy/StartDate and DeviceInfo/StartDate (RFC 6030 §5, §4.3.1).
   */
  notBefore?: number;
  /** Unix milliseconds after which the key must not be used: the earlier of Policy/ExpiryDate and DeviceInfo/ExpiryDate. */
  notAfter?: number;
  secret: Buffer;
}

/** A KeyPackage left out by `skipUnsupported`: well-formed, MAC-checked, and not a key fobkit can use. */
export interface PskcSkipped {
  /** 1-based position of the KeyPackage in the file. */
  package: number;
  keyId?: string;
  serial?: string;
  /** Key@Algorithm as written, when there is one. */
  algorithm?: string;
  code: PskcErrorCode;
  reason: string;
}

export interface PskcReadResult {
  tokens: PskcToken[];
  skipped: PskcSkipped[];
  /** Some seed was in a PlainValue (only with allowPlaintextSecrets). */
  plaintext: boolean;
}

/**
 * How the file's encrypted values are protected.
 *  - psk: RFC 6030 §6.1, AES-128-CBC under a pre-shared 16-byte key
 *    (the reader also accepts AES-192/256-CBC when the key has that length);
 *  - password: RFC 6030 §6.2, the AES key derived with PBKDF2 (PKCS #5 v2.0).
 * Both add the HMAC-SHA1 ValueMAC of §6.1.1 over IV||ciphertext, keyed with a
 * random MAC key that travels encrypted under the same AES key.
 */
export type PskcProtection =
  | { kind: "psk"; key: Buffer; /** ds:KeyName written (default "Pre-shared-key"); not checked on read: the MAC decides. */ keyName?: string }
  | { kind: "password"; password: string; iterations?: number; saltLength?: number };

export type PskcErrorCode =
  /** Not XML, not PSKC 1.0, a required element missing or unreadable. */
  | "malformed"
  /** A ValueMAC does not match: wrong key/password or a tampered file. */
  | "mac_mismatch"
  /** An encrypted value without its ValueMAC, or no MACMethod/MACKey. */
  | "mac_missing"
  /** A Policy element this library does not understand (RFC 6030 §5). */
  | "unsupported_policy"
  /** A key, hash, encryption, MAC or key-derivation algorithm not supported. */
  | "unsupported_algorithm"
  /** An element the schema allows that this reader does not act on: Extensions, foreign elements, KeyReference, KeyProfileId. */
  | "unsupported_element"
  /** A KeyPackage without DeviceInfo/SerialNo (and no serialFrom: "key-id"). */
  | "missing_serial"
  /** DOCTYPE/entities, too deep, or over the size limit. */
  | "unsafe_xml"
  /** The protection given is empty (no password, no key bytes). */
  | "missing_key"
  /** A PSK for a password file, a password for a PSK file, or a key of the wrong length. */
  | "wrong_key_kind"
  /** A seed in a PlainValue: seeds must travel encrypted (opt in with allowPlaintextSecrets). */
  | "plaintext_secret"
  /** The same serial twice in one file. */
  | "duplicate_serial"
  /** A --psk-file / --password-file that cannot be used (not hex, wrong length, empty). */
  | "bad_key_file";

/**
 * Every refusal of the library. `message` and `detail` never contain key
 * material; `where` names the element (e.g. "KeyPackage[3] (serial 1234)").
 */
export class PskcError extends Error {
  constructor(
    readonly code: PskcErrorCode,
    readonly detail: string,
    readonly where?: string,
  ) {
    super(where ? `pskc ${code}: ${detail} (at ${where})` : `pskc ${code}: ${detail}`);
    this.name = "PskcError";
  }
}

export interface ReadPskcOptions {
  /** Refuse larger inputs before parsing. Default 64 MiB. */
  maxBytes?: number;
  /** Accept Secret/PlainValue. Default false: seeds must only travel encrypted. */
  allowPlaintextSecrets?: boolean;
  /** Refuse a PBKDF2 IterationCount above this (a hostile file could ask for 2^31). Default 20,000,000. */
  maxIterations?: number;
  /**
   * Leave out KeyPackages whose key is well-formed and MAC-checked but not
   * usable here (HOTP, OCRA, vendor algorithms, a Policy not understood,
   * extensions) instead of refusing the file; readPskcReport names them.
   * Anything malformed or failing a MAC still refuses the whole file.
   */
  skipUnsupported?: boolean;
  /**
   * Where the keyfob's serial comes from: DeviceInfo/SerialNo (default), or
   * Key@Id for vendors who put the serial there and write no DeviceInfo.
   * With "key-id", a package whose SerialNo differs from its Key@Id is refused.
   */
  serialFrom?: "serial-no" | "key-id";
}

export interface WritePskcOptions {
  /** KeyContainer@Id (an xs:ID: a letter or '_' first). */
  id?: string;
}
