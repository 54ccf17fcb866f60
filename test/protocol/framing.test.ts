/**
 * Framing and resynchronisation, as one suite run against the Node build and
 * the Lua image (fengari, lua5.3): each case is a byte stream, each build
 * decodes all cases in one batch, and the expectations are the same for all.
 * Chunked delivery is exercised on the Node build (a Lua VM run cannot keep a
 * deframer between calls); the Lua builds run the same deframer code path
 * through decodeStream.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { hasFloat, jsBuild, jsProtocol, luaBuild, plain, type Protocol, type ProtocolBuild } from "./builds.js";
import { randomRequest, Rng } from "./message-gen.js";

const ascii = (s: string) => Array.from(s, (c) => c.charCodeAt(0));
const hex = (s: string) => s.split(" ").map((h) => parseInt(h, 16));

let p: Protocol;
beforeAll(async () => {
  p = await jsProtocol();
});

// Events as the decoders report them (SPEC.md "Receiver").
const RX_FRAME = 1, RX_OVERLONG = 2, RX_BAD_ENCODING = 3, RX_TOO_SHORT = 4, RX_BAD_CRC = 5;

const INFO_42 = { cmd: 1, rid: 0x2a };
const LOCK_8 = { cmd: 6, rid: 8, serial: ascii("FK00012345") };
const CLOCK_7 = { cmd: 4, rid: 7, timeHi: 0, timeLo: 1700000000, flags: 0 };

/** The examples in SPEC.md, byte for byte. */
const SPEC_EXAMPLES: [any, string][] = [
  [INFO_42, "00 06 01 2a 01 fd 5f 00"],
  [CLOCK_7, "00 04 01 07 04 01 01 01 04 65 53 f1 01 03 fc f5 00"],
  [LOCK_8, "00 11 01 08 06 0a 46 4b 30 30 30 31 32 33 34 35 11 db 00"],
];

interface Case {
  name: string;
  bytes: () => number[];
  check: (events: any[]) => void;
}

function frameOk(e: any, msg: any) {
  expect(e).toEqual({ event: RX_FRAME, status: 0, rid: msg.rid, cmd: msg.cmd, msg });
}

const wire = (m: any): number[] => p.encodeRequest(m);

const CASES: Case[] = [
  {
    name: "spec examples decode to their messages",
    bytes: () => SPEC_EXAMPLES.flatMap(([, h]) => hex(h)),
    check: (ev) => {
      expect(ev).toHaveLength(3);
      SPEC_EXAMPLES.forEach(([m], i) => frameOk(ev[i], m));
    },
  },
  {
    name: "garbage without delimiters before a frame is cut off by the frame's leading delimiter",
    bytes: () => [0xaa, 0xbb, 0xcc, ...wire(INFO_42)],
    check: (ev) => {
      expect(ev).toHaveLength(2);
      expect(ev[0].event).toBe(RX_BAD_ENCODING);
      frameOk(ev[1], INFO_42);
    },
  },
  {
    name: "garbage with delimiters before a frame: errors, then the frame",
    bytes: () => [0x01, 0x00, 0x03, 0x10, 0x20, 0x00, 0x00, 0x07, 0x55, 0x00, 0x02, 0x11, 0x01, 0x01, 0x01, ...wire(LOCK_8)],
    check: (ev) => {
      // 01|00: empty; 03 10 20|00: 2 bytes; 07 55|00: block cut short; 02 11 01 01 01|00: 4 bytes.
      expect(ev.map((e) => e.event)).toEqual([RX_TOO_SHORT, RX_TOO_SHORT, RX_BAD_ENCODING, RX_TOO_SHORT, RX_FRAME]);
      frameOk(ev[4], LOCK_8);
    },
  },
  {
    name: "idle and duplicated delimiters are silent",
    bytes: () => [0, 0, 0, ...wire(INFO_42), 0, 0, ...wire(CLOCK_7), 0],
    check: (ev) => {
      expect(ev).toHaveLength(2);
      frameOk(ev[0], INFO_42);
      frameOk(ev[1], CLOCK_7);
    },
  },
  {
    name: "a frame without its delimiters still decodes when the stream starts and ends at a boundary",
    bytes: () => wire(CLOCK_7).slice(1),
    check: (ev) => frameOk(ev[0], CLOCK_7),
  },
  {
    name: "a bad CRC is reported and the next frame is intact",
    bytes: () => {
      const w = wire(LOCK_8);
      w[w.length - 2] ^= 0x01;
      return [...w, ...wire(INFO_42)];
    },
    check: (ev) => {
      expect(ev.map((e) => e.event)).toEqual([RX_BAD_CRC, RX_FRAME]);
      frameOk(ev[1], INFO_42);
    },
  },
  {
    name: "a truncated frame is reported and the next frame is intact",
    bytes: () => [...wire(LOCK_8).slice(0, 9), ...wire(CLOCK_7)],
    check: (ev) => {
      expect(ev).toHaveLength(2);
      expect(ev[0].event).toBeGreaterThan(RX_FRAME);
      frameOk(ev[1], CLOCK_7);
    },
  },
  {
    name: "over-long garbage is reported once, skipped to the next delimiter, and the next frame is intact",
    bytes: () => [...new Array(300).fill(0x41), ...wire(INFO_42)],
    check: (ev) => {
      expect(ev.map((e) => e.event)).toEqual([RX_OVERLONG, RX_FRAME]);
      frameOk(ev[1], INFO_42);
    },
  },
  {
    name: "frame length limit: a 126-byte body passes, 127 and 128 decoded bytes' worth do not",
    bytes: () => {
      const max = [1, 9, 0x7f, ...new Array(123).fill(0x33)];
      const good = p.encodeFrame(max, max.length);
      // Hand-made COBS frames one and two bytes too long (CRC correct), beyond what encodeFrame will make.
      const long = (n: number) => {
        const body = [1, 9, 0x7f, ...new Array(n - 3).fill(0x33)];
        const crc = p.crc16(body, 0, body.length);
        const dec = [...body, crc >> 8, crc & 255];
        expect(dec.includes(0)).toBe(false);
        return [0, dec.length + 1, ...dec, 0];
      };
      return [...good, ...long(127), ...long(128), ...wire(INFO_42)];
    },
    check: (ev) => {
      expect(ev.map((e) => [e.event, e.status])).toEqual([[RX_FRAME, 1], [RX_OVERLONG, 0], [RX_OVERLONG, 0], [RX_FRAME, 0]]);
      expect(ev[0].cmd).toBe(0x7f);
      frameOk(ev[3], INFO_42);
    },
  },
  {
    name: "runts (fewer than 5 decoded bytes) are reported as too short",
    bytes: () => [0, 1, 0, 2, 1, 0, 5, 1, 2, 3, 4, 0],
    check: (ev) => expect(ev.map((e) => e.event)).toEqual([RX_TOO_SHORT, RX_TOO_SHORT, RX_TOO_SHORT]),
  },
];

/** Lost byte at every position of frame 1: frame 2 always arrives; frame 1 never turns into a different message. */
function lostByteCases(): Case[] {
  const first = wire(LOCK_8);
  const second = wire(CLOCK_7);
  return first.map((_b, at) => ({
    name: `lost byte ${at} of frame 1`,
    bytes: () => [...first.slice(0, at), ...first.slice(at + 1), ...second],
    check: (ev: any[]) => {
      frameOk(ev[ev.length - 1], CLOCK_7);
      const before = ev.slice(0, -1);
      if (at === 0 || at === first.length - 1) {
        // A lost delimiter costs nothing: the neighbouring frame's delimiter stands in.
        expect(before).toHaveLength(1);
        frameOk(before[0], LOCK_8);
      } else {
        expect(before.map((e) => e.event)).toEqual([expect.any(Number)]);
        expect(before[0].event).toBeGreaterThan(RX_FRAME);
      }
    },
  }));
}

/** Every single-bit error in a frame is caught (CRC-16/CCITT-FALSE: Hamming distance 4 at this length). */
function bitFlipCases(): Case[] {
  const w = wire(LOCK_8);
  const out: Case[] = [];
  for (let at = 0; at < w.length; at++) {
    for (let bit = 0; bit < 8; bit++) {
      out.push({
        name: `bit ${bit} of byte ${at} flipped`,
        bytes: () => {
          const x = [...w];
          x[at] ^= 1 << bit;
          return [...x, ...wire(INFO_42)];
        },
        check: (ev: any[]) => {
          frameOk(ev[ev.length - 1], INFO_42);
          // No flipped frame decodes; a flip in a delimiter may split it into errors, never into a frame.
          expect(ev.slice(0, -1).filter((e) => e.event === RX_FRAME), `bit ${bit} of byte ${at}`).toEqual([]);
        },
      });
    }
  }
  return out;
}

const BUILDS: [string, () => Promise<ProtocolBuild>][] = [
  ["node", jsBuild],
  ["fengari", async () => luaBuild("fengari")],
  ["lua5.3", async () => luaBuild("lua5.3")],
];

describe.each(BUILDS)("framing on %s", (_name, make) => {
  let results: Map<string, any[]>;
  let all: Case[];
  beforeAll(async () => {
    all = [...CASES, ...lostByteCases(), ...bitFlipCases()];
    const build = await make();
    const out = await build.run(all.map((c) => ({ fn: "decodeStream", args: [c.bytes(), false] })));
    expect(hasFloat(out)).toBe(false);
    results = new Map(all.map((c, i) => [c.name, out[i] as any[]]));
  });
  it.each(CASES.map((c) => [c.name, c] as const))("%s", (name, c) => c.check(results.get(name)!));
  it("a lost byte anywhere in a frame: the next frame is received intact", () => {
    const cases = all.filter((c) => c.name.startsWith("lost byte"));
    expect(cases.length).toBe(19);
    for (const c of cases) c.check(results.get(c.name)!);
  });
  it("every single-bit error is detected and the next frame is intact", () => {
    const cases = all.filter((c) => c.name.includes("flipped"));
    expect(cases.length).toBe(19 * 8);
    for (const c of cases) c.check(results.get(c.name)!);
  });
});

describe("CRC-16/GENIBUS", () => {
  it("has the catalogue check value and residue on every build", async () => {
    const calls = [
      { fn: "crc16", args: [ascii("123456789"), 0, 9] },
      { fn: "crc16", args: [[], 0, 0] },
      // A frame body followed by its CRC: the register ends at the residue 0x1D0F (transmitted: inverted).
      { fn: "crc16", args: [[1, 0x2a, 1, 0xfd, 0x5f], 0, 5] },
      { fn: "crc16", args: [[9, 1, 0x2a, 1, 0x23], 1, 4] },
    ];
    for (const build of [await jsBuild(), luaBuild("fengari"), luaBuild("lua5.3")]) {
      expect(await build.run(calls), build.name).toEqual([0xd64e, 0x0000, 0x1d0f ^ 0xffff, 0xfd5f]);
    }
  });

  it("catches the closing delimiter flipped to 0x01 (a zero appended after the CRC), which CCITT-FALSE would not", () => {
    const w = p.encodeRequest(INFO_42);
    const flipped = [...w.slice(0, -1), 0x01, 0x00];
    expect(plain(p.decodeStream(flipped, false)).map((e: any) => e.event)).toEqual([RX_BAD_CRC]);
    // The same frame under a zero-residue CRC: body ‖ CRC ‖ 00 passes, which is why the final XOR is there.
    const ccittFalse = (bytes: number[]) => p.crc16(bytes, 0, bytes.length) ^ 0xffff;
    const body = [1, 0x2a, 1];
    const c = ccittFalse(body);
    expect(ccittFalse([...body, c >> 8, c & 255])).toBe(0);
    expect(ccittFalse([...body, c >> 8, c & 255, 0])).toBe(0);
  });
});

describe("chunked delivery (Node build)", () => {
  function stream(rng: Rng, frames: number) {
    const msgs = Array.from({ length: frames }, () => randomRequest(rng));
    return { msgs, bytes: msgs.flatMap((m) => p.encodeRequest(m)) as number[] };
  }

  it("one byte at a time through deframerPush yields each frame exactly at its closing delimiter", () => {
    const rng = new Rng(7);
    const { msgs, bytes } = stream(rng, 50);
    const d = p.newDeframer();
    const got: any[] = [];
    bytes.forEach((b, i) => {
      const r = p.deframerPush(d, b);
      if (r === p.RX_FRAME) {
        expect(b).toBe(0);
        got.push(plain(p.decodeRequest(d.buf, d.len).msg));
      } else {
        expect(r, `byte ${i}`).toBe(p.RX_NONE);
      }
    });
    expect(got).toEqual(msgs);
  });

  it("1-byte chunks and random chunk sizes through decodeChunk give the whole-stream result", () => {
    const rng = new Rng(11);
    const { bytes } = stream(rng, 200);
    // Noise between frames so errors also straddle chunk edges.
    const noisy: number[] = [];
    for (let i = 0; i < bytes.length; i++) {
      noisy.push(bytes[i]);
      if (rng.chance(0.002)) noisy.push(...rng.bytes(rng.int(1, 40)));
    }
    const whole = plain(p.decodeStream(noisy, false));
    expect(whole.filter((e: any) => e.event !== RX_FRAME).length).toBeGreaterThan(0);
    for (const sizes of [() => 1, () => rng.int(1, 7), () => rng.int(1, 300)]) {
      const d = p.newDeframer();
      const got: any[] = [];
      for (let at = 0; at < noisy.length; ) {
        const n = sizes();
        got.push(...plain(p.decodeChunk(d, noisy.slice(at, at + n), false)));
        at += n;
      }
      expect(got).toEqual(whole);
    }
  });

  it("deframerFeed stops after each event and resumes where it stopped", () => {
    const bytes = [...p.encodeRequest(INFO_42), 0x55, 0x00, ...p.encodeRequest(CLOCK_7)];
    const d = p.newDeframer();
    const seen: [number, number][] = [];
    let i = 0;
    while (i < bytes.length) {
      i = p.deframerFeed(d, bytes, i);
      if (d.event !== p.RX_NONE) seen.push([d.event, i]);
    }
    expect(seen).toEqual([[RX_FRAME, 8], [RX_BAD_ENCODING, 10], [RX_FRAME, bytes.length]]);
  });

  it("deframerWipe clears a received seed from the buffer", () => {
    const seed = new Array(32).fill(0x5a);
    const d = p.newDeframer();
    p.decodeChunk(d, p.encodeRequest({ cmd: 3, rid: 1, algorithm: 1, digits: 8, period: 60, seed }), false);
    expect(d.buf.filter((b: number) => b === 0x5a).length).toBe(32);
    p.deframerWipe(d, p.MAX_FRAME);
    expect(d.buf.every((b: number) => b === 0)).toBe(true);
    expect(d.buf).toHaveLength(p.MAX_FRAME);
  });

  it("a wipe after RX_OVERLONG clears the buffer and keeps skipping the rest of that frame", () => {
    const d = p.newDeframer();
    const events: number[] = [];
    for (const b of [0, 0xff, ...Array(p.MAX_FRAME + 1).fill(0x41)]) {
      const ev = p.deframerPush(d, b);
      if (ev !== p.RX_NONE) {
        events.push(ev);
        p.deframerWipe(d, p.MAX_FRAME);
      }
    }
    expect(events).toEqual([RX_OVERLONG]);
    expect(d.buf.every((b: number) => b === 0)).toBe(true);
    // A valid frame's bytes without their opening 0x00 are still part of the skipped one.
    for (const b of p.encodeRequest({ cmd: 1, rid: 0x77 }).slice(1)) expect(p.deframerPush(d, b)).toBe(p.RX_NONE);
  });

  it("a frame writes only buf[0..len + CRC16_BYTES): wiping that much clears it, and a count past MAX_FRAME is clamped", () => {
    const seed = new Array(64).fill(0xa5);
    const d = p.newDeframer();
    p.decodeChunk(d, p.encodeRequest({ cmd: 3, rid: 1, algorithm: 1, digits: 8, period: 60, seed }), false);
    expect(d.buf.slice(d.len + p.CRC16_BYTES).every((b: number) => b === 0)).toBe(true);
    expect(d.buf[d.len + p.CRC16_BYTES - 1]).not.toBe(0); // the CRC's low byte of this frame is not zero
    p.deframerWipe(d, d.len + p.CRC16_BYTES);
    expect(d.buf.every((b: number) => b === 0)).toBe(true);
    p.deframerWipe(d, 1000);
    expect(d.buf).toHaveLength(p.MAX_FRAME);
  });
});
