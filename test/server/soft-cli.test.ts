/**
 * The software token from the staff CLI (in process through runCli, the
 * entry of bin/fobkit.js), on SQLite and PostgreSQL: soft-config, soft-issue
 * with the mail read from a real SMTP server (smtp-server), the app's set-up
 * against a server on the same database, `bank activate --customer`, and
 * status / tokens with kind and registration status. The activation password
 * appears in no output and no mail.
 */

import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { KeyRing } from "../../host/registry/key-ring.js";
import { openMigrated } from "../../host/registry/open-database.js";
import { startServer } from "../../host/server/serve.js";
import { issueOnCustomerSide, setUp } from "../../host/soft/client.js";
import { createApiKey } from "../../host/registry/api-keys.js";
import { startServeProcess } from "./spawn.js";
import { ENGINES, oathtool } from "../registry/support.js";
import { startTestSmtp, type TestSmtp } from "../support/smtp.js";
import { runCliCaptured } from "./support.js";

const PASSWORD = "Correct-horse9";

interface Out {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
}

describe.each(ENGINES)("fobkit bank soft-* on $name", (engine) => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let drop: () => Promise<void>;
  let url: string;
  let smtp: TestSmtp;

  async function bank(...args: string[]): Promise<Out> {
    const r = await runCliCaptured(["bank", ...args], env);
    return { ...r, json: args.includes("--json") ? JSON.parse(r.stdout.trim().split("\n").at(-1)!) : undefined };
  }

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "fobkit-soft-cli-"));
    const f = await engine.fresh();
    drop = f.drop;
    url = f.url;
    writeFileSync(join(dir, "pw"), PASSWORD + "\n", { mode: 0o600 });
    env = { FOBKIT_BANK_DB: f.url, FOBKIT_BANK_KEK_FILE: join(dir, "bank.kek"), USER: "alice", PATH: process.env.PATH };
    expect((await bank("init-kek")).code).toBe(0);
    smtp = await startTestSmtp();
  });
  afterEach(async () => {
    await smtp.close();
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("soft-config shows, then sets; soft-issue mails the IDs (never the password); the app sets up; activate --customer; status and tokens show kind and 未登録/発行済/利用中", async () => {
    const shown = await bank("soft-config", "--json");
    expect(shown).toMatchObject({ code: 0, json: { settings: { complete: false, opaqueSetup: false, timeZone: "Asia/Tokyo", issuanceDays: 7 } } });
    // Not configured: soft-issue fails clearly (exit 3, not_configured).
    const early = await bank("soft-issue", "--customer", "c1", "--mail", "taro@example.jp", "--activation-password-file", join(dir, "pw"), "--json");
    expect(early).toMatchObject({ code: 3, json: { ok: false, error: { code: "not_configured" } } });
    expect(await bank("soft-config", "--service-id", "1011223", "--json")).toMatchObject({ code: 2, json: { error: { code: "bad_service_id" } } });
    const set = await bank("soft-config", "--service-id", "10112235", "--bank-name", "ふぉぶ信用金庫", "--app-url", "https://bank.example.jp/app/", "--json");
    expect(set).toMatchObject({ code: 0, json: { settings: { complete: true, opaqueSetup: true, serviceId: "10112235" } } });

    expect(await bank("status", "--customer", "c1")).toMatchObject({ code: 0, stdout: expect.stringContaining("not_registered (未登録)") });
    const issued = await bank("soft-issue", "--customer", "c1", "--mail", "taro@example.jp", "--activation-password-file", join(dir, "pw"), "--smtp", smtp.url, "--mail-from", "otp@bank.example.jp", "--json");
    expect(issued).toMatchObject({ code: 0, json: { ok: true, serviceId: "10112235", state: "issued", setUp: false, mailSent: true } });
    const userId = issued.json.userId as string;
    const mail = await smtp.waitFor(1);
    expect(smtp.mails).toHaveLength(1);
    expect(mail.to).toEqual(["taro@example.jp"]);
    expect(mail.from).toBe("otp@bank.example.jp");
    expect(mail.parsed.subject).toBe("【ふぉぶ信用金庫】トークン発行のご案内");
    expect(mail.parsed.text).toContain(userId);
    expect(mail.parsed.text).toContain("10112235");
    expect(mail.parsed.text).toContain("https://bank.example.jp/app/");
    for (const out of [issued.stdout, issued.stderr, mail.raw.toString("utf8"), mail.parsed.text ?? ""]) expect(out).not.toContain(PASSWORD);
    const st = await bank("status", "--customer", "c1");
    expect(st.stdout).toMatch(/kind\s+software token \(ソフトウェアトークン\)/);
    expect(st.stdout).toContain("issued (発行済), app not set up yet");
    const list = await bank("tokens");
    const line = list.stdout.split("\n").find((l) => l.startsWith(`SW${userId}\t`))!.split("\t");
    expect([line[1], line[2], line[6], line[7]]).toEqual(["issued", "c1", "soft", "issued (発行済), app not set up yet"]);

    // The app sets up against a server on the same database; then start of use from the CLI.
    const db = await openMigrated(url);
    const server = await startServer({ db, keys: KeyRing.fromFile(env.FOBKIT_BANK_KEK_FILE!), listen: "127.0.0.1:0" });
    try {
      const app = await setUp({ bankUrl: server.url, serviceId: "10112235", userId, password: PASSWORD, seed: "bytes" });
      const code = oathtool(Buffer.from(app.seedBytes!), Date.now() / 1000, { algorithm: "SHA256", digits: 8, period: 60 });
      expect(await bank("activate", "--customer", "c1", "--code", code, "--json")).toMatchObject({ code: 0, json: { ok: true, state: "active", serial: `SW${userId}` } });
    } finally {
      await server.close();
      await db.close();
    }
    expect((await bank("status", "--customer", "c1", "--json")).json).toMatchObject({ registration: { status: "in_use", label: "利用中", kind: "soft", otpRequired: true }, token: { kind: "soft", setUp: true } });
    // In use: a new issuance is refused.
    expect(await bank("soft-issue", "--customer", "c1", "--mail", "taro@example.jp", "--activation-password-file", join(dir, "pw"), "--json")).toMatchObject({ code: 1, json: { error: { code: "customer_has_token" } } });
  });

  it("soft-issue refuses a password that breaks the rule, naming the rule, not the password; and --mail-from without --smtp", async () => {
    await bank("soft-config", "--service-id", "10112235", "--bank-name", "B", "--app-url", "https://bank.example.jp/app/");
    const short = "Abc12!x";
    writeFileSync(join(dir, "short"), short + "\n", { mode: 0o600 });
    const r = await bank("soft-issue", "--customer", "c1", "--mail", "taro@example.jp", "--activation-password-file", join(dir, "short"));
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("8-64 printable ASCII");
    expect(r.stderr + r.stdout).not.toContain(short);
    const spaced = "has a space in it";
    writeFileSync(join(dir, "spaced"), spaced, { mode: 0o600 });
    const s = await bank("soft-issue", "--customer", "c1", "--mail", "taro@example.jp", "--activation-password-file", join(dir, "spaced"));
    expect(s.code).toBe(2);
    expect(s.stderr + s.stdout).not.toContain(spaced);
    expect((await bank("soft-issue", "--customer", "c1", "--mail", "taro@example.jp", "--activation-password-file", join(dir, "pw"), "--mail-from", "a@b.jp")).code).toBe(2);
    expect(await bank("soft-issue", "--customer", "c1", "--mail", "not-a-mail", "--activation-password-file", join(dir, "pw"), "--json")).toMatchObject({ code: 2, json: { error: { code: "bad_mail" } } });
    expect(await bank("status", "--customer", "c1", "--json")).toMatchObject({ json: { registration: { status: "not_registered" } } });
  });
  it("soft-issue audits the mail as the API does: not_configured without --smtp, ok when sent, failed when the server refuses", async () => {
    await bank("soft-config", "--service-id", "10112235", "--bank-name", "B", "--app-url", "https://bank.example.jp/app/");
    const mailAudit = async (customer: string) =>
      (await bank("audit", "--customer", customer, "--json")).json.records.filter((a: { action: string }) => a.action === "mail").map((a: { outcome: string; detail: Record<string, unknown> }) => [a.outcome, a.detail]);
    const issue = (customer: string, ...more: string[]) => bank("soft-issue", "--customer", customer, "--mail", "taro@example.jp", "--activation-password-file", join(dir, "pw"), ...more, "--json");
    expect(await issue("c1")).toMatchObject({ code: 0, json: { mailSent: false } });
    expect(await mailAudit("c1")).toEqual([["not_configured", { kind: "soft-issue", mail: "t***@example.jp" }]]);
    expect(await issue("c2", "--smtp", smtp.url)).toMatchObject({ code: 0, json: { mailSent: true } });
    expect(await mailAudit("c2")).toEqual([["ok", { kind: "soft-issue", mail: "t***@example.jp" }]]);
    // Nothing listens on port 1: the mail fails, the issuance stands.
    const failed = await issue("c3", "--smtp", "smtp://127.0.0.1:1/?tls=off");
    expect(failed).toMatchObject({ code: 0, json: { mailSent: false } });
    expect(failed.stderr).toContain("was not sent");
    expect(await mailAudit("c3")).toMatchObject([["failed", { kind: "soft-issue", mail: "t***@example.jp", error: expect.any(String) }]]);
  });

  it("--smtp-password-file (or $FOBKIT_SMTP_PASSWORD_FILE) signs in to the SMTP server; a URL that does not parse is refused without its password", async () => {
    await bank("soft-config", "--service-id", "10112235", "--bank-name", "B", "--app-url", "https://bank.example.jp/app/");
    const smtpPass = "s3cr/et#pw?";
    const authSmtp = await startTestSmtp({ auth: { user: "mailer", pass: smtpPass } });
    try {
      writeFileSync(join(dir, "smtp.pw"), smtpPass + "\n", { mode: 0o600 });
      const smtpUrl = `smtp://mailer@127.0.0.1:${authSmtp.port}/?tls=off`;
      const issue = (customer: string, ...more: string[]) => bank("soft-issue", "--customer", customer, "--mail", "taro@example.jp", "--activation-password-file", join(dir, "pw"), ...more, "--json");
      expect(await issue("c1", "--smtp", smtpUrl, "--smtp-password-file", join(dir, "smtp.pw"))).toMatchObject({ code: 0, json: { mailSent: true } });
      env.FOBKIT_SMTP_PASSWORD_FILE = join(dir, "smtp.pw");
      expect(await issue("c2", "--smtp", smtpUrl)).toMatchObject({ code: 0, json: { mailSent: true } });
      delete env.FOBKIT_SMTP_PASSWORD_FILE;
      expect(authSmtp.logins).toEqual(["mailer", "mailer"]);
      const missing = await issue("c3", "--smtp", smtpUrl, "--smtp-password-file", join(dir, "nope"));
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain("--smtp-password-file");
      // The password written into the URL unencoded: bank serve (and $FOBKIT_SMTP_URL) refuse it, naming --smtp, not the password.
      for (const run of [() => bank("serve", "--smtp", `smtps://mailer:${smtpPass}@mail.example.jp:465`, "--listen", "127.0.0.1:0"), async () => {
        env.FOBKIT_SMTP_URL = `smtps://mailer:${smtpPass}@mail.example.jp:465`;
        try {
          return await bank("serve", "--listen", "127.0.0.1:0");
        } finally {
          delete env.FOBKIT_SMTP_URL;
        }
      }]) {
        const bad = await run();
        expect(bad.code).toBe(2);
        expect(bad.stderr).toMatch(/--smtp must be a URL/);
        expect(bad.stderr + bad.stdout).not.toContain("s3cr");
      }
    } finally {
      await authSmtp.close();
    }
  });

  it("bank serve --smtp --mail-from: an issuance through the channel API mails the IDs from the given sender", async () => {
    await bank("soft-config", "--service-id", "10112235", "--bank-name", "ふぉぶ信用金庫", "--app-url", "https://bank.example.jp/app/");
    const db = await openMigrated(url);
    const channel = (await createApiKey(db, "channel")).key;
    await db.close();
    const serve = await startServeProcess(["--db", url, "--kek-file", env.FOBKIT_BANK_KEK_FILE!, "--smtp", smtp.url, "--mail-from", "otp@bank.example.jp"]);
    try {
      const r = await issueOnCustomerSide({ bankUrl: serve.url, apiKey: channel, customer: "c1", mail: "hanako@example.jp", password: PASSWORD });
      expect(r).toMatchObject({ state: "issued", mailSent: true });
      const mail = await smtp.waitFor(1);
      expect(mail).toMatchObject({ from: "otp@bank.example.jp", to: ["hanako@example.jp"] });
      expect(mail.parsed.text).toContain(r.userId);
    } finally {
      await serve.stop();
    }
    // A bad --smtp is refused before the server starts.
    const bad = await bank("serve", "--smtp", "http://mail.example.jp", "--listen", "127.0.0.1:0");
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/smtp/);
  });
});
