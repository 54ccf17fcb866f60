/**
 * `make demo` as a test: the same story (three blank boards on PTYs, flash, station,
 * PSKC, bank import, issue, press, activate, verify, replay refused, lockout,
 * unlock, deactivate, activation refused, reissue, activate; then a software token issued,
 * set up with `fobkit app` and activated). The demo checks
 * every step's outcome itself and exits non-zero at the first surprise.
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { expect, test } from "vitest";
import { NODE_BUILD, ROOT } from "../support/paths.js";

test("make demo runs end to end and every step turns out as the story says", () => {
  const r = spawnSync(process.execPath, [join(NODE_BUILD, "tools", "demo.js")], { cwd: ROOT, encoding: "utf8", timeout: 280_000 });
  const out = r.stdout + r.stderr;
  expect(r.status, out).toBe(0);
  expect(out).toMatch(/demo complete/);
  // The story's turning points, as a person reads them.
  expect(out.match(/checked on the board, .*answers INFO: blank/g)).toHaveLength(3);
  expect(out).toMatch(/station stopped: 3 good, 0 failed/);
  expect(out).toMatch(/imported 3 token\(s\)/);
  expect(out).toMatch(/refused: replayed/);
  expect(out).toMatch(/token locked after 5 wrong codes/);
  expect(out).toMatch(/refused: retired/);
  expect(out).toMatch(/issuance 2/);
  expect(out).toMatch(/withdrew FK\d+ \(lost\): retired/);
  expect(out).toMatch(/refused: barred/);
  // The console step: a teller account whose password stays in its file, and Chromium's screenshots.
  expect(out).toMatch(/console: http:\/\/127\.0\.0\.1:\d+\/console\/ — staff ID madoguchi, one-time password in madoguchi\.pw/);
  expect(out).toMatch(/Chromium signed in as madoguchi, searched C-10112235, opened keyfob FK\d+ \(状態: 利用中\)/);
  // The software token: the mail a real SMTP server caught, the app's set-up and first code, start of use.
  expect(out).toMatch(/mail to taro@example\.jp: 【ふぉぶ信用金庫】トークン発行のご案内/);
  expect(out).toMatch(/ユーザID: +\d{12}/);
  expect(out).toMatch(/the app shows \d{8} and the bank's name ふぉぶ信用金庫/);
  expect(out).toMatch(/activated SW\d{12}/);
  expect(out).toMatch(/registration in_use \(利用中\)/);
  expect(out).not.toMatch(/Mirai-/); // the activation password stays in its file
  // The step counter's total matches the steps the demo ran.
  const headers = [...out.matchAll(/\[(\d+)\/(\d+)\]/g)];
  expect(headers.at(-1)![1]).toBe(headers.at(-1)![2]);
  expect(out).toMatch(/active\t1\n/);
  // No seed material on the terminal: the demo prints codes, never seeds.
  expect(out).not.toMatch(/[0-9a-f]{40}/i);
}, 300_000);
