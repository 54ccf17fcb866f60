/** Every `fobkit` command, in the order `fobkit --help` lists them. */
import type { Command } from "./command.js";
import { bankImport } from "./bank-import.js";
import { BANK_KEY_COMMANDS } from "./bank-keys.js";
import { BANK_LIFECYCLE_COMMANDS } from "./bank-lifecycle.js";
import { bankServe } from "./bank-serve.js";

export const COMMANDS: Command[] = [bankImport, ...BANK_LIFECYCLE_COMMANDS, bankServe, ...BANK_KEY_COMMANDS];
