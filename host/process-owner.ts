/**
 * A process named so that another process can tell at once whether it still
 * runs: the owner of a staged import (import_batches.owner, migration 9;
 * otherwise only its heartbeat, STALE_IMPORT_MS, tells) and of a `fobkit app
 * setup` under way in a store (host/app/store.ts claimStore).
 *
 * The owner is `linux:<boot id>:<pid namespace>:<pid>:<start time>`: the
 * kernel's boot id (/proc/sys/kernel/random/boot_id, new at every boot), the
 * PID namespace's inode (/proc/self/ns/pid: containers on one kernel share a
 * boot id but not their PIDs) and the PID with its start time in clock ticks
 * since boot (/proc/<pid>/stat field 22, proc(5)), which a recycled PID does
 * not share. Another process can judge it only on the same kernel and in the
 * same PID namespace; anywhere else (another host of the same PostgreSQL
 * database, a container, not Linux) it cannot, and the caller must wait or ask.
 *
 * Nor where /proc is not this PID namespace's (`unshare --pid` without a proc
 * of its own: getpid() says 1 while /proc/1 is the outer init), and a process
 * whose /proc entry cannot be read (another user's under hidepid, proc(5)) is
 * judged by kill(pid, 0) alone: ESRCH is gone, anything else may be alive.
 */
import { readFileSync, readlinkSync } from "node:fs";

/** Field 22 of /proc/<pid>/stat (starttime), or undefined when there is no such process. */
function startTime(pid: number | "self"): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  // Field 2 (comm) is in parentheses and may hold spaces and parentheses: count from after the last ")".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[22 - 3];
}

function machine(): string | undefined {
  try {
    // /proc/self names this process in /proc's namespace; unless that is process.pid, /proc's numbers are not ours.
    if (readlinkSync("/proc/self") !== String(process.pid)) return undefined;
    return `${readFileSync("/proc/sys/kernel/random/boot_id", "latin1").trim()}:${readlinkSync("/proc/self/ns/pid")}`;
  } catch {
    return undefined;
  }
}

/** The largest PID Linux hands out (PID_MAX_LIMIT, include/linux/threads.h): a larger one is no process's. */
const PID_MAX_LIMIT = 4 * 1024 * 1024;

let self: string | null | undefined;

/** This process as an owner, or null where it cannot be told (not Linux). */
export function processOwner(): string | null {
  if (self === undefined) {
    const where = machine();
    const started = startTime("self");
    self = where && started ? `linux:${where}:${process.pid}:${started}` : null;
  }
  return self;
}

/**
 * True only when `owner` certainly no longer runs: it ran on this kernel, in
 * this PID namespace, and its PID is gone or now belongs to a process started
 * at another time. False when alive or when this process cannot tell.
 */
export function ownerGone(owner: string | null): boolean {
  const mine = processOwner();
  if (!owner || !mine) return false;
  const m = /^linux:(.+):(\d+):(\d+)$/.exec(owner);
  const me = /^linux:(.+):(\d+):(\d+)$/.exec(mine);
  if (!m || !me || m[1] !== me[1]) return false;
  const pid = Number(m[2]);
  if (pid < 1 || pid > PID_MAX_LIMIT) return false;
  try {
    process.kill(pid, 0);
  } catch (e) {
    // ESRCH: no such process. EPERM: it runs, as another user.
    return (e as NodeJS.ErrnoException).code === "ESRCH";
  }
  const started = startTime(pid);
  // Unreadable (hidden, or ended just now): cannot tell. Read, and another start time: the PID was recycled.
  return started !== undefined && started !== m[3];
}

