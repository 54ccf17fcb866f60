/** The issuance mail through nodemailer to a real SMTP server (smtp-server), read back with mailparser. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkMailAddress, issuanceMailText, japaneseDateTime, maskMail, smtpMailer, type IssuanceMail } from "../../host/soft/mail.js";
import { startTestSmtp, type TestSmtp } from "../support/smtp.js";

const MAIL: IssuanceMail = {
  to: "taro@example.jp",
  bankName: "みらい信用金庫",
  serviceId: "10112235",
  userId: "999800000001",
  appUrl: "https://bank.example.jp/app/",
  setupBefore: Date.UTC(2026, 11, 7, 1, 0), // 10:00 JST
  setupFrom: null,
  timeZone: "Asia/Tokyo",
};

let smtp: TestSmtp;
beforeAll(async () => {
  smtp = await startTestSmtp();
});
afterAll(async () => smtp?.close());

describe("issuance mail", () => {
  it("arrives with the subject, both IDs, the app's URL and the deadline in Japan time", async () => {
    const mailer = smtpMailer({ smtpUrl: smtp.url, from: "otp@bank.example.jp" });
    const before = smtp.mails.length;
    await mailer.send(MAIL);
    const got = await smtp.waitFor(before + 1);
    expect(got.to).toEqual(["taro@example.jp"]);
    expect(got.from).toBe("otp@bank.example.jp");
    expect(got.parsed.subject).toBe("【みらい信用金庫】トークン発行のご案内");
    const text = got.parsed.text ?? "";
    expect(text).toContain("サービスID: 10112235");
    expect(text).toContain("999800000001");
    expect(text).toContain("https://bank.example.jp/app/");
    expect(text).toContain("2026年12月7日 10:00 (日本時間)");
    expect(text).not.toContain("以降にできます");
  });

  it("states the next-day rule when set-up may not start yet", () => {
    const { text } = issuanceMailText({ ...MAIL, setupFrom: Date.UTC(2026, 11, 1, 15, 0) });
    expect(text).toContain("2026年12月2日 00:00 (日本時間) 以降にできます");
  });

  it("keeps a bank name with a line break out of the headers", () => {
    const { subject } = issuanceMailText({ ...MAIL, bankName: "A\r\nBcc: x@evil.example" });
    expect(subject).not.toMatch(/[\r\n]/);
  });

  it("fails (does not hang) when the relay refuses, so the caller can record it", async () => {
    const mailer = smtpMailer({ smtpUrl: smtp.url, from: "otp@bank.example.jp" });
    smtp.refuse(true);
    try {
      await expect(mailer.send(MAIL)).rejects.toThrow(/451|unavailable/);
    } finally {
      smtp.refuse(false);
    }
  });

  it("fails within its timeout when nothing listens", async () => {
    const mailer = smtpMailer({ smtpUrl: "smtp://127.0.0.1:1/?tls=off", from: "otp@bank.example.jp", timeoutMs: 2000 });
    await expect(mailer.send(MAIL)).rejects.toThrow();
  });

  it("refuses a bad --smtp or --mail-from by name", () => {
    expect(() => smtpMailer({ smtpUrl: "mail.example.jp", from: "a@b.jp" })).toThrow(/--smtp must be a URL/);
    expect(() => smtpMailer({ smtpUrl: "http://mail.example.jp", from: "a@b.jp" })).toThrow(/smtp:\/\/ or smtps:\/\//);
    expect(() => smtpMailer({ smtpUrl: "smtp://mail.example.jp", from: "not an address" })).toThrow(/--mail-from/);
  });

  // Session 8 review (s8-rev-web): such a URL was refused with the whole of it, password included, on stderr.
  it.each(["s3cr/et", "s3cr#et", "s3cr?et", "s3cr%et"])("refuses an --smtp whose password holds %s without quoting the password", (password) => {
    let message = "";
    try {
      smtpMailer({ smtpUrl: `smtps://mailer:${password}@mail.example.jp:465`, from: "otp@example.jp" });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/--smtp/);
    expect(message).not.toContain(password);
    expect(message).not.toContain("s3cr");
  });

  it("--smtp-password-file needs a user name in the URL", () => {
    expect(() => smtpMailer({ smtpUrl: "smtps://mail.example.jp:465", from: "a@b.jp", password: "pw" })).toThrow(/user name in --smtp/);
  });
});

describe("SMTP sign-in", () => {
  let authSmtp: TestSmtp;
  const PASS = "s3cr/et#?@%pw";
  beforeAll(async () => {
    authSmtp = await startTestSmtp({ auth: { user: "mailer", pass: PASS } });
  });
  afterAll(async () => authSmtp?.close());

  it("signs in with a password given apart from the URL (--smtp-password-file), any character allowed", async () => {
    const mailer = smtpMailer({ smtpUrl: `smtp://mailer@127.0.0.1:${authSmtp.port}/?tls=off`, from: "otp@bank.example.jp", password: PASS });
    await mailer.send(MAIL);
    await authSmtp.waitFor(1);
    expect(authSmtp.logins).toEqual(["mailer"]);
  });

  it("a wrong password is refused by the server (the check above is not vacuous)", async () => {
    const mailer = smtpMailer({ smtpUrl: `smtp://mailer@127.0.0.1:${authSmtp.port}/?tls=off`, from: "otp@bank.example.jp", password: "wrong", timeoutMs: 5000 });
    await expect(mailer.send(MAIL)).rejects.toThrow();
  });
});

describe("mail addresses", () => {
  it("takes plain addresses and refuses header injection, spaces and overlong ones", () => {
    expect(checkMailAddress("taro.yamada+otp@mail.example.co.jp")).toBe("taro.yamada+otp@mail.example.co.jp");
    for (const bad of ["taro@example.jp\r\nBcc: x@y.z", "taro @example.jp", "taro@", "@example.jp", "taro@example", `${"a".repeat(65)}@example.jp`, `a@${"b".repeat(250)}.jp`, 42, null]) {
      expect(checkMailAddress(bad), String(bad)).toBeUndefined();
    }
  });
  it("masks for the audit", () => {
    expect(maskMail("taro@example.jp")).toBe("t***@example.jp");
    expect(maskMail("nope")).toBe("***");
  });
  it("writes dates in the bank's zone", () => {
    expect(japaneseDateTime(Date.UTC(2026, 0, 1, 15, 30), "Asia/Tokyo")).toBe("2026年1月2日 00:30 (日本時間)");
    expect(japaneseDateTime(Date.UTC(2026, 0, 1, 15, 30), "UTC")).toBe("2026年1月1日 15:30 (UTC)");
  });
});
