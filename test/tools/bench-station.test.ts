/** The station bench's "this flow with an instant keyfob and host" figure, on hand-computed schedules. */
import { describe, expect, it } from "vitest";
import { criticalPathBytes } from "../../tools/bench-station.js";

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
