/**
 * Prints the token lifecycle diagram generated from host/registry/lifecycle.ts,
 * or with --write regenerates it in host/registry/README.md
 * (test/registry/lifecycle.test.ts checks the README is in sync).
 *
 *   node build/node/tools/lifecycle-diagram.js [--write]
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { lifecycleDiagram, updateLifecycleDiagram } from "../host/registry/lifecycle.js";

/** This file runs from <root>/build/node/tools/. */
export const REGISTRY_README = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "host", "registry", "README.md");

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  if (process.argv.includes("--write")) {
    const before = readFileSync(REGISTRY_README, "utf8");
    const after = updateLifecycleDiagram(before);
    writeFileSync(REGISTRY_README, after);
    process.stdout.write(before === after ? `${REGISTRY_README}: already up to date\n` : `${REGISTRY_README}: lifecycle diagram regenerated\n`);
  } else {
    process.stdout.write(lifecycleDiagram() + "\n");
  }
}
