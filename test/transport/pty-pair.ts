/**
 * Two connected real PTYs from socat (`pty,raw,echo=0` on both ends): the
 * host opens one with serialport's real binding, the test's device end opens
 * the other. Killing socat removes both links and hangs up both ends, which
 * is what unplugging a USB-UART bridge does to /dev/ttyUSB0.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface PtyPair {
  host: string;
  device: string;
  dir: string;
  proc: ChildProcess;
  /** Kill socat (the "unplug") and wait until both links are gone. */
  unplug(): Promise<void>;
  dispose(): Promise<void>;
}

export async function ptyPair(): Promise<PtyPair> {
  const dir = mkdtempSync(join(tmpdir(), "fobkit-pty-"));
  const host = join(dir, "host");
  const device = join(dir, "device");
  const proc = spawn("socat", [`pty,raw,echo=0,link=${host}`, `pty,raw,echo=0,link=${device}`], { stdio: "ignore" });
  const deadline = Date.now() + 5000;
  while (!(existsSync(host) && existsSync(device))) {
    if (Date.now() > deadline || proc.exitCode !== null) throw new Error("socat did not create the PTY pair");
    await new Promise((r) => setTimeout(r, 10));
  }
  const unplug = async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await exited;
    }
    while (existsSync(host) || existsSync(device)) await new Promise((r) => setTimeout(r, 5));
  };
  return {
    host, device, dir, proc, unplug,
    dispose: async () => {
      await unplug();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
