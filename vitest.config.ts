import { defineConfig } from "vitest/config";
import { DurationSequencer } from "./test/support/duration-sequencer.js";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // PTY and PostgreSQL tests own real resources; 2 cores.
    maxWorkers: 2,
    // Longest files first (test/durations.json when vitest has no cache of its own, as on a fresh clone in CI),
    // so no 60-120 s file starts last and leaves the other worker idle at the end.
    sequence: { sequencer: DurationSequencer },
  },
});
