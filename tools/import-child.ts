/**
 * A large import's registry side in a child process of its own: the load
 * that issue 11 item 4 is about (a CLI import beside a serving process on one
 * database). One driver for test/server/import-latency.test.ts and
 * tools/bench-bank.ts. `buildRoot` is the built Node tree (build/node), since
 * the child runs plain JavaScript. Seeds are random and never leave the child.
 */
import { spawn } from "node:child_process";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

export interface ImportChildResult {
  /** The child's exit code (-1 if it was killed). */
  code: number;
  /** What it wrote to stderr (an error names what failed; no seeds are in scope to print). */
  stderr: string;
  seconds: number;
}

/** Registers `n` fresh tokens (serials IM0000000...) through the built registry in a child process. */
export function registerInChild(buildRoot: string, url: string, kekFile: string, n: number, origin: string): Promise<ImportChildResult> {
  const mod = (rel: string) => JSON.stringify(pathToFileURL(resolve(buildRoot, rel)).href);
  const script = `
    const { randomBytes } = await import("node:crypto");
    const { openMigrated } = await import(${mod("host/registry/open-database.js")});
    const { KeyRing } = await import(${mod("host/registry/key-ring.js")});
    const { Registry } = await import(${mod("host/registry/registry.js")});
    const db = await openMigrated(${JSON.stringify(url)});
    const registry = new Registry(db, { keys: KeyRing.fromFile(${JSON.stringify(kekFile)}) });
    const tokens = Array.from({ length: ${n} }, (_, i) => ({ serial: "IM" + String(i).padStart(7, "0"), manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: randomBytes(20) }));
    await registry.register(tokens, { name: "staff:import", source: "cli" }, ${JSON.stringify(origin)});
    await db.close();
  `;
  const start = performance.now();
  const p = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  p.stderr!.on("data", (d) => (stderr += d));
  return new Promise((res) => p.on("close", (code) => res({ code: code ?? -1, stderr, seconds: (performance.now() - start) / 1000 })));
}
