/**
 * Reproducible random protocol traffic: valid messages of every kind, invalid
 * ones (one field out of range), and mutated byte streams. Everything is
 * drawn from one seeded PRNG so a failure replays exactly.
 */

/** xorshift32 (Marsaglia 2003): tiny, deterministic, good enough for test data. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0 || 1;
  }
  u32(): number {
    let x = this.s;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    this.s = x;
    return x;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor((this.u32() / 2 ** 32) * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)];
  }
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
  bytes(n: number, lo = 0, hi = 255): number[] {
    return Array.from({ length: n }, () => this.int(lo, hi));
  }
  /** Signed int32. */
  word(): number {
    return this.u32() | 0;
  }
}

const ASCII_SERIAL: [number, number] = [0x21, 0x7e];
const ASCII_MODEL: [number, number] = [0x20, 0x7e];

function randomSeed(rng: Rng): number[] {
  const n = rng.pick([16, 20, 32, 64, rng.int(16, 64)]);
  // Zeros are what COBS works hardest on.
  return Array.from({ length: n }, () => (rng.chance(0.15) ? 0 : rng.int(0, 255)));
}

function randomPeriod(rng: Rng): number {
  return rng.pick([1, 30, 60, 0x7fffffff, rng.int(1, 0x7fffffff)]);
}

function timeWords(rng: Rng): { timeHi: number; timeLo: number } {
  return { timeHi: rng.pick([0, 0, 1, 4, rng.int(0, 0x7fffffff)]), timeLo: rng.pick([0, -1, 0x7fffffff, -0x80000000, rng.word()]) };
}

export function randomRequest(rng: Rng): any {
  const rid = rng.int(0, 255);
  const cmd = rng.int(1, 7);
  switch (cmd) {
    case 1:
    case 5:
      return { cmd, rid };
    case 2:
    case 6:
      return { cmd, rid, serial: rng.bytes(rng.int(1, 16), ...ASCII_SERIAL) };
    case 7:
      return { cmd, rid, serial: rng.bytes(rng.int(0, 16), ...ASCII_SERIAL) };
    case 3:
      return { cmd, rid, algorithm: rng.int(1, 3), digits: rng.int(6, 8), period: randomPeriod(rng), seed: randomSeed(rng) };
    default:
      return { cmd, rid, ...timeWords(rng), flags: rng.int(0, 1) };
  }
}

export function randomInfo(rng: Rng): any {
  const seeded = rng.chance(0.6);
  const flags = (rng.int(0, 255) & ~2) | (seeded ? 2 : 0);
  return {
    state: rng.int(0, 3), reason: rng.int(0, 255), flags,
    fwMajor: rng.int(0, 255), fwMinor: rng.int(0, 255), fwPatch: rng.int(0, 255),
    hwid: rng.bytes(8), ...timeWords(rng),
    algorithm: seeded ? rng.int(1, 3) : 0, digits: seeded ? rng.int(6, 8) : 0, period: seeded ? randomPeriod(rng) : 0,
    model: rng.bytes(rng.int(0, 16), ...ASCII_MODEL), serial: rng.bytes(rng.int(0, 16), ...ASCII_SERIAL),
  };
}

export function randomReply(rng: Rng): any {
  const rid = rng.int(0, 255);
  if (rng.chance(0.25)) {
    // Error replies exist for any command byte, known or not.
    return { rid, cmd: rng.int(0, 127), status: rng.int(1, 255) };
  }
  const cmd = rng.int(1, 7);
  if (cmd === 1) return { rid, cmd, status: 0, info: randomInfo(rng) };
  if (cmd === 5) return { rid, cmd, status: 0, selfTest: { ...timeWords(rng), code: rng.bytes(rng.int(6, 8), 0x30, 0x39) } };
  return { rid, cmd, status: 0 };
}

/** One field of a valid request pushed out of range (integers within int32 only: both VMs can hold them). */
export function invalidRequest(rng: Rng): any {
  const m = randomRequest(rng);
  const bad: (() => void)[] = [() => (m.rid = rng.pick([256, -1, 1000]))];
  if ("serial" in m) {
    bad.push(() => (m.serial = rng.bytes(17, ...ASCII_SERIAL)));
    bad.push(() => (m.serial = [...m.serial, rng.pick([0x20, 0x7f, 0, 200, 256, -1])]));
    if (m.cmd !== 7) bad.push(() => (m.serial = []));
  }
  if (m.cmd === 3) {
    bad.push(() => (m.algorithm = rng.pick([0, 4, 255])));
    bad.push(() => (m.digits = rng.pick([0, 5, 9, 10])));
    bad.push(() => (m.period = rng.pick([0, -1, -0x80000000])));
    bad.push(() => (m.seed = rng.bytes(rng.pick([0, 15, 65, 100]))));
    bad.push(() => (m.seed = [...m.seed.slice(1), 256]));
  }
  if (m.cmd === 4) {
    bad.push(() => (m.timeHi = rng.pick([-1, -0x80000000])));
    bad.push(() => (m.flags = rng.pick([2, 3, 128, 256, -1])));
  }
  if (m.cmd === 1 || m.cmd === 5) bad.push(() => (m.cmd = rng.pick([0, 8, 127, 128])));
  rng.pick(bad)();
  return m;
}

export function invalidReply(rng: Rng): any {
  const r = { rid: rng.int(0, 255), cmd: 1, status: 0, info: randomInfo(rng) } as any;
  const i = r.info;
  rng.pick<() => void>([
    () => (r.rid = 256),
    () => (r.cmd = 128),
    () => (r.cmd = rng.pick([0, 8, 100])),
    () => (r.status = 256),
    () => delete r.info,
    () => (i.state = 4),
    () => (i.hwid = rng.bytes(7)),
    () => (i.model = rng.bytes(17, ...ASCII_MODEL)),
    () => (i.serial = [0x20]),
    () => (i.flags = 2, i.digits = 5, i.algorithm = 1, i.period = 30),
    () => (i.flags = 0, i.algorithm = 1),
    () => (r.cmd = 5, r.selfTest = { timeHi: 0, timeLo: 0, code: [0x30, 0x31, 0x32, 0x33, 0x34, 0x3a] }),
    () => (r.cmd = 5, r.selfTest = { timeHi: 0, timeLo: 0, code: rng.bytes(5, 0x30, 0x39) }),
  ])();
  return r;
}

/** A valid frame body with random bytes after the header: reaches every decoder branch past the CRC. */
export function randomBody(rng: Rng, reply: boolean): number[] {
  const cmd = (rng.chance(0.9) ? rng.int(1, 7) : rng.int(0, 127)) | (reply === rng.chance(0.95) ? 0x80 : 0);
  const head = [rng.chance(0.95) ? 1 : rng.int(0, 255), rng.int(0, 255), cmd];
  if (reply) head.push(rng.chance(0.8) ? 0 : rng.int(1, 255));
  const n = rng.int(0, 126 - head.length);
  return [...head, ...rng.bytes(n)];
}

/** Mutations a serial line inflicts, each applied to a copy. */
export function mutate(rng: Rng, bytes: number[]): number[] {
  const out = [...bytes];
  const kinds = rng.int(1, 3);
  for (let k = 0; k < kinds; k++) {
    const at = rng.int(0, Math.max(0, out.length - 1));
    switch (rng.int(0, 6)) {
      case 0: // bit flip
        if (out.length) out[at] ^= 1 << rng.int(0, 7);
        break;
      case 1: // dropped byte
        out.splice(at, 1);
        break;
      case 2: // inserted garbage
        out.splice(at, 0, ...rng.bytes(rng.int(1, 8)));
        break;
      case 3: // truncation
        out.length = at;
        break;
      case 4: // duplicated delimiter
        out.splice(at, 0, 0, 0);
        break;
      case 5: // long run without a delimiter
        out.splice(at, 0, ...rng.bytes(rng.int(100, 300), 1, 255));
        break;
      default: // a byte replaced
        if (out.length) out[at] = rng.int(0, 255);
    }
  }
  return out;
}
