/**
 * Where a keyfob's clock is now, learned from the codes it has shown.
 *
 * A code tells which step the keyfob was in when we received it; that is
 * its clock offset only to within one step (60 s). Storing the offset as
 * "matched step minus our step" and looking ±1 around it therefore fails a
 * keyfob 20 ppm fast used monthly: it moves ~0.88 step a month, and the
 * rounding of two observations adds up to one more, so the next code is two
 * steps out. Simulated with random phases, 97% of such keyfobs are lost
 * within two years (tools and figures in the report of issue 5).
 *
 * So each token keeps its last few successes, (our unix time, step matched),
 * and we fit the line the keyfob's clock must be on: offset x at the newest
 * success and rate y (ppm, |y| <= maxPpm). Each observation is a strip of
 * the (x, y) plane; their intersection is a convex polygon (clipped
 * Sutherland–Hodgman style), and the extremes of x + y·Δt over its vertices
 * bound where the keyfob's clock is now. Observations that contradict the
 * newer ones (a battery change, a clock reset) are dropped, oldest first.
 *
 * The window is ±w steps around the middle of that range; while the rate is
 * still unknown (the first weeks after activation or a resync) steps just
 * outside it that the model still allows are accepted too, at most one more
 * on each side: at most 2w+3 live codes then, 2w+1 once the rate is known.
 */

/** [our unix seconds, matched step]. */
export type Observation = [number, number];

export const MAX_OBSERVATIONS = 16;

type Point = [number, number];

/** Keeps the part of the polygon where sign·(x + c·y - bound) <= 0. */
function halfPlane(poly: Point[], c: number, sign: number, bound: number): Point[] {
  const out: Point[] = [];
  for (let i = 0; i < poly.length; i++) {
    const p = poly[i];
    const q = poly[(i + 1) % poly.length];
    const fp = sign * (p[0] + c * p[1] - bound);
    const fq = sign * (q[0] + c * q[1] - bound);
    if (fp <= 0) out.push(p);
    if ((fp < 0 && fq > 0) || (fp > 0 && fq < 0)) {
      const t = fp / (fp - fq);
      out.push([p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])]);
    }
  }
  return out;
}

export interface StepPrediction {
  /** Step the window is centred on. */
  centre: number;
  /** Lowest and highest step the model allows now. */
  lo: number;
  hi: number;
}

/**
 * Predicts the keyfob's step at `now` (unix seconds) from its observations
 * (oldest first). Returns undefined when there is none.
 */
export function predictStep(observations: Observation[], now: number, t0: number, period: number, maxPpm: number): StepPrediction | undefined {
  if (observations.length === 0) return undefined;
  const [tRef, sRef] = observations[observations.length - 1];
  // Newest observation: offset at tRef within [lo, lo + period).
  const lo0 = sRef * period + t0 - tRef;
  let poly: Point[] = [
    [lo0, -maxPpm],
    [lo0 + period, -maxPpm],
    [lo0 + period, maxPpm],
    [lo0, maxPpm],
  ];
  for (let i = observations.length - 2; i >= 0; i--) {
    const [t, s] = observations[i];
    const c = (t - tRef) * 1e-6;
    const lo = s * period + t0 - t;
    let next = halfPlane(poly, c, 1, lo + period);
    if (next.length) next = halfPlane(next, c, -1, lo);
    if (next.length === 0) break;
    poly = next;
  }
  const c = (now - tRef) * 1e-6;
  let min = Infinity;
  let max = -Infinity;
  for (const [x, y] of poly) {
    const off = x + c * y;
    if (off < min) min = off;
    if (off > max) max = off;
  }
  const step = (off: number) => Math.floor((now + off - t0) / period);
  // The half-open strips make max an exclusive bound.
  return { centre: step((min + max) / 2), lo: step(min), hi: step(max - 1e-6) };
}

/** Steps to try, nearest the centre first: ±w, plus one more each side if the model allows it. */
export function candidateSteps(p: StepPrediction, w: number): number[] {
  const out = [p.centre];
  for (let d = 1; d <= w + 1; d++) {
    for (const s of [p.centre - d, p.centre + d]) {
      if (d <= w || (s >= p.lo && s <= p.hi)) out.push(s);
    }
  }
  return out;
}

export function addObservation(observations: Observation[], o: Observation): Observation[] {
  return [...observations, o].slice(-MAX_OBSERVATIONS);
}

export function parseObservations(text: string | null): Observation[] {
  if (!text) return [];
  const v = JSON.parse(text) as unknown;
  return Array.isArray(v) ? (v.filter((o) => Array.isArray(o) && o.length === 2 && o.every(Number.isFinite)) as Observation[]) : [];
}
