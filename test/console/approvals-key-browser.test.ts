/**
 * The approvals page when a request was asked through the HTTP API (maker `staff:<key id>`), in Debian's Chromium
 * driven by playwright-core against a real `fobkit bank serve` on SQLite (set up with the real CLI), as
 * console-browser.test.ts. The page names the key as an API key, with its label and owner (or says none is recorded),
 * in English and Japanese; the key's owner is refused as checker (own_request) and another supervisor approves.
 * Screenshots go to build/console-screens/approvals-key-{en,ja}.png.
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
const SUZUKI = { name: "suzuki", password: "suzuki-supervisor-pw-1" };
const SATO = { name: "sato", password: "sato-supervisor-pw-22" };

describe("approvals asked with an API key, in Chromium", () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let server: Awaited<ReturnType<typeof startServeProcess>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  let seeds: Map<string, Buffer>;
  const keys: Record<string, { id: string; key: string }> = {};
  const approvals: Record<string, string> = {};

  let fobkit: (...args: string[]) => Promise<string>;

  /** Issues `serial` to `customer` with `key`, then locks and unlocks it through the API until the third unlock is a request. */
  async function requestWith(key: string, channel: string, serial: string, customer: string): Promise<string> {
    expect((await call(server.url, "POST", `/v1/tokens/${serial}/issue`, { key, body: { customer } })).status).toBe(200);
    const code = oathtool(seeds.get(serial)!, Date.now() / 1000, { period: PERIOD });
    expect((await call(server.url, "POST", `/v1/customers/${customer}/activate`, { key: channel, body: { code } })).status).toBe(200);
    for (let round = 1; round <= 3; round++) {
      for (let i = 0; i < 5; i++) await call(server.url, "POST", `/v1/customers/${customer}/verify`, { key: channel, body: { code: "00000000" } });
      const r = await call(server.url, "POST", `/v1/customers/${customer}/unlock`, { key });
      if (round < 3) expect(r.status).toBe(200);
      else {
        expect(r).toMatchObject({ status: 409, body: { error: { code: "needs_approval" } } });
        return (r.body as { error: { detail: { approval: string } } }).error.detail.approval;
      }
    }
    throw new Error("unreachable");
  }

  beforeAll(async () => {
    ({ dir, env, seeds, fobkit } = await cliBank({ prefix: "fobkit-approvals-key-", serials: ["FK0001", "FK0002"], period: PERIOD, staff: [SUZUKI, SATO].map((s) => ({ ...s, role: "supervisor" as const })) }));
    mkdirSync(SCREENS, { recursive: true });
    for (const [name, args] of Object.entries({ owned: ["--label", "branch 12 teller app", "--owner", "suzuki"], bare: [] as string[] })) {
      keys[name] = JSON.parse(await fobkit("bank", "add-key", "--role", "staff", ...args, "--json"));
    }
    const channel = (await fobkit("bank", "add-key", "--role", "channel")).trim();
    server = await startServeProcess([], env);
    approvals.owned = await requestWith(keys.owned.key, channel, "FK0001", "C1");
    approvals.bare = await requestWith(keys.bare.key, channel, "FK0002", "C2");
    browser = await launchChromium({ locale: "en-US" });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function signIn(page: Page, who: { name: string; password: string }): Promise<void> {
    await page.goto(server.url + "/console/");
    await page.getByLabel("Staff ID").fill(who.name);
    await page.getByLabel("Password").fill(who.password);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.getByRole("button", { name: "Sign out" }).waitFor();
  }
  const rowOf = (page: Page, approval: string) => page.locator("tr", { hasText: approval });

  it("names the maker key, its label and owner, in English and Japanese; the owner is refused, another supervisor approves", async () => {
    const page = await browser.context.newPage();
    await signIn(page, SUZUKI);
    await page.goto(server.url + "/console/approvals");
    const owned = await rowOf(page, approvals.owned).innerText();
    expect(owned).toContain("API key");
    expect(owned).toContain("branch 12 teller app");
    expect(owned).toContain(keys.owned.id);
    expect(owned).toContain("owner: suzuki");
    const bare = await rowOf(page, approvals.bare).innerText();
    expect(bare).toContain("API key");
    expect(bare).toContain(keys.bare.id);
    expect(bare).toMatch(/no owner recorded/);
    // Not the bare actor name alone: the cell says what the maker is.
    expect(bare).not.toMatch(new RegExp(`^\\s*staff:${keys.bare.id}\\s*$`, "m"));
    await page.screenshot({ path: join(SCREENS, "approvals-key-en.png"), fullPage: true });

    // The owner of the key that asked cannot approve it.
    await rowOf(page, approvals.owned).getByRole("button", { name: "Approve" }).click();
    await expect.poll(() => page.getByRole("alert").innerText()).toMatch(/API key that is yours/);
    expect(await rowOf(page, approvals.owned).count()).toBeGreaterThan(0);

    await page.getByRole("link", { name: "日本語" }).click();
    await page.getByRole("button", { name: "ログアウト" }).waitFor();
    await page.goto(server.url + "/console/approvals");
    const ja = await rowOf(page, approvals.owned).innerText();
    expect(ja).toContain("APIキー");
    expect(ja).toContain("所有者: suzuki");
    expect(await rowOf(page, approvals.bare).innerText()).toContain("所有者の登録なし");
    await page.screenshot({ path: join(SCREENS, "approvals-key-ja.png"), fullPage: true });
    await page.close();

    // Another supervisor approves it.
    // (One persistent context: its cookies are dropped so suzuki's session is not sato's.)
    await browser.context.clearCookies();
    const page2 = await browser.context.newPage();
    await signIn(page2, SATO);
    await page2.goto(server.url + "/console/approvals");
    await rowOf(page2, approvals.owned).getByRole("button", { name: /Approve|承認/ }).click();
    await expect.poll(() => page2.getByRole("status").innerText()).toMatch(/Approved and done|承認し、実行しました/);
    await page2.close();
  }, 60_000);
});
