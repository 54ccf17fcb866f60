/**
 * `fobkit bank import FILE (--psk-file F | --password-file F)`: a factory's
 * RFC 6030 PSKC file into stock, the whole file or nothing. The file's MAC
 * is checked by host/pskc before any token is looked at; a duplicate serial
 * (in the file or already registered) refuses the file and names it.
 */
import { readFileSync, statSync } from "node:fs";
import { basename } from "node:path";
import { PskcError, readPasswordFile, readPskFile, readPskc, type PskcProtection, type PskcToken } from "../pskc/index.js";
import { loadTrustedCerts, looksSigned, SignatureError, verifyPskcSignature } from "../pskc/signature.js";
import type { NewToken } from "../registry/types.js";
import { SEED_OPTIONS, runBank } from "./bank-common.js";
import { CliError, EXIT_USAGE, type Command } from "./command.js";

/** A factory batch of a few thousand keyfobs is a few MB. */
const MAX_PSKC_BYTES = 64 * 1024 * 1024;

export const bankImport: Command = {
  name: "bank import",
  summary: "import a factory PSKC file (RFC 6030) into stock: all tokens or none",
  usage: "FILE (--psk-file F | --password-file F) [options]",
  description:
    "A --psk-file holds the AES key as hex text; a --password-file holds the password (a trailing newline is not part of it).\n" +
    "Refused, and nothing changed: a MAC that fails, a Policy not understood, malformed or hostile XML, a duplicate serial.\n" +
    "Exit status: 0 imported, 1 refused (duplicate serial), 2 bad input (bad file, MAC, key file, signature).\n" +
    "--trust-cert C (repeatable: one per factory) demands a file signed over its whole KeyContainer (RFC 6030 §7,\n" +
    "XML Signature, RSA-SHA256) by one of these certificates, checked before anything else reads the file: an unsigned,\n" +
    "wrongly signed or altered file is refused, and only what the signature covers is imported. A signed file without\n" +
    "--trust-cert is refused: its signature would go unchecked. $FOBKIT_BANK_TRUST_CERTS (PEM files, ':'-separated)\n" +
    "is the configured trust store used when no --trust-cert is given.\n" +
    "Example: fobkit bank import batch1.pskcxml --psk-file bank.psk --trust-cert factory-signing.crt",
  positionals: true,
  options: {
    "psk-file": { type: "string", placeholder: "F", help: "pre-shared AES key, hex text" },
    "password-file": { type: "string", placeholder: "F", help: "PBKDF2 password" },
    "trust-cert": { type: "string", multiple: true, placeholder: "C", help: "accept only files signed by this factory certificate (PEM; default $FOBKIT_BANK_TRUST_CERTS)" },
    ...SEED_OPTIONS,
  },
  run: ({ values, positionals }, io) => {
    if (positionals.length !== 1) throw new CliError("fobkit bank import: give exactly one PSKC FILE");
    if (!!values["psk-file"] === !!values["password-file"]) throw new CliError("fobkit bank import: give --psk-file or --password-file (one of them)");
    const file = positionals[0];
    let trusted: ReturnType<typeof loadTrustedCerts> = [];
    try {
      // The options, else the configured trust store: every import then demands a signature.
      const files: string[] = values["trust-cert"] ?? (io.env.FOBKIT_BANK_TRUST_CERTS ? io.env.FOBKIT_BANK_TRUST_CERTS.split(":").filter(Boolean) : []);
      trusted = loadTrustedCerts(files);
    } catch (e) {
      if (e instanceof SignatureError) throw new CliError(e.message, EXIT_USAGE, "bad_trust_cert");
      throw e;
    }
    return runBank("bank import", values, io, { needsKek: true }, async ({ registry, actor }) => {
      let tokens: PskcToken[];
      let signedBy: string | undefined;
      let protection: PskcProtection | undefined;
      try {
        let xml: Buffer;
        try {
          if (statSync(file).size > MAX_PSKC_BYTES) throw new CliError(`${file} is larger than ${MAX_PSKC_BYTES} bytes`);
          xml = readFileSync(file);
        } catch (e) {
          if (e instanceof CliError) throw e;
          throw new CliError(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        }
        // The signature first, on the raw file: the reader then reads only what it covers.
        if (trusted.length > 0) {
          try {
            const verified = verifyPskcSignature(xml, trusted);
            xml = verified.xml;
            signedBy = verified.signer.subject;
          } catch (e) {
            if (!(e instanceof SignatureError)) throw e;
            await registry.note(actor, "import", "signature_" + e.code, { file: basename(file) });
            throw new CliError(`${basename(file)}: ${e.message}; nothing was imported`, EXIT_USAGE, "signature_" + e.code);
          }
        } else if (looksSigned(xml)) {
          throw new CliError(`${basename(file)} is signed (XML Signature); give --trust-cert with the factory's certificate so the signature is checked; nothing was imported`, EXIT_USAGE, "signature_unchecked");
        }
        protection = values["psk-file"] ? { kind: "psk", key: readPskFile(values["psk-file"]) } : { kind: "password", password: readPasswordFile(values["password-file"]) };
        tokens = readPskc(xml, protection, { maxBytes: MAX_PSKC_BYTES });
      } catch (e) {
        if (e instanceof PskcError) await registry.note(actor, "import", "pskc_" + e.code, { file: basename(file), where: e.where ?? null });
        throw e;
      } finally {
        if (protection?.kind === "psk") protection.key.fill(0);
      }
      const batch: NewToken[] = tokens.map((t) => ({
        serial: t.serial,
        manufacturer: t.manufacturer,
        model: t.model,
        issuer: t.issuer,
        keyId: t.keyId,
        algorithm: t.algorithm,
        digits: t.digits,
        period: t.period,
        t0: t.t0,
        timeDrift: t.timeDrift,
        secret: t.secret,
      }));
      try {
        const r = await registry.register(batch, actor, "pskc:" + basename(file));
        return {
          json: { imported: r.registered.length, serials: r.registered, ...(signedBy ? { signedBy } : {}) },
          text: `imported ${r.registered.length} token(s) into stock from ${basename(file)}${signedBy ? ` (signature verified: ${signedBy})` : ""}`,
        };
      } finally {
        for (const t of tokens) t.secret.fill(0);
      }
    });
  },
};
