/**
 * `make bench`: every figure the issues ask for, printed and written to
 * bench/results/<part>.json (one file per part, plus summary.json).
 * Benchmarks measure; tests never assert on wall time.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { formatOtpBench, runOtpBench } from "./bench-otp.js";
import { formatBankBench, runBankBench } from "./bench-bank.js";
import { formatPressBench, runPressBench } from "./bench-press.js";
import { formatStationBench, runStationBench } from "./bench-station.js";
import { formatMemoryBench, runMemoryBench } from "./bench-memory.js";
import { formatBudget, runPowerBench } from "./power-budget.js";
import { formatConsoleBench, runConsoleBench } from "./bench-console.js";
import { formatFlashBench, runFlashBench } from "./bench-flash.js";
import { formatSoftBench, runSoftBench } from "./bench-soft.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const OUT = join(ROOT, "bench", "results");

interface Part {
  name: string;
  run: () => Promise<unknown>;
  format: (r: any) => string;
}

/** Issue 12's budget: power.json holds the figures, the text is the budget table. */
let powerText = "";
async function runPower(): Promise<unknown> {
  const r = await runPowerBench();
  powerText = formatBudget(r.budget, r.measurement);
  return r.json;
}

const USAGE = `usage: node build/node/tools/bench.js [PART...]   (make bench runs every part)

Measures and writes bench/results/<part>.json for each part, and bench/results/summary.json.
With PART names, only those parts run; summary.json keeps the other parts' last figures.
Parts: `;

async function main(): Promise<number> {
  const only = process.argv.slice(2);
  const parts: Part[] = [
    { name: "otp", run: runOtpBench, format: formatOtpBench },
    { name: "press", run: async () => runPressBench(), format: formatPressBench },
    { name: "memory", run: runMemoryBench, format: formatMemoryBench },
    { name: "power", run: runPower, format: () => powerText },
    { name: "flash", run: () => runFlashBench(), format: formatFlashBench },
    { name: "station", run: () => runStationBench(), format: formatStationBench },
    { name: "bank", run: () => runBankBench(), format: formatBankBench },
    { name: "console", run: () => runConsoleBench(), format: formatConsoleBench },
    { name: "soft", run: () => runSoftBench(), format: formatSoftBench },
  ];
  const names = parts.map((p) => p.name);
  if (only.includes("--help") || only.includes("-h")) {
    process.stdout.write(USAGE + names.join(", ") + "\n");
    return 0;
  }
  const unknown = only.filter((o) => !names.includes(o));
  if (unknown.length) {
    process.stderr.write(`bench: unknown part ${unknown.map((u) => JSON.stringify(u)).join(", ")}; the parts are ${names.join(", ")}\n`);
    return 2;
  }
  mkdirSync(OUT, { recursive: true });
  const summaryFile = join(OUT, "summary.json");
  // A run of some parts keeps the others' last figures rather than dropping them.
  const previous: Record<string, unknown> = only.length && existsSync(summaryFile) ? JSON.parse(readFileSync(summaryFile, "utf8")) : {};
  const summary: Record<string, unknown> = {
    ...previous,
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavg: loadavg(), node: process.version },
  };
  let failed = 0;
  for (const p of parts) {
    if (only.length && !only.includes(p.name)) continue;
    process.stdout.write(`\n== ${p.name} ==\n`);
    const t = Date.now();
    try {
      const r = await p.run();
      writeFileSync(join(OUT, `${p.name}.json`), JSON.stringify(r, null, 2) + "\n");
      summary[p.name] = r;
      process.stdout.write(p.format(r) + "\n");
      process.stdout.write(`(${((Date.now() - t) / 1000).toFixed(1)} s; bench/results/${p.name}.json)\n`);
    } catch (e) {
      failed++;
      process.stderr.write(`bench ${p.name} failed: ${(e as Error).stack ?? e}\n`);
    }
  }
  writeFileSync(summaryFile, JSON.stringify(summary, null, 2) + "\n");
  process.stdout.write(`\nwritten: bench/results/summary.json (load average at start ${loadavg()[0].toFixed(1)} on ${cpus().length} cores)\n`);
  return failed ? 1 : 0;
}

process.exitCode = await main();
