/**
 * In Chromium: a script that runs in the public app (/app/: an XSS, a compromised vendored module) against a staff
 * member signed in to the console in the same browser. With `--console-listen` the console is another origin and the
 * script gets nothing; on the one listener (the default) it acts as the teller, which is what README's security
 * model warns of. Session 8 review (s8-rev-web), moved from test/review/s8-web-browser.test.ts.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { afterEach, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { addStaff } from "../../host/registry/staff.js";
import { startServer } from "../../host/server/serve.js";
import { launchChromium } from "../../tools/chromium.js";
import { ENGINES, freshDb } from "../registry/support.js";
import { selfSignedCert } from "../server/support.js";

const CLI = { name: "staff:admin", source: "cli" };
const PASSWORD = "alice-correct-horse";

let browser: Awaited<ReturnType<typeof launchChromium>>;
let db: Database | undefined;
let drop: (() => Promise<void>) | undefined;
let server: Awaited<ReturnType<typeof startServer>> | undefined;

afterEach(async () => {
  // A browser per case, closed before the server: its open connections (keep-alive, a service worker's fetch) die
  // with it, so the server's close never waits on them, and no cookie or worker crosses from one case to the next.
  await browser?.close();
  await server?.close();
  await drop?.();
  server = undefined;
  drop = undefined;
});

/** Alice signs in to the console, then the same browser opens the public app, where "injected" script runs. */
async function attackFromApp(consoleListen?: string, tls?: { cert: string; key: string }) {
  ({ db, drop } = await freshDb(ENGINES[0]));
  server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0", consoleListen, tlsCert: tls?.cert, tlsKey: tls?.key });
  await addStaff(db, "alice", "teller", PASSWORD, CLI);
  await server.registry.registerOne({ serial: "FK-REV-1", manufacturer: "fobkit", algorithm: "SHA1", digits: 8, period: 60, t0: 0, secret: randomBytes(20) }, CLI, "test");
  const consoleBase = server.consoleUrl ?? server.url;
  // The HTTPS case uses a throwaway self-signed certificate.
  browser = await launchChromium({ locale: "en-US", ignoreHTTPSErrors: true });
  const page = await browser.context.newPage();
  try {
    await page.goto(consoleBase + "/console/sign-in");
    await page.locator("#staff").fill("alice");
    await page.locator("#password").fill(PASSWORD);
    await Promise.all([page.waitForURL(consoleBase + "/console/"), page.locator("button[type=submit]").last().click()]);
    // The language switch too: its cookie has the session cookie's treatment over HTTPS.
    await page.goto(consoleBase + "/console/lang?to=ja&back=%2Fconsole%2F");
    await page.waitForURL(consoleBase + "/console/");
    const sessionCookies = (await browser.context.cookies(consoleBase))
      .filter((c) => /fobkit_(console|lang)$/.test(c.name))
      .map((c) => ({ name: c.name, path: c.path, secure: c.secure }))
      .sort((a, b) => a.name.localeCompare(b.name));
    await page.goto(server.url + "/app/");
    await page.locator("html[data-ready]").waitFor();
    // The app's CSP (connect-src 'self') lets such a script reach its own origin's /console/; it also tries the
    // console's own origin by its full URL (CSP and CORS must stop that).
    const result = await page.evaluate(async (consoleOrigin: string) => {
      const tryRead = async (url: string) => {
        try {
          return await (await fetch(url)).text();
        } catch {
          return "";
        }
      };
      let home = await tryRead("/console/");
      let base = "";
      if (!/name="_csrf"/.test(home)) {
        home = await tryRead(consoleOrigin + "/console/");
        base = consoleOrigin;
      }
      const csrf = /name="_csrf" value="([^"]+)"/.exec(home)?.[1];
      if (!csrf) return { csrf: false, status: 0 };
      const r = await fetch(base + "/console/keyfobs/FK-REV-1/issue", {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ _csrf: csrf, customer: "mallory" }).toString(),
      });
      return { csrf: true, status: r.status };
    }, consoleBase);
    return { result, customer: (await server.registry.status("FK-REV-1")).customer, sessionCookies };
  } finally {
    await page.close();
  }
}

describe("a script in the public app against a signed-in teller", () => {
  it("with --console-listen: reads no console page and changes no keyfob", async () => {
    expect(await attackFromApp("127.0.0.1:0")).toMatchObject({ result: { csrf: false, status: 0 }, customer: null });
  }, 60_000);

  it("with --console-listen over HTTPS: Chromium keeps the __Host- session and language cookies (Path=/, Secure) and the script still gets nothing", async () => {
    const tls = selfSignedCert();
    try {
      expect(await attackFromApp("127.0.0.1:0", tls)).toEqual({
        result: { csrf: false, status: 0 },
        customer: null,
        sessionCookies: [
          { name: "__Host-fobkit_console", path: "/", secure: true },
          { name: "__Host-fobkit_lang", path: "/", secure: true },
        ],
      });
    } finally {
      rmSync(tls.dir, { recursive: true, force: true });
    }
  }, 60_000);

  it("on the one listener (the default): acts as the teller, as README's security model says (why --console-listen)", async () => {
    // fetch follows the 303 to the keyfob's page: 200.
    expect(await attackFromApp()).toMatchObject({ result: { csrf: true, status: 200 }, customer: "mallory" });
  }, 60_000);
});
