/**
 * How the bank side sends the issuance mail (トークン発行のご案内): the
 * lead's host/soft/mail.ts (IssuanceMail, IssuanceMailer, smtpMailer,
 * checkMailAddress, maskMail). The registry, the server and the CLI take an
 * IssuanceMailer, so tests pass a recording or failing one, and `--smtp URL`
 * the SMTP one.
 */
export * from "./mail.js";
