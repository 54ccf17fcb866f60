/** @noSelfInFile */
/**
 * The write side of flash-store.ts (its header describes the scheme): only
 * provisioning writes a record, so these live in fobkit-prov with the
 * provisioning board (nodemcu-provisioning-board.ts), not in the core every
 * boot keeps resident.
 */
import { shr } from "../../core/intrinsics.js";
import { bytesToString, isByteArray } from "./lua-bytes.js";
import { crc16 } from "../../protocol/crc16.js";
import { BOARD_ERR_ARG, BOARD_ERR_FLASH, BOARD_ERR_NOT_FOUND, BOARD_OK } from "./status.js";
import { FLASH_RECORD_MAX, NEW_SUFFIX, OLD_SUFFIX, readRaw, rollForward, takeAbsent, validName } from "./flash-store.js";

function writeEnveloped(path: string, payload: number[]): number {
  const len = payload.length;
  const head = [shr(len, 8) & 255, len & 255];
  // The same CRC-16 as the wire frames (protocol/crc16.ts), over length and payload.
  const enveloped: number[] = [head[0], head[1]];
  for (let i = 0; i < len; i++) enveloped.push(payload[i]);
  const crc = crc16(enveloped, 0, len + 2);
  enveloped.push(shr(crc, 8) & 255);
  enveloped.push(crc & 255);
  const [f] = io.open(path, "wb");
  if (f === undefined) {
    return BOARD_ERR_FLASH;
  }
  const [ok] = f.write(bytesToString(head, 0, 2), bytesToString(payload, 0, len), string.char(shr(crc, 8) & 255, crc & 255));
  // The buffered tail (and a full SPIFFS) shows only here: close's result counts.
  const closed = f.close();
  let st = BOARD_OK;
  if (ok === undefined || !closed) {
    st = BOARD_ERR_FLASH;
  } else {
    const back = readRaw(path);
    if (back === undefined || !sameBytes(back, enveloped)) {
      st = BOARD_ERR_FLASH;
    }
    wipe(back);
  }
  wipe(enveloped);
  return st;
}

function sameBytes(a: number[], b: number[]): boolean {
  if (a.length !== b.length) {
    return false;
  }
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      return false;
    }
  }
  return true;
}

/** The record may hold a seed: clear copies the store made. */
function wipe(a: number[] | undefined): void {
  if (a === undefined) {
    return;
  }
  for (let i = 0; i < a.length; i++) {
    a[i] = 0;
  }
}

/*
 * What each step costs on the board, and so which checks the write does
 * without (hil/flash.ts models these from SPIFFS and NodeMCU's source): every
 * file.exists is a stat(), a name lookup over every block's lookup page, found
 * or not (file.c:79-88; one read a block, 80 reads, 8.8 ms, on the keyfob's partition); file.list is one lookup pass
 * plus a stat() per file (file.c:39-75), dearer than any exists here with the
 * image's files in SPIFFS; file.remove of a missing name pays the same one
 * lookup and nothing else (unlink's error ignored, file.c:92-98), of a
 * present name less than stat + remove. So:
 * - NAME's presence is asked once and remembered: nothing else touches NAME
 *   before its rename, so the second file.exists the write used to pay told
 *   it nothing new.
 * - leftovers (NAME.old) are removed without asking first.
 * - NAME.new is not removed before writing: io.open "wb" truncates it
 *   (a leftover NAME.new is never read while NAME exists, and one without
 *   NAME has just been rolled forward or found incomplete).
 * - NAME.new is opened for the read-back check, as before: that lookup is
 *   what proves the bytes SPIFFS holds are the ones meant.
 * - a record flashRead found absent this power cycle, with no write since,
 *   is not looked up again, and its NAME.old not removed again: that read
 *   removed it (flash-store.ts takeAbsent).
 * A first write pays 4 lookups (was 7; 1, the read-back, after a flashRead
 * that found no record, as a blank keyfob's boot does), a replacing one 3 (was 6).
 */

/** Replace record NAME by bytes, atomically across power loss. */
export function flashWrite(name: string, bytes: number[]): number {
  if (!validName(name) || bytes.length > FLASH_RECORD_MAX || !isByteArray(bytes)) {
    return BOARD_ERR_ARG;
  }
  const pending = name + NEW_SUFFIX;
  const previous = name + OLD_SUFFIX;
  // A record this power cycle's flashRead found absent, untouched since (takeAbsent), needs no lookup.
  const knownAbsent = takeAbsent(name);
  let present = !knownAbsent && file.exists(name);
  if (!present && !knownAbsent) {
    // An interrupted write may still be waiting to be rolled forward: finish
    // it first so this write replaces the newest record, not an older one,
    // and a failure below leaves that newest one.
    const scratch: number[] = [];
    const st = rollForward(name, scratch);
    wipe(scratch);
    if (st === BOARD_OK) {
      present = true;
    } else if (st !== BOARD_ERR_NOT_FOUND) {
      return st;
    }
  }
  // Never the record (read uses NAME, or NAME.new while NAME is absent); it
  // must go before NAME can be renamed to it (SPIFFS refuses an existing
  // target). With NAME absent the rename does not need it gone, but a WIPE
  // cut inside its last remove leaves part of the wiped record (a prepared
  // key) under this name, so it goes then too: one lookup. Unless the read
  // that found NAME absent removed it already (knownAbsent, flashRead).
  if (!knownAbsent) {
    file.remove(previous);
  }
  const st = writeEnveloped(pending, bytes);
  if (st !== BOARD_OK) {
    // NAME is untouched; a NAME.new that did not check out must not be rolled forward later.
    file.remove(pending);
    return st;
  }
  if (present && !file.rename(name, previous)) {
    return BOARD_ERR_FLASH;
  }
  if (!file.rename(pending, name)) {
    return BOARD_ERR_FLASH;
  }
  if (present) {
    file.remove(previous);
  }
  return BOARD_OK;
}

/** Remove record NAME, atomically across power loss. BOARD_OK also when there was none. */
export function flashRemove(name: string): number {
  if (!validName(name)) {
    return BOARD_ERR_ARG;
  }
  const previous = name + OLD_SUFFIX;
  takeAbsent(name);
  file.remove(name + NEW_SUFFIX);
  file.remove(previous);
  if (file.rename(name, previous)) {
    file.remove(previous);
    return BOARD_OK;
  }
  // Refused: NAME was not there (nothing to remove), or the rename failed.
  return file.exists(name) ? BOARD_ERR_FLASH : BOARD_OK;
}
