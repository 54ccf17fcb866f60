/**
 * The host's wall clock, in one place. FOBKIT_CLOCK_OFFSET (whole seconds,
 * may be negative) shifts it for demos and tests that must move a keyfob and
 * the bank forward in time together (`make demo` steps both a minute at a
 * time instead of waiting). The bank's HTTP server ignores it (see serve).
 */
export const CLOCK_OFFSET_ENV = "FOBKIT_CLOCK_OFFSET";

/** FOBKIT_CLOCK_OFFSET in seconds (0 when unset); a bad value is an error. */
export function clockOffsetSeconds(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env[CLOCK_OFFSET_ENV];
  if (raw === undefined || raw === "") return 0;
  if (!/^-?\d{1,10}$/.test(raw)) throw new RangeError(`${CLOCK_OFFSET_ENV} must be whole seconds, got ${JSON.stringify(raw)}`);
  return Number(raw);
}

/** A clock in ms since the epoch, shifted by FOBKIT_CLOCK_OFFSET if set; a bad value is an error. */
export function wallClock(env: NodeJS.ProcessEnv = process.env): () => number {
  const offsetMs = clockOffsetSeconds(env) * 1000;
  return offsetMs === 0 ? Date.now : () => Date.now() + offsetMs;
}

/**
 * What provision and station say when FOBKIT_CLOCK_OFFSET is set: they set
 * every keyfob's clock from the shifted time, and a locked keyfob's clock is
 * never set again, so a variable left over from a demo on a station PC makes
 * keyfobs whose codes the bank expects at another time.
 */
export function keyfobClockWarning(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const s = clockOffsetSeconds(env);
  if (s === 0) return undefined;
  return `fobkit: warning: ${CLOCK_OFFSET_ENV}=${s} sets each keyfob's clock ${Math.abs(s)} s ${s > 0 ? "ahead of" : "behind"} UTC, and a locked keyfob's clock cannot be set again; this is for demos: unset it on a production station\n`;
}
