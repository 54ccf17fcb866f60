/**
 * The clock model alone, on thousands of simulated keyfobs (steps only, no
 * codes needed): the window must hold a keyfob within ±30 ppm used monthly,
 * where a plain "last drift ± 1" does not.
 */
import { describe, expect, it } from "vitest";
import { addObservation, candidateSteps, predictStep, type Observation } from "../../host/registry/clock-model.js";

const P = 60;

/** A deterministic PRNG (mulberry32) so failures reproduce. */
function rng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function simulate(ppm: number, useModel: boolean, fobs = 500, uses = 24, seed = 1): number {
  const rand = rng(seed);
  let lost = 0;
  for (let f = 0; f < fobs; f++) {
    let t = 1_800_000_000 + Math.floor(rand() * 600_000);
    const start = t;
    const offset = (rand() - 0.5) * 400;
    const fobStep = (at: number) => Math.floor((at + offset + (at - start) * ppm * 1e-6) / P);
    let obs: Observation[] = [[t, fobStep(t)]];
    let drift = fobStep(t) - Math.floor(t / P);
    for (let u = 0; u < uses; u++) {
      t += Math.floor((23 + rand() * 14) * 86400 + rand() * 86400);
      const nowStep = Math.floor(t / P);
      const actual = fobStep(t);
      const steps = useModel ? candidateSteps(predictStep(obs, t, 0, P, 30)!, 1) : [nowStep + drift - 1, nowStep + drift, nowStep + drift + 1];
      if (!steps.includes(actual)) {
        lost++;
        break;
      }
      expect(steps.length).toBeLessThanOrEqual(5);
      obs = addObservation(obs, [t, actual]);
      drift = actual - nowStep;
    }
  }
  return lost;
}

describe("clock model", () => {
  it.each([20, -20, 25, -25, 5, 0])("holds every one of 500 keyfobs at %d ppm used monthly for two years", (ppm) => {
    expect(simulate(ppm, true)).toBe(0);
  });

  it("is needed: 'last drift ± 1' loses most keyfobs at 20 ppm", () => {
    expect(simulate(20, false)).toBeGreaterThan(250);
  });

  it("narrows to 3 live codes once the rate is known", () => {
    let obs: Observation[] = [];
    for (let m = 0; m <= 6; m++) {
      const t = 1_800_000_000 + m * 30 * 86400;
      obs = addObservation(obs, [t, Math.floor((t + 20 + m * 30 * 86400 * 20e-6) / P)]);
    }
    const p = predictStep(obs, 1_800_000_000 + 7 * 30 * 86400, 0, P, 30)!;
    expect(candidateSteps(p, 1)).toHaveLength(3);
  });

  it("drops observations that contradict newer ones (a clock reset)", () => {
    const t = 1_800_000_000;
    // Ten minutes fast for months, then reset to the right time.
    let obs: Observation[] = [];
    for (let m = 0; m < 5; m++) obs = addObservation(obs, [t + m * 2_592_000, Math.floor((t + m * 2_592_000 + 600) / P)]);
    const reset = t + 5 * 2_592_000;
    obs = addObservation(obs, [reset, Math.floor(reset / P)]);
    const p = predictStep(obs, reset + 86400, 0, P, 30)!;
    expect(p.centre).toBe(Math.floor((reset + 86400) / P));
  });
});
