/** `fobkit export`: a batch's good tokens as an encrypted RFC 6030 PSKC file for the bank. */
import { CliError, EXIT_OK, EXIT_USAGE, type Command, intOption } from "./command.js";
import { PskcError, readPasswordFile, readPskFile, type PskcProtection } from "../pskc/index.js";
import { exportBatch, writeExportFile } from "../station/export.js";
import { loadSigner, SignatureError, type PskcSigner } from "../pskc/signature.js";
import { cliErrorFrom, FACTORY_OPTIONS, openFactory, requireString } from "./provision.js";

export const exportCommand: Command = {
  name: "export",
  summary: "write a batch's good tokens to an encrypted PSKC file for the bank",
  description: `One KeyPackage per good token of the batch; seeds encrypted with a pre-shared
AES-128 key (RFC 6030 §6.1, --psk-file with 32 hex digits) or a password
(§6.2 PBKDF2, --password-file), with the HMAC-SHA1 ValueMAC.

A batch is one file: the first export closes the batch, and later keyfobs go
into the next batch (provision and station without --batch start it). A batch
with a keyfob still being provisioned is not exported. Exporting a closed
batch again writes the same tokens (to replace a lost file).

The ValueMAC covers each encrypted seed alone, so seeds could be moved between
KeyPackages unnoticed. --sign-key and --sign-cert sign the whole KeyContainer
(RFC 6030 §7, XML Signature, RSA-SHA256): the bank imports it with
--trust-cert holding the same certificate, and refuses the file if anything
in it was changed, or if it is unsigned. The key is an unencrypted PEM RSA
key of 2048 bits or more (keep it on the export machine only); the
certificate is PEM, and its public key must be the key's.

  fobkit export --factory line7.sqlite --batch 1 --out batch1.pskcxml --psk-file bank.psk
  fobkit export --factory line7.sqlite --batch 1 --out batch1.pskcxml --psk-file bank.psk \
      --sign-key factory-signing.key --sign-cert factory-signing.crt`,
  options: {
    ...FACTORY_OPTIONS,
    batch: { type: "string", help: "the batch to export", placeholder: "ID" },
    out: { type: "string", help: "the PSKC file to write", placeholder: "FILE" },
    "psk-file": { type: "string", help: "file with the AES-128 key as hex", placeholder: "F" },
    "password-file": { type: "string", help: "file with the password (trailing newline not part of it)", placeholder: "F" },
    "sign-key": { type: "string", help: "sign the file with this RSA private key (PEM); needs --sign-cert", placeholder: "K" },
    "sign-cert": { type: "string", help: "the signing key's X.509 certificate (PEM), given to the bank as its --trust-cert", placeholder: "C" },
    force: { type: "boolean", short: "f", help: "overwrite FILE if it exists" },
    json: { type: "boolean", help: "print {file, batch, tokens, serials, signed} as JSON" },
  },
  async run({ values }, io) {
    const batch = intOption(values, "batch", 1, 9999);
    if (batch === undefined) throw new CliError("--batch is required");
    const out = requireString(values, "out");
    if ((values["psk-file"] === undefined) === (values["password-file"] === undefined)) throw new CliError("give exactly one of --psk-file and --password-file");
    if ((values["sign-key"] === undefined) !== (values["sign-cert"] === undefined)) throw new CliError("--sign-key and --sign-cert go together: the key signs, the certificate names it to the bank");
    let signer: PskcSigner | undefined;
    try {
      signer = values["sign-key"] !== undefined ? loadSigner(values["sign-key"], values["sign-cert"]) : undefined;
    } catch (e) {
      if (e instanceof SignatureError) throw new CliError(e.message, EXIT_USAGE, "bad_signing_key");
      throw e;
    }
    let protection: PskcProtection;
    try {
      protection = values["psk-file"] !== undefined ? { kind: "psk", key: readPskFile(values["psk-file"]) } : { kind: "password", password: readPasswordFile(values["password-file"]) };
    } catch (e) {
      if (e instanceof PskcError) throw new CliError(e.message, EXIT_USAGE, "bad_key_file");
      throw e;
    }
    const record = openFactory(values, false);
    try {
      const r = exportBatch(record, batch, protection, signer);
      writeExportFile(out, r.xml, !!values.force);
      if (values.json) io.stdout.write(JSON.stringify({ file: out, batch, tokens: r.serials.length, serials: r.serials, signed: signer !== undefined }) + "\n");
      io.stderr.write(`wrote ${r.serials.length} tokens of batch ${batch} to ${out}${signer ? ", signed" : ""}\n`);
      return EXIT_OK;
    } catch (e) {
      throw cliErrorFrom(e);
    } finally {
      if (protection.kind === "psk") protection.key.fill(0);
      record.close();
    }
  },
};
