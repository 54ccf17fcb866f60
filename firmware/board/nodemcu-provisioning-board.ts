/** @noSelfInFile */
/**
 * The ProvisioningBoard (board.ts) on NodeMCU: the write drivers. Its own
 * file, fobkit-prov (host/flash/image-files.ts LAZY_FILES), loaded with
 * provision.ts; the core only ever imports its type, so a locked keyfob
 * never loads it.
 */
import type { ProvisioningBoard } from "./board.js";
import { flashRemove, flashWrite } from "./flash-store-write.js";
import { rngBytes } from "./rng.js";
import { rtcWrite } from "./rtc-ds3231-write.js";

export const PROVISIONING_BOARD: ProvisioningBoard = {
  rtcWrite: rtcWrite,
  flashWrite: flashWrite,
  flashRemove: flashRemove,
  rngBytes: rngBytes,
};
