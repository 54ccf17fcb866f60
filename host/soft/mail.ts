/**
 * The issuance mail (トークン発行のご案内): the service ID, the user ID and
 * where the app is, sent once by nodemailer to the bank's SMTP server
 * (`--smtp URL`). What it never holds: the activation password (the bank
 * never has it), the OPAQUE record, a seed, a code. The customer typed the
 * address a minute ago in internet banking, so the mail only confirms what
 * the issuance screen showed; it is not a second factor.
 */
import nodemailer from "nodemailer";

export interface IssuanceMail {
  to: string;
  bankName: string;
  serviceId: string;
  userId: string;
  appUrl: string;
  /** Unix ms: set-up must be done before this. */
  setupBefore: number;
  /** Unix ms: set-up is possible only from this (the next-day rule), or null. */
  setupFrom: number | null;
  /** IANA zone the dates are written in (the bank's, Asia/Tokyo by default). */
  timeZone: string;
}

/** How the registry sends the mail; tests and the CLI pass the SMTP one. */
export interface IssuanceMailer {
  send(mail: IssuanceMail): Promise<void>;
}

/** RFC 5321 §4.5.3.1: 64 octets local part, 254 in all (RFC 3696 errata). ASCII only, no quoting, no spaces. */
const MAIL_RE = /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;
export const MAIL_PATTERN = MAIL_RE.source;

/** The address if it is one the bank can mail (plain ASCII addr-spec), else undefined. */
export function checkMailAddress(addr: unknown): string | undefined {
  return typeof addr === "string" && addr.length <= 254 && MAIL_RE.test(addr) ? addr : undefined;
}

/** For the audit and logs: the first character of the local part and the domain (t***@example.jp). */
export function maskMail(addr: string): string {
  const at = addr.lastIndexOf("@");
  return at < 1 ? "***" : `${addr[0]}***${addr.slice(at)}`;
}

/** "2026年12月7日 10:00" in the zone, and the zone's name for the customer. */
export function japaneseDateTime(ms: number, timeZone: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat("en-US", { timeZone, year: "numeric", month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
      .formatToParts(new Date(ms))
      .map((p) => [p.type, p.value]),
  );
  const zone = timeZone === "Asia/Tokyo" ? "日本時間" : timeZone;
  return `${parts.year}年${parts.month}月${parts.day}日 ${parts.hour}:${parts.minute} (${zone})`;
}

/** Subject and plain-text body, Japanese first (the manual's language), a short English part after. */
export function issuanceMailText(m: IssuanceMail): { subject: string; text: string } {
  const bank = m.bankName.replace(/[\r\n]+/g, " ");
  const from = m.setupFrom !== null ? [`初期設定は ${japaneseDateTime(m.setupFrom, m.timeZone)} 以降にできます (利用解除の翌日以降)。`] : [];
  const text = [
    `${bank}をご利用いただきありがとうございます。`,
    "ワンタイムパスワードのソフトウェアトークンを発行しました。",
    "アプリを開き、次のサービスIDとユーザID、お申込みの際にお客様が決めた利用開始パスワードで初期設定をしてください。",
    "",
    `サービスID: ${m.serviceId}`,
    `ユーザID:   ${m.userId}`,
    `アプリ:     ${m.appUrl}`,
    `初期設定の期限: ${japaneseDateTime(m.setupBefore, m.timeZone)}`,
    ...from,
    "",
    `初期設定のあと、アプリに ${bank} と表示されていることを確かめ、インターネットバンキングの「利用開始」でアプリのワンタイムパスワードを入力してください。`,
    "",
    "ご注意",
    "・当金庫がメールや電話で利用開始パスワードやワンタイムパスワードをお尋ねすることはありません。",
    "・このお申込みに心当たりがない場合は、初期設定をせずに当金庫へご連絡ください。",
    "",
    "--",
    `${bank}: your one-time password app is ready to be set up. Service ID ${m.serviceId}, user ID ${m.userId}, app ${m.appUrl}.`,
    "Use the activation password you chose when you applied. The bank never asks for it by mail or phone.",
    "",
  ].join("\n");
  return { subject: `【${bank}】トークン発行のご案内`, text };
}

export interface SmtpMailerOptions {
  /** smtp://host:port or smtps://user:pass@host:port (nodemailer's URL form). */
  smtpUrl: string;
  /**
   * The SMTP password when it is not in the URL (--smtp-password-file): argv is readable by every user through
   * `ps`, and --workers copies it to each worker's. Needs a user name in the URL; replaces a password there.
   */
  password?: string;
  from: string;
  /** ms for connecting, the greeting and each socket wait; default 10 s. */
  timeoutMs?: number;
}

/**
 * An --smtp value fit for an error message: whatever stands before its last "@" (the user name and password, which
 * may hold any character when it did not parse) is replaced by ***. A value without "@" carries no userinfo.
 */
export function redactSmtpUrl(value: string): string {
  const at = value.lastIndexOf("@");
  if (at < 0) return value;
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(value)?.[0] ?? "";
  return `${scheme}***${value.slice(at)}`;
}

/** The mailer the server and CLI use: one SMTP delivery per issuance, bounded in time. */
export function smtpMailer(o: SmtpMailerOptions): IssuanceMailer {
  let url: URL;
  try {
    url = new URL(o.smtpUrl);
  } catch {
    throw new RangeError(
      `--smtp must be a URL such as smtp://mail.example.jp:587, got ${JSON.stringify(redactSmtpUrl(o.smtpUrl))}` +
        (o.smtpUrl.includes("@") ? " (a user name or password holding / # ? or % must be percent-encoded; or give the password with --smtp-password-file)" : ""),
    );
  }
  if (url.protocol !== "smtp:" && url.protocol !== "smtps:") throw new RangeError(`--smtp must start with smtp:// or smtps://, got ${url.protocol}//`);
  if (!checkMailAddress(o.from)) throw new RangeError(`--mail-from must be a plain mail address, got ${JSON.stringify(o.from)}`);
  if (o.password !== undefined && !url.username) throw new RangeError("--smtp-password-file needs the user name in --smtp, as in smtps://USER@mail.example.jp:465");
  let user: string, pass: string;
  try {
    user = decodeURIComponent(url.username);
    pass = o.password ?? decodeURIComponent(url.password);
  } catch {
    // A lone % in the userinfo: name it without quoting it.
    throw new RangeError("--smtp: the user name or password has a % that is not percent-encoding (write % as %25, or give the password with --smtp-password-file)");
  }
  const t = o.timeoutMs ?? 10_000;
  const transport = nodemailer.createTransport({
    host: url.hostname,
    port: Number(url.port || (url.protocol === "smtps:" ? 465 : 587)),
    secure: url.protocol === "smtps:",
    ...(url.username ? { auth: { user, pass } } : {}),
    // A local relay without STARTTLS (tests, a relay on the host itself) is reached as smtp://127.0.0.1 only.
    ignoreTLS: url.searchParams.get("tls") === "off",
    requireTLS: url.protocol === "smtp:" && url.searchParams.get("tls") !== "off",
    connectionTimeout: t,
    greetingTimeout: t,
    socketTimeout: t,
    disableFileAccess: true,
    disableUrlAccess: true,
  });
  return {
    async send(m: IssuanceMail): Promise<void> {
      const { subject, text } = issuanceMailText(m);
      await transport.sendMail({ from: o.from, to: m.to, subject, text, textEncoding: "base64" });
    },
  };
}
