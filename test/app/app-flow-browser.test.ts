/**
 * Issue 15's whole flow with the web app at /app/ in Debian's Chromium
 * (playwright-core, tools/chromium.ts) against a real bank
 * (test/app/flow-support.ts): issue (bank soft-issue, mail from a real SMTP
 * server), set up in the page with the mail's IDs (a wrong password first:
 * the Japanese refusal with the tries left), start of use with the code on
 * screen, replay refused, five wrong codes lock, unlock, deactivate, remove
 * the token from the browser, set-up the same day refused, the next day
 * works; after set-up the page shows its code with the network down.
 *
 * Clocks: the bank's server and CLI share an offset the test moves
 * (flow-support); the page's clock is Playwright's page.clock, moved with it.
 * Both flow in real time, except across the offline reload, where the page's
 * clock is pinned (pinPage).
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { softSerial } from "../../host/soft/protocol.js";
import { launchChromium } from "../../tools/chromium.js";
import { BANK_NAME, nextTokyoMidnight, SERVICE_ID, startBank, tokyoNoonToday, wrongCode, type Bank } from "./flow-support.js";
import { seedFound } from "../support/seed-forms.js";
import { BUILD } from "../support/paths.js";

/** Screenshots of the app's screens, at a phone's size. */
const SCREENS = join(BUILD, "app-screens");

const CUSTOMER = "C-0002";
const MAIL = "hanako@example.jp";
const PASSWORD = "Sakura-2026!y";

describe("software token, whole flow with the web app in Chromium", () => {
  let bank: Bank;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let page: Page;
  let pw: string;
  const userIds: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    bank = await startBank({ startAt: tokyoNoonToday() });
    pw = join(bank.dir, "activation.pw");
    writeFileSync(pw, PASSWORD + "\n", { mode: 0o600 });
    await bank.ok("bank", "soft-config", "--service-id", SERVICE_ID, "--bank-name", BANK_NAME, "--app-url", bank.url + "/app/", "--json");
    browser = await launchChromium({ locale: "ja-JP" });
    page = await browser.context.newPage();
    await page.setViewportSize({ width: 390, height: 780 });
    mkdirSync(SCREENS, { recursive: true });
    page.on("pageerror", (e) => pageErrors.push(e.message));
    page.on("console", (m) => {
      if (/Content Security Policy/i.test(m.text())) pageErrors.push(m.text());
    });
    await page.clock.install({ time: bank.now() });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await bank?.close();
  });

  const issue = async (): Promise<string> => (await bank.ok("bank", "soft-issue", "--customer", CUSTOMER, "--mail", MAIL, "--activation-password-file", pw, "--smtp", bank.smtpUrl, "--json")).userId;
  const verify = (c: string) => bank.fobkit("bank", "verify", "--customer", CUSTOMER, "--code", c, "--json");
  const errorCode = (r: { stdout: string }) => JSON.parse(r.stdout).error.code as string;
  /** Moves the bank and the page by `seconds`. */
  async function advance(seconds: number): Promise<void> {
    bank.advance(seconds);
    await page.clock.setSystemTime(bank.now());
  }
  /**
   * Moves the bank and the page to 30 s into the next 60 s step and stops the page's clock there
   * (page.clock.setFixedTime: Date.now() stands still, the page's timers keep running, and
   * Playwright replays it into every reload), so the page's code cannot change however slow the
   * machine is. The bank's clock keeps flowing from the same instant: a code read now is within its
   * one-step window for the next 90 s. Returns once the page has drawn the pinned instant.
   */
  async function pinPage(): Promise<void> {
    const at = (Math.floor(bank.now() / 60_000) + 1) * 60_000 + 30_000;
    bank.setNow(at);
    await page.clock.setFixedTime(at);
    // Until its next tick the page still shows the code and countdown of its old, running time
    // (reading them then was this test's flake): clear the countdown and wait for a tick to
    // write the pinned 30 s. A tick begun before the pin can write after the clear only if it
    // began a new step (it awaits the code only then), so it writes 60 or 59 s, not 30.
    await page.evaluate(() => (document.getElementById("countdown-label")!.textContent = ""));
    await page.waitForFunction(() => /あと30秒$/.test(document.getElementById("countdown-label")?.textContent ?? ""));
  }
  /** Lets the page's clock flow again, from the bank's time. */
  async function unpinPage(): Promise<void> {
    await page.clock.setSystemTime(bank.now());
  }
  async function screenCode(): Promise<string> {
    await page.locator("#code[data-code]").waitFor();
    return (await page.locator("#code").getAttribute("data-code"))!;
  }
  async function setUp(userId: string, password: string): Promise<void> {
    await page.getByLabel("サービスID").fill(SERVICE_ID);
    await page.getByLabel("ユーザID").fill(userId);
    await page.getByLabel("利用開始パスワード", { exact: true }).fill(password);
    await page.getByRole("button", { name: "送信" }).click();
  }
  const alert = () => page.locator("#setup-status.error");

  it("explains each wrong activation password with the tries left, and a void issuance, in Japanese", async () => {
    const other = "C-0003";
    const userId = (await bank.ok("bank", "soft-issue", "--customer", other, "--mail", "jiro@example.jp", "--activation-password-file", pw, "--json")).userId;
    // First in the file: the context's IndexedDB holds no token yet, so the page opens on 初期設定.
    const p = await browser.context.newPage();
    await p.goto(bank.url + "/app/");
    await p.getByRole("heading", { name: "初期設定" }).waitFor();
    const status = p.locator("#setup-status.error");
    const expected = [
      "利用開始パスワードが正しくありません。あと4回誤ると、このトークンは無効になります。",
      "利用開始パスワードが正しくありません。あと3回誤ると、このトークンは無効になります。",
      "利用開始パスワードが正しくありません。あと2回誤ると、このトークンは無効になります。",
      "利用開始パスワードが正しくありません。あと1回誤ると、このトークンは無効になります。",
      "利用開始パスワードの誤りが続いたため、このトークンは無効になりました。お手数ですが、トークンを発行し直してください。",
      // The right password now: too late.
      "利用開始パスワードの誤りが続いたため、このトークンは無効になりました。お手数ですが、トークンを発行し直してください。",
    ];
    for (const [i, text] of expected.entries()) {
      await p.getByLabel("サービスID").fill(SERVICE_ID);
      await p.getByLabel("ユーザID").fill(userId);
      await p.getByLabel("利用開始パスワード", { exact: true }).fill(i < 5 ? `wrong-pass-${i}` : PASSWORD);
      await p.getByRole("button", { name: "送信" }).click();
      await p.waitForFunction((t) => document.getElementById("setup-status")?.textContent === t, text);
    }
    expect((await bank.row(userId))?.state).toBe("retired");
    await p.close();
  }, 120_000);

  it("issues, sets up in the page, starts use, refuses a replay, locks and unlocks, deactivates; the next set-up waits for the next day; codes show offline", async () => {
    const userId = await issue();
    userIds.push(userId);
    expect(bank.mails.at(-1)!.text).toContain(userId);
    expect(bank.mails.at(-1)!.text).toContain(bank.url + "/app/");

    await page.goto(bank.url + "/app/");
    await page.getByRole("heading", { name: "初期設定" }).waitFor();
    await setUp(userId, "wrong-password-1");
    await alert().waitFor();
    expect(await alert().textContent()).toBe("利用開始パスワードが正しくありません。あと4回誤ると、このトークンは無効になります。");
    expect(await page.getByLabel("利用開始パスワード", { exact: true }).evaluate((e) => e === document.activeElement)).toBe(true);
    await page.screenshot({ path: join(SCREENS, "setup-wrong-password-ja.png") });

    await setUp(userId, PASSWORD);
    await page.getByRole("heading", { name: "ワンタイムパスワード" }).waitFor();
    expect(await page.locator("p.flash[role=status]").textContent()).toBe("初期設定が完了しました。");
    expect(await page.locator("#bank-name").textContent()).toBe(BANK_NAME);
    expect(await page.locator("#countdown-label").textContent()).toMatch(/^次のパスワードまで あと\d{1,2}秒$/);
    await page.waitForFunction(() => document.documentElement.dataset.offlineReady === "true");
    // The page's clock agrees with the bank's (GET /app/time on the injected clock): no warning.
    await page.waitForFunction(() => document.documentElement.dataset.clockChecked === "ok");
    expect(await page.locator("#clock-warning").isHidden()).toBe(true);
    await page.screenshot({ path: join(SCREENS, "code-ja.png") });

    // The page's clock is pinned from the read to the reload: with both clocks flowing, a step
    // boundary crossed between them (a stall at load 15), or a code read before the page had
    // drawn the step the clocks were moved to, showed another code after the reload.
    await pinPage();
    const first = await screenCode();

    // The network goes down: the installed app still shows the token's codes after a reload.
    await page.waitForFunction(() => document.documentElement.dataset.offlineReady === "true");
    bank.setReachable(false);
    await browser.context.setOffline(true);
    await page.reload();
    await page.locator("#code[data-code]").waitFor();
    expect(await page.locator("#bank-name").textContent()).toBe(BANK_NAME);
    expect(await screenCode()).toBe(first);
    await browser.context.setOffline(false);
    bank.setReachable(true);
    await unpinPage();

    // Start of use with the code on screen; the same code again is a replay.
    expect((await bank.ok("bank", "activate", "--serial", softSerial(userId), "--code", first, "--json")).result).toBe("accepted");
    expect(errorCode(await verify(first))).toBe("replayed");

    // Five wrong codes lock; staff unlock; the next code is accepted.
    await advance(60);
    const now = await page.waitForFunction((old) => document.getElementById("code")?.dataset.code !== old && document.getElementById("code")?.dataset.code, first).then((h) => h.jsonValue() as Promise<string>);
    for (let i = 1; i <= 5; i++) expect(JSON.parse((await verify(wrongCode(now))).stdout).error).toMatchObject({ code: "wrong_code", detail: { locked: i === 5 } });
    expect(errorCode(await verify(now))).toBe("locked");
    await bank.ok("bank", "unlock", "--customer", CUSTOMER, "--json");
    await advance(60);
    const afterUnlock = await page.waitForFunction((old) => document.getElementById("code")?.dataset.code !== old && document.getElementById("code")?.dataset.code, now).then((h) => h.jsonValue() as Promise<string>);
    expect((await verify(afterUnlock)).code).toBe(0);

    // Deactivation with the code on screen, then the customer removes the token from this browser.
    await advance(60);
    const forDeactivate = await page.waitForFunction((old) => document.getElementById("code")?.dataset.code !== old && document.getElementById("code")?.dataset.code, afterUnlock).then((h) => h.jsonValue() as Promise<string>);
    expect((await bank.ok("bank", "deactivate", "--customer", CUSTOMER, "--code", forDeactivate, "--json")).result).toBe("accepted");
    await page.getByRole("button", { name: "この端末からトークンを削除" }).click();
    await page.getByRole("button", { name: "削除する" }).click();
    await page.getByRole("heading", { name: "初期設定" }).waitFor();

    // Issued again the same day: set-up refused until tomorrow (Tokyo), in Japanese.
    const userId2 = await issue();
    userIds.push(userId2);
    await setUp(userId2, PASSWORD);
    await alert().waitFor();
    expect(await alert().textContent()).toMatch(/^利用解除の翌日以降に初期設定できます。.+以降にお試しください。$/);

    const midnight = nextTokyoMidnight(bank.now());
    bank.setNow(midnight + 90_000);
    await page.clock.setSystemTime(bank.now());
    await setUp(userId2, PASSWORD);
    await page.getByRole("heading", { name: "ワンタイムパスワード" }).waitFor();
    const next = await screenCode();
    expect((await bank.ok("bank", "activate", "--serial", softSerial(userId2), "--code", next, "--json")).result).toBe("accepted");
    expect(pageErrors).toEqual([]);
  }, 240_000);

  it("lets the seed out nowhere: database, server log, mails, every HTTP body the browser sent or got", async () => {
    expect(userIds.length).toBeGreaterThanOrEqual(2);
    const places: Record<string, Buffer> = {
      database: bank.dbBytes(),
      "server log": Buffer.concat(bank.logs),
      mails: Buffer.concat(bank.mails.map((m) => Buffer.concat([m.raw, Buffer.from(m.text)]))),
      "HTTP bodies and CLI output": Buffer.concat(bank.captured),
    };
    expect(places["HTTP bodies and CLI output"].length).toBeGreaterThan(100_000); // the app's files went through the proxy
    // Nor the activation password: OPAQUE keeps it on the customer's side.
    for (const [where, bytes] of Object.entries(places)) {
      expect(bytes.includes(Buffer.from(PASSWORD)), `password in ${where}`).toBe(false);
      expect(bytes.includes(Buffer.from(Buffer.from(PASSWORD).toString("base64").replace(/=+$/, ""))), `base64 password in ${where}`).toBe(false);
    }
    for (const userId of userIds) {
      const seed = await bank.seedOf(userId);
      for (const [where, bytes] of Object.entries(places)) expect(seedFound(seed, bytes), `seed of ${userId} in ${where}`).toEqual([]);
      seed.fill(0);
    }
  });
});
