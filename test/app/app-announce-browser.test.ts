/**
 * What a screen reader is given to say after the set-up is refused, read from Chromium's own accessibility tree
 * (CDP Accessibility.getFullAXTree, the tree screen readers are served), in Debian's Chromium via playwright-core.
 *
 * A refusal must reach the user through exactly one channel: either a live region that contains it (announced when
 * its text changes) or the element the focus moves to (its name, content or description, spoken on focus). Both at
 * once is heard twice; neither is not heard. And the focus must really move (a focus event), since a screen reader
 * speaks on that event: pressing Enter in the password field leaves the focus there, and focusing it again is no event.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { CDPSession, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dammDigit } from "../../host/soft/protocol.js";
import { appInChromium, SERVICE_ID, type Bank } from "./flow-support.js";

const PASSWORD = "Tsubaki-2026!t";

interface AXValue {
  value?: unknown;
}
interface AXNode {
  nodeId: string;
  parentId?: string;
  childIds?: string[];
  ignored?: boolean;
  role?: AXValue;
  name?: AXValue;
  description?: AXValue;
  properties?: { name: string; value: AXValue }[];
}

const LIVE_ROLES = new Set(["alert", "status", "log", "marquee", "timer", "alertdialog"]);

/** Where in the accessibility tree `message` would be spoken from: live regions holding it, and what the focused node says. */
async function channels(cdp: CDPSession, message: string): Promise<{ live: string[]; focused: { role: string; name: string; description: string; text: string } }> {
  const { nodes } = (await cdp.send("Accessibility.getFullAXTree")) as unknown as { nodes: AXNode[] };
  const byId = new Map(nodes.map((n) => [n.nodeId, n]));
  const prop = (n: AXNode, name: string) => n.properties?.find((p) => p.name === name)?.value.value;
  const text = (n: AXNode): string => (n.role?.value === "StaticText" ? String(n.name?.value ?? "") : (n.childIds ?? []).map((c) => (byId.get(c) ? text(byId.get(c)!) : "")).join(""));
  const isLive = (n: AXNode) => LIVE_ROLES.has(String(n.role?.value)) || (prop(n, "live") !== undefined && prop(n, "live") !== "off");
  const live: string[] = [];
  for (const n of nodes) {
    if (n.ignored || !isLive(n)) continue;
    // The region itself, not each node inside it: count the outermost live node holding the message.
    let outer = true;
    for (let p = n.parentId ? byId.get(n.parentId) : undefined; p; p = p.parentId ? byId.get(p.parentId) : undefined) if (isLive(p)) outer = false;
    if (outer && text(n).includes(message)) live.push(`${String(n.role?.value)}: ${text(n)}`);
  }
  // The document itself says it is focused too (it holds the focus); the element is the other one.
  const all = nodes.filter((n) => prop(n, "focused") === true && n.role?.value !== "RootWebArea");
  expect(all.map((n) => n.role?.value), "focused nodes in the accessibility tree").toHaveLength(1);
  const f = all[0];
  return { live, focused: { role: String(f!.role?.value), name: String(f!.name?.value ?? ""), description: String(f!.description?.value ?? ""), text: text(f!) } };
}

describe("a refused set-up is announced once, in Chromium's accessibility tree", () => {
  let app: Awaited<ReturnType<typeof appInChromium>>;
  let bank: Bank;
  let page: Page;
  let pageErrors: string[];
  let cdp: CDPSession;

  beforeAll(async () => {
    app = await appInChromium();
    ({ bank, page, pageErrors } = app);
    cdp = await app.browser.context.newCDPSession(page);
    await cdp.send("Accessibility.enable");
  }, 60_000);

  afterAll(async () => {
    await app?.close();
  });

  /** Focus events since the last call, by element id. */
  const focusEvents = () => page.evaluate(() => ((window as unknown as { focusins: string[] }).focusins ?? []).splice(0));

  it("a wrong password: heard once, from the password field the focus moves to; a refusal of no one field: once, from the message the focus moves to", async () => {
    const pw = join(bank.dir, "activation.pw");
    writeFileSync(pw, PASSWORD + "\n", { mode: 0o600 });
    const userId = (await bank.ok("bank", "soft-issue", "--customer", "C-0200", "--mail", "tsubaki@example.jp", "--activation-password-file", pw, "--json")).userId as string;
    const body = userId.slice(0, 10) + String((Number(userId[10]) + 1) % 10);
    const stranger = body + String(dammDigit(body));

    await page.goto(bank.url + "/app/");
    await page.locator("html[data-ready]").waitFor();
    await page.evaluate(() => {
      const w = window as unknown as { focusins: string[] };
      w.focusins = [];
      document.addEventListener("focusin", (e) => w.focusins.push((e.target as HTMLElement).id));
    });
    await page.locator("#service-id").fill(SERVICE_ID);
    await page.locator("#user-id").fill(userId);
    await page.locator("#password").fill("wrong-password-1");
    // Enter in the password field: the focus is there already when the answer comes.
    await page.locator("#password").focus();
    await focusEvents();
    await page.keyboard.press("Enter");
    await page.waitForFunction(() => document.getElementById("setup-status")?.textContent?.includes("あと4回"));
    await page.waitForFunction(() => document.activeElement?.id === "password");
    const wrong = (await page.locator("#setup-status").textContent())!;
    expect(wrong).toContain("利用開始パスワードが正しくありません");
    expect(await focusEvents(), "the focus must arrive at the password anew, or nothing is spoken").toContain("password");
    const a = await channels(cdp, wrong);
    expect(a.live, "a live region holds the message too: it is heard twice").toEqual([]);
    expect(a.focused.role).toBe("textbox");
    expect(a.focused.description).toContain(wrong);
    expect(a.focused.name).not.toContain(wrong);

    // A user ID the bank never issued: no one field is wrong; the focus goes to the answer itself.
    await page.locator("#user-id").fill(stranger);
    await page.locator("#password").fill("wrong-password-2");
    await page.locator("#password").press("Enter");
    await page.waitForFunction(() => document.getElementById("setup-status")?.textContent?.includes("見つかりません"));
    await page.waitForFunction(() => document.activeElement?.id === "setup-status");
    const unknown = (await page.locator("#setup-status").textContent())!;
    const b = await channels(cdp, unknown);
    expect(b.live, "a live region holds the message too: it is heard twice").toEqual([]);
    expect(b.focused.text).toContain(unknown);
    // Said once by the focused node: its text, and not its description again.
    expect(b.focused.description).not.toContain(unknown);
    expect(pageErrors).toEqual([]);
  }, 120_000);
});
