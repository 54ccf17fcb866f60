/**
 * Read an RFC 6030 PSKC 1.0 file of TOTP keys: the whole file or nothing.
 *
 * Every element and attribute is checked against RFC 6030's §11 schema
 * before anything else (checkElement, checkTree): an element that is not
 * RFC 6030's where it stands (a misspelt <Keypackage>, a KeyPackage in a
 * draft's namespace) refuses the file, naming it and its line; nothing is
 * skipped silently. What the schema allows but this reader does not act on
 * (Extensions, foreign elements, KeyReference, PINPolicy...) is refused too,
 * or with skipUnsupported leaves out its KeyPackage, named in the report.
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
  NS_PSKC_DRAFT,
  NS_XML,
  NS_XSI,
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
import {
  PskcError,
  type PskcAlgorithm,
  type PskcProtection,
  type PskcReadResult,
  type PskcSkipped,
  type PskcToken,
  type ReadPskcOptions,
} from "./types.js";

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/** File text quoted for an error message, cut short (it is the sender's text, never a secret). */
function show(s: string): string {
  const t = s.trim();
  return JSON.stringify(t.length > 80 ? `${t.slice(0, 77)}...` : t);
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

/** XML Schema Part 2 §3.3.13 xs:integer lexical space (whitespace collapsed): a sign, then digits; leading zeros allowed. */
function parseInteger(s: string, what: string, where: string): bigint {
  const t = s.trim();
  if (!/^[+-]?[0-9]+$/.test(t)) throw new PskcError("malformed", `${what} is not an integer: ${show(s)}`, where);
  return BigInt(t);
}

/** xs:int (§3.3.17): -2^31..2^31-1. */
function parseInt32(s: string, what: string, where: string): number {
  const n = parseInteger(s, what, where);
  if (n < BigInt(INT32_MIN) || n > BigInt(INT32_MAX)) throw new PskcError("malformed", `${what} ${s.trim()} is out of the xs:int range`, where);
  return Number(n);
}

/** xs:unsignedInt (§3.3.22): 0..2^32-1. */
function parseUnsignedInt(s: string, what: string, where: string): number {
  const n = parseInteger(s, what, where);
  if (n < 0n || n > 0xffffffffn) throw new PskcError("malformed", `${what} ${s.trim()} is out of the xs:unsignedInt range`, where);
  return Number(n);
}

/** xs:long (§3.3.16), for a Counter this reader checks but does not use. */
function checkLong(s: string, what: string, where: string): void {
  const n = parseInteger(s, what, where);
  if (n < -(2n ** 63n) || n >= 2n ** 63n) throw new PskcError("malformed", `${what} ${s.trim()} is out of the xs:long range`, where);
}

/**
 * xs:boolean (§3.2.2): exactly true, false, 1 or 0, whitespace collapsed.
 * "TRUE" or "yes" are not booleans: refused rather than guessed.
 */
function parseBoolean(value: string, what: string, where: string): boolean {
  const t = value.trim();
  if (t === "true" || t === "1") return true;
  if (t === "false" || t === "0") return false;
  throw new PskcError("malformed", `${what} is ${show(value)}, not an xs:boolean (true, false, 1 or 0)`, where);
}

const DATE_TIME = /^(-?[0-9]{4,})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?$/;

/**
 * xs:dateTime (§3.2.7) as unix milliseconds. A value without a time zone
 * has none in XML Schema's terms; RFC 6030's examples all say Z, and it is
 * taken as UTC. Fields are range-checked (no 31 April, no 25:00).
 */
function parseDateTime(s: string, what: string, where: string): number {
  const t = s.trim();
  const m = DATE_TIME.exec(t);
  const bad = () => new PskcError("malformed", `${what} is ${show(s)}, not an xs:dateTime such as 2026-04-01T00:00:00Z`, where);
  if (!m) throw bad();
  const [y, mo, d, h, mi, sec] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number);
  const endOfDay = h === 24 && mi === 0 && sec === 0 && !/[1-9]/.test(m[7] ?? "");
  if (mo < 1 || mo > 12 || d < 1 || (h > 23 && !endOfDay) || mi > 59 || sec > 59) throw bad();
  // setUTCFullYear, not Date.UTC, which reads years 0-99 as 1900-1999.
  const day = new Date(0);
  day.setUTCFullYear(y, mo - 1, d);
  if (y === 0 || day.getUTCDate() !== d || !Number.isFinite(day.getTime())) throw bad();
  // xs:dateTime allows any year; the registry stores dates as ISO 8601 (4-digit years) and a JS Date ends in 275760.
  if (y > 9999) throw new PskcError("malformed", `${what} is in the year ${y}; dates after 9999-12-31 are not accepted`, where);
  const base = day.getTime() + ((endOfDay ? 24 : h) * 60 + mi) * 60_000 + sec * 1000;
  const frac = m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0;
  let offset = 0;
  if (m[8] && m[8] !== "Z") {
    const oh = Number(m[8].slice(1, 3));
    const om = Number(m[8].slice(4, 6));
    if (oh > 14 || om > 59 || (oh === 14 && om > 0)) throw bad();
    offset = (m[8][0] === "-" ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  return base + frac - offset;
}

function base64(el: XmlElement, what: string, where: string): Buffer {
  const b = decodeBase64(el.text);
  if (!b) throw new PskcError("malformed", `${what} is not valid base64`, where);
  return b;
}

/**
 * RFC 6030 §11's content models, as far as this reader walks them: each
 * PSKC element's PSKC children (with how many may appear), its attributes,
 * and what a foreign element in it means. The EncryptionKey, MACKey and
 * EncryptedValue subtrees are XML Signature / Encryption types, checked
 * where they are used (KeyRing, cipherText); Extensions are not entered.
 */
interface ContentModel {
  children: Record<string, number>;
  attrs: readonly string[];
  /** The schema's xs:any namespace="##other": allowed, and not understood here. */
  foreign?: "unsupported_element" | "unsupported_policy";
  /** Unknown attributes refuse the key as this (Policy: §5), not the file as malformed. */
  unknownAttr?: "unsupported_policy";
  /** xs:anyAttribute namespace="##other" (PINPolicy). */
  foreignAttrs?: boolean;
}
const MANY = Number.POSITIVE_INFINITY;
const LEAF: ContentModel = { children: {}, attrs: [] };
const VALUE: ContentModel = { children: { PlainValue: 1, EncryptedValue: 1, ValueMAC: 1 }, attrs: [] };
/** Elements whose content is checked elsewhere (xenc/ds types) or not entered (Extensions). */
const OPAQUE = new Set(["EncryptionKey", "MACKey", "EncryptedValue", "Extensions"]);
const MODELS: Record<string, ContentModel> = {
  KeyContainer: { children: { EncryptionKey: 1, MACMethod: 1, KeyPackage: MANY, Extensions: MANY }, attrs: ["Version", "Id"] },
  MACMethod: { children: { MACKey: 1, MACKeyReference: 1 }, attrs: ["Algorithm"], foreign: "unsupported_element" },
  KeyPackage: { children: { DeviceInfo: 1, CryptoModuleInfo: 1, Key: 1, Extensions: MANY }, attrs: [] },
  DeviceInfo: {
    children: { Manufacturer: 1, SerialNo: 1, Model: 1, IssueNo: 1, DeviceBinding: 1, StartDate: 1, ExpiryDate: 1, UserId: 1, Extensions: MANY },
    attrs: [],
  },
  CryptoModuleInfo: { children: { Id: 1, Extensions: MANY }, attrs: [] },
  Key: {
    children: { Issuer: 1, AlgorithmParameters: 1, KeyProfileId: 1, KeyReference: 1, FriendlyName: 1, Data: 1, UserId: 1, Policy: 1, Extensions: MANY },
    attrs: ["Id", "Algorithm"],
  },
  AlgorithmParameters: { children: { Suite: 1, ChallengeFormat: 1, ResponseFormat: 1, Extensions: MANY }, attrs: [] },
  // privacyIDEA writes <Suite hashalgo="sha256"/>.
  Suite: { children: {}, attrs: ["hashalgo"] },
  ChallengeFormat: { children: {}, attrs: ["Encoding", "Min", "Max", "CheckDigits"] },
  ResponseFormat: { children: {}, attrs: ["Encoding", "Length", "CheckDigits"] },
  Data: { children: { Secret: 1, Counter: 1, Time: 1, TimeInterval: 1, TimeDrift: 1 }, attrs: [], foreign: "unsupported_element" },
  Secret: VALUE,
  Counter: VALUE,
  Time: VALUE,
  TimeInterval: VALUE,
  TimeDrift: VALUE,
  Policy: {
    children: { StartDate: 1, ExpiryDate: 1, PINPolicy: 1, KeyUsage: MANY, NumberOfTransactions: 1 },
    attrs: [],
    foreign: "unsupported_policy",
    unknownAttr: "unsupported_policy",
  },
  PINPolicy: { children: {}, attrs: ["PINKeyId", "PINUsageMode", "MaxFailedAttempts", "MinLength", "MaxLength", "PINEncoding"], foreignAttrs: true },
};
for (const leaf of [
  "Manufacturer", "SerialNo", "Model", "IssueNo", "DeviceBinding", "StartDate", "ExpiryDate", "UserId", "Id", "Issuer",
  "KeyProfileId", "KeyReference", "FriendlyName", "KeyUsage", "NumberOfTransactions", "PlainValue", "ValueMAC", "MACKeyReference",
]) {
  MODELS[leaf] ??= LEAF;
}
/** Every element name RFC 6030 defines, for "did you mean" hints. */
const RFC_NAMES = [...new Set([...Object.keys(MODELS), ...Object.values(MODELS).flatMap((m) => Object.keys(m.children))])];

/** An element as the file wrote it, with its line: what errors about structure name. */
function named(el: XmlElement): string {
  return `<${el.name}> (line ${el.line})`;
}

/**
 * One element's children and attributes against its content model. Schema
 * violations throw `malformed` at once; what the schema allows but this
 * reader does not act on is returned, for the caller to refuse the file or
 * (inside a KeyPackage, with skipUnsupported) the package.
 */
function checkElement(el: XmlElement, model: ContentModel, where: string, found: PskcError[]): void {
  const counts = new Map<string, number>();
  for (const c of el.children) {
    if (c.ns === NS_PSKC) {
      const max = model.children[c.local];
      if (max === undefined) {
        const hint = RFC_NAMES.find((n) => n.toLowerCase() === c.local.toLowerCase() && n !== c.local);
        const known = RFC_NAMES.includes(c.local);
        throw new PskcError(
          "malformed",
          `${named(c)} ${known ? "is not allowed" : "is not an RFC 6030 element"} in <${el.local}>${hint ? ` (did you mean <${hint}>?)` : ""}; the file is refused whole`,
          where,
        );
      }
      const n = (counts.get(c.local) ?? 0) + 1;
      counts.set(c.local, n);
      if (n > max) throw new PskcError("malformed", `more than one <${c.local}> in <${el.local}> (line ${c.line})`, where);
      if (c.local === "Extensions") {
        found.push(new PskcError("unsupported_element", `${named(c)} in <${el.local}> carries extensions this reader does not understand`, where));
      }
    } else if (el.local === "KeyContainer" && c.ns === NS_DS && c.local === "Signature") {
      // §7: the container's XML Signature (one, after the KeyPackages).
      const n = (counts.get("ds:Signature") ?? 0) + 1;
      counts.set("ds:Signature", n);
      if (n > 1) throw new PskcError("malformed", `more than one <ds:Signature> in <KeyContainer> (line ${c.line})`, where);
    } else if (model.foreign) {
      found.push(new PskcError(model.foreign, `${named(c)} in namespace ${show(c.ns)} inside <${el.local}> is not understood`, where));
    } else {
      const draft = c.ns === NS_PSKC_DRAFT ? ` (${NS_PSKC_DRAFT} is a pre-RFC draft's namespace; RFC 6030's is ${NS_PSKC})` : "";
      throw new PskcError(
        "malformed",
        `${named(c)} in namespace ${show(c.ns)} is not allowed in <${el.local}>${draft}; the file is refused whole`,
        where,
      );
    }
  }
  if (Object.keys(model.children).length && el.text.trim() !== "") {
    // Never quoted: inside Secret, EncryptedValue or CipherData it may be the seed itself.
    throw new PskcError("malformed", `text inside <${el.local}> (line ${el.line}), which holds only elements (not shown: it may be key material)`, where);
  }
  for (const a of el.attrs) {
    if (a.ns === "" && model.attrs.includes(a.local)) continue;
    if (a.ns === NS_XSI || a.ns === NS_XML) continue;
    if (model.unknownAttr) {
      found.push(new PskcError(model.unknownAttr, `<${el.local}> attribute ${a.name} is not understood, so the key is unusable (RFC 6030 §5)`, where));
    } else if (a.ns !== "" && model.foreignAttrs) {
      continue;
    } else if (a.ns !== "") {
      found.push(new PskcError("unsupported_element", `attribute ${a.name} (namespace ${show(a.ns)}) on ${named(el)} is not understood`, where));
    } else {
      throw new PskcError("malformed", `attribute ${a.name} is not allowed on ${named(el)}`, where);
    }
  }
}

/** checkElement over a subtree of PSKC elements (depth is bounded by the parser). */
function checkTree(el: XmlElement, where: string, found: PskcError[]): void {
  checkElement(el, MODELS[el.local], where, found);
  for (const c of el.children) {
    if (c.ns === NS_PSKC && !OPAQUE.has(c.local)) checkTree(c, where, found);
  }
}

/** Keys for the file's encrypted values, derived or decrypted once, wiped at the end. */
class KeyRing {
  private aes = new Map<number, Buffer>();
  private mac: Buffer | undefined;
  private macHash: string | undefined;
  private readonly wipeList: Buffer[] = [];

  constructor(
    private readonly root: XmlElement,
    /** undefined: no key or password given (a plaintext file); any encrypted value is then refused. */
    private readonly protection: PskcProtection | undefined,
    private readonly opts: ReadPskcOptions,
  ) {
    // Decide the kind of protection the file uses before any work, so a
    // password given for a PSK file (or the reverse) is named as such.
    const ek = optChild(root, NS_PSKC, "EncryptionKey", "KeyContainer");
    if (!ek || !protection) return;
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
    if (!this.protection) {
      throw new PskcError("missing_key", "the file holds encrypted values; give the pre-shared key or the password it was written with", where);
    }
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
    const pw = this.protection?.kind === "password" ? this.protection.password : "";
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
  for (const c of ev.children) {
    if (c.ns === NS_XENC && (c.local === "EncryptionMethod" || c.local === "CipherData")) continue;
    // ds:KeyInfo would name another key; EncryptionProperties ask for processing this reader does not do.
    throw new PskcError("unsupported_algorithm", `${named(c)} in <${ev.local}> is not supported (EncryptionMethod and CipherData only, §6)`, where);
  }
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
function readInt(data: XmlElement, local: string, ring: KeyRing, where: string, macOnly = false): number | undefined {
  const el = optChild(data, NS_PSKC, local, where);
  if (!el) return undefined;
  const w = `${where}/${local}`;
  const pv = optChild(el, NS_PSKC, "PlainValue", w);
  const ev = optChild(el, NS_PSKC, "EncryptedValue", w);
  if (pv && ev) throw new PskcError("malformed", `<${local}> has both PlainValue and EncryptedValue`, w);
  if (pv) return parseInt32(pv.text, local, w);
  if (!ev) throw new PskcError("malformed", `<${local}> has neither PlainValue nor EncryptedValue`, w);
  const plain = ring.decrypt(el, ev, w);
  if (macOnly) return undefined;
  // python-pskc writes encrypted integers big-endian and reads ASCII digits first; do the same.
  const ascii = plain.toString("latin1");
  if (/^[0-9]{1,10}$/.test(ascii)) return parseInt32(ascii, local, w);
  if (plain.length > 4) throw new PskcError("malformed", `encrypted <${local}> is not an integer`, w);
  return plain.reduce((n, b) => n * 256 + b, 0);
}

/**
 * RFC 6030 §5: a recipient that does not understand a Policy element must
 * treat the key as unusable. Understood here: KeyUsage, which must include
 * OTP, and StartDate/ExpiryDate, which the registry enforces at activation
 * and verification. PINPolicy and NumberOfTransactions (and anything
 * foreign, found by checkElement) ask for enforcement this registry does
 * not do, so the key is refused rather than the rule silently dropped.
 */
function checkPolicy(policy: XmlElement | undefined, where: string): { notBefore?: number; notAfter?: number } {
  if (!policy) return {};
  const w = `${where}/Policy`;
  const usages: string[] = [];
  const out: { notBefore?: number; notAfter?: number } = {};
  for (const c of policy.children) {
    if (c.ns !== NS_PSKC) continue; // foreign: reported by checkElement
    if (c.local === "KeyUsage") {
      const u = c.text.trim();
      if (!KEY_USAGES.includes(u)) throw new PskcError("malformed", `KeyUsage ${show(c.text)} is not one of RFC 6030's (${KEY_USAGES.join(", ")})`, w);
      usages.push(u);
    } else if (c.local === "StartDate") out.notBefore = parseDateTime(c.text, "Policy/StartDate", w);
    else if (c.local === "ExpiryDate") out.notAfter = parseDateTime(c.text, "Policy/ExpiryDate", w);
  }
  return out;
}

/** The Policy elements that ask for what the registry does not enforce: the key is unusable (§5). */
function refusePolicy(policy: XmlElement | undefined, where: string): void {
  if (!policy) return;
  const w = `${where}/Policy`;
  const usages = policy.children.filter((c) => c.ns === NS_PSKC && c.local === "KeyUsage").map((c) => c.text.trim());
  for (const c of policy.children) {
    if (c.ns === NS_PSKC && (c.local === "PINPolicy" || c.local === "NumberOfTransactions")) {
      throw new PskcError("unsupported_policy", `Policy element <${c.local}> is not understood, so the key is unusable (RFC 6030 §5)`, w);
    }
  }
  if (usages.length && !usages.includes("OTP")) {
    throw new PskcError("unsupported_policy", `KeyUsage ${usages.map(show).join(", ")} does not permit OTP`, w);
  }
}

/** §11 KeyUsageType. */
const KEY_USAGES = ["OTP", "CR", "Encrypt", "Integrity", "Verify", "Unlock", "Decrypt", "KeyWrap", "Unwrap", "Derive", "Generate"];
/** §11 ValueFormatType. */
const VALUE_FORMATS = ["DECIMAL", "HEXADECIMAL", "ALPHANUMERIC", "BASE64", "BINARY"];

/** The later of two optional instants (start dates), or the earlier (expiry dates). */
function bound(a: number | undefined, b: number | undefined, pick: (x: number, y: number) => number): number | undefined {
  return a === undefined ? b : b === undefined ? a : pick(a, b);
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

/** The seed and the integers of Data, every encrypted one checked against its ValueMAC first. */
interface PackageValues {
  secret?: Buffer;
  plaintext: boolean;
  t0?: number;
  period?: number;
  timeDrift?: number;
}

/**
 * Step 2 of a KeyPackage: every value of its Data read, and every encrypted
 * one MAC-checked, whether or not the key is then used (a package left out
 * by skipUnsupported must not hide a tampered file).
 */
function readValues(data: XmlElement | undefined, ring: KeyRing, opts: ReadPskcOptions, where: string): PackageValues {
  const out: PackageValues = { plaintext: false };
  if (!data) return out;
  const secretEl = optChild(data, NS_PSKC, "Secret", where);
  if (secretEl) {
    const sw = `${where}/Secret`;
    const ev = optChild(secretEl, NS_PSKC, "EncryptedValue", sw);
    const pv = optChild(secretEl, NS_PSKC, "PlainValue", sw);
    if (ev && pv) throw new PskcError("malformed", "Secret has both PlainValue and EncryptedValue", sw);
    if (ev) {
      out.secret = ring.decrypt(secretEl, ev, sw);
    } else if (pv) {
      if (!opts.allowPlaintextSecrets) {
        throw new PskcError("plaintext_secret", "the seed is in plain text; seeds must travel encrypted (§6) unless plaintext is allowed for this file", sw);
      }
      out.secret = base64(pv, "Secret/PlainValue", sw);
      out.plaintext = true;
    } else {
      throw new PskcError("malformed", "Secret has neither PlainValue nor EncryptedValue", sw);
    }
  }
  try {
    const counter = optChild(data, NS_PSKC, "Counter", where);
    if (counter) {
      const pv = optChild(counter, NS_PSKC, "PlainValue", `${where}/Counter`);
      if (pv) checkLong(pv.text, "Counter", `${where}/Counter`);
      else readInt(data, "Counter", ring, where, true);
    }
    out.t0 = readInt(data, "Time", ring, where);
    out.period = readInt(data, "TimeInterval", ring, where);
    out.timeDrift = readInt(data, "TimeDrift", ring, where);
    return out;
  } catch (e) {
    out.secret?.fill(0);
    throw e;
  }
}

type PackageResult = { token: PskcToken; plaintext: boolean } | { skipped: PskcSkipped };

/**
 * One KeyPackage, in three steps: (1) its structure against the schema
 * (malformed refuses the file); (2) every value read and MAC-checked
 * (a failure refuses the file); (3) whether it is a key fobkit can use:
 * TOTP, a hash, digits and policy it understands. Only (3) may leave the
 * package out, and only with skipUnsupported. Then the TOTP values and
 * the serial are checked, and refuse the file when wrong.
 */
function readKeyPackage(kp: XmlElement, index: number, ring: KeyRing, opts: ReadPskcOptions): PackageResult {
  let where = `KeyPackage[${index + 1}]`;
  const info = optChild(kp, NS_PSKC, "DeviceInfo", where);
  const serialNo = info && optChild(info, NS_PSKC, "SerialNo", where)?.text.trim();
  const key = optChild(kp, NS_PSKC, "Key", where);
  const keyId = key && attr(key, "Id")?.trim();
  if (serialNo) where = `${where} (serial ${show(serialNo)})`;
  else if (keyId) where = `${where} (Key@Id ${show(keyId)})`;
  const notUnderstood: PskcError[] = [];
  checkTree(kp, where, notUnderstood);

  const data = key && optChild(key, NS_PSKC, "Data", where);
  const values = readValues(data, ring, opts, where);
  const keyAlg = key && attr(key, "Algorithm");
  const params = key && optChild(key, NS_PSKC, "AlgorithmParameters", where);
  const policy = key && optChild(key, NS_PSKC, "Policy", where);
  let algorithm: PskcAlgorithm;
  let digits: number;
  let validity: { notBefore?: number; notAfter?: number };
  try {
    // Values the schema types strictly: malformed whatever the key is.
    const rf = params && optChild(params, NS_PSKC, "ResponseFormat", where);
    const encoding = rf && attr(rf, "Encoding");
    if (encoding !== undefined && !VALUE_FORMATS.includes(encoding)) {
      throw new PskcError("malformed", `ResponseFormat@Encoding ${show(encoding)} is not one of ${VALUE_FORMATS.join(", ")}`, where);
    }
    const checkDigitsAttr = rf && attr(rf, "CheckDigits");
    const checkDigits = checkDigitsAttr !== undefined && parseBoolean(checkDigitsAttr, "ResponseFormat@CheckDigits", where);
    const lengthAttr = rf && attr(rf, "Length");
    const length = lengthAttr === undefined ? undefined : parseUnsignedInt(lengthAttr, "ResponseFormat@Length", where);
    validity = checkPolicy(policy, where);
    const deviceStart = info && optChild(info, NS_PSKC, "StartDate", where);
    const deviceExpiry = info && optChild(info, NS_PSKC, "ExpiryDate", where);
    validity.notBefore = bound(validity.notBefore, deviceStart && parseDateTime(deviceStart.text, "DeviceInfo/StartDate", where), Math.max);
    validity.notAfter = bound(validity.notAfter, deviceExpiry && parseDateTime(deviceExpiry.text, "DeviceInfo/ExpiryDate", where), Math.min);
    if (validity.notBefore !== undefined && validity.notAfter !== undefined && validity.notAfter < validity.notBefore) {
      throw new PskcError("malformed", "ExpiryDate is before StartDate: the key could never be used", where);
    }

    // Step 3: is this a key fobkit can use? These alone may skip the package.
    try {
      if (!key) throw new PskcError("unsupported_element", "KeyPackage has no Key: nothing to import", where);
      // Pre-RFC drafts wrote "...:pskc#totp"; the meaning is the same.
      if (!keyAlg || !/^urn:ietf:params:xml:ns:keyprov:pskc[:#]totp$/i.test(keyAlg)) {
        throw new PskcError(
          "unsupported_algorithm",
          keyAlg ? `Key@Algorithm ${show(keyAlg)}; only ${ALG_TOTP} is imported` : `Key has no Algorithm, so it cannot be told to be TOTP (${ALG_TOTP})`,
          where,
        );
      }
      for (const local of ["KeyReference", "KeyProfileId"]) {
        const el = optChild(key, NS_PSKC, local, where);
        if (el) throw new PskcError("unsupported_element", `Key carries <${local}>: key material or parameters held outside the file are not supported`, where);
      }
      if (params && optChild(params, NS_PSKC, "ChallengeFormat", where)) {
        throw new PskcError("unsupported_algorithm", "AlgorithmParameters/ChallengeFormat: challenge-response keys are not supported", where);
      }
      refusePolicy(policy, where);
      if (notUnderstood.length) throw notUnderstood[0];
      algorithm = suiteAlgorithm(params, where);
      if (length === undefined) {
        throw new PskcError("unsupported_algorithm", "Key has no AlgorithmParameters/ResponseFormat@Length: how many digits its codes have is not in the file", where);
      }
      if (length < DIGITS_MIN || length > DIGITS_MAX) {
        throw new PskcError("unsupported_algorithm", `ResponseFormat@Length ${length}; TOTP codes of ${DIGITS_MIN}..${DIGITS_MAX} digits are supported`, where);
      }
      digits = length;
      if ((encoding ?? "DECIMAL") !== "DECIMAL") throw new PskcError("unsupported_algorithm", `ResponseFormat@Encoding ${show(encoding!)}; DECIMAL only`, where);
      if (checkDigits) {
        throw new PskcError("unsupported_algorithm", "ResponseFormat@CheckDigits (a Luhn digit appended to codes) is not supported", where);
      }
    } catch (e) {
      if (!(e instanceof PskcError) || !opts.skipUnsupported) throw e;
      values.secret?.fill(0);
      const skipped: PskcSkipped = { package: index + 1, code: e.code, reason: e.detail };
      if (keyId) skipped.keyId = keyId;
      if (serialNo) skipped.serial = serialNo;
      if (keyAlg) skipped.algorithm = keyAlg;
      return { skipped };
    }

    // A TOTP key fobkit will use: its values must make sense.
    let serial = serialNo ?? "";
    if (opts.serialFrom === "key-id") {
      if (!keyId) throw new PskcError("missing_serial", "Key has no Id to take the serial from", where);
      if (serialNo && serialNo !== keyId) {
        throw new PskcError("malformed", `DeviceInfo/SerialNo ${show(serialNo)} and Key@Id ${show(keyId)} differ; the serial is asked to come from Key@Id`, where);
      }
      serial = keyId;
    }
    if (serial === "") {
      throw new PskcError(
        "missing_serial",
        `KeyPackage has no DeviceInfo/SerialNo, the serial printed on the keyfob${keyId ? `; if this vendor writes it as Key@Id (${show(keyId)} here), take it from there (serialFrom "key-id", bank import --serial-from key-id)` : ""}`,
        where,
      );
    }
    if (!data) throw new PskcError("malformed", "Key has no Data", where);
    const secret = values.secret;
    if (!secret) throw new PskcError("malformed", "Data has no Secret", where);
    if (secret.length < SECRET_MIN_BYTES || secret.length > SECRET_MAX_BYTES) {
      throw new PskcError(
        "malformed",
        `the seed has ${secret.length} bytes; ${SECRET_MIN_BYTES}..${SECRET_MAX_BYTES} are accepted (RFC 4226 §4 R6: at least 128 bits)`,
        `${where}/Secret`,
      );
    }
    const t0 = values.t0 ?? 0;
    if (t0 < 0) throw new PskcError("malformed", `Time ${t0} is before the unix epoch`, where);
    const period = values.period ?? DEFAULT_PERIOD;
    if (period < 1) throw new PskcError("malformed", `TimeInterval ${period} must be positive`, where);

    const manufacturer = info && optChild(info, NS_PSKC, "Manufacturer", where)?.text.trim();
    const model = info && optChild(info, NS_PSKC, "Model", where)?.text.trim();
    const cmi = optChild(kp, NS_PSKC, "CryptoModuleInfo", where);
    const cryptoModuleId = cmi && optChild(cmi, NS_PSKC, "Id", where)?.text.trim();
    const issuer = optChild(key!, NS_PSKC, "Issuer", where)?.text.trim();
    const token: PskcToken = { serial, manufacturer: manufacturer ?? "", keyId: keyId || serial, algorithm, digits, period, t0, secret };
    if (model !== undefined) token.model = model;
    if (cryptoModuleId) token.cryptoModuleId = cryptoModuleId;
    if (issuer !== undefined) token.issuer = issuer;
    if (values.timeDrift !== undefined) token.timeDrift = values.timeDrift;
    // A StartDate before 1970 (valid xs:dateTime) means the key is valid from the registry's epoch anyway.
    if (validity.notBefore !== undefined) token.notBefore = Math.max(0, validity.notBefore);
    if (validity.notAfter !== undefined) token.notAfter = validity.notAfter;
    return { token, plaintext: values.plaintext };
  } catch (e) {
    values.secret?.fill(0);
    throw e;
  }
}

function checkProtection(protection: PskcProtection | undefined): void {
  if (protection === undefined) return;
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
 * `protection` may be undefined only for a file without encrypted values.
 */
export function readPskcReport(xml: string | Buffer, protection: PskcProtection | undefined, opts: ReadPskcOptions = {}): PskcReadResult {
  checkProtection(protection);
  const text = decodeText(xml, opts.maxBytes ?? DEFAULT_MAX_BYTES);
  const root = parseXml(text);
  if (root.local !== "KeyContainer" || root.ns !== NS_PSKC) {
    const draft = root.ns === NS_PSKC_DRAFT ? ` (${NS_PSKC_DRAFT} is a pre-RFC draft's namespace)` : "";
    throw new PskcError(
      "malformed",
      `the root element is {${root.ns}}${root.local}, not {${NS_PSKC}}KeyContainer (a PSKC 1.0 file)${draft}`,
      `line ${root.line}`,
    );
  }
  // The container's own children and attributes: anything not understood here refuses the file.
  const containerFound: PskcError[] = [];
  checkElement(root, MODELS.KeyContainer, "KeyContainer", containerFound);
  const mm = optChild(root, NS_PSKC, "MACMethod", "KeyContainer");
  if (mm) checkTree(mm, "MACMethod", containerFound);
  if (containerFound.length) throw containerFound[0];
  const version = attr(root, "Version");
  if (version !== PSKC_VERSION) {
    throw new PskcError("malformed", `KeyContainer@Version is ${show(version ?? "(none)")}; only ${PSKC_VERSION} is supported`, "KeyContainer");
  }
  const packages = root.children.filter((c) => c.ns === NS_PSKC && c.local === "KeyPackage");
  if (packages.length === 0) throw new PskcError("malformed", "the file has no KeyPackage", "KeyContainer");

  const ring = new KeyRing(root, protection, opts);
  const result: PskcReadResult = { tokens: [], skipped: [], plaintext: false };
  try {
    const serials = new Map<string, number>();
    packages.forEach((kp, i) => {
      const r = readKeyPackage(kp, i, ring, opts);
      if ("skipped" in r) {
        result.skipped.push(r.skipped);
        return;
      }
      const t = r.token;
      result.tokens.push(t);
      result.plaintext ||= r.plaintext;
      const first = serials.get(t.serial);
      if (first !== undefined) {
        throw new PskcError("duplicate_serial", `serial ${show(t.serial)} is also in KeyPackage[${first + 1}]`, `KeyPackage[${i + 1}]`);
      }
      serials.set(t.serial, i);
    });
    if (result.tokens.length === 0) {
      throw new PskcError(
        "unsupported_algorithm",
        `none of the file's ${packages.length} KeyPackage(s) holds a key fobkit can use (first: ${result.skipped[0]?.reason ?? "none"})`,
        "KeyContainer",
      );
    }
    return result;
  } catch (e) {
    for (const t of result.tokens) t.secret.fill(0);
    throw e;
  } finally {
    ring.wipe();
  }
}

/** readPskcReport's tokens alone. */
export function readPskc(xml: string | Buffer, protection: PskcProtection | undefined, opts: ReadPskcOptions = {}): PskcToken[] {
  return readPskcReport(xml, protection, opts).tokens;
}
