/**
 * What each `bank serve --workers N` worker runs (node:cluster's exec): the
 * same CLI, with the primary's options minus --workers, so a worker is an
 * ordinary single `bank serve` that reports to the primary instead of
 * printing its address (host/server/cluster.ts).
 */
import { runCli } from "./main.js";

const code = await runCli(process.argv.slice(2));
// Exit explicitly: the IPC channel to the primary would keep the process alive, and a
// cluster worker whose channel closes exits with 0 (node:cluster), hiding a failure.
// Writes to stdout/stderr on pipes and files are synchronous on Linux, so nothing is cut off.
process.exit(code);
