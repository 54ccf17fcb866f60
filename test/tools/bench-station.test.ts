/** The station bench's "this flow with an instant keyfob and host" figure, on hand-computed schedules. */
import { describe, expect, it } from "vitest";
import { commitFloor, criticalPathBytes } from "../../tools/bench-station.js";

describe("criticalPathBytes", () => {
  it("request/reply one at a time: every byte in turn", () => {
    expect(criticalPathBytes([{ out: [8], in: [47] }, { out: [19], in: [8] }])).toBe(8 + 47 + 19 + 8);
  });

  it("a pipelined group: replies overlap the requests still going out", () => {
    // Requests arrive at 10, 20, 30; replies: 10..15, 20..25, 30..35.
    expect(criticalPathBytes([{ out: [10, 10, 10], in: [5, 5, 5] }])).toBe(35);
    // Long replies queue behind each other: 10..50, 50..90, 90..130.
    expect(criticalPathBytes([{ out: [10, 10, 10], in: [40, 40, 40] }])).toBe(130);
  });

  it("a group starts only after the previous group's last reply", () => {
    expect(criticalPathBytes([{ out: [10, 10], in: [5, 5] }, { out: [4], in: [6] }])).toBe(25 + 4 + 6);
  });
});

describe("commitFloor: the least SPIFFS time of one checked LOCK commit on the model (hil/flash.ts)", () => {
  it("a record within one newlib buffer: open 15 + one write 1 + the read-back's lookup and one page + rename 15", () => {
    const c = commitFloor(60, 8.8);
    expect(c).toEqual({ openForWriting: 15, write: 1, readBackLookup: 8.8, readBackPages: 0.11, rename: 15 });
  });

  it("a longer record: one write per 128-byte buffer, one page read per 251 bytes", () => {
    const c = commitFloor(300, 12.32);
    expect(c.write).toBe(3);
    expect(c.readBackPages).toBeCloseTo(0.22, 9);
    expect(c.readBackLookup).toBe(12.32);
  });
});
