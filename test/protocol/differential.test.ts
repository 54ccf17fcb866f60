/**
 * The wire format is one source compiled twice; these tests show the two
 * compilations agree byte for byte and verdict for verdict: the tsc build
 * in Node against the Lua image on fengari (32-bit integers, the device's
 * width) and Debian lua5.3 (64-bit integers). One VM run per batch.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { hasFloat, jsProtocol, luaBuild, LUA_TARGETS, plain, type Protocol } from "./builds.js";
import { invalidReply, invalidRequest, mutate, randomBody, randomReply, randomRequest, Rng } from "./message-gen.js";

const MESSAGES = 5000;
const STREAMS = 3000;
const SEED = 0x2f0b_c0de;
/** fengari runs these batches in ~10 s on an idle 2-core box; leave room for a loaded one. */
const LUA_TIMEOUT = 300_000;

let p: Protocol;

/** Body bytes of one wire frame, via the Node deframer. */
function bodyOf(wire: number[]): number[] {
  const d = p.newDeframer();
  for (const b of wire) {
    if (p.deframerPush(d, b) === p.RX_FRAME) return d.buf.slice(0, d.len);
  }
  throw new Error("bodyOf: no frame in " + wire.join(","));
}

interface Corpus {
  requests: any[];
  replies: any[];
  /** Byte streams, each decoded as requests (false) or replies (true). */
  streams: { bytes: number[]; replies: boolean }[];
}

function buildCorpus(): Corpus {
  const rng = new Rng(SEED);
  const requests: any[] = [];
  const replies: any[] = [];
  for (let i = 0; i < MESSAGES; i++) {
    requests.push(rng.chance(0.85) ? randomRequest(rng) : invalidRequest(rng));
    replies.push(rng.chance(0.85) ? randomReply(rng) : invalidReply(rng));
  }
  const streams: Corpus["streams"] = [];
  for (let i = 0; i < STREAMS; i++) {
    const replyStream = rng.chance(0.5);
    const kind = rng.int(0, 3);
    let bytes: number[] = [];
    if (kind === 0) {
      // Pure line noise, with and without delimiters.
      bytes = rng.bytes(rng.int(0, 400), rng.chance(0.5) ? 0 : 1, 255);
    } else {
      const frames = rng.int(1, 4);
      for (let f = 0; f < frames; f++) {
        let wire: number[];
        if (kind === 1) {
          wire = replyStream ? p.encodeReply(randomReply(rng)) : p.encodeRequest(randomRequest(rng));
        } else if (kind === 2) {
          // Correct CRC around a damaged body: the decoder's checks, not the CRC, must catch it.
          const good = replyStream ? p.encodeReply(randomReply(rng)) : p.encodeRequest(randomRequest(rng));
          const body = bodyOf(good);
          const at = rng.int(0, body.length - 1);
          body[at] = rng.chance(0.5) ? rng.int(0, 255) : (body[at] + rng.pick([1, -1, 16])) & 255;
          if (rng.chance(0.3)) body.length = rng.int(3, body.length);
          if (rng.chance(0.2)) body.push(...rng.bytes(rng.int(1, 10)));
          wire = p.encodeFrame(body, body.length);
        } else {
          const body = randomBody(rng, replyStream);
          wire = p.encodeFrame(body, body.length);
        }
        bytes.push(...wire);
      }
      if (rng.chance(0.7)) bytes = mutate(rng, bytes);
    }
    streams.push({ bytes, replies: replyStream });
  }
  return { requests, replies, streams };
}

let corpus: Corpus;
let expected: {
  requestWire: number[][];
  replyWire: number[][];
  requestChecks: number[];
  replyChecks: number[];
  requestDecoded: unknown;
  replyDecoded: unknown;
  streams: unknown[];
};

beforeAll(async () => {
  p = await jsProtocol();
  corpus = buildCorpus();
  const requestWire = corpus.requests.map((m) => p.encodeRequest(m));
  const replyWire = corpus.replies.map((m) => p.encodeReply(m));
  expected = {
    requestWire,
    replyWire,
    requestChecks: corpus.requests.map((m) => p.checkRequest(m)),
    replyChecks: corpus.replies.map((m) => p.checkReply(m)),
    requestDecoded: plain(p.decodeStream(requestWire.flat(), false)),
    replyDecoded: plain(p.decodeStream(replyWire.flat(), true)),
    streams: corpus.streams.map((s) => plain(p.decodeStream(s.bytes, s.replies))),
  };
});

describe("Node build (the reference side of the comparison)", () => {
  it("round-trips every valid message and refuses every invalid one", () => {
    const events = expected.requestDecoded as any[];
    let k = 0;
    corpus.requests.forEach((m, i) => {
      if (expected.requestChecks[i] !== p.STATUS_OK) {
        expect(expected.requestWire[i], `request ${i}`).toEqual([]);
        return;
      }
      expect(events[k++], `request ${i}`).toEqual({ event: p.RX_FRAME, status: p.STATUS_OK, rid: m.rid, cmd: m.cmd, msg: m });
    });
    expect(k).toBe(events.length);
    const replies = expected.replyDecoded as any[];
    expect(replies).toHaveLength(MESSAGES);
    corpus.replies.forEach((m, i) => {
      if (expected.replyChecks[i] === p.STATUS_OK) {
        expect(replies[i].msg, `reply ${i}`).toEqual(m);
      } else {
        // A reply the device could not build goes out as INTERNAL for the same rid.
        expect(replies[i].msg, `reply ${i}`).toEqual({ rid: m.rid & 255, cmd: m.cmd & 127, status: p.STATUS_INTERNAL });
      }
    });
    const validRequests = expected.requestChecks.filter((s) => s === 0).length;
    const validReplies = expected.replyChecks.filter((s) => s === 0).length;
    // The generator must produce both kinds in bulk, or the comparison proves little.
    expect(validRequests).toBeGreaterThan(MESSAGES * 0.8);
    expect(MESSAGES - validRequests).toBeGreaterThan(MESSAGES * 0.1);
    expect(MESSAGES - validReplies).toBeGreaterThan(MESSAGES * 0.1);
  });

  it("the stream corpus reaches every receiver error and every decoder verdict", () => {
    const seen = new Set<string>();
    for (const evs of expected.streams as any[][]) {
      for (const e of evs) seen.add(e.event === p.RX_FRAME ? `status ${e.status}` : `rx ${e.event}`);
    }
    for (const rx of [p.RX_OVERLONG, p.RX_BAD_ENCODING, p.RX_TOO_SHORT, p.RX_BAD_CRC]) expect(seen).toContain(`rx ${rx}`);
    for (const st of [p.STATUS_OK, p.STATUS_UNKNOWN_COMMAND, p.STATUS_BAD_LENGTH, p.STATUS_BAD_ARGUMENT, p.STATUS_BAD_VERSION, p.WRONG_DIRECTION]) {
      expect(seen).toContain(`status ${st}`);
    }
    const counts: Record<string, number> = {};
    for (const evs of expected.streams as any[][]) for (const e of evs) {
      const k = e.event === p.RX_FRAME ? `status ${e.status}` : `rx ${e.event}`;
      counts[k] = (counts[k] ?? 0) + 1;
    }
    console.info(`protocol differential: ${STREAMS} streams, ${MESSAGES} requests + ${MESSAGES} replies; stream events ${JSON.stringify(counts)}`);
  });
});

describe.each(LUA_TARGETS)("Lua image on %s against the Node build", (vm) => {
  const lua = luaBuild(vm);
  let luaRequestWire: number[][];
  let luaReplyWire: number[][];

  it(`encodes ${MESSAGES} requests and ${MESSAGES} replies to the same bytes and verdicts`, async () => {
    // Verdicts are compared where they say more than "encoded or not": for the messages Node refused.
    const badRequests = corpus.requests.flatMap((m, i) => (expected.requestChecks[i] === 0 ? [] : [i]));
    const badReplies = corpus.replies.flatMap((m, i) => (expected.replyChecks[i] === 0 ? [] : [i]));
    const out = await lua.run([
      ...corpus.requests.map((m) => ({ fn: "encodeRequest", args: [m] })),
      ...corpus.replies.map((m) => ({ fn: "encodeReply", args: [m] })),
      ...badRequests.map((i) => ({ fn: "checkRequest", args: [corpus.requests[i]] })),
      ...badReplies.map((i) => ({ fn: "checkReply", args: [corpus.replies[i]] })),
    ]);
    expect(hasFloat(out)).toBe(false);
    const n = MESSAGES;
    luaRequestWire = out.slice(0, n) as number[][];
    luaReplyWire = out.slice(n, 2 * n) as number[][];
    expect(luaRequestWire).toEqual(expected.requestWire);
    expect(luaReplyWire).toEqual(expected.replyWire);
    const verdicts = out.slice(2 * n);
    expect(verdicts).toEqual([...badRequests.map((i) => expected.requestChecks[i]), ...badReplies.map((i) => expected.replyChecks[i])]);
    expect(new Set(verdicts)).toEqual(new Set([p.STATUS_BAD_ARGUMENT, p.STATUS_UNKNOWN_COMMAND]));
  }, LUA_TIMEOUT);

  it("Node decodes what Lua encoded into the original messages", () => {
    expect(luaRequestWire, "the encode test ran first").toBeDefined();
    const requests = plain(p.decodeStream(luaRequestWire.flat(), false)) as any[];
    const valid = corpus.requests.filter((_m, i) => expected.requestChecks[i] === p.STATUS_OK);
    expect(requests.map((e) => e.msg)).toEqual(valid);
    const replies = plain(p.decodeStream(luaReplyWire.flat(), true)) as any[];
    expect(replies).toEqual(expected.replyDecoded);
  });

  it("Lua decodes what Node encoded into the same results as Node", async () => {
    const [luaReq, luaRep] = await lua.run([
      { fn: "decodeStream", args: [expected.requestWire.flat(), false] },
      { fn: "decodeStream", args: [expected.replyWire.flat(), true] },
    ]);
    expect(hasFloat([luaReq, luaRep])).toBe(false);
    expect(luaReq).toEqual(expected.requestDecoded);
    expect(luaRep).toEqual(expected.replyDecoded);
  }, LUA_TIMEOUT);

  it(`gives the same events for ${STREAMS} random and mutated byte streams`, async () => {
    const out = await lua.run(corpus.streams.map((s) => ({ fn: "decodeStream", args: [s.bytes, s.replies] })));
    expect(hasFloat(out)).toBe(false);
    for (let i = 0; i < STREAMS; i++) {
      expect(out[i], `stream ${i}: ${corpus.streams[i].bytes.join(",")}`).toEqual(expected.streams[i]);
    }
  }, LUA_TIMEOUT);
});
