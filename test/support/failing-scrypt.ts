/**
 * node:crypto with a scrypt that fails on demand, as OpenSSL's does when it cannot have the memory
 * ("Invalid scrypt params: memory limit exceeded", a RangeError through the callback). For a test file's own
 * vi.mock of node:crypto, so production's code has no seam for it:
 *
 *   const faults = vi.hoisted(() => ({ pass: 0, failures: 0, calls: 0 }));
 *   vi.mock("node:crypto", async (importOriginal) =>
 *     (await import("../support/failing-scrypt.js")).withFailingScrypt(await importOriginal(), faults));
 *
 * This module must not import node:crypto itself (it is what the mock replaces).
 */
export interface ScryptFaults {
  /** Calls to let through before the next failure (only while failures remain). */
  pass: number;
  /** How many of the calls after `pass` fail. */
  failures: number;
  /** Every scrypt call made, failed or not. */
  calls: number;
}

type Crypto = typeof import("node:crypto");

export function withFailingScrypt(real: Crypto, faults: ScryptFaults): Crypto {
  const scrypt = (...args: unknown[]) => {
    faults.calls++;
    if (faults.failures > 0) {
      if (faults.pass > 0) faults.pass--;
      else {
        faults.failures--;
        const cb = args[args.length - 1] as (err: Error | null) => void;
        process.nextTick(() => cb(new RangeError("Invalid scrypt params: memory limit exceeded")));
        return;
      }
    }
    return (real.scrypt as (...a: unknown[]) => void)(...args);
  };
  return { ...real, default: { ...real, scrypt }, scrypt } as Crypto;
}
