/**
 * `fobkit bank import FILE (--psk-file F | --password-file F)`: a factory's
 * or vendor's RFC 6030 PSKC file into stock, the whole file or nothing. The
 * file's MACs are checked by host/pskc before any token is looked at; every
 * element must be understood; a duplicate serial (in the file or already
 * registered) refuses the file and names it. Two explicit exceptions, each
 * named in the output and audited: --skip-unsupported leaves out keys of
 * other kinds (HOTP, OCRA, vendor algorithms), and --allow-plaintext takes
 * seeds a vendor sent in the clear on sealed media. With --trust-cert (or
 * $FOBKIT_BANK_TRUST_CERTS) the file's XML Signature is checked on the raw
 * file first, and the reader reads only what the signature covers.
 */
import { closeSync, constants, fstatSync, openSync, readFileSync } from "node:fs";
import { basename } from "node:path";
import {
  PskcError,
  readPasswordFile,
  readPskFile,
  readPskcReport,
  type PskcProtection,
  type PskcReadResult,
  type PskcSkipped,
} from "../pskc/index.js";
import { loadTrustedCerts, looksSigned, SignatureError, verifyPskcSignature } from "../pskc/signature.js";
import type { AuditEntry } from "../registry/token-store.js";
import type { NewToken } from "../registry/types.js";
import { COMMON_OPTIONS, SEED_OPTIONS, runBank } from "./bank-common.js";
import { CliError, EXIT_USAGE, oneOf, type Command } from "./command.js";

/** A factory batch of a few thousand keyfobs is a few MB. */
const MAX_PSKC_BYTES = 64 * 1024 * 1024;

/**
 * The file's bytes, or a CliError naming what it is instead. Opened without blocking and checked
 * on the open descriptor: a FIFO (size 0 by stat) would block the read for ever with no writer,
 * and a device such as /dev/zero (size 0 too) would be read until memory ran out.
 */
function readPskcFile(file: string): Buffer {
  const fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      const kind = st.isFIFO() ? "FIFO" : st.isCharacterDevice() || st.isBlockDevice() ? "device" : st.isSocket() ? "socket" : st.isDirectory() ? "directory" : "special file";
      throw new CliError(`${file} is not a regular file (a ${kind}); give the PSKC file itself`);
    }
    if (st.size > MAX_PSKC_BYTES) throw new CliError(`${file} is larger than ${MAX_PSKC_BYTES} bytes`);
    const xml = readFileSync(fd);
    // It may have grown since fstat.
    if (xml.length > MAX_PSKC_BYTES) throw new CliError(`${file} is larger than ${MAX_PSKC_BYTES} bytes`);
    return xml;
  } finally {
    closeSync(fd);
  }
}
const SERIAL_SOURCES = ["serial-no", "key-id"] as const;

function describeSkipped(s: PskcSkipped): string {
  const names = [s.serial !== undefined ? `serial ${JSON.stringify(s.serial)}` : "", s.keyId !== undefined ? `Key@Id ${JSON.stringify(s.keyId)}` : ""].filter(Boolean);
  return `KeyPackage[${s.package}]${names.length ? ` (${names.join(", ")})` : ""}: ${s.reason}`;
}

export const bankImport: Command = {
  name: "bank import",
  summary: "import a factory PSKC file (RFC 6030) into stock: all tokens or none",
  usage: "FILE (--psk-file F | --password-file F | --allow-plaintext) [options]",
  description:
    "A --psk-file holds the AES key as hex text; a --password-file holds the password (a trailing newline is not part of it).\n" +
    "Refused, and nothing changed: a MAC that fails, an element or Policy not understood, malformed or hostile XML, a duplicate serial.\n" +
    "A key's Policy StartDate and ExpiryDate are kept: the keyfob cannot be activated or verified outside them.\n" +
    "\n" +
    "Vendor files:\n" +
    "  --skip-unsupported   import the TOTP keys of a file that also holds HOTP, OCRA or vendor keys;\n" +
    "                       each package left out is listed and audited. A malformed package or a failed\n" +
    "                       MAC anywhere still refuses the whole file.\n" +
    "  --allow-plaintext    take seeds written in the clear (PlainValue), as some vendors ship them on\n" +
    "                       sealed media; a warning is printed and the import audited. No key file is\n" +
    "                       needed for a file that encrypts nothing.\n" +
    "  --serial-from key-id when the file has no DeviceInfo/SerialNo and the vendor writes the serial\n" +
    "                       printed on the keyfob as Key@Id.\n" +
    "\n" +
    "Signed files:\n" +
    "  --trust-cert C (repeatable: one per factory) demands a file signed over its whole KeyContainer (RFC 6030 §7,\n" +
    "  XML Signature, RSA-SHA256) by one of these certificates, checked before anything else reads the file: an\n" +
    "  unsigned, wrongly signed or altered file is refused, and only what the signature covers is imported. A signed\n" +
    "  file without --trust-cert is refused: its signature would go unchecked. $FOBKIT_BANK_TRUST_CERTS (PEM files,\n" +
    "  ':'-separated) is the configured trust store used when no --trust-cert is given.\n" +
    "\n" +
    "  fobkit bank import batch7.pskcxml --password-file batch7.pw\n" +
    "  fobkit bank import batch1.pskcxml --psk-file bank.psk --trust-cert factory-signing.crt\n" +
    "  fobkit bank import c200.xml --allow-plaintext --skip-unsupported\n" +
    "\n" +
    "Exit status: 0 imported, 1 refused (duplicate serial), 2 bad input (bad file, MAC, key file, signature).",
  positionals: true,
  options: {
    "psk-file": { type: "string", placeholder: "F", help: "pre-shared AES key, hex text" },
    "password-file": { type: "string", placeholder: "F", help: "PBKDF2 password" },
    "skip-unsupported": { type: "boolean", help: "leave out (and list) keys that are not TOTP or not usable, instead of refusing the file" },
    "allow-plaintext": { type: "boolean", help: "accept seeds in plain text (PlainValue); warns and audits" },
    "serial-from": { type: "string", placeholder: "SRC", help: "where the serial is: serial-no (DeviceInfo/SerialNo, default) or key-id (Key@Id)" },
    "trust-cert": { type: "string", multiple: true, placeholder: "C", help: "accept only files signed by this factory certificate (PEM; default $FOBKIT_BANK_TRUST_CERTS)" },
    ...SEED_OPTIONS,
  },
  run: ({ values, positionals }, io) => {
    if (positionals.length !== 1) throw new CliError("fobkit bank import: give exactly one PSKC FILE");
    if (values["psk-file"] && values["password-file"]) throw new CliError("fobkit bank import: give --psk-file or --password-file, not both");
    if (!values["psk-file"] && !values["password-file"] && !values["allow-plaintext"]) {
      throw new CliError("fobkit bank import: give --psk-file or --password-file (or, for a file whose seeds are in plain text, --allow-plaintext)");
    }
    const serialFrom = oneOf(values, "serial-from", SERIAL_SOURCES, "bank import");
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
      let report: PskcReadResult;
      let signedBy: string | undefined;
      let protection: PskcProtection | undefined;
      try {
        let xml: Buffer;
        try {
          xml = readPskcFile(file);
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
        if (values["psk-file"]) protection = { kind: "psk", key: readPskFile(values["psk-file"]) };
        else if (values["password-file"]) protection = { kind: "password", password: readPasswordFile(values["password-file"]) };
        report = readPskcReport(xml, protection, {
          maxBytes: MAX_PSKC_BYTES,
          skipUnsupported: !!values["skip-unsupported"],
          allowPlaintextSecrets: !!values["allow-plaintext"],
          serialFrom,
        });
      } catch (e) {
        if (e instanceof PskcError) {
          await registry.note(actor, "import", "pskc_" + e.code, { file: basename(file), where: e.where ?? null });
          if (e.code === "plaintext_secret") {
            throw new PskcError(e.code, `${e.detail}; if the vendor sent this file on sealed media, import it with --allow-plaintext`, e.where);
          }
          if (e.code === "unsupported_algorithm" || e.code === "unsupported_policy" || e.code === "unsupported_element") {
            if (!values["skip-unsupported"] && e.where?.startsWith("KeyPackage")) {
              throw new PskcError(e.code, `${e.detail}; --skip-unsupported imports the file's other keys and lists this one`, e.where);
            }
          }
        }
        throw e;
      } finally {
        if (protection?.kind === "psk") protection.key.fill(0);
      }
      const { tokens, skipped } = report;
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
        notBefore: t.notBefore,
        notAfter: t.notAfter,
        secret: t.secret,
      }));
      // What the import left out, and that its seeds came in the clear, commit with the tokens: a crash cannot
      // leave the tokens without these records.
      const notes: AuditEntry[] = skipped.map((s) => ({
        action: "import",
        outcome: "skipped",
        serial: null,
        customer: null,
        detail: { file: basename(file), package: s.package, serial: s.serial ?? null, keyId: s.keyId ?? null, algorithm: s.algorithm ?? null, reason: s.code },
      }));
      if (report.plaintext) notes.push({ action: "import", outcome: "plaintext", serial: null, customer: null, detail: { file: basename(file), tokens: batch.length } });
      let registered: string[];
      try {
        registered = (await registry.register(batch, actor, "pskc:" + basename(file), notes)).registered;
      } finally {
        for (const t of tokens) t.secret.fill(0);
      }
      if (report.plaintext) {
        io.stderr.write(
          `fobkit bank import: warning: ${basename(file)} carried seeds in plain text; they are now sealed in the registry. ` +
            "Destroy the file and every copy of it, and the media it came on.\n",
        );
      }
      const lines = [`imported ${registered.length} token(s) into stock from ${basename(file)}${signedBy ? ` (signature verified: ${signedBy})` : ""}`];
      if (skipped.length) {
        lines.push(`skipped ${skipped.length} KeyPackage(s) not usable here (--skip-unsupported):`);
        for (const s of skipped) lines.push(`  ${describeSkipped(s)}`);
      }
      return {
        json: {
          imported: registered.length,
          serials: registered,
          skipped: skipped.map((s) => ({ package: s.package, serial: s.serial ?? null, keyId: s.keyId ?? null, algorithm: s.algorithm ?? null, code: s.code, reason: s.reason })),
          plaintext: report.plaintext,
          ...(signedBy ? { signedBy } : {}),
        },
        text: lines.join("\n"),
      };
    });
  },
};

export const bankClearImports: Command = {
  name: "bank clear-imports",
  summary: "delete what killed imports left (their staged rows) and finish committed ones; never touches a live import",
  description:
    "An import of more than 500 tokens stages its rows, invisible, until one commit shows them all. A process killed\n" +
    "mid-import leaves them behind, holding the file's serials. Every import and every `bank serve` start clears them\n" +
    "first; this does it now, and says what it found. A batch is dead when its\n" +
    "process ran on this machine and is gone, or when it has not been heard from for 60 s (an import on another host):\n" +
    "a live import's rows, and a committed one's, are never deleted. Audited: import aborted (reason abandoned).\n" +
    "Example: fobkit bank clear-imports",
  options: { ...COMMON_OPTIONS },
  run: ({ values }, io) =>
    runBank("bank clear-imports", values, io, { needsKek: false }, async ({ registry, actor }) => {
      const r = await registry.clearStaleImports(actor);
      const dead = [...r.discarded, ...r.orphaned];
      const text = [
        dead.length ? `deleted the staged rows of ${dead.length} dead import(s): ${dead.join(", ")}` : "no dead import found",
        ...(r.settled.length ? [`finished ${r.settled.length} committed import(s): ${r.settled.join(", ")}`] : []),
        ...(r.live.length ? [`left ${r.live.length} import(s) under way: ${r.live.join(", ")}`] : []),
      ].join("\n");
      return { json: r, text };
    }),
};
