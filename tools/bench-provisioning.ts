/**
 * The one provisioning the lua32 benches send a keyfob (bench-memory.ts,
 * power-budget.ts): clock, an SHA-1 seed, serial, self-test and LOCK, as
 * the station sends them. A fixed test seed: nothing here is a real key.
 */
import * as P from "../protocol/index.js";

export function benchProvisioningFrames(): number[] {
  const seed = Array.from(Buffer.from("12345678901234567890"));
  const serial = Array.from(Buffer.from("FK-0001-7"));
  return [
    P.encodeRequest({ cmd: P.CMD_SET_CLOCK, rid: 1, timeHi: 0, timeLo: 1700000000, flags: 0 }),
    P.encodeRequest({ cmd: P.CMD_WRITE_SEED, rid: 2, algorithm: P.ALG_SHA1, digits: 8, period: 60, seed }),
    P.encodeRequest({ cmd: P.CMD_SET_SERIAL, rid: 3, serial }),
    P.encodeRequest({ cmd: P.CMD_SELF_TEST, rid: 4 }),
    P.encodeRequest({ cmd: P.CMD_LOCK, rid: 5, serial }),
  ].flat();
}
