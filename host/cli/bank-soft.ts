/**
 * `fobkit bank soft-config` and `fobkit bank soft-issue`: the software token
 * (issue 15) from the staff CLI. soft-issue runs the customer's side of the
 * issuance (OPAQUE registration, host/soft/client.ts) in this process and the
 * bank's side on the store: the activation password is read from a file,
 * used here, and never printed, stored or sent.
 */
import { statSync } from "node:fs";
import { KIND_LABELS, REGISTRATION_LABELS, SOFT_DEFAULTS, type SoftConfig } from "../registry/soft-tokens.js";
import { readPasswordFile } from "../pskc/key-files.js";
import { PskcError } from "../pskc/types.js";
import { ACTIVATION_PASSWORD_RULE, activationPasswordProblem, finishCustomerRegistration, startCustomerRegistration } from "../soft/client.js";
import { maskMail, smtpMailer, type IssuanceMailer } from "../soft/mail.js";
import { COMMON_OPTIONS, required, runBank } from "./bank-common.js";
import { CliError, intOption, type Command, type Io, type OptionSpec } from "./command.js";

const EXIT_HELP = "Exit status: 0 done, 1 refused (reason code on stderr and in --json), 2 bad usage or input, 3 failed (e.g. not configured).";

export const SMTP_OPTIONS: Record<string, OptionSpec> = {
  smtp: {
    type: "string",
    placeholder: "URL",
    help: "SMTP server for the issuance mail: smtp://host:587 (STARTTLS required), smtps://user@host:465 with --smtp-password-file, or smtp://127.0.0.1:25/?tls=off for a relay on this host (default $FOBKIT_SMTP_URL; none: no mail is sent)",
  },
  "smtp-password-file": {
    type: "string",
    placeholder: "F",
    help: "file whose first line is the SMTP password for the user named in --smtp (default $FOBKIT_SMTP_PASSWORD_FILE); a password written in the URL is seen by every user of the host through ps",
  },
  "mail-from": { type: "string", placeholder: "ADDR", help: "sender of the issuance mail (default $FOBKIT_MAIL_FROM, else otp@ and the SMTP host)" },
};

/** The mailer --smtp and --mail-from ask for, or undefined when no SMTP server is given. */
export async function mailerFrom(values: Record<string, any>, io: Io, command: string): Promise<IssuanceMailer | undefined> {
  const url = values.smtp ?? io.env.FOBKIT_SMTP_URL;
  const passwordFile = values["smtp-password-file"] ?? io.env.FOBKIT_SMTP_PASSWORD_FILE;
  if (!url) {
    if (values["mail-from"]) throw new CliError(`fobkit ${command}: --mail-from needs --smtp URL`);
    if (values["smtp-password-file"]) throw new CliError(`fobkit ${command}: --smtp-password-file needs --smtp URL`);
    return undefined;
  }
  let password: string | undefined;
  if (passwordFile) {
    try {
      password = readPasswordFile(passwordFile);
    } catch (e) {
      if (e instanceof PskcError) throw new CliError(`fobkit ${command}: --smtp-password-file ${passwordFile}: ${e.detail}`);
      throw e;
    }
  }
  let host = "localhost";
  try {
    host = new URL(url).hostname || host;
  } catch {
    // smtpMailer names the problem
  }
  const from = values["mail-from"] ?? io.env.FOBKIT_MAIL_FROM ?? `otp@${/^[0-9.]+$|^\[/.test(host) || !host.includes(".") ? "localhost.localdomain" : host}`;
  try {
    return smtpMailer({ smtpUrl: url, from, password });
  } catch (e) {
    if (e instanceof RangeError) throw new CliError(`fobkit ${command}: ${e.message}`);
    throw e;
  }
}

function configText(c: Partial<SoftConfig> & { opaqueSetup?: boolean }, complete: boolean): string {
  return [
    `service ID     ${c.serviceId ?? "- (not set)"}`,
    `bank name      ${c.bankName ?? "- (not set)"}`,
    `app URL        ${c.appUrl ?? "- (not set)"}`,
    `time zone      ${c.timeZone ?? SOFT_DEFAULTS.timeZone}`,
    `issuance days  ${c.issuanceDays ?? SOFT_DEFAULTS.issuanceDays}`,
    `OPAQUE setup   ${c.opaqueSetup ? "made (sealed in the database)" : "not made yet"}`,
    complete ? "software tokens can be issued" : "software tokens cannot be issued until service ID, bank name and app URL are set",
  ].join("\n");
}

export const bankSoftConfig: Command = {
  name: "bank soft-config",
  summary: "set (or show) the software token's deployment settings: service ID, bank name, app URL, time zone, issuance lifetime",
  description: [
    "With no values, shows the settings. The first run also makes the bank's OPAQUE server setup (its OPRF seed and",
    "key pair), sealed under the key file's newest key like a seed (key rotation re-seals it); it needs --kek-file.",
    "The service ID (8 digits) is fixed once set: every issued token and every app set up is bound to it.",
    "The bank name is what the app shows after set-up (customers are told to check it).",
    "Example: fobkit bank soft-config --service-id 10112235 --bank-name \"ふぉぶ信用金庫\" --app-url https://bank.example.jp/app/",
    EXIT_HELP,
  ].join("\n"),
  options: {
    "service-id": { type: "string", placeholder: "8DIGITS", help: "the deployment's service ID (8 digits; fixed once set)" },
    "bank-name": { type: "string", placeholder: "NAME", help: "the bank's name as the app and the mail show it" },
    "app-url": { type: "string", placeholder: "URL", help: "where customers open the app, e.g. https://bank.example.jp/app/" },
    "time-zone": { type: "string", placeholder: "TZ", help: `the bank's calendar for the next-day rule and the mail's dates (default ${SOFT_DEFAULTS.timeZone})` },
    "issuance-days": { type: "string", placeholder: "N", help: `days an issuance waits for its set-up, 1-90 (default ${SOFT_DEFAULTS.issuanceDays})` },
    "kek-file": { type: "string", placeholder: "FILE", help: "key-encryption key file (default $FOBKIT_BANK_KEK_FILE); needed on the first run" },
    ...COMMON_OPTIONS,
  },
  run: ({ values }, io) => {
    const days = intOption(values, "issuance-days", 1, 90);
    const given: Partial<SoftConfig> = {
      ...(values["service-id"] !== undefined ? { serviceId: values["service-id"] } : {}),
      ...(values["bank-name"] !== undefined ? { bankName: values["bank-name"] } : {}),
      ...(values["app-url"] !== undefined ? { appUrl: values["app-url"] } : {}),
      ...(values["time-zone"] !== undefined ? { timeZone: values["time-zone"] } : {}),
      ...(days !== undefined ? { issuanceDays: days } : {}),
    };
    const show = Object.keys(given).length === 0;
    return runBank("bank soft-config", values, io, { needsKek: !show }, async ({ registry, actor }) => {
      if (!show) await registry.soft.configure(given, actor);
      const settings = await registry.soft.settings();
      const complete = (await registry.soft.config()) !== undefined;
      return { json: { settings: { ...settings, complete } }, text: configText(settings, complete) };
    });
  },
};

/**
 * The activation password, read as `fobkit app setup` reads it (readPasswordFile: UTF-8, one trailing line
 * end dropped, the buffer wiped), so a file that works for one works for the other; then the password rule.
 */
function readActivationPassword(path: string, io: Io): string {
  let password: string;
  try {
    password = readPasswordFile(path);
    if ((statSync(path).mode & 0o077) !== 0) io.stderr.write(`fobkit bank soft-issue: warning: ${path} is readable by others; keep password files mode 0600 and delete them after use\n`);
  } catch (e) {
    if (e instanceof PskcError) throw new CliError(`fobkit bank soft-issue: --activation-password-file ${path}: ${e.message}`);
    throw e;
  }
  const problem = activationPasswordProblem(password);
  if (problem) throw new CliError(`fobkit bank soft-issue: --activation-password-file: ${problem}`, 2, "bad_password");
  return password;
}

export const bankSoftIssue: Command = {
  name: "bank soft-issue",
  summary: "issue a software token to a customer (トークン発行): prints the service ID and user ID, mails them",
  description: [
    "The customer's activation password (利用開始パスワード) is the first line of the file: " + ACTIVATION_PASSWORD_RULE + ".",
    "It is used in this process only, for the customer's side of OPAQUE registration (RFC 9807); the bank stores the",
    "registration record, never the password, and the password is never printed.",
    "A software token the customer never started to use is replaced; a keyfob or a software token in use is refused",
    "(customer_has_token): deactivate it or withdraw it first. After a deactivation, set-up is possible from the next day.",
    "With --smtp the mail トークン発行のご案内 goes to --mail; if it fails the issuance stands (mailSent false).",
    "Example: fobkit bank soft-issue --customer 999800000001 --mail taro@example.jp --activation-password-file ./c1.pw --smtp smtp://127.0.0.1:2525",
    EXIT_HELP,
  ].join("\n"),
  options: {
    customer: { type: "string", placeholder: "ID", help: "the bank's customer id" },
    mail: { type: "string", placeholder: "ADDR", help: "the customer's mail address for トークン発行のご案内" },
    "activation-password-file": { type: "string", placeholder: "F", help: "file whose first line is the activation password the customer chose" },
    ...SMTP_OPTIONS,
    "kek-file": { type: "string", placeholder: "FILE", help: "key-encryption key file (default $FOBKIT_BANK_KEK_FILE)" },
    ...COMMON_OPTIONS,
  },
  run: async ({ values }, io) => {
    const customer = required(values, "customer", "bank soft-issue");
    const mail = required(values, "mail", "bank soft-issue");
    const password = readActivationPassword(required(values, "activation-password-file", "bank soft-issue"), io);
    const mailer = await mailerFrom(values, io, "bank soft-issue");
    return runBank("bank soft-issue", values, io, { needsKek: true }, async ({ registry, actor }) => {
      const { clientRegistrationState, request } = await startCustomerRegistration(password);
      const response = await registry.soft.startIssuance(customer, request.registrationRequest, actor);
      const issue = await finishCustomerRegistration(clientRegistrationState, password, response, mail);
      const r = await registry.soft.issue(customer, issue, actor);
      const mailed = await registry.soft.mailIssuance(r, mailer, actor);
      const mailSent = mailed.sent;
      if (!mailed.sent && mailed.error) io.stderr.write(`fobkit bank soft-issue: warning: the mail to ${maskMail(r.mail)} was not sent (${mailed.error}); the issuance stands: tell the customer the IDs\n`);
      const json = { serviceId: r.serviceId, userId: r.userId, serial: r.serial, customer, state: r.state, setUp: r.setUp, setupFrom: r.setupFrom, setupBefore: r.setupBefore, mailSent };
      return {
        json,
        text: [
          `serviceId   ${r.serviceId}`,
          `userId      ${r.userId}`,
          `customer    ${customer}: ${REGISTRATION_LABELS.issued.en} (${REGISTRATION_LABELS.issued.ja}), ${KIND_LABELS.soft.en} (${KIND_LABELS.soft.ja}), not set up yet`,
          `app         ${r.config.appUrl} (${r.config.bankName})`,
          `set up by   ${r.setupBefore}${r.setupFrom ? ` (not before ${r.setupFrom}: the day after the last deactivation)` : ""}`,
          `mail        ${mailer ? (mailSent ? `sent to ${maskMail(r.mail)}` : "NOT sent (see above)") : "not sent (no --smtp)"}`,
        ].join("\n"),
      };
    });
  },
};

export const BANK_SOFT_COMMANDS = [bankSoftConfig, bankSoftIssue];
