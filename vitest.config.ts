import { defineConfig } from "vitest/config";
import { DurationSequencer } from "./test/support/duration-sequencer.js";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // PTY and PostgreSQL tests own real resources; 2 cores.
    maxWorkers: 2,
    // Staff passwords at scrypt N = 2^15, the cost before 2026-11-30 (host/registry/staff.ts scryptParams): the suite's
    // hundreds of sign-ins at production's 2^17 took four times as long (staff-cli 39 s -> 128 s). Child processes
    // inherit it. test/console/staff-password-hash.test.ts unsets it and checks 2^17 and the upgrade for real.
    env: { FOBKIT_STAFF_SCRYPT_LOGN: "15" },
    // Longest files first (test/durations.json when vitest has no cache of its own, as on a fresh clone in CI),
    // so no 60-120 s file starts last and leaves the other worker idle at the end.
    sequence: { sequencer: DurationSequencer },
  },
});
