/**
 * Write an RFC 6030 PSKC 1.0 file of TOTP keys: secrets encrypted (§6.1
 * pre-shared AES-128-CBC key, or §6.2 PBKDF2-derived key), each with the
 * §6.1.1 HMAC-SHA1 ValueMAC under a fresh random MAC key that travels as
 * MACMethod/MACKey, encrypted under the same AES key.
 *
 * The layout follows the RFC's own examples (Figures 6 and 7) and validates
 * against the §11 schema; the one exception is a SHA-256/512 key, whose
 * AlgorithmParameters carries Suite next to ResponseFormat (see
 * algorithmParameters below).
 */
import {
  ALG_TOTP,
  CBC_CIPHERS,
  DIGITS_MAX,
  DIGITS_MIN,
  ENC_AES128_CBC,
  KDF_PBKDF2,
  MAC_HMAC_SHA1,
  MAC_KEY_BYTES,
  NS_DS,
  NS_PKCS5,
  NS_PSKC,
  NS_XENC,
  NS_XENC11,
  PBKDF2_DEFAULT_ITERATIONS,
  PBKDF2_DEFAULT_SALT_BYTES,
  PSKC_VERSION,
  SECRET_MAX_BYTES,
  SECRET_MIN_BYTES,
  SUITE_FOR,
} from "./constants.js";
import { cbcEncrypt, hmac, pbkdf2 } from "./crypto.js";
import { randomBytes } from "node:crypto";
import type { PskcProtection, PskcToken, WritePskcOptions } from "./types.js";
import { signPskc, type PskcSigner } from "./signature.js";

const INT32_MAX = 2 ** 31 - 1;
/** Writing is AES-128-CBC only: §6.1's algorithm, the one every reader has. */
const [CIPHER, KEY_BYTES] = CBC_CIPHERS[ENC_AES128_CBC];
/** RFC 2898 §4.1/§4.2: at least 64 bits of salt and 1000 iterations. */
const MIN_SALT_BYTES = 8;
const MIN_ITERATIONS = 1000;
/** §6.1's example name for a pre-shared key. */
const DEFAULT_KEY_NAME = "Pre-shared-key";

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

function text(field: string, value: unknown): string {
  if (typeof value !== "string") throw new TypeError(`${field} must be a string, got ${typeof value}`);
  if (value.trim() === "") throw new RangeError(`${field} must not be empty`);
  // The reader trims surrounding whitespace (pretty-printed vendor files), so it could not round-trip.
  if (value !== value.trim()) throw new RangeError(`${field} must not start or end with whitespace`);
  if (/[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/.test(value)) {
    throw new RangeError(`${field} contains a character XML cannot carry`);
  }
  return value;
}

function int(field: string, value: unknown, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value)) throw new TypeError(`${field} must be an integer, got ${String(value)}`);
  if (value < min || value > max) throw new RangeError(`${field} must be in ${min}..${max}, got ${value}`);
  return value;
}

function checkToken(t: PskcToken, i: number): void {
  const at = `tokens[${i}]`;
  text(`${at}.serial`, t.serial);
  text(`${at}.manufacturer`, t.manufacturer);
  text(`${at}.keyId`, t.keyId);
  if (t.model !== undefined) text(`${at}.model`, t.model);
  if (t.issuer !== undefined) text(`${at}.issuer`, t.issuer);
  if (t.cryptoModuleId !== undefined) text(`${at}.cryptoModuleId`, t.cryptoModuleId);
  if (!(t.algorithm in SUITE_FOR)) throw new RangeError(`${at}.algorithm must be SHA1, SHA256 or SHA512, got ${String(t.algorithm)}`);
  int(`${at}.digits`, t.digits, DIGITS_MIN, DIGITS_MAX);
  // Time, TimeInterval and TimeDrift are xs:int in the §11 schema.
  int(`${at}.period`, t.period, 1, INT32_MAX);
  int(`${at}.t0`, t.t0, 0, INT32_MAX);
  if (t.timeDrift !== undefined) int(`${at}.timeDrift`, t.timeDrift, -INT32_MAX - 1, INT32_MAX);
  if (!Buffer.isBuffer(t.secret)) throw new TypeError(`${at}.secret must be a Buffer`);
  if (t.secret.length < SECRET_MIN_BYTES || t.secret.length > SECRET_MAX_BYTES) {
    throw new RangeError(`${at}.secret must be ${SECRET_MIN_BYTES}..${SECRET_MAX_BYTES} bytes, got ${t.secret.length}`);
  }
}

interface Keys {
  aesKey: Buffer;
  /** The EncryptionKey element, indented for its place. */
  encryptionKey: string;
  namespaces: string;
}

function setUpKeys(protection: PskcProtection): Keys {
  const base = `xmlns:pskc="${NS_PSKC}"\n    xmlns:ds="${NS_DS}"\n    xmlns:xenc="${NS_XENC}"`;
  if (protection?.kind === "psk") {
    if (!Buffer.isBuffer(protection.key)) throw new TypeError("protection.key must be a Buffer");
    if (protection.key.length !== KEY_BYTES) {
      throw new RangeError(`protection.key must be ${KEY_BYTES} bytes (AES-128), got ${protection.key.length}`);
    }
    const name = protection.keyName === undefined ? DEFAULT_KEY_NAME : text("protection.keyName", protection.keyName);
    return {
      // A copy, so wiping ours never touches the caller's key.
      aesKey: Buffer.from(protection.key),
      encryptionKey: `  <pskc:EncryptionKey>\n    <ds:KeyName>${esc(name)}</ds:KeyName>\n  </pskc:EncryptionKey>\n`,
      namespaces: base,
    };
  }
  if (protection?.kind === "password") {
    if (typeof protection.password !== "string" || protection.password === "") {
      throw new RangeError("protection.password must be a non-empty string");
    }
    const iterations = int("protection.iterations", protection.iterations ?? PBKDF2_DEFAULT_ITERATIONS, MIN_ITERATIONS, INT32_MAX);
    const saltLength = int("protection.saltLength", protection.saltLength ?? PBKDF2_DEFAULT_SALT_BYTES, MIN_SALT_BYTES, 1024);
    const salt = randomBytes(saltLength);
    // §6.2, Figure 7: PKCS #5 PBKDF2-params with unqualified children; an
    // empty PRF means PKCS #5's default, HMAC-SHA1.
    const encryptionKey =
      "  <pskc:EncryptionKey>\n" +
      "    <xenc11:DerivedKey>\n" +
      `      <xenc11:KeyDerivationMethod Algorithm="${KDF_PBKDF2}">\n` +
      "        <pkcs5:PBKDF2-params>\n" +
      "          <Salt>\n" +
      `            <Specified>${salt.toString("base64")}</Specified>\n` +
      "          </Salt>\n" +
      `          <IterationCount>${iterations}</IterationCount>\n` +
      `          <KeyLength>${KEY_BYTES}</KeyLength>\n` +
      "          <PRF/>\n" +
      "        </pkcs5:PBKDF2-params>\n" +
      "      </xenc11:KeyDerivationMethod>\n" +
      "    </xenc11:DerivedKey>\n" +
      "  </pskc:EncryptionKey>\n";
    return {
      aesKey: pbkdf2(protection.password, salt, iterations, KEY_BYTES, "sha1"),
      encryptionKey,
      namespaces: `${base}\n    xmlns:xenc11="${NS_XENC11}"\n    xmlns:pkcs5="${NS_PKCS5}"`,
    };
  }
  throw new TypeError('protection.kind must be "psk" or "password"');
}

function encryptedValue(indent: string, cipherValue: Buffer): string {
  return (
    `${indent}<xenc:EncryptionMethod Algorithm="${ENC_AES128_CBC}"/>\n` +
    `${indent}<xenc:CipherData>\n` +
    `${indent}  <xenc:CipherValue>${cipherValue.toString("base64")}</xenc:CipherValue>\n` +
    `${indent}</xenc:CipherData>\n`
  );
}

/**
 * AlgorithmParameters. SHA-1 (RFC 6238's default) is written as the RFC's
 * examples do: ResponseFormat alone. SHA-256/512 add Suite "HMAC-SHA256" /
 * "HMAC-SHA512" before it: RFC 6030 §4.3.4 names Suite as where the hash of an
 * HMAC-based algorithm goes, and python-pskc, multiOTP and vendor files
 * write exactly this. The §11 schema declares AlgorithmParametersType as an
 * xs:choice (one child), which contradicts its own prose; a file carrying
 * the hash any other way would be read as SHA-1 by other tools and give
 * wrong codes, which is worse than that schema nit.
 */
function algorithmParameters(t: PskcToken): string {
  const suite = t.algorithm === "SHA1" ? "" : `        <pskc:Suite>${SUITE_FOR[t.algorithm]}</pskc:Suite>\n`;
  return (
    "      <pskc:AlgorithmParameters>\n" +
    suite +
    `        <pskc:ResponseFormat Length="${t.digits}" Encoding="DECIMAL"/>\n` +
    "      </pskc:AlgorithmParameters>\n"
  );
}

function plainInt(name: string, v: number): string {
  return `        <pskc:${name}>\n          <pskc:PlainValue>${v}</pskc:PlainValue>\n        </pskc:${name}>\n`;
}

/**
 * Serialise `tokens` into one PSKC document (UTF-8 text). Throws TypeError /
 * RangeError on a bad token or protection (the message names the field,
 * never a secret). A password file takes one PBKDF2 run (~0.25 s at the
 * default 1,300,000 iterations). With `signer`, the whole KeyContainer is
 * signed (RFC 6030 §7; signature.ts).
 */
export function writePskc(tokens: PskcToken[], protection: PskcProtection, opts: WritePskcOptions & { signer?: PskcSigner } = {}): string {
  if (!Array.isArray(tokens) || tokens.length === 0) throw new RangeError("tokens must be a non-empty array");
  tokens.forEach(checkToken);
  const seen = new Set<string>();
  for (const t of tokens) {
    if (seen.has(t.serial)) throw new RangeError(`serial ${t.serial} appears twice`);
    seen.add(t.serial);
  }
  if (opts.id !== undefined && !/^[A-Za-z_][-.\w]*$/.test(opts.id)) {
    throw new RangeError("opts.id must be an xs:ID (a letter or '_' first, then letters, digits, '-', '.', '_')");
  }
  const keys = setUpKeys(protection);
  const macKey = randomBytes(MAC_KEY_BYTES);
  try {
    const out: string[] = [];
    out.push('<?xml version="1.0" encoding="UTF-8"?>\n');
    out.push(`<pskc:KeyContainer ${keys.namespaces}\n    Version="${PSKC_VERSION}"${opts.id ? ` Id="${opts.id}"` : ""}>\n`);
    out.push(keys.encryptionKey);
    out.push(
      `  <pskc:MACMethod Algorithm="${MAC_HMAC_SHA1}">\n` +
        "    <pskc:MACKey>\n" +
        encryptedValue("      ", cbcEncrypt(CIPHER, keys.aesKey, macKey)) +
        "    </pskc:MACKey>\n" +
        "  </pskc:MACMethod>\n",
    );
    for (const t of tokens) {
      const cv = cbcEncrypt(CIPHER, keys.aesKey, t.secret);
      const mac = hmac("sha1", macKey, cv);
      out.push(
        "  <pskc:KeyPackage>\n" +
          "    <pskc:DeviceInfo>\n" +
          `      <pskc:Manufacturer>${esc(t.manufacturer)}</pskc:Manufacturer>\n` +
          `      <pskc:SerialNo>${esc(t.serial)}</pskc:SerialNo>\n` +
          (t.model !== undefined ? `      <pskc:Model>${esc(t.model)}</pskc:Model>\n` : "") +
          "    </pskc:DeviceInfo>\n" +
          (t.cryptoModuleId !== undefined
            ? `    <pskc:CryptoModuleInfo>\n      <pskc:Id>${esc(t.cryptoModuleId)}</pskc:Id>\n    </pskc:CryptoModuleInfo>\n`
            : "") +
          `    <pskc:Key Id="${esc(t.keyId)}" Algorithm="${ALG_TOTP}">\n` +
          (t.issuer !== undefined ? `      <pskc:Issuer>${esc(t.issuer)}</pskc:Issuer>\n` : "") +
          algorithmParameters(t) +
          "      <pskc:Data>\n" +
          "        <pskc:Secret>\n" +
          "          <pskc:EncryptedValue>\n" +
          encryptedValue("            ", cv) +
          "          </pskc:EncryptedValue>\n" +
          `          <pskc:ValueMAC>${mac.toString("base64")}</pskc:ValueMAC>\n` +
          "        </pskc:Secret>\n" +
          plainInt("Time", t.t0) +
          plainInt("TimeInterval", t.period) +
          (t.timeDrift !== undefined ? plainInt("TimeDrift", t.timeDrift) : "") +
          "      </pskc:Data>\n" +
          "    </pskc:Key>\n" +
          "  </pskc:KeyPackage>\n",
      );
    }
    out.push("</pskc:KeyContainer>\n");
    return opts.signer ? signPskc(out.join(""), opts.signer) : out.join("");
  } finally {
    keys.aesKey.fill(0);
    macKey.fill(0);
  }
}
