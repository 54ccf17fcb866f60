/** Every `fobkit` command, in the order `fobkit --help` lists them. */
import type { Command } from "./command.js";

export const COMMANDS: Command[] = [];
