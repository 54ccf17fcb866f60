/**
 * host/process-owner.ts judges whether the process that owns a staged import
 * (import_batches.owner) or a `fobkit app setup` claim still runs; "gone"
 * deletes the import's rows or takes over the claim, so a live process must
 * never be judged gone. Real processes, real PID namespaces (unshare) and a
 * real /proc mounted hidepid=2 (proc(5)), where other users' processes are
 * invisible: both need root here (and the build readable by other users),
 * and are skipped without it.
 */
import { execFileSync, spawn } from "node:child_process";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { NODE_BUILD } from "../support/paths.js";

const MODULE = pathToFileURL(resolve(NODE_BUILD, "host", "process-owner.js")).href;
const ROOT = process.getuid?.() === 0;

/** A node -e script that prints what process-owner.ts says (argv[1]: an owner to judge, else this process). */
const JUDGE = `const { processOwner, ownerGone } = await import(${JSON.stringify(MODULE)});
const owner = process.argv[1] ?? processOwner();
console.log(JSON.stringify({ owner: processOwner(), gone: ownerGone(owner) }));`;

function canRun(cmd: string, args: string[]): boolean {
  try {
    execFileSync(cmd, args, { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const HIDEPID = "mount -t proc -o hidepid=2 proc /proc";
const nobody = (uid: number) => ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups"];

describe("process-owner: a live process is never judged gone", () => {
  it.skipIf(!ROOT || !canRun("unshare", ["--pid", "--fork", "true"]))(
    "in a PID namespace whose /proc is another namespace's (unshare --pid without --mount-proc), nothing can be judged, itself included",
    () => {
      // getpid() is 1 here, while /proc/1 is the outer namespace's init: its start time is not this process's.
      const out = JSON.parse(execFileSync("unshare", ["--pid", "--fork", process.execPath, "--input-type=module", "-e", JUDGE], { encoding: "utf8" }));
      expect(out).toEqual({ owner: null, gone: false });
    },
  );

  it.skipIf(!ROOT || !canRun("unshare", ["--mount", "sh", "-c", HIDEPID]) || !canRun("setpriv", [...nobody(65534).slice(1), process.execPath, "--input-type=module", "-e", `await import(${JSON.stringify(MODULE)})`]))(
    "under /proc hidepid=2, another user's live process is not judged gone (its /proc entry is hidden, it still runs); once dead it is",
    async () => {
      // The owner: a process of uid 65533 that stays up until killed.
      const live = spawn(nobody(65533)[0], [...nobody(65533).slice(1), process.execPath, "--input-type=module", "-e", `${JUDGE.split("\n")[0]}\nconsole.log(processOwner()); setInterval(() => {}, 1000);`], { stdio: ["ignore", "pipe", "inherit"] });
      const exited = new Promise((r) => live.on("exit", r));
      try {
        const owner = await new Promise<string>((res, rej) => {
          let out = "";
          live.stdout!.on("data", (d) => {
            out += d;
            if (out.includes("\n")) res(out.trim());
          });
          live.on("exit", (c) => rej(new Error(`the owner exited ${c} before naming itself`)));
        });
        expect(owner).toMatch(/^linux:/);
        // The judge: uid 65534, in a mount namespace whose /proc hides other users' processes.
        const judge = () =>
          JSON.parse(execFileSync("unshare", ["--mount", "sh", "-c", `${HIDEPID} && exec "$@"`, "sh", ...nobody(65534), process.execPath, "--input-type=module", "-e", JUDGE, owner], { encoding: "utf8" }));
        expect(judge()).toMatchObject({ gone: false });
        live.kill("SIGKILL");
        await exited;
        expect(judge()).toMatchObject({ gone: true });
      } finally {
        live.kill("SIGKILL");
      }
    },
  );
});
