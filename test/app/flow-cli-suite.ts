/**
 * Issue 15's whole flow with `fobkit app` (the real CLI, as subprocesses)
 * against a real bank (test/app/flow-support.ts: the server in process on
 * SQLite, and on PostgreSQL in a schema of its own, on a clock the test moves, a real SMTP server, a recording proxy):
 * issue, read the mail, set up with the IDs and password, start of use,
 * replay refused, five wrong codes lock, unlock, deactivate, set-up the same
 * day refused, set-up the next day (Tokyo) works. Then the seed search: the
 * bank's seeds (opened from the rows in this process, never printed) appear
 * in no form in the database file, the server's log, the mails, any HTTP
 * body either way, any CLI output, or the app's store.
 *
 * The clock: the CLI reads FOBKIT_CLOCK_OFFSET (host/clock.ts, honoured by
 * every fobkit command that reads the time: `app code` as much as `bank
 * verify`); the in-process server is given the same offset as its `now`.
 */
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { softSerial } from "../../host/soft/protocol.js";
import { BANK_NAME, nextTokyoMidnight, SERVICE_ID, startBank, tokyoNoonToday, wrongCode, type Bank } from "./flow-support.js";
import { base32, seedFound } from "../support/seed-forms.js";

const CUSTOMER = "C-0001";
const MAIL = "taro@example.jp";
const PASSWORD = "Katsu-2026!x";

/** The whole flow against a bank on `engine`: one test file per engine, so the two run on both workers at once. */
export function describeCliFlow(engine: "sqlite" | "postgres"): void {
  describe(`software token, whole flow with fobkit app, bank on ${engine}`, () => {
    let bank: Bank;
    let pw: string;
    const userIds: string[] = [];
    const stores: string[] = [];

    beforeAll(async () => {
      bank = await startBank({ startAt: tokyoNoonToday(), engine });
      pw = join(bank.dir, "activation.pw");
      writeFileSync(pw, PASSWORD + "\n", { mode: 0o600 });
      await bank.ok("bank", "soft-config", "--service-id", SERVICE_ID, "--bank-name", BANK_NAME, "--app-url", bank.url + "/app/", "--json");
    }, 60_000);

    afterAll(async () => {
      await bank?.close();
    });

    const issue = () => bank.ok("bank", "soft-issue", "--customer", CUSTOMER, "--mail", MAIL, "--activation-password-file", pw, "--smtp", bank.smtpUrl, "--json");
    const setup = (userId: string, store: string, password = pw, json = true) =>
      bank.fobkit("app", "setup", "--bank", bank.url, "--service-id", SERVICE_ID, "--user-id", userId, "--activation-password-file", password, "--store", store, ...(json ? ["--json"] : []));
    const code = async (store: string): Promise<{ code: string; bank: string }> => bank.ok("app", "code", "--store", store, "--json");
    const verify = (c: string) => bank.fobkit("bank", "verify", "--customer", CUSTOMER, "--code", c, "--json");
    const errorCode = (r: { stdout: string }) => JSON.parse(r.stdout).error.code as string;

    it("issues, mails the IDs, sets up, starts use, refuses a replay, locks after five wrong codes, unlocks, deactivates; the next set-up waits for the next day", async () => {
      // Issuance (トークン発行) and its mail.
      const issued = await issue();
      expect(issued).toMatchObject({ ok: true, serviceId: SERVICE_ID });
      const userId: string = issued.userId;
      userIds.push(userId);
      expect(bank.mails).toHaveLength(1);
      const mail = bank.mails[0];
      expect(mail.to).toEqual([MAIL]);
      expect(mail.subject).toContain("トークン発行のご案内");
      expect(mail.text).toContain(SERVICE_ID);
      expect(mail.text).toContain(userId);
      expect(mail.text).toContain(bank.url + "/app/");
      expect(mail.raw.includes(Buffer.from(PASSWORD))).toBe(false);

      // A wrong activation password: refused with the tries left, and nothing stored.
      const wrongPw = join(bank.dir, "wrong.pw");
      writeFileSync(wrongPw, "not-the-password\n", { mode: 0o600 });
      const store = join(bank.dir, "store-1");
      stores.push(store);
      const bad = await setup(userId, store, wrongPw);
      expect(bad.code).toBe(1);
      expect(["wrong_password", "wrong_password_local"]).toContain(errorCode(bad));
      expect(bad.stderr).toMatch(/wrong activation password; 4 more wrong tries void the issuance/);
      expect(readdirSync(store)).toEqual(["store.key"]);

      // Set-up (初期設定) with the mail's IDs and the password.
      const done = await setup(userId, store);
      expect(done.code, done.stderr).toBe(0);
      expect(JSON.parse(done.stdout)).toMatchObject({ ok: true, serviceId: SERVICE_ID, userId, bank: BANK_NAME });
      expect(readdirSync(store).sort()).toEqual(["store.key", "token.json"]);
      // A user ID sets up once.
      const again = await setup(userId, join(bank.dir, "store-again"));
      expect(again.code).toBe(1);
      expect(errorCode(again)).toBe("already_set_up");

      // Start of use (利用開始) with the app's code; the bank's name is the one configured.
      const first = await code(store);
      expect(first.bank).toBe(BANK_NAME);
      const act = await bank.ok("bank", "activate", "--serial", softSerial(userId), "--code", first.code, "--json");
      expect(act.result).toBe("accepted");
      // Single use.
      const replay = await verify(first.code);
      expect(replay.code).toBe(1);
      expect(errorCode(replay)).toBe("replayed");

      // Five wrong codes in a row lock; then even the right code is refused until staff unlock.
      bank.advance(60);
      const now = await code(store);
      for (let i = 1; i <= 5; i++) {
        const r = await verify(wrongCode(now.code));
        expect(r.code).toBe(1);
        expect(JSON.parse(r.stdout).error).toMatchObject({ code: "wrong_code", detail: { failures: i, locked: i === 5 } });
      }
      expect(errorCode(await verify(now.code))).toBe("locked");
      await bank.ok("bank", "unlock", "--customer", CUSTOMER, "--json");
      bank.advance(60);
      expect((await bank.ok("bank", "verify", "--customer", CUSTOMER, "--code", (await code(store)).code, "--json")).result).toBe("accepted");

      // Deactivation (利用解除) with a current code.
      bank.advance(60);
      const deact = await bank.ok("bank", "deactivate", "--customer", CUSTOMER, "--code", (await code(store)).code, "--json");
      expect(deact.result).toBe("accepted");

      // A new issuance is allowed at once; its set-up only from the next day in Tokyo.
      const issued2 = await issue();
      const userId2: string = issued2.userId;
      userIds.push(userId2);
      expect(userId2).not.toBe(userId);
      expect(bank.mails).toHaveLength(2);
      expect(bank.mails[1].text).toContain(userId2);
      const store2 = join(bank.dir, "store-2");
      stores.push(store2);
      const early = await setup(userId2, store2);
      expect(early.code).toBe(1);
      const refusal = JSON.parse(early.stdout).error;
      expect(refusal.code).toBe("setup_not_yet");
      const midnight = nextTokyoMidnight(bank.now());
      expect(early.stderr).toContain(new Date(midnight).toISOString());

      bank.setNow(midnight + 90_000);
      const late = await setup(userId2, store2, pw, false);
      expect(late.code, late.stderr).toBe(0);
      expect(late.stdout).toBe(`set up: user ID ${userId2} at ${BANK_NAME}\nthe seed is sealed in ${store2}; show a code with: fobkit app code --store ${store2}\n`);
      const c2 = await code(store2);
      expect((await bank.ok("bank", "activate", "--serial", softSerial(userId2), "--code", c2.code, "--json")).result).toBe("accepted");
      // The old store's seed is not the new one's: its code no longer verifies.
      bank.advance(60);
      const stale = await code(store);
      const fresh = await code(store2);
      expect(stale.code).not.toBe(fresh.code);
      expect((await verify(fresh.code)).code).toBe(0);
    }, 400_000); // a bound against a hang: 31-33 s per engine in session 8's full run at load 10, 137-156 s for both engines in one file was seen before

    it("lets the seed out nowhere: database (file, or pg_dump of the schema), server log, mails, HTTP bodies, CLI output, app store", async () => {
      expect(userIds).toHaveLength(2);
      const places: Record<string, Buffer> = {
        database: bank.dbBytes(),
        "server log": Buffer.concat(bank.logs),
        mails: Buffer.concat(bank.mails.map((m) => Buffer.concat([m.raw, Buffer.from(m.text)]))),
        "HTTP bodies and CLI output": Buffer.concat(bank.captured),
        "app stores": Buffer.concat(stores.flatMap((s) => readdirSync(s).map((f) => readFileSync(join(s, f))))),
      };
      // The search can find what is there: the log and bodies are not empty.
      expect(places["server log"].length).toBeGreaterThan(1000);
      expect(places["HTTP bodies and CLI output"].length).toBeGreaterThan(1000);
      // Nor the activation password: OPAQUE keeps it on the customer's side.
      for (const [where, bytes] of Object.entries(places)) {
        expect(bytes.includes(Buffer.from(PASSWORD)), `password in ${where}`).toBe(false);
        expect(bytes.includes(Buffer.from(Buffer.from(PASSWORD).toString("base64").replace(/=+$/, ""))), `base64 password in ${where}`).toBe(false);
      }
      for (const userId of userIds) {
        const seed = await bank.seedOf(userId);
        expect(seed.length).toBe(32);
        // The database capture holds the token's row (its serial), so it is the data and not an empty dump.
        expect(places.database.includes(Buffer.from(softSerial(userId)))).toBe(true);
        // The search finds a seed that is there, in each form.
        for (const [form, text] of [["raw", seed], ["hex", seed.toString("hex")], ["base64url", seed.toString("base64url")], ["base32", base32(seed)]] as const) {
          expect(seedFound(seed, Buffer.concat([places.database, Buffer.from(text)]))).toContain(form);
        }
        for (const [where, bytes] of Object.entries(places)) expect(seedFound(seed, bytes), `seed of ${userId} in ${where}`).toEqual([]);
        seed.fill(0);
      }
    });
  });
}
