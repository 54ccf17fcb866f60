/**
 * Namespace and algorithm URIs of RFC 6030 and the W3C/RSA specifications it
 * builds on. Section numbers are RFC 6030's unless said otherwise.
 */

/** §4: the PSKC 1.0 namespace (drafts used ...:pskc:1.0; that is refused). */
export const NS_PSKC = "urn:ietf:params:xml:ns:keyprov:pskc";
/** The pre-RFC drafts' namespace: named in errors, never read. */
export const NS_PSKC_DRAFT = "urn:ietf:params:xml:ns:keyprov:pskc:1.0";
/** XML Schema instance attributes (xsi:schemaLocation...) may sit on any element (XML Schema Part 1 §3.2.7). */
export const NS_XSI = "http://www.w3.org/2001/XMLSchema-instance";
/** XML Signature: ds:KeyName in EncryptionKey (§6.1), ds:KeyInfoType. */
export const NS_DS = "http://www.w3.org/2000/09/xmldsig#";
/** XML Encryption: EncryptionMethod, CipherData, CipherValue (§6). */
export const NS_XENC = "http://www.w3.org/2001/04/xmlenc#";
/** XML Encryption 1.1: DerivedKey, KeyDerivationMethod (§6.2). */
export const NS_XENC11 = "http://www.w3.org/2009/xmlenc11#";
/** PKCS #5 v2.0 XML: PBKDF2-params, as in §6.2's example. */
export const NS_PKCS5 = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#";
export const NS_XMLNS = "http://www.w3.org/2000/xmlns/";
export const NS_XML = "http://www.w3.org/XML/1998/namespace";

/** §4: the only KeyContainer@Version this library reads and writes. */
export const PSKC_VERSION = "1.0";

/** TOTP as registered in IANA's PSKC Algorithm Profiles registry (created by §12). */
export const ALG_TOTP = "urn:ietf:params:xml:ns:keyprov:pskc:totp";

/** §6.1: AES-CBC with the IV prepended to the ciphertext, PKCS #5 padding. */
export const ENC_AES128_CBC = "http://www.w3.org/2001/04/xmlenc#aes128-cbc";
export const ENC_AES192_CBC = "http://www.w3.org/2001/04/xmlenc#aes192-cbc";
export const ENC_AES256_CBC = "http://www.w3.org/2001/04/xmlenc#aes256-cbc";
/** Cipher URI -> [node cipher name, key bytes]. */
export const CBC_CIPHERS: Record<string, [string, number]> = {
  [ENC_AES128_CBC]: ["aes-128-cbc", 16],
  [ENC_AES192_CBC]: ["aes-192-cbc", 24],
  [ENC_AES256_CBC]: ["aes-256-cbc", 32],
};
export const AES_BLOCK = 16;

/** §6.1.1: the MAC over IV||ciphertext. */
export const MAC_HMAC_SHA1 = "http://www.w3.org/2000/09/xmldsig#hmac-sha1";
/** RFC 6931 §2.2.2: the other HMACs a sender may use for ValueMAC. */
export const MAC_ALGORITHMS: Record<string, string> = {
  [MAC_HMAC_SHA1]: "sha1",
  "http://www.w3.org/2001/04/xmldsig-more#hmac-sha224": "sha224",
  "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256": "sha256",
  "http://www.w3.org/2001/04/xmldsig-more#hmac-sha384": "sha384",
  "http://www.w3.org/2001/04/xmldsig-more#hmac-sha512": "sha512",
};
/** §6.1.1's example uses a 20-byte MAC key: the HMAC-SHA1 output size (RFC 2104 §3). */
export const MAC_KEY_BYTES = 20;

/** §6.2: PBKDF2 as named by PKCS #5 v2.0's XML schema (and XML Encryption 1.1's name for it). */
export const KDF_PBKDF2 = "http://www.rsasecurity.com/rsalabs/pkcs/schemas/pkcs-5v2-0#pbkdf2";
export const KDF_PBKDF2_XENC11 = "http://www.w3.org/2009/xmlenc11#pbkdf2";

/**
 * PBKDF2 defaults for writing. The PRF is HMAC-SHA1 (PKCS #5's default, an
 * empty <PRF/> as in §6.2's example, the one every reader supports), so the
 * count follows OWASP's Password Storage Cheat Sheet for PBKDF2-HMAC-SHA1
 * (1,300,000, 2023). Salt: 16 bytes (NIST SP 800-132 §5.1 asks for >= 128 bits).
 */
export const PBKDF2_DEFAULT_ITERATIONS = 1_300_000;
export const PBKDF2_DEFAULT_SALT_BYTES = 16;
export const PBKDF2_MAX_ITERATIONS = 20_000_000;

/** RFC 4226 §4 R6: a shared secret of at least 128 bits. */
export const SECRET_MIN_BYTES = 16;
/** Larger than any HMAC block (SHA-512: 128 bytes); nothing real is longer. */
export const SECRET_MAX_BYTES = 128;
/** RFC 4226 §5.3: at least 6 digits; 10 digits exhaust the 31-bit truncation. */
export const DIGITS_MIN = 6;
export const DIGITS_MAX = 10;
/** RFC 6238 §4.1: X = 30 seconds is the default step when a file omits it. */
export const DEFAULT_PERIOD = 30;

export const DEFAULT_MAX_BYTES = 64 * 1024 * 1024;

/**
 * What the XML parser takes before it refuses a file as unsafe_xml. A PSKC
 * file is about 20 elements and 1.2 KB per key, nests 8 deep (Figure 7's
 * PBKDF2 salt), has at most 5 attributes on one element (KeyContainer with
 * its namespaces) and no text longer than a base64 CipherValue or an X.509
 * certificate in a Signature. The limits are far above that and far below
 * what would cost a server its memory: 1,200,000 elements are more than a
 * 64 MiB file of our writer's holds (~57,000 keys), and parse in seconds.
 */
export interface XmlLimits {
  maxDepth: number;
  /** Elements in the file, and also attributes in the file. */
  maxElements: number;
  /** Attributes (namespace declarations included) on one element. */
  maxAttributes: number;
  /** Characters of text directly inside one element. */
  maxText: number;
  /** Characters of one attribute value, as written (a PSKC attribute is an Id, an algorithm URI, a number). */
  maxAttrValue: number;
  /** Character and entity references (&amp;, &#10;...) in the whole file: base64 and PSKC's values need none. */
  maxReferences: number;
}
export const XML_LIMITS: XmlLimits = { maxDepth: 64, maxElements: 1_200_000, maxAttributes: 64, maxText: 1024 * 1024, maxAttrValue: 64 * 1024, maxReferences: 200_000 };

/**
 * AlgorithmParameters/Suite text for the TOTP hash. RFC 6030 §4.3.4 gives
 * Suite as the place that "could designate the hash algorithm used (SHA1 or
 * SHA256)" without fixing values; "HMAC-SHA256" is what python-pskc, multiOTP
 * and vendor files use.
 */
export const SUITE_FOR: Record<string, string> = {
  SHA1: "HMAC-SHA1",
  SHA256: "HMAC-SHA256",
  SHA512: "HMAC-SHA512",
};
