/**
 * Read an RFC 6030 PSKC 1.0 file of TOTP keys: the whole file or nothing.
 *
 * Strict where a mistake costs security: every encrypted value must carry a
 * ValueMAC (§6.1.1: MUST with CBC), checked in constant time before the value
 * is decrypted; a Policy it does not fully understand refuses the file (§5);
 * seeds in PlainValue are refused unless asked for; no DTD, no entities
 * (xml-parse.ts). Lenient where vendor files differ harmlessly: a missing
 * Key@Id (the serial stands in), ResponseFormat without Encoding (DECIMAL),
 * no Time (0) or TimeInterval (RFC 6238's 30 s), an empty EncryptionKey,
 * PBKDF2-params in the xenc11 namespace, Suite "SHA256" or "HMAC-SHA-256".
 */
import {
  ALG_TOTP,
  CBC_CIPHERS,
  AES_BLOCK,
  DEFAULT_MAX_BYTES,
  DEFAULT_PERIOD,
  DIGITS_MAX,
  DIGITS_MIN,
  KDF_PBKDF2,
  KDF_PBKDF2_XENC11,
  MAC_ALGORITHMS,
  NS_DS,
  NS_PKCS5,
  NS_PSKC,
  NS_XENC,
  NS_XENC11,
  PBKDF2_MAX_ITERATIONS,
  PSKC_VERSION,
  SECRET_MAX_BYTES,
  SECRET_MIN_BYTES,
} from "./constants.js";
import { cbcDecrypt, decodeBase64, hmac, macEqual, pbkdf2 } from "./crypto.js";
import { attr, parseXml, type XmlElement } from "./xml-parse.js";
import { PskcError, type PskcAlgorithm, type PskcProtection, type PskcToken, type ReadPskcOptions } from "./types.js";

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** File text quoted for an error message, cut short (it is the sender's text, never a secret). */
function show(s: string): string {
  const t = s.trim();
  return JSON.stringify(t.length > 80 ? `${t.slice(0, 77)}...` : t);
}

function pskcChildren(el: XmlElement, local: string): XmlElement[] {
  return el.children.filter((c) => c.ns === NS_PSKC && c.local === local);
}

/** At most one child of that name (the schema never allows two of these). */
function optChild(el: XmlElement, ns: string, local: string, where: string): XmlElement | undefined {
  const found = el.children.filter((c) => c.ns === ns && c.local === local);
  if (found.length > 1) throw new PskcError("malformed", `more than one <${local}> in <${el.local}>`, where);
  return found[0];
}

function child(el: XmlElement, ns: string, local: string, where: string): XmlElement {
  const c = optChild(el, ns, local, where);
  if (!c) throw new PskcError("malformed", `<${el.local}> has no <${local}>`, where);
  return c;
}

function parseInt32(s: string, what: string, where: string): number {
  const t = s.trim();
  if (!/^[+-]?[0-9]{1,10}$/.test(t)) throw new PskcError("malformed", `${what} is not an integer: ${show(s)}`, where);
  const n = Number(t);
  if (n < INT32_MIN || n > INT32_MAX) throw new PskcError("malformed", `${what} ${t} is out of the xs:int range`, where);
  return n;
}

function base64(el: XmlElement, what: string, where: string): Buffer {
  const b = decodeBase64(el.text);
  if (!b) throw new PskcError("malformed", `${what} is not valid base64`, where);
  return b;
}

/** Keys for the file's encrypted values, derived or decrypted once, wiped at the end. */
class KeyRing {
  private aes = new Map<number, Buffer>();
  private mac: Buffer | undefined;
  private macHash: string | undefined;
  private readonly wipeList: Buffer[] = [];

  constructor(
    private readonly root: XmlElement,
    private readonly protection: PskcProtection,
    private readonly opts: ReadPskcOptions,
  ) {
    // Decide the kind of protection the file uses before any work, so a
    // password given for a PSK file (or the reverse) is named as such.
    const ek = optChild(root, NS_PSKC, "EncryptionKey", "KeyContainer");
    if (!ek) return;
    const derived = ek.children.some((c) => c.ns === NS_XENC11 && c.local === "DerivedKey");
    const other = ek.children.filter((c) => !(c.ns === NS_DS && c.local === "KeyName") && !(c.ns === NS_XENC11 && c.local === "DerivedKey"));
    if (other.length) {
      throw new PskcError(
        "unsupported_algorithm",
        `EncryptionKey carries <${other[0].local}>: only a pre-shared key (§6.1) or a PBKDF2 password (§6.2) is supported`,
        "EncryptionKey",
      );
    }
    if (derived && protection.kind === "psk") {
      throw new PskcError("wrong_key_kind", "the file is protected by a password (PBKDF2, §6.2); a pre-shared key was given", "EncryptionKey");
    }
    if (!derived && protection.kind === "password") {
      throw new PskcError("wrong_key_kind", "the file is protected by a pre-shared key (§6.1); a password was given", "EncryptionKey");
    }
  }

  aesKey(keyBytes: number, where: string): Buffer {
    const have = this.aes.get(keyBytes);
    if (have) return have;
    let key: Buffer;
    if (this.protection.kind === "psk") {
      if (this.protection.key.length !== keyBytes) {
        throw new PskcError(
          "wrong_key_kind",
          `the file is encrypted with AES-${keyBytes * 8}; the pre-shared key given has ${this.protection.key.length} bytes`,
          where,
        );
      }
      key = Buffer.from(this.protection.key);
    } else {
      key = this.derive(keyBytes);
    }
    this.wipeList.push(key);
    this.aes.set(keyBytes, key);
    return key;
  }

  /** §6.2: PBKDF2 parameters from EncryptionKey/DerivedKey/KeyDerivationMethod. */
  private derive(keyBytes: number): Buffer {
    const where = "EncryptionKey/DerivedKey";
    const ek = optChild(this.root, NS_PSKC, "EncryptionKey", "KeyContainer");
    const dk = ek && optChild(ek, NS_XENC11, "DerivedKey", where);
    if (!dk) throw new PskcError("wrong_key_kind", "the file has no DerivedKey; a password was given", "EncryptionKey");
    const kdm = child(dk, NS_XENC11, "KeyDerivationMethod", where);
    const alg = attr(kdm, "Algorithm") ?? "";
    if (alg !== KDF_PBKDF2 && alg !== KDF_PBKDF2_XENC11) {
      throw new PskcError("unsupported_algorithm", `key derivation ${show(alg)}; only PBKDF2 is supported`, where);
    }
    // Figure 7 puts PBKDF2-params in the PKCS #5 namespace; XML Encryption
    // 1.1 (and python-pskc) in xenc11. Their children are unqualified in the
    // former and qualified in the latter, so match them by local name.
    const params = kdm.children.filter((c) => (c.ns === NS_PKCS5 || c.ns === NS_XENC11) && c.local === "PBKDF2-params");
    if (params.length !== 1) throw new PskcError("malformed", "KeyDerivationMethod needs exactly one PBKDF2-params", where);
    const p = params[0];
    const sub = (local: string): XmlElement | undefined => {
      const f = p.children.filter((c) => c.local === local && (c.ns === "" || c.ns === NS_PKCS5 || c.ns === NS_XENC11));
      if (f.length > 1) throw new PskcError("malformed", `more than one <${local}> in PBKDF2-params`, where);
      return f[0];
    };
    const salt = sub("Salt");
    const specified = salt?.children.find((c) => c.local === "Specified");
    if (!specified) throw new PskcError("malformed", "PBKDF2-params needs Salt/Specified (OtherSource is not supported)", where);
    const saltBytes = base64(specified, "the PBKDF2 salt", where);
    const itEl = sub("IterationCount");
    if (!itEl) throw new PskcError("malformed", "PBKDF2-params has no IterationCount", where);
    const iterations = parseInt32(itEl.text, "IterationCount", where);
    const max = this.opts.maxIterations ?? PBKDF2_MAX_ITERATIONS;
    if (iterations < 1) throw new PskcError("malformed", `IterationCount ${iterations} must be positive`, where);
    if (iterations > max) throw new PskcError("malformed", `IterationCount ${iterations} is above the limit of ${max}`, where);
    const klEl = sub("KeyLength");
    if (klEl && parseInt32(klEl.text, "KeyLength", where) !== keyBytes) {
      throw new PskcError("malformed", `KeyLength ${klEl.text.trim()} does not fit AES-${keyBytes * 8}`, where);
    }
    let hash = "sha1";
    const prf = sub("PRF");
    const prfAlg = prf && attr(prf, "Algorithm");
    if (prfAlg) {
      const m = /#hmac-(sha1|sha224|sha256|sha384|sha512)$/.exec(prfAlg);
      if (!m) throw new PskcError("unsupported_algorithm", `PBKDF2 PRF ${show(prfAlg)}`, where);
      hash = m[1];
    }
    const pw = this.protection.kind === "password" ? this.protection.password : "";
    return pbkdf2(pw, saltBytes, iterations, keyBytes, hash);
  }

  /** §6.1.1: the MAC key, itself encrypted under the AES key, and its hash. */
  macKey(): [Buffer, string] {
    if (this.mac && this.macHash) return [this.mac, this.macHash];
    const where = "MACMethod";
    const mm = optChild(this.root, NS_PSKC, "MACMethod", "KeyContainer");
    if (!mm) throw new PskcError("mac_missing", "encrypted values but no MACMethod: their integrity cannot be checked (§6.1.1)", where);
    const alg = attr(mm, "Algorithm") ?? "";
    const hash = MAC_ALGORITHMS[alg];
    if (!hash) throw new PskcError("unsupported_algorithm", `MAC algorithm ${show(alg)}`, where);
    if (optChild(mm, NS_PSKC, "MACKeyReference", where)) {
      throw new PskcError("unsupported_algorithm", "MACKeyReference (a MAC key agreed out of band) is not supported", where);
    }
    const mk = optChild(mm, NS_PSKC, "MACKey", where);
    if (!mk) throw new PskcError("mac_missing", "MACMethod has no MACKey", where);
    const [cipher, keyBytes, ct] = cipherText(mk, `${where}/MACKey`);
    const key = cbcDecrypt(cipher, this.aesKey(keyBytes, where), ct);
    // The MACKey has no MAC of its own: a wrong key shows up here as bad
    // padding, or below as ValueMACs that do not match. Same refusal.
    if (!key || key.length === 0) {
      throw new PskcError("mac_mismatch", "the MAC key does not decrypt: wrong key or password, or a tampered file", where);
    }
    this.wipeList.push(key);
    this.mac = key;
    this.macHash = hash;
    return [key, hash];
  }

  /**
   * An EncryptedValue's plaintext, after its ValueMAC (the sibling of the
   * EncryptedValue in `holder`) matched in constant time.
   */
  decrypt(holder: XmlElement, ev: XmlElement, where: string): Buffer {
    const [cipher, keyBytes, ct] = cipherText(ev, where);
    const vm = optChild(holder, NS_PSKC, "ValueMAC", where);
    if (!vm) throw new PskcError("mac_missing", `<${holder.local}> is encrypted with CBC but has no ValueMAC (§6.1.1)`, where);
    const given = base64(vm, "ValueMAC", where);
    const aes = this.aesKey(keyBytes, where);
    const [macKey, hash] = this.macKey();
    if (!macEqual(hmac(hash, macKey, ct), given)) {
      throw new PskcError("mac_mismatch", `the ValueMAC of <${holder.local}> does not match: wrong key or password, or a tampered file`, where);
    }
    const plain = cbcDecrypt(cipher, aes, ct);
    // The MAC matched, so the key is right: bad padding is the sender's bug.
    if (!plain) throw new PskcError("malformed", `<${holder.local}> has bad padding under a matching MAC`, where);
    return plain;
  }

  wipe(): void {
    for (const b of this.wipeList) b.fill(0);
  }
}

/** EncryptionMethod + CipherData/CipherValue of an xenc:EncryptedDataType element. */
function cipherText(ev: XmlElement, where: string): [string, number, Buffer] {
  const em = optChild(ev, NS_XENC, "EncryptionMethod", where);
  if (!em) throw new PskcError("malformed", `<${ev.local}> has no EncryptionMethod`, where);
  const alg = attr(em, "Algorithm") ?? "";
  const c = CBC_CIPHERS[alg];
  if (!c) throw new PskcError("unsupported_algorithm", `encryption ${show(alg)}; AES-CBC (§6.1) is supported`, where);
  const cd = child(ev, NS_XENC, "CipherData", where);
  if (optChild(cd, NS_XENC, "CipherReference", where)) {
    throw new PskcError("unsupported_algorithm", "CipherReference (ciphertext held elsewhere) is not supported", where);
  }
  const ct = base64(child(cd, NS_XENC, "CipherValue", where), "CipherValue", where);
  // IV plus at least one block, whole blocks only (§6.1: IV prepended, PKCS #5 padding).
  if (ct.length < 2 * AES_BLOCK || ct.length % AES_BLOCK !== 0) {
    throw new PskcError("malformed", `CipherValue of ${ct.length} bytes is not IV plus whole AES blocks`, where);
  }
  return [c[0], c[1], ct];
}

/** PlainValue or EncryptedValue of an intDataType (Time, TimeInterval, TimeDrift). */
function readInt(data: XmlElement, local: string, ring: KeyRing, where: string): number | undefined {
  const el = optChild(data, NS_PSKC, local, where);
  if (!el) return undefined;
  const w = `${where}/${local}`;
  const pv = optChild(el, NS_PSKC, "PlainValue", w);
  if (pv) return parseInt32(pv.text, local, w);
  const ev = optChild(el, NS_PSKC, "EncryptedValue", w);
  if (!ev) throw new PskcError("malformed", `<${local}> has neither PlainValue nor EncryptedValue`, w);
  const plain = ring.decrypt(el, ev, w);
  // python-pskc writes encrypted integers big-endian and reads ASCII digits first; do the same.
  const ascii = plain.toString("latin1");
  if (/^[0-9]{1,10}$/.test(ascii)) return parseInt32(ascii, local, w);
  if (plain.length > 4) throw new PskcError("malformed", `encrypted <${local}> is not an integer`, w);
  return plain.reduce((n, b) => n * 256 + b, 0);
}

/**
 * RFC 6030 §5: a recipient that does not understand a Policy element must
 * treat the key as unusable. Understood here: KeyUsage, which must include
 * OTP. Everything else (StartDate, ExpiryDate, PINPolicy,
 * NumberOfTransactions, extensions) asks for enforcement this registry does
 * not do, so the file is refused rather than the rule silently dropped.
 */
function checkPolicy(key: XmlElement, where: string): void {
  const policy = optChild(key, NS_PSKC, "Policy", where);
  if (!policy) return;
  const w = `${where}/Policy`;
  const usages: string[] = [];
  for (const c of policy.children) {
    if (c.ns === NS_PSKC && c.local === "KeyUsage") usages.push(c.text.trim());
    else throw new PskcError("unsupported_policy", `Policy element <${c.local}> is not understood, so the key is unusable (RFC 6030 §5)`, w);
  }
  if (policy.attrs.length) {
    throw new PskcError("unsupported_policy", `Policy attribute ${policy.attrs[0].name} is not understood (RFC 6030 §5)`, w);
  }
  if (usages.length && !usages.includes("OTP")) {
    throw new PskcError("unsupported_policy", `KeyUsage ${usages.map(show).join(", ")} does not permit OTP`, w);
  }
}

/** AlgorithmParameters/Suite -> TOTP hash (see writer.ts for why Suite). */
function suiteAlgorithm(params: XmlElement | undefined, where: string): PskcAlgorithm {
  const suite = params && optChild(params, NS_PSKC, "Suite", where);
  if (!suite) return "SHA1";
  // privacyIDEA writes <Suite hashalgo="sha256"/>.
  const value = suite.text.trim() || attr(suite, "hashalgo") || "";
  if (value === "") return "SHA1";
  const m = /^(?:HMAC-?)?SHA-?(1|256|512)$/i.exec(value);
  if (!m) throw new PskcError("unsupported_algorithm", `Suite ${show(value)}; HMAC-SHA1/SHA256/SHA512 TOTP is supported`, where);
  return `SHA${m[1]}` as PskcAlgorithm;
}

function readKeyPackage(kp: XmlElement, index: number, ring: KeyRing, opts: ReadPskcOptions): PskcToken {
  let where = `KeyPackage[${index + 1}]`;
  const info = optChild(kp, NS_PSKC, "DeviceInfo", where);
  if (!info) throw new PskcError("malformed", "KeyPackage has no DeviceInfo (the serial is needed)", where);
  const serialEl = optChild(info, NS_PSKC, "SerialNo", where);
  const serial = serialEl?.text.trim() ?? "";
  if (serial === "") throw new PskcError("malformed", "DeviceInfo has no SerialNo", where);
  where = `${where} (serial ${show(serial)})`;
  const manufacturer = optChild(info, NS_PSKC, "Manufacturer", where)?.text.trim() ?? "";
  const model = optChild(info, NS_PSKC, "Model", where)?.text.trim();

  const cmi = optChild(kp, NS_PSKC, "CryptoModuleInfo", where);
  const cryptoModuleId = cmi && optChild(cmi, NS_PSKC, "Id", where)?.text.trim();

  const keys = pskcChildren(kp, "Key");
  if (keys.length !== 1) throw new PskcError("malformed", `KeyPackage must hold exactly one Key, has ${keys.length}`, where);
  const key = keys[0];
  const keyAlg = attr(key, "Algorithm");
  // Pre-RFC drafts wrote "...:pskc#totp"; the meaning is the same.
  if (!keyAlg || !/^urn:ietf:params:xml:ns:keyprov:pskc[:#]totp$/i.test(keyAlg)) {
    throw new PskcError("unsupported_algorithm", `Key@Algorithm ${show(keyAlg ?? "(none)")}; only ${ALG_TOTP} is imported`, where);
  }
  const keyId = attr(key, "Id")?.trim() || serial;
  const issuer = optChild(key, NS_PSKC, "Issuer", where)?.text.trim();

  checkPolicy(key, where);

  const params = optChild(key, NS_PSKC, "AlgorithmParameters", where);
  const algorithm = suiteAlgorithm(params, where);
  const rf = params && optChild(params, NS_PSKC, "ResponseFormat", where);
  if (!rf) throw new PskcError("malformed", "Key has no AlgorithmParameters/ResponseFormat (the number of digits)", where);
  const digits = parseInt32(attr(rf, "Length") ?? "", "ResponseFormat@Length", where);
  if (digits < DIGITS_MIN || digits > DIGITS_MAX) {
    throw new PskcError("unsupported_algorithm", `ResponseFormat@Length ${digits}; TOTP codes of ${DIGITS_MIN}..${DIGITS_MAX} digits are supported`, where);
  }
  const encoding = attr(rf, "Encoding") ?? "DECIMAL";
  if (encoding !== "DECIMAL") throw new PskcError("unsupported_algorithm", `ResponseFormat@Encoding ${show(encoding)}; DECIMAL only`, where);
  const checkDigits = attr(rf, "CheckDigits");
  if (checkDigits === "true" || checkDigits === "1") {
    throw new PskcError("unsupported_algorithm", "ResponseFormat@CheckDigits (a Luhn digit appended to codes) is not supported", where);
  }

  const data = optChild(key, NS_PSKC, "Data", where);
  if (!data) throw new PskcError("malformed", "Key has no Data", where);
  const secretEl = optChild(data, NS_PSKC, "Secret", where);
  if (!secretEl) throw new PskcError("malformed", "Data has no Secret", where);
  const sw = `${where}/Secret`;
  let secret: Buffer;
  const ev = optChild(secretEl, NS_PSKC, "EncryptedValue", sw);
  const pv = optChild(secretEl, NS_PSKC, "PlainValue", sw);
  if (ev && pv) throw new PskcError("malformed", "Secret has both PlainValue and EncryptedValue", sw);
  if (ev) {
    secret = ring.decrypt(secretEl, ev, sw);
  } else if (pv) {
    if (!opts.allowPlaintextSecrets) {
      throw new PskcError("plaintext_secret", "the seed is in plain text; seeds must travel encrypted (§6)", sw);
    }
    secret = base64(pv, "Secret/PlainValue", sw);
  } else {
    throw new PskcError("malformed", "Secret has neither PlainValue nor EncryptedValue", sw);
  }
  try {
    if (secret.length < SECRET_MIN_BYTES || secret.length > SECRET_MAX_BYTES) {
      throw new PskcError(
        "malformed",
        `the seed has ${secret.length} bytes; ${SECRET_MIN_BYTES}..${SECRET_MAX_BYTES} are accepted (RFC 4226 §4 R6: at least 128 bits)`,
        sw,
      );
    }
    const t0 = readInt(data, "Time", ring, where) ?? 0;
    if (t0 < 0) throw new PskcError("malformed", `Time ${t0} is before the unix epoch`, where);
    const period = readInt(data, "TimeInterval", ring, where) ?? DEFAULT_PERIOD;
    if (period < 1) throw new PskcError("malformed", `TimeInterval ${period} must be positive`, where);
    const timeDrift = readInt(data, "TimeDrift", ring, where);

    const token: PskcToken = { serial, manufacturer, keyId, algorithm, digits, period, t0, secret };
    if (model !== undefined) token.model = model;
    if (cryptoModuleId) token.cryptoModuleId = cryptoModuleId;
    if (issuer !== undefined) token.issuer = issuer;
    if (timeDrift !== undefined) token.timeDrift = timeDrift;
    return token;
  } catch (e) {
    secret.fill(0);
    throw e;
  }
}

function checkProtection(protection: PskcProtection): void {
  if (protection?.kind === "psk") {
    if (!Buffer.isBuffer(protection.key)) throw new TypeError("protection.key must be a Buffer");
    if (protection.key.length === 0) throw new PskcError("missing_key", "the pre-shared key is empty");
  } else if (protection?.kind === "password") {
    if (typeof protection.password !== "string") throw new TypeError("protection.password must be a string");
    if (protection.password === "") throw new PskcError("missing_key", "the password is empty");
  } else {
    throw new TypeError('protection.kind must be "psk" or "password"');
  }
}

function decodeText(xml: string | Buffer, maxBytes: number): string {
  const size = typeof xml === "string" ? Buffer.byteLength(xml, "utf8") : xml.length;
  if (size > maxBytes) throw new PskcError("unsafe_xml", `the file has ${size} bytes, over the limit of ${maxBytes}`);
  if (typeof xml === "string") return xml;
  if ((xml[0] === 0xff && xml[1] === 0xfe) || (xml[0] === 0xfe && xml[1] === 0xff)) {
    throw new PskcError("malformed", "the file is UTF-16; only UTF-8 is supported");
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(xml);
  } catch {
    throw new PskcError("malformed", "the file is not valid UTF-8");
  }
}

/**
 * All TOTP tokens of a PSKC file, or a PskcError and nothing else. The
 * returned `secret` Buffers are the caller's to wipe (`fill(0)`) once
 * stored; on refusal, every secret decrypted so far is wiped here.
 */
export function readPskc(xml: string | Buffer, protection: PskcProtection, opts: ReadPskcOptions = {}): PskcToken[] {
  checkProtection(protection);
  const text = decodeText(xml, opts.maxBytes ?? DEFAULT_MAX_BYTES);
  const root = parseXml(text);
  if (root.local !== "KeyContainer" || root.ns !== NS_PSKC) {
    throw new PskcError(
      "malformed",
      `the root element is {${root.ns}}${root.local}, not {${NS_PSKC}}KeyContainer (a PSKC 1.0 file)`,
      `line ${root.line}`,
    );
  }
  const version = attr(root, "Version");
  if (version !== PSKC_VERSION) {
    throw new PskcError("malformed", `KeyContainer@Version is ${show(version ?? "(none)")}; only ${PSKC_VERSION} is supported`, "KeyContainer");
  }
  const packages = pskcChildren(root, "KeyPackage");
  if (packages.length === 0) throw new PskcError("malformed", "the file has no KeyPackage", "KeyContainer");

  const ring = new KeyRing(root, protection, opts);
  const tokens: PskcToken[] = [];
  try {
    const serials = new Map<string, number>();
    packages.forEach((kp, i) => {
      const t = readKeyPackage(kp, i, ring, opts);
      tokens.push(t);
      const first = serials.get(t.serial);
      if (first !== undefined) {
        throw new PskcError("duplicate_serial", `serial ${show(t.serial)} is also in KeyPackage[${first + 1}]`, `KeyPackage[${i + 1}]`);
      }
      serials.set(t.serial, i);
    });
    return tokens;
  } catch (e) {
    for (const t of tokens) t.secret.fill(0);
    throw e;
  } finally {
    ring.wipe();
  }
}
