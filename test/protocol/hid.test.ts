/**
 * Frames in 64-byte HID reports (SPEC.md "HID"), one suite on the Node build
 * and the Lua image (fengari, lua5.3).
 */
import { beforeAll, describe, expect, it } from "vitest";
import { hasFloat, jsBuild, jsProtocol, luaBuild, type Protocol, type ProtocolBuild } from "./builds.js";
import { randomReply, randomRequest, Rng } from "./message-gen.js";

const NONE = 0, FRAME = 1, SEQ_GAP = 2, BAD_REPORT = 3, OVERLONG = 4;

let p: Protocol;
/** Random frames' wire bytes, requests and replies, incl. the longest possible. */
let frames: number[][];

function report(seq: number, payload: number[], id = 1): number[] {
  return [id, seq, payload.length, ...payload, ...new Array(61 - payload.length).fill(0)];
}

beforeAll(async () => {
  p = await jsProtocol();
  const rng = new Rng(0x41d);
  frames = [];
  for (let i = 0; i < 300; i++) frames.push(i % 2 ? p.encodeRequest(randomRequest(rng)) : p.encodeReply(randomReply(rng)));
  const longest = [1, 1, 0x7f, ...new Array(123).fill(0x44)];
  frames.push(p.encodeFrame(longest, longest.length));
  for (const f of frames) expect(f.length).toBeGreaterThan(0);
});

const BUILDS: [string, () => Promise<ProtocolBuild>][] = [
  ["node", jsBuild],
  ["fengari", async () => luaBuild("fengari")],
  ["lua5.3", async () => luaBuild("lua5.3")],
];

describe.each(BUILDS)("HID on %s", (_name, make) => {
  let build: ProtocolBuild;
  beforeAll(async () => {
    build = await make();
  });

  it("splits frames into 64-byte reports as SPEC.md lays out", async () => {
    const info = p.encodeRequest({ cmd: 1, rid: 0x2a });
    const longest = frames[frames.length - 1];
    expect(longest).toHaveLength(p.MAX_WIRE);
    const [a, b, c, d] = await build.run([
      { fn: "hidSplit", args: [info] },
      { fn: "hidSplit", args: [longest] },
      { fn: "hidSplit", args: [[]] },
      { fn: "hidSplit", args: [[...longest, 0]] },
    ]);
    expect(a).toEqual([report(0xc0, info)]);
    expect(b).toEqual([report(0x80, longest.slice(0, 61)), report(0x01, longest.slice(61, 122)), report(0x42, longest.slice(122))]);
    expect(c).toEqual([]);
    expect(d).toEqual([]);
  });

  it("reassembles every frame of a random stream of reports", async () => {
    const reports = frames.flatMap((f) => p.hidSplit(f));
    const [out] = (await build.run([{ fn: "hidPushAll", args: [p.newHidAssembler(), reports] }])) as any[];
    expect(hasFloat(out)).toBe(false);
    expect(out.frames).toEqual(frames);
    expect(out.events.filter((e: number) => e === FRAME)).toHaveLength(frames.length);
    expect(out.events.filter((e: number) => e !== FRAME && e !== NONE)).toEqual([]);
  });

  it("reports lost, repeated and stray reports and recovers at the next START", async () => {
    const longest = frames[frames.length - 1];
    const [r0, r1, r2] = p.hidSplit(longest);
    const small = p.hidSplit(frames[0])[0];
    const mid = frames.find((f) => f.length > 61 && f.length <= 122)!;
    const [m0, m1] = p.hidSplit(mid);
    const runs: [string, number[][], number[], number[][]][] = [
      ["middle report lost", [r0, r2, small], [NONE, SEQ_GAP, FRAME], [frames[0]]],
      ["report repeated", [r0, r1, r1, r2, small], [NONE, NONE, SEQ_GAP, NONE, FRAME], [frames[0]]],
      ["continuation without START", [r1, r2, m0, m1], [SEQ_GAP, NONE, NONE, FRAME], [mid]],
      ["START before the last frame ended", [r0, r1, m0, m1], [NONE, NONE, SEQ_GAP, FRAME], [mid]],
      ["single-report frame cuts an unfinished one", [r0, small, m0, m1], [NONE, FRAME, NONE, FRAME], [frames[0], mid]],
      ["START with a non-zero index", [[...r0.slice(0, 1), 0x81, ...r0.slice(2)], small], [SEQ_GAP, FRAME], [frames[0]]],
      ["wrong report id", [report(0xc0, frames[0], 2), small], [BAD_REPORT, FRAME], [frames[0]]],
      ["short report", [small.slice(0, 63), small], [BAD_REPORT, FRAME], [frames[0]]],
      ["payload length 62", [[1, 0xc0, 62, ...new Array(61).fill(1)], small], [BAD_REPORT, FRAME], [frames[0]]],
      ["frame beyond MAX_WIRE", [report(0x80, new Array(61).fill(9)), report(0x01, new Array(61).fill(9)), report(0x02, new Array(61).fill(9)), report(0x43, [9]), small],
        [NONE, NONE, OVERLONG, NONE, FRAME], [frames[0]]],
    ];
    const out = (await build.run(runs.map(([, reports]) => ({ fn: "hidPushAll", args: [p.newHidAssembler(), reports] })))) as any[];
    runs.forEach(([name, , events, got], i) => {
      expect(out[i].events, name).toEqual(events);
      expect(out[i].frames, name).toEqual(got);
    });
  });
});
