/**
 * RFC 6030 §7: the whole KeyContainer signed with XML Signature (XMLDSig
 * 1.0, https://www.w3.org/TR/xmldsig-core/). The ValueMAC of §6.1.1 covers
 * only each ciphertext, so Secret blocks could be swapped or copied between
 * KeyPackages and the file still imported; a signature over the container
 * binds every seed to its serial, and names who made the file.
 *
 * Library: xml-crypto (node-saml), the maintained XMLDSig implementation for
 * Node. Its history has signature-wrapping and key-confusion advisories, all
 * fixed in the 6.x line this project pins (^6.3.2): CVE-2024-32962 (6.0.0:
 * the public key in KeyInfo was trusted by default), CVE-2025-29774 and
 * CVE-2025-29775 (6.0.1: multiple SignedInfo references, a comment in
 * DigestValue). It is configured strictly here all the same: the key comes
 * only from the bank's trusted certificates, never from KeyInfo; RSA with
 * SHA-256/512 only (no SHA-1, no HMAC); exclusive or inclusive C14N without
 * comments; and the document's shape is checked before it, against wrapping:
 *
 *   - the root element is pskc:KeyContainer, with no DOCTYPE;
 *   - exactly one ds:Signature in the whole document, a child of the root;
 *   - exactly one SignedInfo with exactly one Reference, whose URI is
 *     "#" + the root's Id (that Id held by no other element), with the
 *     enveloped-signature transform;
 *   - after verification, what was signed is the root: the importer reads
 *     the signed, canonical bytes that xml-crypto returns (the container
 *     without its Signature), not the file, so nothing unsigned can be read.
 *
 * The element: RFC 6030's schema (§11) declares the container's signature as
 * pskc:Signature of type ds:SignatureType, but python-pskc writes
 * ds:Signature, and xmlsec1 and xml-crypto verify only a ds:Signature. fobkit
 * writes ds:Signature, so that those tools verify its files, and reads
 * either: a pskc:Signature is handed to xml-crypto renamed (the element's own
 * name is not signed: the enveloped-signature transform removes it).
 *
 * Writing: signPskc() appends the Signature as the KeyContainer's last child
 * (the schema puts it after KeyPackage and Extensions), with Reference
 * URI="#<the KeyContainer's Id>" as RFC 6030 §7's example does, exclusive
 * C14N, RSA-SHA256 and SHA-256 digests, and the signer's certificate in
 * KeyInfo/X509Data for the reader's information. (URI="" means the same
 * element but is refused: xml-crypto resolves it with an XPath over every
 * element, quadratic, some 300 s for 80,000 elements of a hostile file.)
 *
 * Cost: xml-crypto and xmldom are pure JavaScript and slow on big files
 * (see the README's figures); so that a hostile file cannot hold the import
 * for hours before its signature is even looked at, a linear scan first
 * refuses a file past MAX_SIGNED_BYTES, MAX_SIGNED_ELEMENTS elements,
 * MAX_SIGNED_ATTRIBUTES attributes in all, MAX_ATTRIBUTES on one element, or
 * MAX_DEPTH levels; and the SignatureValue is verified over the canonical
 * SignedInfo with each trusted key before xml-crypto digests anything, so a
 * file no trusted key signed costs one small canonicalisation and one RSA
 * verification per certificate.
 */
import { createPrivateKey, createPublicKey, createVerify, X509Certificate, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { DOMParser, XMLSerializer } from "@xmldom/xmldom";
import { XMLValidator } from "fast-xml-parser";
import { C14nCanonicalization, ExclusiveCanonicalization, SignedXml } from "xml-crypto";
import { NS_DS, NS_PSKC } from "./constants.js";

const ALG_RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256";
const ALG_RSA_SHA512 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512";
const DIGEST_SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256";
const DIGEST_SHA512 = "http://www.w3.org/2001/04/xmlenc#sha512";
const C14N_EXC = "http://www.w3.org/2001/10/xml-exc-c14n#";
const C14N_INCL = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const SIGNATURE_ALGORITHMS = [ALG_RSA_SHA256, ALG_RSA_SHA512];
const DIGEST_ALGORITHMS = [DIGEST_SHA256, DIGEST_SHA512];
const CANONICALIZATIONS = [C14N_EXC, C14N_INCL];
/** NIST SP 800-131A: RSA below 2048 bits is disallowed for signatures. */
const MIN_RSA_BITS = 2048;
/** A fobkit KeyPackage is 22 elements: this is about 20,000 keyfobs, a few minutes of verification. */
export const MAX_SIGNED_ELEMENTS = 500_000;
/** PSKC elements carry at most a handful of attributes (the root: its namespaces, Version, Id). */
export const MAX_ATTRIBUTES = 32;
/** RFC 6030's deepest path (KeyContainer/KeyPackage/Key/Data/Secret/EncryptedValue/CipherData/CipherValue) plus the Signature's. */
export const MAX_DEPTH = 32;
/** A fobkit KeyPackage carries about 6 attributes: 20,000 keyfobs with room to spare. Bounds xml-crypto's DOM and XPath work. */
export const MAX_SIGNED_ATTRIBUTES = 250_000;
/** A fobkit KeyPackage is about 1.5 KB: 20,000 keyfobs fit with room to spare. */
export const MAX_SIGNED_BYTES = 48 * 1024 * 1024;

export type SignatureErrorCode = "unsigned" | "signed_untrusted" | "bad_signature" | "signature_shape" | "bad_key";

/** A file refused on its signature, or a signing key or certificate refused; the message names what was wrong. */
export class SignatureError extends Error {
  constructor(readonly code: SignatureErrorCode, message: string) {
    super(message);
    this.name = "SignatureError";
  }
}

/** The factory's signing identity: an RSA private key and the certificate for it (PEM). */
export interface PskcSigner {
  key: KeyObject;
  /** PEM certificate, put into KeyInfo. */
  cert: string;
}

/** A certificate the bank trusts to sign PSKC files. */
export interface TrustedCert {
  /** Where it came from, for messages (a file name). */
  name: string;
  pem: string;
  x509: X509Certificate;
}

export interface VerifiedPskc {
  /** The signed KeyContainer, canonical, without its Signature: what the reader is to read. */
  xml: Buffer;
  /** Which trusted certificate verified it. */
  signer: { name: string; subject: string; fingerprint256: string };
}

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new SignatureError("bad_key", `cannot read ${what} ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

function certificate(pem: string, name: string): X509Certificate {
  if (!/-----BEGIN CERTIFICATE-----/.test(pem)) throw new SignatureError("bad_key", `${name} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  try {
    return new X509Certificate(pem);
  } catch (e) {
    throw new SignatureError("bad_key", `${name} is not a readable X.509 certificate: ${(e as Error).message}`);
  }
}

function checkRsa(key: KeyObject, name: string): void {
  if (key.asymmetricKeyType !== "rsa") throw new SignatureError("bad_key", `${name}: an RSA key is needed (RSA-SHA256 signatures), got ${key.asymmetricKeyType}`);
  const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
  if (bits < MIN_RSA_BITS) throw new SignatureError("bad_key", `${name}: RSA key of ${bits} bits; at least ${MIN_RSA_BITS} are needed`);
}

function checkValidity(x509: X509Certificate, name: string, now: Date): void {
  if (now < new Date(x509.validFrom)) throw new SignatureError("bad_key", `${name} is not valid before ${x509.validFrom}`);
  if (now > new Date(x509.validTo)) throw new SignatureError("bad_key", `${name} expired on ${x509.validTo}`);
}

/** Load `fobkit export --sign-key K --sign-cert C`: an unencrypted RSA key (PEM) and its certificate; a mismatch is refused. */
export function loadSigner(keyFile: string, certFile: string, now = new Date()): PskcSigner {
  const certPem = readPem(certFile, "--sign-cert");
  const x509 = certificate(certPem, `--sign-cert ${certFile}`);
  let key: KeyObject;
  try {
    key = createPrivateKey(readPem(keyFile, "--sign-key"));
  } catch (e) {
    if (e instanceof SignatureError) throw e;
    throw new SignatureError("bad_key", `--sign-key ${keyFile} is not a readable unencrypted PEM private key: ${(e as Error).message}`);
  }
  checkRsa(key, `--sign-key ${keyFile}`);
  checkValidity(x509, `--sign-cert ${certFile}`, now);
  const spki = (k: KeyObject) => k.export({ type: "spki", format: "der" });
  if (!spki(createPublicKey(key)).equals(spki(x509.publicKey))) {
    throw new SignatureError("bad_key", `--sign-key ${keyFile} is not the key of --sign-cert ${certFile} (their public keys differ)`);
  }
  return { key, cert: certPem };
}

/** Load the bank's trusted signing certificates (`bank import --trust-cert C`, repeatable). */
export function loadTrustedCerts(files: string[], now = new Date()): TrustedCert[] {
  return files.map((file) => {
    const pem = readPem(file, "--trust-cert");
    const x509 = certificate(pem, `--trust-cert ${file}`);
    checkRsa(x509.publicKey, `--trust-cert ${file}`);
    checkValidity(x509, `--trust-cert ${file}`, now);
    return { name: file, pem, x509 };
  });
}

/** Sign a PSKC document (the writer's output, whose KeyContainer has an Id): the Signature becomes the KeyContainer's last child. */
export function signPskc(xml: string, signer: PskcSigner): string {
  if (!/^(<\?xml[^>]*\?>\s*)?<pskc:KeyContainer\b[^>]*\sId="[^"]+"/.test(xml)) throw new RangeError("a signed PSKC file needs an Id on its KeyContainer (writePskc's opts.id)");
  const sig = new SignedXml({
    // The KeyObject itself: the key is never exported to a string.
    privateKey: signer.key,
    publicCert: signer.cert,
    signatureAlgorithm: ALG_RSA_SHA256,
    canonicalizationAlgorithm: C14N_EXC,
  });
  // xpath "/*" is the root; xml-crypto takes its existing Id for the Reference URI.
  sig.addReference({ xpath: "/*", transforms: [ENVELOPED, C14N_EXC], digestAlgorithm: DIGEST_SHA256 });
  sig.computeSignature(xml, { prefix: "ds", location: { reference: "/*", action: "append" } });
  const out = sig.getSignedXml();
  // xml-crypto drops the XML declaration; the file keeps it (UTF-8 is the only encoding written).
  return out.startsWith("<?xml") ? out : `<?xml version="1.0" encoding="UTF-8"?>\n${out}`;
}

/** Elements by namespace and local name, document order. */
function elements(root: Element | Document, ns: string, local: string): Element[] {
  return Array.from(root.getElementsByTagNameNS(ns, local) as unknown as ArrayLike<Element>);
}

function childElements(el: Element, ns?: string, local?: string): Element[] {
  const out: Element[] = [];
  for (let n = el.firstChild; n; n = n.nextSibling) {
    if (n.nodeType !== 1) continue;
    const e = n as Element;
    if (ns !== undefined && (e.namespaceURI !== ns || e.localName !== local)) continue;
    out.push(e);
  }
  return out;
}

function shape(message: string): SignatureError {
  return new SignatureError("signature_shape", `refused (signature wrapping guard): ${message}`);
}

/**
 * One linear pass over the text, before any DOM is built: elements, attributes
 * per element and depth within bounds. Comments, CDATA and processing
 * instructions are skipped whole; quotes inside a tag are honoured.
 */
function checkSize(xml: string): void {
  if (xml.length > MAX_SIGNED_BYTES) throw shape(`a signed file of more than ${MAX_SIGNED_BYTES} bytes (about 20,000 keyfobs); split the batch into smaller signed files`);
  let elements = 0;
  let total = 0;
  let depth = 0;
  let i = 0;
  const skipTo = (end: string, from: number): number => {
    const j = xml.indexOf(end, from);
    if (j < 0) throw shape("the XML is not well-formed: a comment, CDATA section or instruction is not closed");
    return j + end.length;
  };
  for (;;) {
    i = xml.indexOf("<", i);
    if (i < 0) break;
    if (xml.startsWith("<!--", i)) i = skipTo("-->", i + 4);
    else if (xml.startsWith("<![CDATA[", i)) i = skipTo("]]>", i + 9);
    else if (xml.startsWith("<?", i) || xml.startsWith("<!", i)) i = skipTo(">", i + 2);
    else if (xml.startsWith("</", i)) {
      depth--;
      i = skipTo(">", i + 2);
    } else {
      if (++elements > MAX_SIGNED_ELEMENTS) throw shape(`more than ${MAX_SIGNED_ELEMENTS} elements (about 20,000 keyfobs); split the batch into smaller signed files`);
      let attributes = 0;
      let quote = "";
      let j = i + 1;
      for (; j < xml.length; j++) {
        const c = xml[j];
        if (quote) {
          if (c === quote) quote = "";
        } else if (c === '"' || c === "'") quote = c;
        else if (c === "=") {
          if (++attributes > MAX_ATTRIBUTES) throw shape(`an element with more than ${MAX_ATTRIBUTES} attributes`);
          if (++total > MAX_SIGNED_ATTRIBUTES) throw shape(`more than ${MAX_SIGNED_ATTRIBUTES} attributes in the file (about 20,000 keyfobs); split the batch into smaller signed files`);
        } else if (c === ">") break;
      }
      if (j >= xml.length) throw shape("the XML is not well-formed: a tag is not closed");
      if (xml[j - 1] !== "/" && ++depth > MAX_DEPTH) throw shape(`elements nested more than ${MAX_DEPTH} deep`);
      i = j + 1;
    }
  }
}

/**
 * The SignedInfo canonicalised as XMLDSig (and xml-crypto's checkSignature) does: with the namespaces in scope
 * from its ancestors, by the declared algorithm, through xml-crypto's own canonicalization classes.
 */
function canonicalSignedInfo(signedInfo: Element, algorithm: string): string {
  const ancestorNamespaces: { prefix: string; namespaceURI: string }[] = [];
  // Prefixes the SignedInfo declares itself are its own (xml-crypto's findAncestorNsForElement drops them too).
  const seen = new Set<string>();
  for (const a of Array.from(signedInfo.attributes as unknown as ArrayLike<Attr>)) {
    if (a.prefix === "xmlns") seen.add(a.localName);
    else if (a.name === "xmlns") seen.add("");
  }
  for (let p = signedInfo.parentNode; p && p.nodeType === 1; p = p.parentNode) {
    for (const a of Array.from((p as unknown as Element).attributes as unknown as ArrayLike<Attr>)) {
      if (a.prefix !== "xmlns" && a.name !== "xmlns") continue;
      const prefix = a.prefix === "xmlns" ? a.localName : "";
      if (seen.has(prefix)) continue;
      seen.add(prefix);
      // An undeclaration (xmlns="") only shadows outer bindings.
      if (a.value !== "") ancestorNamespaces.push({ prefix, namespaceURI: a.value });
    }
  }
  const c14n = algorithm === C14N_INCL ? new C14nCanonicalization() : new ExclusiveCanonicalization();
  return c14n.process(signedInfo as never, { ancestorNamespaces }) as unknown as string;
}

/** A cheap look for an XML Signature element, for files read without trusted certificates. */
export function looksSigned(xml: Buffer | string): boolean {
  const text = typeof xml === "string" ? xml : xml.toString("utf8");
  return /<([A-Za-z_][\w.-]*:)?Signature[\s/>]/.test(text) && text.includes(NS_DS);
}

/**
 * Check the raw file's signature against the trusted certificates, before
 * anything else reads it. Returns the signed container (canonical, without
 * its Signature) for the reader; throws SignatureError for an unsigned file,
 * a signature no trusted certificate verifies, an altered file, or a
 * document shaped to wrap a signature.
 */
export function verifyPskcSignature(raw: Buffer | string, trusted: TrustedCert[]): VerifiedPskc {
  if (trusted.length === 0) throw new SignatureError("bad_key", "no trusted certificate given");
  const xml = typeof raw === "string" ? raw : raw.toString("utf8");
  if (typeof raw !== "string" && Buffer.compare(Buffer.from(xml, "utf8"), raw) !== 0) throw shape("the file is not UTF-8");
  // DTDs can define entities and ID attributes that move what a reference points at: none in a PSKC file.
  if (/<!DOCTYPE/i.test(xml)) throw shape("a DOCTYPE is not allowed");
  checkSize(xml);
  // xmldom repairs some malformed XML silently (an end tag that closes nothing is dropped): check well-formedness strictly first.
  const wellFormed = XMLValidator.validate(xml);
  if (wellFormed !== true) throw shape(`the XML is not well-formed: ${wellFormed.err.msg} (line ${wellFormed.err.line})`);
  const problems: string[] = [];
  const note = (m: string) => problems.push(m);
  const doc = new DOMParser({ errorHandler: { warning: note, error: note, fatalError: note } }).parseFromString(xml, "text/xml");
  // xmldom recovers from malformed XML; a document it had to repair could be read differently by the importer's parser.
  if (problems.length > 0 || !doc.documentElement) throw shape(`the XML is not well-formed: ${problems[0] ?? "no root element"}`);
  const root = doc.documentElement;
  if (root.namespaceURI !== NS_PSKC || root.localName !== "KeyContainer") {
    throw shape(`the root element is {${root.namespaceURI ?? ""}}${root.localName}, not pskc:KeyContainer`);
  }
  // Either name counts: two signatures of different names are still two.
  const signatures = [...elements(doc, NS_PSKC, "Signature"), ...elements(doc, NS_DS, "Signature")];
  if (signatures.length === 0) throw new SignatureError("unsigned", "the file is not signed (no Signature in the KeyContainer); a trusted certificate was given, so only a signed file is accepted");
  if (signatures.length > 1) throw shape(`${signatures.length} Signature elements; exactly one is allowed`);
  let signature = signatures[0];
  if (signature.parentNode !== root) throw shape("the Signature is not a child of the root KeyContainer");
  const signedInfos = childElements(signature, NS_DS, "SignedInfo");
  if (signedInfos.length !== 1) throw shape(`${signedInfos.length} SignedInfo elements; exactly one is allowed`);
  const c14n = childElements(signedInfos[0], NS_DS, "CanonicalizationMethod")[0]?.getAttribute("Algorithm");
  if (!c14n || !CANONICALIZATIONS.includes(c14n)) throw new SignatureError("bad_signature", `canonicalization ${c14n ?? "(none)"} is not accepted (exclusive or inclusive C14N without comments)`);
  const method = childElements(signedInfos[0], NS_DS, "SignatureMethod")[0]?.getAttribute("Algorithm");
  if (!method || !SIGNATURE_ALGORITHMS.includes(method)) {
    throw new SignatureError("bad_signature", `signature method ${method ?? "(none)"} is not accepted (RSA-SHA256 or RSA-SHA512; SHA-1 and HMAC are refused)`);
  }
  const references = childElements(signedInfos[0], NS_DS, "Reference");
  if (references.length !== 1) throw shape(`${references.length} References in SignedInfo; exactly one, to the KeyContainer, is allowed`);
  const ref = references[0];
  const uri = ref.getAttribute("URI");
  const rootId = root.getAttribute("Id");
  if (uri === null) throw shape("the Reference has no URI");
  // URI="" makes xml-crypto select the root with an XPath over every element, quadratic in the file's size: refused (fobkit always references the root's Id).
  if (uri === "") throw shape(`the Reference URI is "" (the whole document); only "#" + the KeyContainer's Id is accepted${rootId ? ` (#${rootId})` : ""}`);
  if (!rootId || uri !== `#${rootId}`) throw shape(`the Reference points at '${uri}', not at the root KeyContainer${rootId ? ` (#${rootId})` : ""}`);
  const sameId = Array.from(doc.getElementsByTagName("*") as unknown as ArrayLike<Element>).filter((e) =>
    ["Id", "ID", "id"].some((a) => e.getAttribute(a) === rootId));
  if (sameId.length !== 1) throw shape(`${sameId.length} elements carry the Id '${rootId}'`);
  const transforms = childElements(ref, NS_DS, "Transforms").flatMap((t) => childElements(t, NS_DS, "Transform")).map((t) => t.getAttribute("Algorithm") ?? "");
  if (transforms[0] !== ENVELOPED || transforms.length > 2 || (transforms.length === 2 && !CANONICALIZATIONS.includes(transforms[1]))) {
    throw shape(`transforms [${transforms.join(", ")}]: the enveloped-signature transform, then at most one C14N without comments, are accepted`);
  }
  const digest = childElements(ref, NS_DS, "DigestMethod")[0]?.getAttribute("Algorithm");
  if (!digest || !DIGEST_ALGORITHMS.includes(digest)) throw new SignatureError("bad_signature", `digest ${digest ?? "(none)"} is not accepted (SHA-256 or SHA-512)`);

  // xml-crypto looks for ds:Signature only: the schema's pskc:Signature is renamed for it (its name is not signed).
  let toVerify = xml;
  if (signature.namespaceURI === NS_PSKC) {
    const renamed = doc.createElementNS(NS_DS, "ds:Signature");
    while (signature.firstChild) renamed.appendChild(signature.firstChild);
    for (const a of Array.from(signature.attributes as unknown as ArrayLike<Attr>)) renamed.setAttributeNS(a.namespaceURI, a.name, a.value);
    root.replaceChild(renamed, signature);
    signature = renamed;
    toVerify = new XMLSerializer().serializeToString(doc);
  }
  // XMLDSig core validation order reversed on purpose: xml-crypto digests the referenced (whole) document before it
  // checks SignatureValue, so a file no trusted key signed would cost a full canonicalisation per certificate. The
  // SignatureValue is checked first over the canonical SignedInfo alone (small), and only a certificate whose key
  // signed this SignedInfo goes on to xml-crypto's full check (which verifies it again, and the digest).
  const signedInfoCanon = canonicalSignedInfo(signedInfos[0], c14n);
  const signatureValue = (childElements(signature, NS_DS, "SignatureValue")[0]?.textContent ?? "").replace(/\s+/g, "");
  const hash = method === ALG_RSA_SHA512 ? "RSA-SHA512" : "RSA-SHA256";
  const signers = trusted.filter((cert) => {
    try {
      return createVerify(hash).update(signedInfoCanon).verify(cert.x509.publicKey, signatureValue, "base64");
    } catch {
      return false;
    }
  });
  if (signers.length === 0) {
    throw new SignatureError("signed_untrusted", `no trusted certificate verifies the signature (tried ${trusted.map((t) => t.name).join(", ")})`);
  }
  const failures: string[] = [];
  for (const cert of signers) {
    const sig = new SignedXml({ publicCert: cert.pem, getCertFromKeyInfo: () => null });
    // Only what this file may use: no SHA-1, no HMAC (key confusion), whatever the library's defaults.
    sig.SignatureAlgorithms = Object.fromEntries(Object.entries(sig.SignatureAlgorithms).filter(([k]) => SIGNATURE_ALGORITHMS.includes(k))) as typeof sig.SignatureAlgorithms;
    sig.HashAlgorithms = Object.fromEntries(Object.entries(sig.HashAlgorithms).filter(([k]) => DIGEST_ALGORITHMS.includes(k))) as typeof sig.HashAlgorithms;
    sig.loadSignature(signature);
    let ok = false;
    try {
      ok = sig.checkSignature(toVerify);
    } catch (e) {
      failures.push(`${cert.name}: ${(e as Error).message}`);
      continue;
    }
    const signed = sig.getSignedReferences();
    if (!ok || signed.length !== 1) {
      failures.push(`${cert.name}: the reference does not verify (the file was altered after signing)`);
      continue;
    }
    return {
      xml: Buffer.from(signed[0], "utf8"),
      signer: { name: cert.name, subject: cert.x509.subject.replace(/\n/g, ", "), fingerprint256: cert.x509.fingerprint256 },
    };
  }
  // Altered content fails the reference digest under any certificate; a different signer fails only the signature value.
  const altered = failures.some((f) => /digest|reference does not verify/.test(f));
  throw new SignatureError(
    altered ? "bad_signature" : "signed_untrusted",
    altered
      ? "the file was altered after it was signed (a reference digest does not match)"
      : `no trusted certificate verifies the signature (tried ${trusted.map((t) => t.name).join(", ")})`,
  );
}
