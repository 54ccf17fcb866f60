/**
 * The staff console in a real browser: Debian's Chromium driven by
 * playwright-core, against a real `fobkit bank serve` process on SQLite
 * (staff, keys and the PSKC import made with the real CLI). Controls are
 * found by their English accessible names, fixed by issue 13 item 5.
 * Screenshots of the main pages go to build/console-screens/.
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Page } from "playwright-core";
import { launchChromium } from "../../tools/chromium.js";
import { oathtool } from "../registry/support.js";
import { call } from "../server/support.js";
import { startServeProcess } from "../server/spawn.js";
import { cliBank } from "./support.js";
import { BUILD } from "../support/paths.js";

const SCREENS = join(BUILD, "console-screens");
const PERIOD = 30;
const TELLER = { name: "tanaka", password: "tanaka-teller-pw-1" };
const SUPERVISOR = { name: "suzuki", password: "suzuki-supervisor-pw-1" };

describe("staff console in Chromium", () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let server: Awaited<ReturnType<typeof startServeProcess>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let channelKey: string;
  let seeds: Map<string, Buffer>;
  let fobkit: (...args: string[]) => Promise<string>;

  beforeAll(async () => {
    ({ dir, env, seeds, fobkit } = await cliBank({ prefix: "fobkit-console-", serials: ["FK0001", "FK0002", "FK0003"], period: PERIOD, staff: [{ ...TELLER, role: "teller" as const }, { ...SUPERVISOR, role: "supervisor" as const }] }));
    mkdirSync(SCREENS, { recursive: true });
    channelKey = (await fobkit("bank", "add-key", "--role", "channel")).trim();
    server = await startServeProcess([], env);
    browser = await launchChromium({ locale: "en-US" });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function signIn(page: Page, who: { name: string; password: string }, go = true): Promise<void> {
    if (go) await page.goto(server.url + "/console/");
    await page.getByLabel("Staff ID").fill(who.name);
    await page.getByLabel("Password").fill(who.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
  }
  /** Every control on the page has an accessible name (a <label>, aria-label, or its own text), then a screenshot. */
  async function shot(page: Page, name: string): Promise<void> {
    const unnamed = await page.locator("input:not([type=hidden]), select, textarea, button").evaluateAll((els) =>
      els
        .filter((e) => {
          const labels = (e as HTMLInputElement).labels;
          const text = (labels && labels.length ? [...labels].map((l) => l.textContent).join("") : "") + (e.getAttribute("aria-label") ?? "") + (e.tagName === "BUTTON" ? e.textContent : "");
          return !text.trim();
        })
        .map((e) => e.outerHTML),
    );
    expect(unnamed, name).toEqual([]);
    await page.screenshot({ path: join(SCREENS, name + ".png"), fullPage: true });
  }

  it("a teller signs in by keyboard, searches, issues an imported keyfob, unlocks it after five wrong codes, withdraws it as lost; the audit shows it all", async () => {
    const page = await browser.context.newPage();
    // Keyboard only: the sign-in form has focus, Tab moves on, Enter submits.
    await page.goto(server.url + "/console/");
    await expect.poll(() => page.evaluate(() => document.activeElement?.id)).toBe("staff");
    await page.keyboard.type(TELLER.name);
    await page.keyboard.press("Tab");
    await page.keyboard.type(TELLER.password);
    await page.keyboard.press("Enter");
    await page.getByRole("button", { name: "Sign out" }).waitFor();
    await shot(page, "home");

    await page.getByRole("searchbox", { name: "Search" }).fill("FK0001");
    await page.getByRole("searchbox", { name: "Search" }).press("Enter");
    await page.waitForURL(/\/console\/keyfobs\/FK0001$/);
    await expect.poll(() => page.locator("dl.facts").innerText()).toMatch(/In stock/);

    await page.getByRole("button", { name: "Issue" }).click();
    await page.getByLabel("Customer ID").fill("C-20261129");
    await page.getByRole("button", { name: "Confirm" }).click();
    await page.getByRole("status").filter({ hasText: "Issued." }).waitFor();
    expect(await page.locator("dl.facts").innerText()).toMatch(/Issued \(not yet used\)[\s\S]*C-20261129/);

    // The customer starts using it, then five wrong codes arrive through the channel API.
    const now = Date.now() / 1000;
    expect((await call(server.url, "POST", "/v1/customers/C-20261129/activate", { key: channelKey, body: { code: oathtool(seeds.get("FK0001")!, now, { period: PERIOD }) } })).status).toBe(200);
    for (let i = 0; i < 5; i++) await call(server.url, "POST", "/v1/customers/C-20261129/verify", { key: channelKey, body: { code: "00000000" } });
    await page.reload();
    expect(await page.locator("dl.facts").innerText()).toMatch(/Locked[\s\S]*Wrong codes in a row\s*5/);
    await shot(page, "keyfob-locked");
    // The language switch on the page: Japanese and back, on the same page.
    await page.getByRole("link", { name: "日本語" }).click();
    await page.getByRole("button", { name: "停止解除" }).waitFor();
    await page.screenshot({ path: join(SCREENS, "keyfob-locked-ja.png") });
    await page.getByRole("link", { name: "English" }).click();
    await page.getByRole("button", { name: "Unlock" }).click();
    await page.getByRole("status").filter({ hasText: "Unlocked." }).waitFor();
    expect(await page.locator("dl.facts").innerText()).toMatch(/In use[\s\S]*Wrong codes in a row\s*0/);
    expect(await page.getByRole("button", { name: "Resync" }).count()).toBe(1);

    await page.getByRole("button", { name: "Withdraw" }).click();
    await expect.poll(() => page.getByRole("paragraph").filter({ hasText: "never issued again" }).count()).toBe(1);
    expect(await page.getByLabel("Stolen (supervisor)").count()).toBe(0);
    await page.getByLabel("Lost").check();
    await page.getByLabel("I have checked the customer and the serial").check();
    await shot(page, "withdraw");
    await page.getByRole("button", { name: "Confirm" }).click();
    await page.getByRole("status").filter({ hasText: "Withdrawn." }).waitFor();
    const facts = await page.locator("dl.facts").innerText();
    expect(facts).toMatch(/Retired[\s\S]*Lost: never issued again/);
    expect(await page.getByRole("button", { name: "Issue" }).count()).toBe(0);
    // Barred for good: even a hand-made issue is refused by the registry.
    const token = await page.locator('input[name="_csrf"]').first().inputValue();
    const forced = await page.evaluate(async ([url, csrf]) => {
      const r = await fetch(url, { method: "POST", body: new URLSearchParams({ customer: "C-other", _csrf: csrf }) });
      return { status: r.status, text: await r.text() };
    }, [server.url + "/console/keyfobs/FK0001/issue", token]);
    expect(forced.status).toBe(409);
    expect(forced.text).toContain("reported lost or stolen and is never issued again");

    await page.getByRole("link", { name: "Audit" }).click();
    await page.getByLabel("Serial").fill("FK0001");
    await page.getByRole("button", { name: "Apply" }).click();
    const rows = await page.locator("main table tbody tr").allInnerTexts();
    const actions = rows.map((r) => r.split("\t").slice(1, 3).join(":")).reverse();
    expect(actions).toEqual(expect.arrayContaining(["register:ok", "issue:ok", "activate:ok", "verify:wrong_code", "lock:ok", "unlock:ok", "withdraw:ok", "issue:barred"]));
    expect(rows.find((r) => r.includes("withdraw"))).toContain("console:tanaka");
    await shot(page, "audit");

    // Lists filter as one types; answers come from the server.
    await page.getByRole("link", { name: "All keyfobs" }).click();
    await page.getByLabel("Serial or customer ID begins with").fill("FK000");
    await expect.poll(() => page.locator("#results").innerText()).toMatch(/^3 keyfobs/);
    // Overlapping requests: the answer to the first is held back until after the second's;
    // the page must end on the second (the script aborts and drops stale answers).
    const partial = /\/console\/keyfobs\?.*partial=1/;
    let held = 0;
    await page.route(partial, async (route) => {
      if (held++ === 0) await new Promise((r) => setTimeout(r, 1500));
      await route.continue().catch(() => undefined);
    });
    await page.getByLabel("State").selectOption("locked");
    await page.getByLabel("State").selectOption("in_stock");
    await expect.poll(() => page.locator("#results").innerText()).toMatch(/^2 keyfobs/);
    await page.waitForTimeout(2000);
    expect(await page.locator("#results").innerText()).toMatch(/^2 keyfobs/);
    await page.unroute(partial);
    expect(page.url()).toContain("state=in_stock");
    await shot(page, "list");
    await page.close();
  }, 60_000);

  it("after a change the focus is on the page's message, and Tab goes on into the page; a refused audit cursor or form puts it on the error (keyboard only)", async () => {
    const page = await browser.context.newPage();
    await page.context().clearCookies();
    await signIn(page, SUPERVISOR);
    const focus = () =>
      page.evaluate(() => {
        const e = document.activeElement as HTMLElement;
        return { cls: e.className, text: e.textContent?.trim() ?? "", inMain: !!e.closest("main"), tag: e.tagName.toLowerCase(), id: e.id };
      });
    await page.goto(server.url + "/console/keyfobs/FK0003/issue");
    await expect.poll(focus).toMatchObject({ id: "customer" });
    await page.keyboard.type("C-20261130");
    await page.keyboard.press("Enter");
    await page.waitForURL(/\/console\/keyfobs\/FK0003$/);
    // After the redirect: the focus is on "Issued.", not at the page's top, so a screen reader says it.
    await expect.poll(focus).toMatchObject({ cls: "flash", text: "Issued." });
    await page.keyboard.press("Tab");
    expect((await focus()).inMain, "Tab from the message goes on into the page").toBe(true);

    // A refusal (the customer holds a keyfob now): the keyfob's page with the focus on the reason.
    await page.goto(server.url + "/console/keyfobs/FK0002/issue");
    await expect.poll(focus).toMatchObject({ id: "customer" });
    await page.keyboard.type("C-20261130");
    await page.keyboard.press("Enter");
    await page.locator("p.error").waitFor();
    await expect.poll(focus).toMatchObject({ cls: "error", text: expect.stringMatching(/holds a keyfob|already/i) });

    await page.goto(server.url + "/console/audit?before=abc");
    await expect.poll(focus).toMatchObject({ cls: "error", text: expect.stringContaining("before:") });
    await page.keyboard.press("Tab");
    expect(await focus()).toMatchObject({ id: "a-serial" });
    // A page without a message keeps its start: the skip link comes first.
    await page.goto(server.url + "/console/audit");
    await page.keyboard.press("Tab");
    expect(await focus()).toMatchObject({ cls: "skip" });
    await page.close();
  }, 60_000);

  it("no session, no CSRF token, a teller's reach and the sixth wrong password are all refused by the server", async () => {
    const page = await browser.context.newPage();
    await page.context().clearCookies();
    await page.goto(server.url + "/console/keyfobs?state=locked");
    await page.waitForURL(/\/console\/sign-in\?next=/);
    expect(await page.getByRole("button", { name: "Sign in" }).count()).toBe(1);

    await signIn(page, TELLER, false);
    await page.waitForURL(/\/console\/keyfobs\?state=locked$/);
    // A change without the CSRF token is refused and changes nothing.
    const noToken = await page.evaluate(async (url) => (await fetch(url, { method: "POST", body: new URLSearchParams({ customer: "C-x" }) })).status, server.url + "/console/keyfobs/FK0002/issue");
    expect(noToken).toBe(403);
    // A teller's reach: supervisor pages are refused by the server, not just hidden.
    expect(await page.getByRole("link", { name: "Approvals" }).count()).toBe(0);
    const approvals = await page.goto(server.url + "/console/approvals");
    expect(approvals!.status()).toBe(403);
    expect(await page.getByRole("alert").innerText()).toBe("Your role may not do this.");
    await page.goto(server.url + "/console/keyfobs/FK0002");
    expect(await page.locator("dl.facts").innerText()).toMatch(/In stock/);
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.waitForURL(/\/console\/sign-in$/);

    // Five wrong passwords; the sixth try finds the account locked.
    for (let i = 1; i <= 6; i++) {
      await page.getByLabel("Staff ID").fill(TELLER.name);
      await page.getByLabel("Password").fill("not-the-password-" + i);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.getByRole("alert").waitFor();
      expect(await page.getByRole("alert").innerText(), `try ${i}`).toMatch(i < 6 ? /wrong/ : /locked after five wrong passwords/);
    }
    await shot(page, "sign-in-locked");

    // A supervisor (Japanese by default) sees the staff page and lifts the lock.
    const ja = await launchChromium({ locale: "ja-JP" });
    try {
      const p = await ja.context.newPage();
      await p.goto(server.url + "/console/");
      await p.getByLabel("職員番号").fill(SUPERVISOR.name);
      await p.getByLabel("パスワード").fill(SUPERVISOR.password);
      await p.getByRole("button", { name: "ログイン" }).click();
      await p.getByRole("link", { name: "職員" }).click();
      await p.getByRole("button", { name: `アカウントの停止解除 ${TELLER.name}` }).click();
      await p.getByRole("status").waitFor();
      await p.goto(server.url + "/console/keyfobs/FK0001");
      await shot(p, "keyfob-ja");
      await p.getByRole("link", { name: "English" }).click();
      expect(await p.getByRole("heading", { level: 1 }).innerText()).toBe("Keyfob FK0001");
    } finally {
      await ja.close();
    }
    await signIn(page, TELLER);
    await page.close();
  }, 60_000);
});
