/**
 * No core dumps from a process that holds seeds, key-encryption keys or
 * passwords: a crash of `bank serve`, an import or a station would
 * otherwise write its memory, seeds in the clear among it, to a file
 * (the kernel's core_pattern) that outlives the process.
 *
 * Node has no setrlimit; util-linux's prlimit(1) sets another process's
 * limits through prlimit(2), which a process may do to one of its own uid
 * (prlimit(2): "the caller's real, effective and saved set user IDs match
 * the target's"). The soft and the hard limit both go to 0: the process
 * cannot raise them again without CAP_SYS_RESOURCE. Children (workers,
 * the emulator) inherit them. Deployments should also say so themselves
 * (systemd `LimitCORE=0`); with core_pattern a pipe (systemd-coredump) the
 * kernel still hands the dump to the handler, which drops it when the
 * limit is 0 (systemd-coredump honours RLIMIT_CORE), so the limit is the
 * switch in both cases. PR_SET_DUMPABLE, which would also refuse ptrace
 * by the same uid, needs prctl(2), out of Node's reach without an addon.
 */
import { spawnSync } from "node:child_process";

let done: { ok: true } | { ok: false; why: string } | undefined;

/** Sets this process's RLIMIT_CORE to 0 (once per process); says why not when it could not. */
export function disableCoreDumps(): { ok: true } | { ok: false; why: string } {
  if (done) return done;
  const r = spawnSync("prlimit", ["--pid", String(process.pid), "--core=0:0"], { stdio: ["ignore", "ignore", "pipe"], encoding: "utf8", timeout: 5000 });
  if (r.error) done = { ok: false, why: (r.error as NodeJS.ErrnoException).code === "ENOENT" ? "prlimit (util-linux) is not installed" : r.error.message };
  else if (r.status !== 0) done = { ok: false, why: (r.stderr || `prlimit exited ${r.status}`).trim().split("\n")[0] };
  else done = { ok: true };
  return done;
}
