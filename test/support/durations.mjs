// Writes test/durations.json (what test/support/duration-sequencer.ts orders by) from a vitest JSON report:
//   npx vitest run --reporter=json --outputFile=/tmp/report.json && node test/support/durations.mjs /tmp/report.json
// Each file's seconds from its start to its end in that run, rounded to a tenth.
import { readFileSync, writeFileSync } from "node:fs";
import { relative, resolve } from "node:path";

const [report] = process.argv.slice(2);
if (!report) {
  console.error("usage: node test/support/durations.mjs REPORT.json   (a vitest --reporter=json output)");
  process.exit(2);
}
const root = resolve(import.meta.dirname, "..", "..");
const json = JSON.parse(readFileSync(report, "utf8"));
if (!Array.isArray(json.testResults)) {
  console.error(`${report}: no testResults array; is it vitest's --reporter=json output?`);
  process.exit(1);
}
const seconds = {};
for (const f of json.testResults) seconds[relative(root, f.name)] = Math.round((f.endTime - f.startTime) / 100) / 10;
const sorted = Object.fromEntries(Object.entries(seconds).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])));
const out = resolve(root, "test", "durations.json");
writeFileSync(out, JSON.stringify({ note: "seconds per test file in one full run; order only, see test/support/duration-sequencer.ts", from: new Date(json.startTime).toISOString(), seconds: sorted }, null, 2) + "\n");
console.log(`${out}: ${Object.keys(sorted).length} files`);
