/**
 * How the bank side sends the issuance mail (トークン発行のご案内), as an
 * interface so the registry, the server and the CLI do not depend on how
 * it is sent. The SMTP implementation (nodemailer, `--smtp URL`) is the
 * lead's host/soft/mail.ts; these declarations match its `IssuanceMail`,
 * `IssuanceMailer`, `checkMailAddress` and `maskMail`, so at the merge this
 * file becomes `export * from "./mail.js"`.
 */

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

/**
 * An SMTP mailer for `--smtp URL` (nodemailer's connection URL: smtp://host:port,
 * smtps://user:pass@host) and `--mail-from`. A stand-in with a short text
 * until the lead's host/soft/mail.ts (sendIssuanceMail, the full Japanese
 * text) is merged; the merge replaces the body of this function with it.
 */
export async function smtpMailer(url: string, from: string): Promise<IssuanceMailer> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RangeError("--smtp must be a URL such as smtp://mail.example.jp:587 or smtps://user:password@mail.example.jp");
  }
  if (parsed.protocol !== "smtp:" && parsed.protocol !== "smtps:") throw new RangeError("--smtp must be an smtp:// or smtps:// URL");
  if (!checkMailAddress(from)) throw new RangeError("--mail-from must be a plain e-mail address, e.g. otp@bank.example.jp");
  const { default: nodemailer } = await import("nodemailer");
  const transport = nodemailer.createTransport(url);
  return {
    async send(m: IssuanceMail): Promise<void> {
      const when = (ms: number) => new Intl.DateTimeFormat("ja-JP", { timeZone: m.timeZone, dateStyle: "long", timeStyle: "short" }).format(new Date(ms));
      const bank = m.bankName.replace(/[\r\n]+/g, " ");
      const text = [
        `${bank}です。ワンタイムパスワードのソフトウェアトークンを発行しました。`,
        "アプリを開き、次のサービスIDとユーザID、お申込みの際に決めた利用開始パスワードで初期設定をしてください。",
        "",
        `サービスID: ${m.serviceId}`,
        `ユーザID:   ${m.userId}`,
        `アプリ:     ${m.appUrl}`,
        `初期設定の期限: ${when(m.setupBefore)}`,
        ...(m.setupFrom !== null ? [`初期設定は ${when(m.setupFrom)} 以降にできます (利用解除の翌日以降)。`] : []),
        "",
        "当金庫がメールや電話で利用開始パスワードやワンタイムパスワードをお尋ねすることはありません。",
      ].join("\n");
      await transport.sendMail({ from, to: m.to, subject: `【${bank}】トークン発行のご案内`, text });
    },
  };
}
