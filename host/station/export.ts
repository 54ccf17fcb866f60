/**
 * The offline hand-over to the bank: one RFC 6030 PSKC document per batch,
 * one KeyPackage per good token, seeds encrypted by host/pskc (§6.1 PSK or
 * §6.2 PBKDF2, ValueMAC always). Plain seeds exist only in memory between
 * the factory record's AES-GCM and the PSKC AES-CBC, and are wiped after.
 */
import { closeSync, fsyncSync, linkSync, openSync, renameSync, rmSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { writePskc, type PskcProtection, type PskcToken } from "../pskc/index.js";
import type { PskcSigner } from "../pskc/signature.js";
import { FactoryError, lineLabel, type FactoryRecord } from "./factory-record.js";
import { syncDirectory } from "../sync-directory.js";

export { FOBKIT_MANUFACTURER as MANUFACTURER } from "../serial/serial-number.js";
import { FOBKIT_MANUFACTURER as MANUFACTURER } from "../serial/serial-number.js";
/** What the keyfob's INFO reports as its model. */
export const MODEL = "FOBKIT-1";

export interface ExportResult {
  batch: number;
  serials: string[];
  xml: string;
}

/**
 * The batch's PSKC file. The first export closes the batch (a batch is one
 * file: later keyfobs go into the next one); exporting it again writes the
 * same tokens. `signer`: sign the whole KeyContainer (RFC 6030 §7), so the
 * bank can tell the file is the factory's and unaltered.
 */
export function exportBatch(record: FactoryRecord, batch: number, protection: PskcProtection, signer?: PskcSigner): ExportResult {
  // Pending rows of a station process that no longer runs are failed first: they never block an export.
  record.recoverInterrupted();
  const rows = record.closeForExport(batch).tokens;
  const tokens: PskcToken[] = [];
  try {
    for (const r of rows) {
      tokens.push({
        serial: r.serial, manufacturer: MANUFACTURER, model: MODEL, keyId: r.serial,
        algorithm: r.algorithm, digits: r.digits, period: r.period, t0: 0, secret: record.openSeed(r.serial),
      });
    }
    // The container names its line too: batch 1 of line 07 and batch 1 of line 08 are different files.
    const id = record.line === null ? `fobkit-batch-${batch}` : `fobkit-line-${lineLabel(record.line)}-batch-${batch}`;
    const xml = writePskc(tokens, protection, { id, signer });
    return { batch, serials: rows.map((r) => r.serial), xml };
  } finally {
    for (const t of tokens) t.secret.fill(0);
  }
}

/**
 * Write the export: never over an existing file unless force, and never a
 * half or empty file at the destination. The text goes to an owner-only temp
 * file beside it, fsynced, which then takes the name in one step: link(2)
 * (fails if the name exists) or, with force, rename(2). The directory is
 * fsynced after, so an export reported written survives a power cut.
 */
export function writeExportFile(path: string, xml: string, force: boolean): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "wx", 0o600);
    writeSync(fd, xml);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    if (force) renameSync(tmp, path);
    else {
      linkSync(tmp, path);
      rmSync(tmp);
    }
    syncDirectory(dirname(path));
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    rmSync(tmp, { force: true });
    if ((e as NodeJS.ErrnoException).code === "EEXIST") throw new FactoryError(`${path} exists; use --force to overwrite it`, "refused");
    throw e;
  }
}
