/**
 * Where a code is looked for: the steps a keyfob can be at now (the search
 * behind verify, activate and deactivate), and the staff resync's wide
 * search for two consecutive codes. Pure: the token's fields, the opened
 * seed and "now" in, a match or none out; nothing is read or written here,
 * so a store may run the search again on a fresher row (postgres-token-store.ts).
 *
 * Drift: each token stores its clock offset in steps (`drift`, matched step
 * minus our step at the last success) and its last successes, from which
 * clock-model.ts fits the keyfob's offset and rate; a code is looked for
 * within ±window steps of where that puts the keyfob now. A keyfob 20 ppm
 * fast gains ~52 s a month; the rate is what keeps monthly use inside ±1.
 */
import { addObservation, candidateSteps, parseObservations, predictStep, type Observation } from "./clock-model.js";
import { hotp, sameCode, stepAt, type Algorithm } from "./totp.js";

/** What the searches need of a token. */
export interface CodeParams {
  algorithm: Algorithm;
  digits: number;
  period: number;
  t0: number;
  drift: number;
  last_step: number | null;
  clock_obs: string | null;
}

export type CodeMatch =
  | { ok: true; step: number; drift: number; observations: Observation[] }
  | { ok: false; replayed: boolean };

/**
 * Looks for the code among the steps the keyfob can be at now: the clock
 * model's prediction when `useModel` and there are observations, else
 * (now + drift) ± window. A match at or below the last accepted step is a
 * replay. A success restarts the model at activation and extends it after.
 */
export function findCode(token: CodeParams, secret: Buffer, code: string, o: { window: number; useModel: boolean; nowMs: number; maxDriftPpm: number }): CodeMatch {
  const nowSec = Math.floor(o.nowMs / 1000);
  const nowStep = stepAt(o.nowMs, token.t0, token.period);
  const observations = o.useModel ? parseObservations(token.clock_obs) : [];
  const prediction = predictStep(observations, nowSec, token.t0, token.period, o.maxDriftPpm);
  const steps = prediction ? candidateSteps(prediction, o.window) : candidateSteps({ centre: nowStep + token.drift, lo: 0, hi: -1 }, o.window);
  let replayed = false;
  for (const step of steps) {
    if (step < 0) continue;
    if (!sameCode(hotp(token.algorithm, secret, step, token.digits), code)) continue;
    if (token.last_step !== null && step <= token.last_step) {
      replayed = true;
      continue;
    }
    return { ok: true, step, drift: step - nowStep, observations: addObservation(observations, [nowSec, step]) };
  }
  return { ok: false, replayed };
}

/**
 * Resync: the step of the second of two consecutive codes within ±window
 * steps of now and above the last accepted step, or undefined. Two codes in
 * a row at random match by chance with odds ~(2·window+1)/10^16.
 */
export function findResync(token: CodeParams, secret: Buffer, codes: [string, string], o: { window: number; nowMs: number }): { step: number; drift: number; observations: Observation[] } | undefined {
  const nowStep = stepAt(o.nowMs, token.t0, token.period);
  const lo = Math.max(0, nowStep - o.window, (token.last_step ?? -1) + 1);
  let prev = lo > 0 ? hotp(token.algorithm, secret, lo - 1, token.digits) : "";
  for (let s = lo; s <= nowStep + o.window; s++) {
    const cur = hotp(token.algorithm, secret, s, token.digits);
    if (s > lo && sameCode(prev, codes[0]) && sameCode(cur, codes[1])) {
      // s is the second code's step, the keyfob's now; the model restarts from it.
      return { step: s, drift: s - nowStep, observations: [[Math.floor(o.nowMs / 1000), s]] };
    }
    prev = cur;
  }
  return undefined;
}
