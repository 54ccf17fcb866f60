/**
 * Message layouts and the decoder's verdict on every kind of malformed body
 * (SPEC.md "Malformed input"), one table run against the Node build and the
 * Lua image on fengari and lua5.3.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { hasFloat, jsBuild, jsProtocol, luaBuild, plain, type Protocol, type ProtocolBuild } from "./builds.js";

const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));
const word = (w: number) => [(w >>> 24) & 255, (w >>> 16) & 255, (w >>> 8) & 255, w & 255];

// Status codes as SPEC.md fixes them.
const OK = 0, UNKNOWN_COMMAND = 1, BAD_LENGTH = 2, BAD_ARGUMENT = 3, BAD_VERSION = 4, INTERNAL = 12, WRONG_DIRECTION = 255;

const SEED20 = ascii("12345678901234567890");
const seedBody = (alg: number, digits: number, period: number, seed: number[]) => [1, 5, 3, alg, digits, ...word(period), seed.length, ...seed];
const INFO_FIELDS = [1, 0, 3, 0, 2, 7, ...[1, 2, 3, 4, 5, 6, 7, 8], ...word(0), ...word(1700000000), 1, 8, ...word(60), 3, ...ascii("FK1"), 2, ...ascii("A7")];
const INFO = {
  state: 1, reason: 0, flags: 3, fwMajor: 0, fwMinor: 2, fwPatch: 7, hwid: [1, 2, 3, 4, 5, 6, 7, 8], timeHi: 0, timeLo: 1700000000,
  algorithm: 1, digits: 8, period: 60, model: ascii("FK1"), serial: ascii("A7"),
};

/** [name, request body, expected DecodedRequest (msg compared only when given)]. */
const REQUESTS: [string, number[], Record<string, unknown>][] = [
  ["INFO", [1, 5, 1], { status: OK, rid: 5, cmd: 1, msg: { cmd: 1, rid: 5 } }],
  ["SELF_TEST", [1, 255, 5], { status: OK, rid: 255, cmd: 5, msg: { cmd: 5, rid: 255 } }],
  ["SET_SERIAL", [1, 5, 2, 3, ...ascii("K-1")], { status: OK, msg: { cmd: 2, rid: 5, serial: ascii("K-1") } }],
  ["SET_SERIAL 16 chars", [1, 5, 2, 16, ...ascii("ABCDEFGHIJKLMNOP")], { status: OK }],
  ["LOCK", [1, 5, 6, 2, ...ascii("~!")], { status: OK, msg: { cmd: 6, rid: 5, serial: ascii("~!") } }],
  ["WIPE with empty serial", [1, 5, 7, 0], { status: OK, msg: { cmd: 7, rid: 5, serial: [] } }],
  ["WRITE_SEED", seedBody(2, 6, 30, SEED20), { status: OK, msg: { cmd: 3, rid: 5, algorithm: 2, digits: 6, period: 30, seed: SEED20 } }],
  ["WRITE_SEED period 2^31-1, 64-byte seed", seedBody(3, 8, 0x7fffffff, new Array(64).fill(0)), { status: OK }],
  ["SET_CLOCK 2^31 (after 2038)", [1, 5, 4, ...word(0), ...word(0x80000000), 0], { status: OK, msg: { cmd: 4, rid: 5, timeHi: 0, timeLo: -0x80000000, flags: 0 } }],
  ["SET_CLOCK 2^32 + 5, forced", [1, 5, 4, ...word(1), ...word(5), 1], { status: OK, msg: { cmd: 4, rid: 5, timeHi: 1, timeLo: 5, flags: 1 } }],
  ["SET_CLOCK 2^32 - 1", [1, 5, 4, ...word(0), ...word(0xffffffff), 0], { status: OK, msg: { cmd: 4, rid: 5, timeHi: 0, timeLo: -1, flags: 0 } }],
  // Direction, version, command, length, fields: in that order.
  ["a reply seen as a request", [1, 5, 0x81, 0], { status: WRONG_DIRECTION, rid: 5, cmd: 0x81 }],
  ["a reply of another version seen as a request", [9, 5, 0x81, 0], { status: WRONG_DIRECTION }],
  ["version 2", [2, 6, 1], { status: BAD_VERSION, rid: 6, cmd: 1 }],
  ["version 0 with an unknown command", [0, 6, 99, 1, 2], { status: BAD_VERSION, rid: 6, cmd: 99 }],
  ["command 0", [1, 7, 0], { status: UNKNOWN_COMMAND, rid: 7, cmd: 0 }],
  ["command 8", [1, 7, 8, 1, 2, 3], { status: UNKNOWN_COMMAND, rid: 7, cmd: 8 }],
  ["command 0x7f", [1, 7, 0x7f], { status: UNKNOWN_COMMAND, cmd: 0x7f }],
  ["body shorter than a header", [1, 7], { status: BAD_LENGTH, rid: 7, cmd: 0 }],
  ["INFO with a payload", [1, 5, 1, 0], { status: BAD_LENGTH, rid: 5, cmd: 1 }],
  ["SET_SERIAL without payload", [1, 5, 2], { status: BAD_LENGTH }],
  ["SET_SERIAL count above the bytes", [1, 5, 2, 3, 65, 66], { status: BAD_LENGTH }],
  ["SET_SERIAL count below the bytes", [1, 5, 2, 1, 65, 66], { status: BAD_LENGTH }],
  ["SET_SERIAL empty", [1, 5, 2, 0], { status: BAD_ARGUMENT, rid: 5, cmd: 2 }],
  ["SET_SERIAL with a space", [1, 5, 2, 2, 65, 0x20], { status: BAD_ARGUMENT }],
  ["SET_SERIAL with DEL", [1, 5, 2, 1, 0x7f], { status: BAD_ARGUMENT }],
  ["SET_SERIAL 17 chars", [1, 5, 2, 17, ...ascii("ABCDEFGHIJKLMNOPQ")], { status: BAD_ARGUMENT }],
  ["LOCK empty serial", [1, 5, 6, 0], { status: BAD_ARGUMENT }],
  ["WIPE with a control character", [1, 5, 7, 1, 10], { status: BAD_ARGUMENT }],
  ["WRITE_SEED algorithm 0", seedBody(0, 8, 60, SEED20), { status: BAD_ARGUMENT }],
  ["WRITE_SEED algorithm 4", seedBody(4, 8, 60, SEED20), { status: BAD_ARGUMENT }],
  ["WRITE_SEED 5 digits", seedBody(1, 5, 60, SEED20), { status: BAD_ARGUMENT }],
  ["WRITE_SEED 9 digits", seedBody(1, 9, 60, SEED20), { status: BAD_ARGUMENT }],
  ["WRITE_SEED period 0", seedBody(1, 8, 0, SEED20), { status: BAD_ARGUMENT }],
  ["WRITE_SEED period 2^31", seedBody(1, 8, 0x80000000, SEED20), { status: BAD_ARGUMENT }],
  ["WRITE_SEED 15-byte seed", seedBody(1, 8, 60, SEED20.slice(0, 15)), { status: BAD_ARGUMENT }],
  ["WRITE_SEED 65-byte seed", seedBody(1, 8, 60, new Array(65).fill(7)), { status: BAD_ARGUMENT }],
  ["WRITE_SEED seed count off by one", [...seedBody(1, 8, 60, SEED20), 0], { status: BAD_LENGTH }],
  ["WRITE_SEED cut inside the period", [1, 5, 3, 1, 8, 0, 0], { status: BAD_LENGTH }],
  ["SET_CLOCK 8-byte payload", [1, 5, 4, ...word(0), ...word(5)], { status: BAD_LENGTH }],
  ["SET_CLOCK 10-byte payload", [1, 5, 4, ...word(0), ...word(5), 0, 0], { status: BAD_LENGTH }],
  ["SET_CLOCK unknown flag", [1, 5, 4, ...word(0), ...word(5), 2], { status: BAD_ARGUMENT }],
  ["SET_CLOCK negative (hi bit 31)", [1, 5, 4, ...word(0x80000000), ...word(5), 0], { status: BAD_ARGUMENT }],
];

/** [name, reply body, expected DecodedReply]. */
const REPLIES: [string, number[], Record<string, unknown>][] = [
  ["INFO", [1, 9, 0x81, 0, ...INFO_FIELDS], { status: OK, rid: 9, cmd: 1, msg: { rid: 9, cmd: 1, status: 0, info: INFO } }],
  ["INFO from a newer minor revision (trailing fields)", [1, 9, 0x81, 0, ...INFO_FIELDS, 0xde, 0xad], { status: OK, msg: { rid: 9, cmd: 1, status: 0, info: INFO } }],
  ["INFO cut inside the serial", [1, 9, 0x81, 0, ...INFO_FIELDS.slice(0, -1)], { status: BAD_LENGTH, rid: 9, cmd: 1 }],
  ["INFO cut before the model", [1, 9, 0x81, 0, ...INFO_FIELDS.slice(0, 27)], { status: BAD_LENGTH }],
  ["INFO with state 4", [1, 9, 0x81, 0, 4, ...INFO_FIELDS.slice(1)], { status: BAD_ARGUMENT }],
  ["INFO with token parameters but no SEED_SET flag", [1, 9, 0x81, 0, 1, 0, 1, ...INFO_FIELDS.slice(3)], { status: BAD_ARGUMENT }],
  ["SELF_TEST", [1, 9, 0x85, 0, ...word(0), ...word(59), 8, ...ascii("84755224")], {
    status: OK, msg: { rid: 9, cmd: 5, status: 0, selfTest: { timeHi: 0, timeLo: 59, code: ascii("84755224") } },
  }],
  ["SELF_TEST code with a letter", [1, 9, 0x85, 0, ...word(0), ...word(59), 6, ...ascii("12345a")], { status: BAD_ARGUMENT }],
  ["SELF_TEST code of 9 digits", [1, 9, 0x85, 0, ...word(0), ...word(59), 9, ...ascii("123456789")], { status: BAD_ARGUMENT }],
  ["LOCK OK", [1, 9, 0x86, 0], { status: OK, msg: { rid: 9, cmd: 6, status: 0 } }],
  ["LOCK OK with trailing bytes", [1, 9, 0x86, 0, 1, 2], { status: OK, msg: { rid: 9, cmd: 6, status: 0 } }],
  ["an error reply: payload ignored", [1, 9, 0x82, 6, 1, 2, 3], { status: OK, msg: { rid: 9, cmd: 2, status: 6 } }],
  ["UNKNOWN_COMMAND for a command this host does not know", [1, 9, 0xc0, 1], { status: OK, msg: { rid: 9, cmd: 0x40, status: 1 } }],
  ["a status this host does not know", [1, 9, 0x81, 200], { status: OK, msg: { rid: 9, cmd: 1, status: 200 } }],
  ["OK for a command this host does not know", [1, 9, 0x88, 0], { status: UNKNOWN_COMMAND, rid: 9, cmd: 8 }],
  ["a request seen as a reply", [1, 9, 1, 0], { status: WRONG_DIRECTION, rid: 9, cmd: 1 }],
  ["version 2", [2, 9, 0x81, 0], { status: BAD_VERSION, rid: 9, cmd: 1 }],
  ["no status byte", [1, 9, 0x81], { status: BAD_LENGTH, rid: 9, cmd: 1 }],
];

const BUILDS: [string, () => Promise<ProtocolBuild>][] = [
  ["node", jsBuild],
  ["fengari", async () => luaBuild("fengari")],
  ["lua5.3", async () => luaBuild("lua5.3")],
];

describe.each(BUILDS)("messages on %s", (_name, make) => {
  let requests: any[];
  let replies: any[];
  beforeAll(async () => {
    const build = await make();
    const out = await build.run([
      ...REQUESTS.map(([, body]) => ({ fn: "decodeRequest", args: [body, body.length] })),
      ...REPLIES.map(([, body]) => ({ fn: "decodeReply", args: [body, body.length] })),
    ]);
    expect(hasFloat(out)).toBe(false);
    requests = out.slice(0, REQUESTS.length);
    replies = out.slice(REQUESTS.length);
  });
  it.each(REQUESTS.map(([name], i) => [name, i] as const))("request: %s", (_n, i) => {
    const want = REQUESTS[i][2];
    expect(requests[i]).toMatchObject(want);
    if (want.status !== OK) expect(requests[i].msg).toBeUndefined();
  });
  it.each(REPLIES.map(([name], i) => [name, i] as const))("reply: %s", (_n, i) => {
    const want = REPLIES[i][2];
    expect(replies[i]).toMatchObject(want);
    if (want.status !== OK) expect(replies[i].msg).toBeUndefined();
  });
});

describe("encoders (Node build)", () => {
  let p: Protocol;
  beforeAll(async () => {
    p = await jsProtocol();
  });

  it("lay out every request as SPEC.md shows", () => {
    const body = (wire: number[]) => plain(p.decodeStream(wire, false))[0];
    for (const [name, bytes, want] of REQUESTS) {
      if (want.status !== OK) continue;
      const decoded = p.decodeRequest(bytes, bytes.length);
      const wire = p.encodeRequest(decoded.msg);
      expect(body(wire).msg, name).toEqual(plain(decoded.msg));
      // Encoding reproduces the very bytes: the layout is the one the table above spells out.
      const d2 = p.newDeframer();
      let got: number[] = [];
      for (const b of wire) if (p.deframerPush(d2, b) === p.RX_FRAME) got = d2.buf.slice(0, d2.len);
      expect(got, name).toEqual(bytes);
    }
  });

  it("lay out INFO and SELF_TEST replies as SPEC.md shows", () => {
    for (const [name, bytes, want] of REPLIES) {
      if (want.status !== OK || (want.msg as any)?.status !== 0) continue;
      const wire = p.encodeReply(p.decodeReply(bytes, bytes.length).msg);
      const d = p.newDeframer();
      let got: number[] = [];
      for (const b of wire) if (p.deframerPush(d, b) === p.RX_FRAME) got = d.buf.slice(0, d.len);
      // Trailing bytes of a newer revision are dropped on re-encoding; all else byte for byte.
      expect(got, name).toEqual(/trailing/.test(name) ? bytes.slice(0, got.length) : bytes);
      if (/trailing/.test(name)) expect(got.length).toBeLessThan(bytes.length);
    }
  });

  it("refuse a message they cannot encode: [] for a request, INTERNAL for a reply", () => {
    expect(p.encodeRequest({ cmd: 2, rid: 1, serial: ascii("ABCDEFGHIJKLMNOPQ") })).toEqual([]);
    expect(p.checkRequest({ cmd: 2, rid: 1, serial: ascii("ABCDEFGHIJKLMNOPQ") })).toBe(BAD_ARGUMENT);
    expect(p.checkRequest({ cmd: 9, rid: 1 })).toBe(UNKNOWN_COMMAND);
    // Host JS can hand in what the subset cannot: fractions and non-canonical words are refused too.
    expect(p.checkRequest({ cmd: 3, rid: 1, algorithm: 1, digits: 8, period: 30.5, seed: SEED20 })).toBe(BAD_ARGUMENT);
    expect(p.checkRequest({ cmd: 4, rid: 1, timeHi: 0, timeLo: 0xffffffff, flags: 0 })).toBe(BAD_ARGUMENT);
    expect(p.checkRequest({ cmd: 3, rid: 1.5, algorithm: 1, digits: 8, period: 30, seed: SEED20 })).toBe(BAD_ARGUMENT);
    expect(p.checkRequest({ cmd: 3, rid: 1, algorithm: 1, digits: 8, period: 30, seed: [...SEED20.slice(1), 0.5] })).toBe(BAD_ARGUMENT);
    const bad = p.encodeReply({ rid: 3, cmd: 1, status: 0, info: { ...INFO, hwid: [1, 2, 3] } });
    expect(plain(p.decodeStream(bad, true))[0].msg).toEqual({ rid: 3, cmd: 1, status: INTERNAL });
    const noInfo = p.encodeReply({ rid: 3, cmd: 1, status: 0 });
    expect(plain(p.decodeStream(noInfo, true))[0].msg).toEqual({ rid: 3, cmd: 1, status: INTERNAL });
  });

  it("answer a malformed request with the decoder's status for the same rid and cmd", () => {
    // What the device does (SPEC.md "Malformed input"): reply = { rid, cmd, status } from decodeRequest.
    const r = p.decodeRequest([1, 0x33, 2, 0], 4);
    const wire = p.encodeReply({ rid: r.rid, cmd: r.cmd, status: r.status });
    expect(plain(p.decodeStream(wire, true))).toEqual([{ event: 1, status: OK, rid: 0x33, cmd: 2, msg: { rid: 0x33, cmd: 2, status: BAD_ARGUMENT } }]);
  });
});

describe("SPEC.md", () => {
  it("shows the bytes the encoders produce (section 8)", async () => {
    const { readFileSync } = await import("node:fs");
    const { ROOT } = await import("../support/paths.js");
    const spec = readFileSync(`${ROOT}/protocol/SPEC.md`, "utf8");
    const section = spec.slice(spec.indexOf("## 8. Examples"), spec.indexOf("## 9."));
    const shown = [...section.matchAll(/((?:[0-9a-f]{2} )+00)$/gm)].map((m) => m[1]);
    const p = await jsProtocol();
    const hex = (w: number[]) => w.map((b) => b.toString(16).padStart(2, "0")).join(" ");
    expect(shown).toEqual([
      hex(p.encodeRequest({ cmd: 1, rid: 0x2a })),
      hex(p.encodeRequest({ cmd: 4, rid: 7, timeHi: 0, timeLo: 1700000000, flags: 0 })),
      hex(p.encodeRequest({ cmd: 6, rid: 8, serial: ascii("FK00012345") })),
      hex(p.encodeReply({ rid: 8, cmd: 6, status: 6 })),
    ]);
  });
});

describe("wire codes the keyfob hands to the OTP core unchanged", () => {
  it("algorithm ids and digit limits are the same numbers in protocol/ and firmware/otp", async () => {
    // firmware/app/device.ts passes WRITE_SEED's algorithm and digits straight to prepareKey/totp:
    // if the two modules ever disagreed, a keyfob would compute with another hash or length.
    const P = await import("../../protocol/index.js");
    const otp = await import("../../firmware/otp/index.js");
    expect([P.ALG_SHA1, P.ALG_SHA256]).toEqual([otp.ALG_SHA1, otp.ALG_SHA256]);
    // The wire's SHA-512 id is one the keyfob's core refuses (it has no SHA-512: firmware/otp/hash.ts).
    expect([otp.isAlg(P.ALG_SHA1), otp.isAlg(P.ALG_SHA256), otp.isAlg(P.ALG_SHA512)]).toEqual([true, true, false]);
    expect([P.MIN_DIGITS, P.MAX_DIGITS]).toEqual([otp.MIN_DIGITS, otp.MAX_DIGITS]);
  });
});
