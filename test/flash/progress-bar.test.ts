/** fobkit flash's progress: a redrawn bar on a terminal, at most one plain line per 10 % otherwise. */
import { Writable } from "node:stream";
import { expect, it } from "vitest";
import { progressBar } from "../../host/flash/progress-bar.js";

function sink(isTTY: boolean) {
  let text = "";
  const s = new Writable({ write: (c, _e, cb) => ((text += c.toString()), cb()) }) as Writable & { isTTY?: boolean };
  s.isTTY = isTTY;
  return { s, text: () => text };
}

function feed(bar: ReturnType<typeof progressBar>, total: number, from: number): void {
  for (let done = from; done <= total; done += 997) bar.update({ done, total, from });
  bar.update({ done: total, total, from });
  bar.end();
}

it("on a terminal: one line redrawn with CR and erase-to-end, ended by a newline", () => {
  const o = sink(true);
  feed(progressBar(o.s), 100_000, 0);
  const t = o.text();
  expect(t.split("\n")).toHaveLength(2);
  expect(t.endsWith("\n")).toBe(true);
  expect(t).toContain("\rflash [" + "#".repeat(30) + "] 100%");
  expect(t).toContain("\x1b[K");
});

it("not a terminal: plain lines, one per 10 %, no carriage returns; a resume says where it started", () => {
  const o = sink(false);
  feed(progressBar(o.s), 100_000, 40_000);
  const lines = o.text().trimEnd().split("\n");
  expect(o.text()).not.toContain("\r");
  expect(lines.length).toBeLessThanOrEqual(11);
  expect(lines[0]).toMatch(/^flash:  40% .*resumed at 39\.1 KB/);
  expect(lines.at(-1)).toMatch(/^flash: 100%  97\.7\/97\.7 KB/);
});
