/**
 * The host's wall clock, in one place. FOBKIT_CLOCK_OFFSET (whole seconds,
 * may be negative) shifts it for demos and tests that must move a keyfob and
 * the bank forward in time together (`make demo` steps both a minute at a
 * time instead of waiting). The bank's HTTP server ignores it (see serve).
 */
export const CLOCK_OFFSET_ENV = "FOBKIT_CLOCK_OFFSET";

/** A clock in ms since the epoch, shifted by FOBKIT_CLOCK_OFFSET if set; a bad value is an error. */
export function wallClock(env: NodeJS.ProcessEnv = process.env): () => number {
  const raw = env[CLOCK_OFFSET_ENV];
  if (raw === undefined || raw === "") return Date.now;
  if (!/^-?\d{1,10}$/.test(raw)) throw new RangeError(`${CLOCK_OFFSET_ENV} must be whole seconds, got ${JSON.stringify(raw)}`);
  const offsetMs = Number(raw) * 1000;
  return () => Date.now() + offsetMs;
}
