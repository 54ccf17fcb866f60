/**
 * Published test vectors, in one place, each with its source.
 *
 * - RFC 4226 Appendix D: HOTP, SHA-1, secret "12345678901234567890", 6 digits,
 *   with the intermediate HMAC-SHA-1 values of the same appendix.
 * - RFC 6238 Appendix B: TOTP, T0 = 0, X = 30 s, 8 digits. Seeds as in the
 *   RFC's errata 2866: SHA-1 20 bytes, SHA-256 32 bytes, SHA-512 64 bytes of
 *   the repeated "1234567890". Includes the T values (hex) of the table.
 * - FIELD-NOTES.md: 60 s / 8-digit rows computed with OATH Toolkit's oathtool
 *   (the keyfob's parameters).
 * - FIPS 180-4 examples (NIST CSRC "Examples with Intermediate Values",
 *   also RFC 6234 §8.5): "abc", the empty string, the 448-bit and 896-bit
 *   messages.
 * - RFC 2202 §3 (HMAC-SHA-1) and RFC 4231 §4.2-4.8 (HMAC-SHA-256/-512).
 *
 * Strings here are ASCII; bytes are lower-case hex.
 */

export const RFC4226_SECRET = "12345678901234567890";

/** RFC 4226 Appendix D: counter, HMAC-SHA-1(secret, counter), 6-digit HOTP. */
export const RFC4226_HOTP: { counter: number; hmac: string; code: string }[] = [
  { counter: 0, hmac: "cc93cf18508d94934c64b65d8ba7667fb7cde4b0", code: "755224" },
  { counter: 1, hmac: "75a48a19d4cbe100644e8ac1397eea747a2d33ab", code: "287082" },
  { counter: 2, hmac: "0bacb7fa082fef30782211938bc1c5e70416ff44", code: "359152" },
  { counter: 3, hmac: "66c28227d03a2d5529262ff016a1e6ef76557ece", code: "969429" },
  { counter: 4, hmac: "a904c900a64b35909874b33e61c5938a8e15ed1c", code: "338314" },
  { counter: 5, hmac: "a37e783d7b7233c083d4f62926c7a25f238d0316", code: "254676" },
  { counter: 6, hmac: "bc9cd28561042c83f219324d3c607256c03272ae", code: "287922" },
  { counter: 7, hmac: "a4fb960c0bc06e1eabb804e5b397cdc4b45596fa", code: "162583" },
  { counter: 8, hmac: "1b3c89f65e6c9e883012052823443f048b4332db", code: "399871" },
  { counter: 9, hmac: "1637409809a679dc698207310c8c7fc07290d9e5", code: "520489" },
];

export type VectorAlg = "sha1" | "sha256" | "sha512";

/** RFC 6238 Appendix B seeds (errata 2866). */
export const RFC6238_SEEDS: Record<VectorAlg, string> = {
  sha1: "12345678901234567890",
  sha256: "12345678901234567890123456789012",
  sha512: "1234567890123456789012345678901234567890123456789012345678901234",
};

export interface TotpVector {
  time: number;
  alg: VectorAlg;
  period: number;
  code: string;
  /** Value of T as printed in the RFC's table (hex), where it gives one. */
  stepHex?: string;
}

/** RFC 6238 Appendix B, every row (X = 30, 8 digits). */
export const RFC6238_TOTP: TotpVector[] = [
  { time: 59, stepHex: "0000000000000001", alg: "sha1", period: 30, code: "94287082" },
  { time: 59, stepHex: "0000000000000001", alg: "sha256", period: 30, code: "46119246" },
  { time: 59, stepHex: "0000000000000001", alg: "sha512", period: 30, code: "90693936" },
  { time: 1111111109, stepHex: "00000000023523EC", alg: "sha1", period: 30, code: "07081804" },
  { time: 1111111109, stepHex: "00000000023523EC", alg: "sha256", period: 30, code: "68084774" },
  { time: 1111111109, stepHex: "00000000023523EC", alg: "sha512", period: 30, code: "25091201" },
  { time: 1111111111, stepHex: "00000000023523ED", alg: "sha1", period: 30, code: "14050471" },
  { time: 1111111111, stepHex: "00000000023523ED", alg: "sha256", period: 30, code: "67062674" },
  { time: 1111111111, stepHex: "00000000023523ED", alg: "sha512", period: 30, code: "99943326" },
  { time: 1234567890, stepHex: "000000000273EF07", alg: "sha1", period: 30, code: "89005924" },
  { time: 1234567890, stepHex: "000000000273EF07", alg: "sha256", period: 30, code: "91819424" },
  { time: 1234567890, stepHex: "000000000273EF07", alg: "sha512", period: 30, code: "93441116" },
  { time: 2000000000, stepHex: "0000000003F940AA", alg: "sha1", period: 30, code: "69279037" },
  { time: 2000000000, stepHex: "0000000003F940AA", alg: "sha256", period: 30, code: "90698825" },
  { time: 2000000000, stepHex: "0000000003F940AA", alg: "sha512", period: 30, code: "38618901" },
  { time: 20000000000, stepHex: "0000000027BC86AA", alg: "sha1", period: 30, code: "65353130" },
  { time: 20000000000, stepHex: "0000000027BC86AA", alg: "sha256", period: 30, code: "77737706" },
  { time: 20000000000, stepHex: "0000000027BC86AA", alg: "sha512", period: 30, code: "47863826" },
];

/** FIELD-NOTES.md "Reference codes, 60-second step, 8 digits" (oathtool). */
export const FIELD_NOTES_TOTP_60: TotpVector[] = [
  [59, "84755224", "18920136", "53550594"],
  [1111111109, "19360094", "40857319", "37023009"],
  [1234567890, "55713351", "16450756", "85275929"],
  [2000000000, "76864010", "34471171", "97791279"],
  [2147483647, "38320531", "95364896", "78577259"],
  [2147483648, "38320531", "95364896", "78577259"],
  [4102444800, "66449344", "21262869", "28089073"],
  [20000000000, "52948864", "03964845", "01384259"],
].flatMap(([time, sha1, sha256, sha512]) => [
  { time: time as number, alg: "sha1" as const, period: 60, code: sha1 as string },
  { time: time as number, alg: "sha256" as const, period: 60, code: sha256 as string },
  { time: time as number, alg: "sha512" as const, period: 60, code: sha512 as string },
]);

export interface DigestVector {
  name: string;
  message: string;
  sha1: string;
  sha256: string;
  sha512: string;
}

/** FIPS 180-4 example messages. */
export const FIPS180_DIGESTS: DigestVector[] = [
  {
    name: "abc (one block)",
    message: "abc",
    sha1: "a9993e364706816aba3e25717850c26c9cd0d89d",
    sha256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    sha512:
      "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
  },
  {
    name: "empty string",
    message: "",
    sha1: "da39a3ee5e6b4b0d3255bfef95601890afd80709",
    sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    sha512:
      "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
  },
  {
    name: "448-bit message (two blocks)",
    message: "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
    sha1: "84983e441c3bd26ebaae4aa1f95129e5e54670f1",
    sha256: "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1",
    sha512:
      "204a8fc6dda82f0a0ced7beb8e08a41657c16ef468b228a8279be331a703c33596fd15c13b1b07f9aa1d3bea57789ca031ad85c7a71dd70354ec631238ca3445",
  },
  {
    name: "896-bit message",
    message:
      "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
    sha1: "a49b2446a02c645bf419f995b67091253a04a259",
    sha256: "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1",
    sha512:
      "8e959b75dae313da8cf4f72814fc143f8f7779c6eb9f7fa17299aeadb6889018501d289e4900f7e4331b99dec4b5433ac7d329eeb6dd26545e96e55b874be909",
  },
];

export interface HmacVector {
  source: string;
  /** Key and data as hex. */
  key: string;
  data: string;
  alg: VectorAlg;
  /** Expected MAC as hex; RFC 4231 test 5 gives only the first 128 bits. */
  mac: string;
}

const hex = (s: string) => Buffer.from(s, "latin1").toString("hex");
const rep = (byte: string, n: number) => byte.repeat(n);
const KEY_0102 = "0102030405060708090a0b0c0d0e0f10111213141516171819";

/** RFC 2202 §3, HMAC-SHA-1 test cases 1-7. */
export const RFC2202_HMAC_SHA1: HmacVector[] = [
  { source: "RFC 2202 test 1", key: rep("0b", 20), data: hex("Hi There"), alg: "sha1", mac: "b617318655057264e28bc0b6fb378c8ef146be00" },
  { source: "RFC 2202 test 2", key: hex("Jefe"), data: hex("what do ya want for nothing?"), alg: "sha1", mac: "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79" },
  { source: "RFC 2202 test 3", key: rep("aa", 20), data: rep("dd", 50), alg: "sha1", mac: "125d7342b9ac11cd91a39af48aa17b4f63f175d3" },
  { source: "RFC 2202 test 4", key: KEY_0102, data: rep("cd", 50), alg: "sha1", mac: "4c9007f4026250c6bc8414f9bf50c86c2d7235da" },
  { source: "RFC 2202 test 5", key: rep("0c", 20), data: hex("Test With Truncation"), alg: "sha1", mac: "4c1a03424b55e07fe7f27be1d58bb9324a9a5a04" },
  {
    source: "RFC 2202 test 6",
    key: rep("aa", 80),
    data: hex("Test Using Larger Than Block-Size Key - Hash Key First"),
    alg: "sha1",
    mac: "aa4ae5e15272d00e95705637ce8a3b55ed402112",
  },
  {
    source: "RFC 2202 test 7",
    key: rep("aa", 80),
    data: hex("Test Using Larger Than Block-Size Key and Larger Than One Block-Size Data"),
    alg: "sha1",
    mac: "e8e99d0f45237d786d6bbaa7965c7808bbff1a91",
  },
];

const RFC4231_CASES: { test: number; key: string; data: string; sha256: string; sha512: string }[] = [
  {
    test: 1,
    key: rep("0b", 20),
    data: hex("Hi There"),
    sha256: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    sha512: "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cdedaa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854",
  },
  {
    test: 2,
    key: hex("Jefe"),
    data: hex("what do ya want for nothing?"),
    sha256: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    sha512: "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737",
  },
  {
    test: 3,
    key: rep("aa", 20),
    data: rep("dd", 50),
    sha256: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    sha512: "fa73b0089d56a284efb0f0756c890be9b1b5dbdd8ee81a3655f83e33b2279d39bf3e848279a722c806b485a47e67c807b946a337bee8942674278859e13292fb",
  },
  {
    test: 4,
    key: KEY_0102,
    data: rep("cd", 50),
    sha256: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    sha512: "b0ba465637458c6990e5a8c5f61d4af7e576d97ff94b872de76f8050361ee3dba91ca5c11aa25eb4d679275cc5788063a5f19741120c4f2de2adebeb10a298dd",
  },
  {
    test: 5,
    key: rep("0c", 20),
    data: hex("Test With Truncation"),
    sha256: "a3b6167473100ee06e0c796c2955552b",
    sha512: "415fad6271580a531d4179bc891d87a6",
  },
  {
    test: 6,
    key: rep("aa", 131),
    data: hex("Test Using Larger Than Block-Size Key - Hash Key First"),
    sha256: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    sha512: "80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f3526b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598",
  },
  {
    test: 7,
    key: rep("aa", 131),
    data: hex(
      "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.",
    ),
    sha256: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    sha512: "e37b6a775dc87dbaa4dfa9f96e5e3ffddebd71f8867289865df5a32d20cdc944b6022cac3c4982b10d5eeb55c3e4de15134676fb6de0446065c97440fa8c6a58",
  },
];

/** RFC 4231 §4.2-4.8, HMAC-SHA-256 and HMAC-SHA-512 test cases 1-7. */
export const RFC4231_HMAC: HmacVector[] = RFC4231_CASES.flatMap((c) => [
  { source: `RFC 4231 test ${c.test}`, key: c.key, data: c.data, alg: "sha256" as const, mac: c.sha256 },
  { source: `RFC 4231 test ${c.test}`, key: c.key, data: c.data, alg: "sha512" as const, mac: c.sha512 },
]);
