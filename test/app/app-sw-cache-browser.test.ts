/**
 * In Chromium: the service worker keeps each answer under its own path, so a followed link under /app/ cannot
 * replace the offline page. Session 8 review (s8-rev-web): every navigation was stored as "/app/", and after a link to
 * /app/manifest.webmanifest the offline app was the manifest's JSON. Moved from test/review/s8-web-browser.test.ts.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { startServer } from "../../host/server/serve.js";
import { launchChromium } from "../../tools/chromium.js";
import { ENGINES, freshDb } from "../registry/support.js";

let db: Database;
let drop: () => Promise<void>;
let server: Awaited<ReturnType<typeof startServer>>;
let browser: Awaited<ReturnType<typeof launchChromium>>;

beforeAll(async () => {
  ({ db, drop } = await freshDb(ENGINES[0]));
  server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0" });
  browser = await launchChromium({ locale: "en-US" });
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await server?.close();
  await drop?.();
});

describe("the service worker's cache", () => {
  it("after a link to /app/manifest.webmanifest is followed, the offline app still opens", async () => {
    const page = await browser.context.newPage();
    await page.goto(server.url + "/app/");
    await page.waitForFunction(() => document.documentElement.dataset.offlineReady === "true");
    await page.reload(); // now controlled by the worker
    await page.locator("html[data-ready]").waitFor();
    // A link the customer follows (in a mail, a chat, another site): a navigation to a 200 answer under /app/.
    await page.goto(server.url + "/app/manifest.webmanifest");
    // The worker's put() is not awaited by respondWith: give it up to 5 s to replace what "/app/" holds.
    const cached = await page.evaluate(async () => {
      for (let i = 0; i < 100; i++) {
        for (const n of await caches.keys()) {
          const c = await caches.open(n);
          const page = await c.match("/app/");
          const pageType = page?.headers.get("content-type") ?? "";
          if (page && !pageType.startsWith("text/html")) return pageType;
        }
        await new Promise((res) => setTimeout(res, 50));
      }
      return "text/html";
    });
    await browser.context.setOffline(true);
    try {
      await page.goto(server.url + "/app/").catch(() => undefined);
      const ready = await page.evaluate(() => document.documentElement.dataset.ready === "true");
      expect({ cached, ready }).toEqual({ cached: "text/html", ready: true });
      // The manifest opened offline is the manifest, from its own entry.
      const manifest = await page.goto(server.url + "/app/manifest.webmanifest").catch(() => null);
      expect(manifest?.headers()["content-type"] ?? "").toMatch(/manifest\+json|application\/json/);
    } finally {
      await browser.context.setOffline(false);
      await page.close();
    }
  }, 60_000);
});
