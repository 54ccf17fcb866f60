/**
 * Attack/fault review of the software token (issue 15), R4: the web app
 * asks the bank first and checks its storage last. A set-up is single use
 * at the bank (the seed is sealed, setup_at set, the user ID never sets up
 * again), so a browser whose IndexedDB cannot store the key (private
 * browsing, storage blocked by policy or quota, a profile error) burns the
 * issuance: the bank holds a seed nobody has, the retry answers
 * already_set_up, the customer must issue again. `fobkit app setup` checks
 * its store BEFORE the bank (host/cli/app.ts, prepareStore: "a try costs
 * one of five, so nothing local may fail after it"); the page should probe
 * IndexedDB the same way before its first request.
 *
 * Fault injected: IndexedDB.open fails in the page (addInitScript), as it
 * does where storage is denied. Seen failing on soft-review (merge of
 * soft-app and soft-bank): the bank's row is set up and the page shows the
 * storage error.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { startServer } from "../../host/server/serve.js";
import { finishCustomerRegistration, startCustomerRegistration } from "../../host/soft/client.js";
import { softSerial } from "../../host/soft/protocol.js";
import { launchChromium } from "../../tools/chromium.js";
import { ENGINES, freshDb } from "../registry/support.js";

const SERVICE_ID = "10112235";
const PASSWORD = "Correct-horse9";

describe("review R4: the web app with no usable IndexedDB", () => {
  let db: Database;
  let drop: () => Promise<void>;
  let server: Awaited<ReturnType<typeof startServer>>;
  let browser: Awaited<ReturnType<typeof launchChromium>>;

  beforeAll(async () => {
    ({ db, drop } = await freshDb(ENGINES[0]));
    server = await startServer({ db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0" });
    await server.registry.soft.configure({ serviceId: SERVICE_ID, bankName: "ふぉぶ信用金庫", appUrl: server.url + "/app/" }, { name: "staff:admin", source: "cli" });
    browser = await launchChromium({ locale: "ja-JP" });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await drop?.();
  });

  it("review-R4: a page that cannot store the key does not spend the user ID's one set-up at the bank", async () => {
    const channel = { name: "channel:review", source: "10.0.0.9" };
    const { clientRegistrationState, request } = await startCustomerRegistration(PASSWORD);
    const response = await server.registry.soft.startIssuance("c1", request.registrationRequest, channel);
    await server.registry.soft.issue("c1", await finishCustomerRegistration(clientRegistrationState, PASSWORD, response, "t@example.jp"), channel);

    const page = await browser.context.newPage();
    // Storage denied (as in a private window or under a policy): every IndexedDB open fails.
    await page.addInitScript(() => {
      IDBFactory.prototype.open = function () {
        throw new DOMException("storage is not allowed", "SecurityError");
      };
    });
    await page.goto(server.url + "/app/");
    await page.getByRole("heading", { name: "初期設定" }).waitFor();
    await page.getByLabel("サービスID").fill(SERVICE_ID);
    await page.getByLabel("ユーザID").fill(response.userId);
    await page.getByLabel("利用開始パスワード", { exact: true }).fill(PASSWORD);
    await page.getByRole("button", { name: "送信" }).click(); // the manual's label since 480d624 (was 設定する when this test was written)
    await page.locator("#setup-status.error").waitFor({ timeout: 30_000 });
    const shown = await page.locator("#setup-status").textContent();
    await page.close();

    const row = await db.get<{ setup_at: number | null; fail_count: number }>("SELECT setup_at, fail_count FROM tokens WHERE serial = ?", [softSerial(response.userId)]);
    // The page said it could not store the token; the bank must not have spent the set-up on it.
    expect({ shown: Boolean(shown), setUpAtBank: row?.setup_at !== null, tries: row?.fail_count }).toEqual({ shown: true, setUpAtBank: false, tries: 0 });
    // ...and the page says so before asking the bank (the user ID is still unused), not "stored nothing after set-up".
    expect(shown).toContain("銀行への初期設定はまだ行っていません");
  }, 90_000);
});
