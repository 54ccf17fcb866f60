/** Every `fobkit` command, in the order `fobkit --help` lists them. */
import type { Command } from "./command.js";
import { APP_COMMANDS } from "./app.js";
import { bankClearImports, bankImport } from "./bank-import.js";
import { BANK_KEY_COMMANDS } from "./bank-keys.js";
import { BANK_LIFECYCLE_COMMANDS } from "./bank-lifecycle.js";
import { bankServe } from "./bank-serve.js";
import { BANK_SOFT_COMMANDS } from "./bank-soft.js";
import { BANK_STAFF_COMMANDS } from "./bank-staff.js";
import { devicesCommand } from "./devices.js";
import { emuCommand } from "./emu.js";
import { exportCommand } from "./export.js";
import { flashCommand } from "./flash.js";
import { infoCommand } from "./info.js";
import { provisionCommand } from "./provision.js";
import { recordCommand } from "./record.js";
import { registerCommand } from "./register.js";
import { stationCommand } from "./station.js";

export const COMMANDS: Command[] = [
  devicesCommand, infoCommand, provisionCommand, stationCommand, exportCommand, registerCommand, recordCommand,
  bankImport, bankClearImports, ...BANK_LIFECYCLE_COMMANDS, ...BANK_SOFT_COMMANDS, bankServe, ...BANK_STAFF_COMMANDS, ...BANK_KEY_COMMANDS, ...APP_COMMANDS, emuCommand, flashCommand];
