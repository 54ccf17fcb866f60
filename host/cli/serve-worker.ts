/**
 * What each `bank serve --workers N` worker runs (node:cluster's exec): the
 * same CLI, with the primary's options minus --workers, so a worker is an
 * ordinary single `bank serve` that reports to the primary instead of
 * printing its address (host/server/cluster.ts).
 */
import { runCli } from "./main.js";

process.exitCode = await runCli(process.argv.slice(2));
// The IPC channel to the primary would keep this process alive after the server closed.
if (process.connected) process.disconnect();
