#!/usr/bin/env node
// The `fobkit` command. The CLI is compiled by `npm ci` (prepare) / `make`
// into build/node; run `make firmware` once if this checkout is fresh.
import { existsSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";
import { dirname, join } from "node:path";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const main = join(root, "build", "node", "host", "cli", "main.js");
if (!existsSync(main)) {
  process.stderr.write("fobkit: the CLI is not built yet: run `make firmware` (or `npm ci`) in " + root + "\n");
  process.exit(2);
}
const { runCli } = await import(pathToFileURL(main).href);
process.exitCode = await runCli(process.argv.slice(2));
