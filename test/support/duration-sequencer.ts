/**
 * Longest test files first, so the run does not end on one long file while
 * the other worker idles. vitest schedules whole files, each on the next free
 * worker, in the order its sequencer gives; its own BaseSequencer orders by
 * the durations it cached from the last run on this machine, and with no cache
 * (a fresh clone, as CI is) by file size, which put the 70-140 s files near the
 * end. This one takes each file's duration from vitest's cache when it has one
 * and otherwise from test/durations.json, measured on a full run and committed
 * (regenerate: `node test/support/durations.mjs REPORT.json` from a run with
 * `--reporter=json --outputFile=REPORT.json`). Files in neither run first, as
 * vitest's own order does; failed files first too, as vitest's does.
 */
import { readFileSync } from "node:fs";
import { relative, resolve } from "node:path";
import { BaseSequencer, type TestSpecification } from "vitest/node";

const TABLE = resolve(import.meta.dirname, "..", "durations.json");

function committedSeconds(): Record<string, number> {
  try {
    return JSON.parse(readFileSync(TABLE, "utf8")).seconds ?? {};
  } catch {
    return {};
  }
}

export class DurationSequencer extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const table = committedSeconds();
    const root = this.ctx.config.root;
    const key = (f: TestSpecification) => {
      const rel = relative(root, f.moduleId);
      const cached = this.ctx.cache.getFileTestResults(`${f.project.name}:${rel}`);
      const ms = cached ? cached.duration : table[rel] !== undefined ? table[rel] * 1000 : Infinity;
      return { failed: cached?.failed ?? false, ms };
    };
    const keyed = files.map((f) => ({ f, ...key(f) }));
    keyed.sort((a, b) => Number(b.failed) - Number(a.failed) || (a.ms === b.ms ? 0 : b.ms - a.ms));
    return keyed.map((k) => k.f);
  }
}
