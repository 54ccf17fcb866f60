/**
 * The station throughput bench's harness (tools/bench-station-throughput.ts):
 * fobkit station's own loop over several PTYs, a keyfob swapped for a fresh
 * one on each result. Its time is measured by `make bench`, not asserted
 * here; what must hold is that every keyfob through every port ends good,
 * with nothing lost on any console.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { Emulator } from "../../hil/emulator.js";
import { runThroughput } from "../../tools/bench-station-throughput.js";
import { IMAGE } from "../support/paths.js";

describe("station throughput over parallel ports", () => {
  it("2 ports, 2 keyfobs through each: the station provisions all 4, swapped in as each is done, none failed, no console byte lost", async () => {
    const template = mkdtempSync(join(tmpdir(), "fobkit-tp-template-"));
    try {
      new Emulator({ stateDir: template, imagePath: IMAGE, countInstructions: false }).close();
      const r = await runThroughput(2, 2, template);
      expect(r).toMatchObject({ ports: 2, keyfobs: 4, failed: 0, uartRxLost: 0 });
      expect(r.perMinute).toBeCloseTo((4 * 60_000) / r.elapsedMs, 0);
    } finally {
      rmSync(template, { recursive: true, force: true });
    }
  }, 120_000);
});
