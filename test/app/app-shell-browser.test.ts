/**
 * The web app's shell in Debian's Chromium (playwright-core, tools/chromium.ts),
 * served by its own plugin (host/app/app.ts) on a bare Fastify: the page,
 * its CSP, the manifest and icons, the form's checks, and the key store.
 * The set-up against a real bank is in test/app/app-flow-browser.test.ts.
 *
 * The key store test derives a seed key in the page with the same
 * protocol.ts the bank runs, stores it through the app's own keystore.js,
 * and checks (1) exportKey on the key read back from IndexedDB rejects and
 * (2) the code screen shows oathtool's codes for the seed bytes Node
 * derives from the same inputs (a page clock moved by page.clock).
 */
import { randomBytes } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appCsp, appPlugin } from "../../host/app/app.js";
import { deriveSeedBytes, setupBase, type SetupTranscript } from "../../host/soft/protocol.js";
import { launchChromium } from "../../tools/chromium.js";
import { oathtool } from "../registry/support.js";

/**
 * Runs `body` (an async function body over `arg`) in the page. A string, so
 * the test runner's transform leaves its import() calls alone: they resolve
 * in the page, through its import map.
 */
export async function inPage<T = any>(page: Page, body: string, arg: unknown = null): Promise<T> {
  return page.evaluate(`(async (arg) => { ${body} })(${JSON.stringify(arg)})`) as Promise<T>;
}

describe("web app shell in Chromium", () => {
  let app: FastifyInstance;
  let url: string;
  let browser: Awaited<ReturnType<typeof launchChromium>>;

  beforeAll(async () => {
    app = Fastify();
    await app.register(appPlugin, {});
    await app.listen({ host: "127.0.0.1", port: 0 });
    url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
    browser = await launchChromium({ locale: "ja-JP" });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await app?.close();
  });

  async function open(path = "/app/"): Promise<{ page: Page; violations: string[] }> {
    const page = await browser.context.newPage();
    const violations: string[] = [];
    page.on("console", (m) => {
      if (/Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    page.on("pageerror", (e) => violations.push("pageerror: " + e.message));
    await page.goto(url + path);
    await page.locator("html[data-ready]").waitFor();
    return { page, violations };
  }

  it("serves the page with a strict CSP that lets no inline script run", async () => {
    const res = await fetch(url + "/app/");
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).toBe(appCsp());
    expect(csp).toMatch(/script-src 'self' 'wasm-unsafe-eval' 'sha256-[A-Za-z0-9+/]+=*';/);
    expect(csp).not.toContain("unsafe-inline");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect((await fetch(url + "/app", { redirect: "manual" })).headers.get("location")).toBe("/app/");

    const { page, violations } = await open();
    expect(violations).toEqual([]);
    // An injected inline script does not run, and the browser reports the violation.
    const ran = await page.evaluate(async () => {
      const seen = new Promise<string>((res) => document.addEventListener("securitypolicyviolation", (e) => res(e.violatedDirective), { once: true }));
      const s = document.createElement("script");
      s.textContent = "document.documentElement.dataset.injected = 'yes'";
      document.body.append(s);
      return { directive: await seen, injected: document.documentElement.dataset.injected ?? null };
    });
    expect(ran).toEqual({ directive: "script-src-elem", injected: null });
    await page.close();
  });

  it("is installable: a manifest scoped to /app/ with 192 and 512 px PNG icons the browser decodes", async () => {
    const m = await (await fetch(url + "/app/manifest.webmanifest")).json();
    expect(m).toMatchObject({ start_url: "/app/", scope: "/app/", display: "standalone", lang: "ja" });
    const { page } = await open();
    expect(await page.locator('link[rel="manifest"]').getAttribute("href")).toBe("/app/manifest.webmanifest");
    for (const icon of m.icons as { src: string; sizes: string; type: string }[]) {
      const size = await page.evaluate(
        (src) =>
          new Promise<string>((res, rej) => {
            const img = new Image();
            img.onload = () => res(`${img.naturalWidth}x${img.naturalHeight}`);
            img.onerror = () => rej(new Error("cannot decode " + src));
            img.src = src;
          }),
        icon.src,
      );
      if (icon.type === "image/png") expect(size).toBe(icon.sizes);
    }
    expect(m.icons.map((i: { sizes: string }) => i.sizes)).toEqual(expect.arrayContaining(["192x192", "512x512"]));
    // Chromium's own verdict (DevTools protocol): the manifest parses without errors, and once the service
    // worker controls the page nothing stands in the way of installing it.
    await page.waitForFunction(() => document.documentElement.dataset.offlineReady === "true");
    await page.reload();
    await page.locator("html[data-ready]").waitFor();
    const cdp = await browser.context.newCDPSession(page);
    const manifest = (await cdp.send("Page.getAppManifest")) as { errors: unknown[]; url: string };
    expect(manifest.url).toBe(url + "/app/manifest.webmanifest");
    expect(manifest.errors).toEqual([]);
    const install = (await cdp.send("Page.getInstallabilityErrors")) as { installabilityErrors: { errorId: string }[] };
    expect(install.installabilityErrors).toEqual([]);
    await page.close();
  });

  it("shows 初期設定 in Japanese with labelled fields, checks the IDs before asking the bank, and switches to English", async () => {
    const { page, violations } = await open();
    expect(await page.locator("html").getAttribute("lang")).toBe("ja");
    expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe("初期設定");
    await page.getByLabel("サービスID").fill("10112235");
    await page.getByLabel("ユーザID").fill("999800000001"); // check digit wrong (Damm: 9)
    await page.getByLabel("利用開始パスワード", { exact: true }).fill("whatever-1");
    // The activation password is spent by the set-up: no password manager should save or offer it (not current-password).
    expect(await page.getByLabel("利用開始パスワード", { exact: true }).getAttribute("autocomplete")).toBe("off");
    await page.getByRole("button", { name: "送信" }).click();
    const userId = page.getByLabel("ユーザID");
    expect(await userId.getAttribute("aria-invalid")).toBe("true");
    expect(await page.locator("#user-id-error").textContent()).toContain("ユーザIDが正しくありません");
    expect(await userId.evaluate((e) => e === document.activeElement)).toBe(true);
    await page.getByLabel("サービスID").fill("1011");
    await page.getByRole("button", { name: "送信" }).click();
    expect(await page.locator("#service-id-error").textContent()).toBe("サービスIDは8桁の数字で入力してください。");
    // Text contrast of at least 4.5:1 (WCAG 2.1 SC 1.4.3) for every piece of text on the screen, errors included.
    const low = await page.evaluate(() => {
      const rgb = (c: string) => (c.match(/[\d.]+/g) ?? []).slice(0, 3).map(Number);
      const lum = ([r, g, b]: number[]) => {
        const f = (v: number) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
        return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
      };
      const bg = (e: Element | null): number[] => {
        for (; e; e = e.parentElement) {
          const c = getComputedStyle(e).backgroundColor;
          if (c && c !== "rgba(0, 0, 0, 0)" && c !== "transparent") return rgb(c);
        }
        return [255, 255, 255];
      };
      const out: string[] = [];
      for (const e of document.querySelectorAll("body *")) {
        if (![...e.childNodes].some((n) => n.nodeType === 3 && n.textContent!.trim())) continue;
        const a = lum(rgb(getComputedStyle(e).color));
        const b = lum(bg(e));
        const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
        if (ratio < 4.5) out.push(`${e.tagName}.${e.className}: ${ratio.toFixed(2)}`);
      }
      return out;
    });
    expect(low).toEqual([]);
    // Every control has an accessible name.
    const unnamed = await page.locator("input, button").evaluateAll((els) => els.filter((e) => !((e as HTMLInputElement).labels?.length || e.getAttribute("aria-label") || e.textContent?.trim())).map((e) => e.outerHTML));
    expect(unnamed).toEqual([]);
    await page.getByRole("button", { name: "English" }).click();
    expect(await page.locator("html").getAttribute("lang")).toBe("en");
    expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe("Set-up");
    await page.getByLabel("Activation password", { exact: true }).waitFor();
    await page.getByRole("button", { name: "日本語" }).click();
    expect(violations).toEqual([]);
    await page.close();
  });

  it("stores the seed only as a non-extractable key that the page cannot export, and shows oathtool's codes with a countdown", async () => {
    const sessionKey = randomBytes(64);
    const t: SetupTranscript = { serviceId: "10112235", userId: "999800000009", startLoginRequest: "ke1", loginResponse: "ke2", finishLoginRequest: "ke3", clientNonce: randomBytes(32), serverNonce: randomBytes(32) };
    const seed = Buffer.from(await deriveSeedBytes(await setupBase(sessionKey, t), t));
    const params = JSON.stringify({ bank: "テスト信用金庫", serviceId: t.serviceId, userId: t.userId, algorithm: "SHA256", digits: 8, period: 60, t0: 0 });
    const T0 = 1_900_000_040_000; // 20 s into a step (1900000020 is a step start)

    const page = await browser.context.newPage();
    await page.clock.install({ time: T0 });
    await page.goto(url + "/app/");
    await page.locator("html[data-ready]").waitFor();
    const stored = await inPage(
      page,
      `const p = await import("@fobkit/soft/protocol.js");
       const ks = await import("/app/keystore.js");
       const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
       const transcript = { ...arg.tr, clientNonce: b64(arg.tr.clientNonce), serverNonce: b64(arg.tr.serverNonce) };
       const key = await p.deriveSeedKey(await p.setupBase(b64(arg.session), transcript), transcript);
       await ks.saveToken({ params: arg.params, key, savedAt: Date.now() });
       return { extractable: key.extractable, usages: key.usages };`,
      { session: sessionKey.toString("base64"), tr: { ...t, clientNonce: t.clientNonce.toString("base64"), serverNonce: t.serverNonce.toString("base64") }, params },
    );
    expect(stored).toEqual({ extractable: false, usages: ["sign"] });

    await page.reload();
    await page.locator("#code[data-code]").waitFor();
    // Read back from IndexedDB (a structured clone of the CryptoKey): still not exportable, in any format.
    const exported = await inPage(
      page,
      `const tok = await (await import("/app/keystore.js")).loadToken();
       const out = [];
       for (const f of ["raw", "jwk"]) {
         try { await crypto.subtle.exportKey(f, tok.key); out.push(f + ": exported"); }
         catch (e) { out.push(f + ": " + e.name); }
       }
       return { out, extractable: tok.key.extractable, algorithm: tok.key.algorithm.name };`,
    );
    expect(exported).toEqual({ out: ["raw: InvalidAccessError", "jwk: InvalidAccessError"], extractable: false, algorithm: "HMAC" });

    expect(await page.locator("#bank-name").textContent()).toBe("テスト信用金庫");
    expect(await page.locator("#code").getAttribute("data-code")).toBe(oathtool(seed, T0 / 1000, { algorithm: "SHA256" }));
    expect(await page.locator("#code").getAttribute("aria-live")).toBe("polite");
    // The countdown runs on the page's clock, which flows from T0 (40 s left then) in real time: on a loaded
    // machine several seconds can pass before this line. The label is redrawn each second, so it shows what
    // the clock says now, or one second more.
    const label = await page.locator("#countdown-label").textContent();
    const pageNow = await page.evaluate(() => Date.now());
    const left = Math.ceil((T0 + 40_000 - pageNow) / 1000);
    expect(label).toMatch(/^次のパスワードまで あと\d+秒$/);
    expect([left, left + 1]).toContain(Number(/あと(\d+)秒/.exec(label!)![1]));
    expect(left).toBeLessThanOrEqual(40);
    // This page's clock is set years from the bank's (the plugin's real clock here): it says the codes may be refused.
    await page.waitForFunction(() => document.documentElement.dataset.clockChecked === "off");
    expect(await page.locator("#clock-warning").textContent()).toMatch(/^この端末の時計が約\d+分ずれているため、表示されるワンタイムパスワードは使えない可能性があります。/);
    await page.clock.fastForward(60_000);
    await page.waitForFunction((c) => document.getElementById("code")?.dataset.code === c, oathtool(seed, T0 / 1000 + 60, { algorithm: "SHA256" }));

    // Remove from this device: a confirmation, then the set-up screen and an empty store.
    await page.getByRole("button", { name: "この端末からトークンを削除" }).click();
    await page.getByRole("button", { name: "削除する" }).click();
    await page.getByRole("heading", { name: "初期設定" }).waitFor();
    // The notice, among the page's status messages (the set-up form's progress note is one too, empty until a set-up runs).
    expect(await page.getByRole("status").filter({ hasText: "削除" }).textContent()).toBe("この端末からトークンを削除しました。");
    expect(await inPage(page, `return (await (await import("/app/keystore.js")).loadToken()) ?? null;`)).toBeNull();
    await page.close();
  });
});
