/**
 * The emulator's virtual time, in milliseconds since the emulator started.
 * Timers (tmr alarms, button bounce, the DS3231's oscillator) are defined on
 * it; advance() runs every due event in order. In PTY mode a ticker drives it
 * from the wall clock; in-process tests move it explicitly.
 */
export interface ScheduledEvent {
  readonly at: number;
  readonly seq: number;
  cancelled: boolean;
  readonly run: () => void;
}

export class VirtualClock {
  private now = 0;
  private seq = 0;
  private queue: ScheduledEvent[] = [];

  get nowMs(): number {
    return this.now;
  }

  /** Run fn at now + delayMs (>= 0); same-time events run in scheduling order. */
  schedule(delayMs: number, run: () => void): ScheduledEvent {
    if (!(delayMs >= 0) || !Number.isFinite(delayMs)) throw new RangeError(`schedule: delay must be a finite number >= 0, got ${delayMs}`);
    const ev: ScheduledEvent = { at: this.now + delayMs, seq: this.seq++, cancelled: false, run };
    // Insertion keeps the queue sorted by (at, seq); queues are short.
    let i = this.queue.length;
    while (i > 0 && (this.queue[i - 1].at > ev.at || (this.queue[i - 1].at === ev.at && this.queue[i - 1].seq > ev.seq))) i--;
    this.queue.splice(i, 0, ev);
    return ev;
  }

  cancel(ev: ScheduledEvent | undefined): void {
    if (ev) ev.cancelled = true;
  }

  /** Time of the next pending event, if any. */
  nextAt(): number | undefined {
    this.queue = this.queue.filter((e) => !e.cancelled);
    return this.queue[0]?.at;
  }

  /**
   * Move to targetMs, running every event due on the way (events may schedule
   * more, and may advance the clock themselves: it then ends where they left it).
   */
  advanceTo(targetMs: number): void {
    if (!(targetMs >= this.now)) throw new RangeError(`advanceTo: cannot go back in time (${targetMs} < ${this.now})`);
    for (;;) {
      const ev = this.queue[0];
      if (!ev || ev.at > targetMs) break;
      this.queue.shift();
      if (ev.cancelled) continue;
      // An event may advance time itself (light sleep inside a firmware task): never go back.
      this.now = Math.max(this.now, ev.at);
      ev.run();
    }
    this.now = Math.max(this.now, targetMs);
  }
}
