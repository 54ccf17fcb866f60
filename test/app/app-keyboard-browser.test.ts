/**
 * The web app at /app/ with the keyboard only (Tab, Shift+Tab, Enter, Space, typing), in Debian's Chromium
 * (playwright-core, tools/chromium.ts) against a real bank (test/app/flow-support.ts): the language switch, the
 * set-up form and the first code, never a mouse click or a fill(). At every stop the focused element must show a
 * focus indicator (WCAG 2.2 SC 2.4.7: it matches :focus-visible and has an outline), and after a wrong input the
 * focus must land where the error is said (SC 3.3.1): on the field whose description carries the message, or on
 * the message itself when no one field is wrong.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dammDigit } from "../../host/soft/protocol.js";
import { appInChromium, BANK_NAME, SERVICE_ID, type Bank } from "./flow-support.js";

const PASSWORD = "Kaede-2026!k";

interface Focused {
  id: string;
  tag: string;
  /** Text of the elements its aria-describedby names, joined. */
  description: string;
  visible: boolean;
  outline: string;
}

/** What has the focus, and whether it shows. */
function focused(page: Page): Promise<Focused> {
  return page.evaluate(() => {
    const e = document.activeElement as HTMLElement;
    const style = getComputedStyle(e);
    const ids = (e.getAttribute("aria-describedby") ?? "").split(/\s+/).filter(Boolean);
    return {
      id: e.id || e.textContent?.trim() || "",
      tag: e.tagName.toLowerCase(),
      description: ids.map((id) => document.getElementById(id)?.textContent ?? "").join(" ").trim(),
      visible: e !== document.body && e.matches(":focus-visible") && style.outlineStyle !== "none" && parseFloat(style.outlineWidth) >= 2,
      outline: `${style.outlineStyle} ${style.outlineWidth}`,
    };
  });
}

describe("web app with the keyboard only, in Chromium", () => {
  let app: Awaited<ReturnType<typeof appInChromium>>;
  let bank: Bank;
  let page: Page;
  let pageErrors: string[];

  beforeAll(async () => {
    app = await appInChromium();
    ({ bank, page, pageErrors } = app);
  }, 60_000);

  afterAll(async () => {
    await app?.close();
  });

  /** Tab (or Shift+Tab) once; the focus must then be on `id`, visibly. */
  async function tabTo(id: string, back = false): Promise<void> {
    await page.keyboard.press(back ? "Shift+Tab" : "Tab");
    const f = await focused(page);
    expect(f.id, `focus after ${back ? "Shift+Tab" : "Tab"}`).toBe(id);
    expect(f.visible, `focus indicator on #${id} (${f.outline})`).toBe(true);
  }
  async function typeInto(id: string, text: string): Promise<void> {
    expect((await focused(page)).id).toBe(id);
    await page.keyboard.press("ControlOrMeta+A");
    await page.keyboard.press("Backspace");
    await page.keyboard.type(text);
  }

  it("switches language, sets up and shows a code using only the keyboard; the focus shows at every stop and lands on the error after a wrong input", async () => {
    const pw = join(bank.dir, "activation.pw");
    writeFileSync(pw, PASSWORD + "\n", { mode: 0o600 });
    const userId = (await bank.ok("bank", "soft-issue", "--customer", "C-0100", "--mail", "kaede@example.jp", "--activation-password-file", pw, "--json")).userId as string;
    // A user ID with a right check digit that the bank never issued.
    const body = userId.slice(0, 10) + String((Number(userId[10]) + 1) % 10);
    const stranger = body + String(dammDigit(body));

    await page.goto(bank.url + "/app/");
    await page.locator("html[data-ready]").waitFor();
    await page.getByRole("heading", { name: "初期設定" }).waitFor();

    // The language switch keeps the focus on itself, so the keyboard user is not thrown back to the top.
    await tabTo("lang-toggle");
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Set-up" }).waitFor();
    expect(await focused(page)).toMatchObject({ id: "lang-toggle", visible: true });
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "初期設定" }).waitFor();
    expect(await focused(page)).toMatchObject({ id: "lang-toggle", visible: true });

    // The form in order.
    await tabTo("service-id");
    await page.keyboard.type(SERVICE_ID.slice(0, 7));
    await tabTo("user-id");
    await page.keyboard.type(userId);
    await tabTo("password");
    await page.keyboard.type("wrong-password-1");
    await tabTo("show-password");
    await page.keyboard.press("Space");
    expect(await page.locator("#password").getAttribute("type")).toBe("text");
    await page.keyboard.press("Space");
    expect(await page.locator("#password").getAttribute("type")).toBe("password");
    await tabTo("送信");

    // A wrong field (7 digits): Enter on the button; the focus goes to that field, described by its error.
    await page.keyboard.press("Enter");
    expect(await focused(page)).toMatchObject({ id: "service-id", visible: true, description: expect.stringContaining("サービスIDは8桁の数字で入力してください。") });
    expect(await page.locator("#service-id").getAttribute("aria-invalid")).toBe("true");

    // Right service ID, a user ID the bank never issued: Enter in the field submits; no one field is wrong, so the
    // focus goes to the bank's answer itself.
    await typeInto("service-id", SERVICE_ID);
    await tabTo("user-id");
    await typeInto("user-id", stranger);
    await page.keyboard.press("Enter");
    await page.locator("#setup-status.error").waitFor();
    await page.waitForFunction(() => document.activeElement?.id === "setup-status");
    expect(await focused(page)).toMatchObject({ id: "setup-status", visible: true });
    expect(await page.locator("#setup-status").textContent()).toContain("サービスIDまたはユーザIDが見つかりません");

    // The issued user ID, a wrong password: the focus goes to the password, emptied, described by the bank's answer.
    await tabTo("送信");
    await tabTo("show-password", true);
    await tabTo("password", true);
    await tabTo("user-id", true);
    await typeInto("user-id", userId);
    await tabTo("password");
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.getElementById("setup-status")?.textContent?.includes("あと4回"));
    await page.waitForFunction(() => document.activeElement?.id === "password");
    expect(await focused(page)).toMatchObject({ id: "password", visible: true, description: expect.stringContaining("利用開始パスワードが正しくありません。あと4回誤ると") });
    expect(await page.locator("#password").inputValue()).toBe("");

    // The right password: the first code, and the focus on it, visibly.
    await page.keyboard.type(PASSWORD);
    await page.keyboard.press("Enter");
    await page.locator("#code[data-code]").waitFor();
    expect(await page.locator("#code").getAttribute("data-code")).toMatch(/^[0-9]{8}$/);
    expect(await page.locator("#bank-name").textContent()).toBe(BANK_NAME);
    expect(await focused(page)).toMatchObject({ id: "code", visible: true });

    // Removing the token from this browser: the question's buttons, Cancel first; after the removal the focus
    // goes to the notice that says it was done, not to the page's top.
    await tabTo("この端末からトークンを削除");
    await page.keyboard.press("Enter");
    expect(await focused(page)).toMatchObject({ id: "キャンセル", visible: true });
    await page.keyboard.press("Enter");
    expect(await focused(page)).toMatchObject({ id: "この端末からトークンを削除", visible: true });
    await page.keyboard.press("Enter");
    await tabTo("削除する", true);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "初期設定" }).waitFor();
    await page.waitForFunction(() => document.activeElement !== document.body);
    expect(await focused(page)).toMatchObject({ id: "notice", visible: true });
    expect(await page.locator("#notice").textContent()).toBe("この端末からトークンを削除しました。");
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
