/**
 * Fuzz the emulated firmware's UART with random and mutated frames (fixed
 * seed, reproducible). Whatever arrives: no Lua error escapes, nothing in
 * flash or in INFO changes, and no reply contains the seed or a code.
 *
 * `make test` sends 100,000 frames in two shards of 50,000 (two test files,
 * so vitest's two workers share them); `make fuzz` (FOBKIT_FUZZ_LONG=1) ten
 * times as many with other seeds. FOBKIT_FUZZ_SEED overrides the seeds.
 */
import { expect, test } from "vitest";
import { ascii, flashDigest, P, TestKeyfob } from "../support/keyfob.js";
import { prng } from "../support/prng.js";

const LONG = process.env.FOBKIT_FUZZ_LONG === "1";
const FRAMES = LONG ? 500_000 : 50_000;
const SEED = ascii("fuzz-seed-Zq9!x#71aa");
const SERIAL = "FK-FUZZ-1";


/** A valid request of a random kind with random (mostly legal) fields. */
function randomRequest(r: ReturnType<typeof prng>): Record<string, unknown> {
  const rid = r.int(256);
  switch (r.int(7)) {
    case 0: return { cmd: P.CMD_INFO, rid };
    case 1: return { cmd: P.CMD_SET_SERIAL, rid, serial: Array.from({ length: 1 + r.int(16) }, () => 0x21 + r.int(94)) };
    case 2: return { cmd: P.CMD_WRITE_SEED, rid, algorithm: 1 + r.int(3), digits: 6 + r.int(3), period: 1 + r.int(3600), seed: r.bytes(16 + r.int(49)) };
    case 3: return { cmd: P.CMD_SET_CLOCK, rid, timeHi: 0, timeLo: r.int(2 ** 31), flags: r.int(2) };
    case 4: return { cmd: P.CMD_SELF_TEST, rid };
    case 5: return { cmd: P.CMD_LOCK, rid, serial: r.next() < 0.5 ? ascii(SERIAL) : [0x41 + r.int(26)] };
    default: return { cmd: P.CMD_WIPE, rid, serial: r.next() < 0.5 ? ascii(SERIAL) : [] };
  }
}

/** One fuzz frame: garbage, a mutated valid frame, or a CRC-valid frame with a random body. */
function fuzzFrame(r: ReturnType<typeof prng>): number[] {
  const kind = r.int(6);
  if (kind === 0) return r.bytes(1 + r.int(160));
  if (kind === 1) {
    // A CRC-valid frame around a random body: exercises the decoder, not the CRC.
    const body = r.bytes(1 + r.int(130));
    if (r.next() < 0.7) body[0] = 1; // mostly the right version, to get past it
    return P.encodeFrame(body, body.length);
  }
  const wire: number[] = P.encodeRequest(randomRequest(r));
  if (kind === 2) return wire; // well-formed: a locked keyfob must refuse every write
  const out = wire.slice();
  const n = 1 + r.int(3);
  for (let i = 0; i < n; i++) {
    const at = r.int(out.length);
    switch (r.int(5)) {
      case 0: out[at] ^= 1 << r.int(8); break;
      case 1: out.splice(at, 1); break;
      case 2: out.splice(at, 0, r.int(256)); break;
      case 3: out.length = Math.max(1, at); break;
      default: out.splice(at, 0, 0); break;
    }
  }
  return out;
}

/** True if needle occurs in hay as a contiguous run. */
function contains(hay: number[], needle: number[]): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** Register one shard: FRAMES frames from its own fixed seed. */
export function fuzzShard(shard: number): void {
const SEED_VALUE = Number(process.env.FOBKIT_FUZZ_SEED ?? 0x5eed0) + shard + (LONG ? 100 : 0);
test(`${FRAMES} random and mutated frames change nothing and leak nothing (shard ${shard}, seed ${SEED_VALUE})`, () => {
  const k = new TestKeyfob().boot();
  try {
    expect(k.provision(SEED, SERIAL, k.emu.rtcTime())).toEqual([0, 0, 0, 0]);
    const flashBefore = flashDigest(k.stateDir);
    const infoBefore = k.info();
    const errorsBefore = k.emu.counters.luaErrors;
    const txStart = k.tx.length;
    const r = prng(SEED_VALUE);
    let replies = 0;
    let okSelfTests = 0;
    const batch: number[] = [];
    for (let i = 0; i < FRAMES; i++) {
      for (const b of fuzzFrame(r)) batch.push(b);
      // Deliver in chunks of a few hundred frames: the UART's own buffering.
      if (batch.length > 8192 || i === FRAMES - 1) {
        for (const ev of k.sendRaw(batch.splice(0), 0.01)) {
          replies++;
          if (ev.msg?.cmd === P.CMD_SELF_TEST && ev.msg.status === 0) okSelfTests++;
        }
      }
    }
    // An idle delimiter closes whatever frame the last chunk left open.
    k.sendRaw([0]);
    expect(k.emu.counters.luaErrors).toBe(errorsBefore);
    expect(flashDigest(k.stateDir)).toBe(flashBefore);
    const infoAfter = k.info();
    expect({ ...infoAfter, timeHi: 0, timeLo: 0 }).toEqual({ ...infoBefore, timeHi: 0, timeLo: 0 });
    expect(okSelfTests).toBe(0);
    expect(replies).toBeGreaterThan(FRAMES / 10);
    const tx = k.tx.slice(txStart);
    expect(contains(tx, SEED)).toBe(false);
    // Not even a quarter of the seed in a row.
    for (let i = 0; i + 5 <= SEED.length; i += 5) expect(contains(tx, SEED.slice(i, i + 5))).toBe(false);
    // The keyfob still works.
    expect(k.press()).toMatch(/^\d{8}$/);
  } finally {
    k.close();
  }
}, LONG ? 3_600_000 : 240_000);
}
