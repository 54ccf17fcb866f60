/**
 * Staff accounts for the console (`fobkit bank serve` at /console/):
 * add-staff, list-staff, disable-staff, unlock-staff. Passwords come only
 * from a file (never an argument, which `ps` and shell history would show)
 * and are never printed.
 */
import { readFileSync, statSync } from "node:fs";
import { STAFF_ROLES, addStaff, disableStaff, listStaff, unlockStaff, MIN_PASSWORD, type StaffRole } from "../registry/staff.js";
import { COMMON_OPTIONS, required, runBank } from "./bank-common.js";
import { CliError, type Command, type Io } from "./command.js";

function readPassword(path: string, io: Io): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
    if ((statSync(path).mode & 0o077) !== 0) io.stderr.write(`fobkit bank add-staff: warning: ${path} is readable by others; keep password files mode 0600 and delete them after use\n`);
  } catch (e) {
    throw new CliError(`fobkit bank add-staff: cannot read --password-file ${path}: ${(e as NodeJS.ErrnoException).code ?? "error"}`);
  }
  return text.replace(/\r?\n$/, "");
}

export const bankAddStaff: Command = {
  name: "bank add-staff",
  summary: "create a staff account for the console (teller or supervisor); the password is read from a file",
  description:
    `The password file holds the password (${MIN_PASSWORD} characters or more; a trailing newline is not part of it). It is stored\n` +
    "as a scrypt hash; it is never printed. Staff IDs are never reused: disable an account instead of deleting it.\n" +
    "A teller issues, unlocks, resyncs and withdraws (lost, returned, faulty); a supervisor also withdraws as stolen,\n" +
    "approves a teller's third unlock of a customer within 24 hours, and unlocks staff accounts.\n" +
    "Example: fobkit bank add-staff --name yamada --role teller --password-file ./yamada.pw",
  options: {
    name: { type: "string", placeholder: "ID", help: "the staff ID the member signs in with (A-Z a-z 0-9 . _ -)" },
    role: { type: "string", placeholder: "ROLE", help: "teller or supervisor" },
    "password-file": { type: "string", placeholder: "F", help: "file holding the initial password" },
    ...COMMON_OPTIONS,
  },
  run: ({ values }, io) => {
    const name = required(values, "name", "bank add-staff");
    const role = required(values, "role", "bank add-staff");
    if (!STAFF_ROLES.includes(role as StaffRole)) throw new CliError(`fobkit bank add-staff: --role must be one of ${STAFF_ROLES.join(", ")}, got '${role}'`);
    const password = readPassword(required(values, "password-file", "bank add-staff"), io);
    return runBank("bank add-staff", values, io, { needsKek: false }, async ({ db, actor }) => {
      const s = await addStaff(db, name, role as StaffRole, password, actor);
      return { json: { staff: s }, text: `added staff ${s.name} (${s.role})` };
    });
  },
};

export const bankListStaff: Command = {
  name: "bank list-staff",
  summary: "list console staff accounts (ID, role, locked or disabled, last sign-in)",
  options: { ...COMMON_OPTIONS },
  run: ({ values }, io) =>
    runBank("bank list-staff", values, io, { needsKek: false }, async ({ db }) => {
      const staff = await listStaff(db);
      return {
        json: { staff },
        text: staff.map((s) => [s.name, s.role, s.disabled ? "disabled " + s.disabledAt : s.locked ? "locked until " + s.lockedUntil : "active", s.lastSigninAt ?? "never"].join("\t")).join("\n"),
      };
    }),
};

export const bankDisableStaff: Command = {
  name: "bank disable-staff",
  summary: "disable a staff account for good; its console sessions end at once",
  options: { name: { type: "string", placeholder: "ID", help: "the staff ID" }, ...COMMON_OPTIONS },
  run: ({ values }, io) =>
    runBank("bank disable-staff", values, io, { needsKek: false }, async ({ db, actor }) => {
      const name = required(values, "name", "bank disable-staff");
      await disableStaff(db, name, actor);
      return { json: { disabled: name }, text: `disabled staff ${name}` };
    }),
};

export const bankUnlockStaff: Command = {
  name: "bank unlock-staff",
  summary: "lift a staff account's lock after five wrong passwords now, and reset its count (a lock also ends by itself: 15 min, doubling)",
  options: { name: { type: "string", placeholder: "ID", help: "the staff ID" }, ...COMMON_OPTIONS },
  run: ({ values }, io) =>
    runBank("bank unlock-staff", values, io, { needsKek: false }, async ({ db, actor }) => {
      const name = required(values, "name", "bank unlock-staff");
      await unlockStaff(db, name, actor);
      return { json: { unlocked: name }, text: `unlocked staff ${name}` };
    }),
};

export const BANK_STAFF_COMMANDS = [bankAddStaff, bankListStaff, bankDisableStaff, bankUnlockStaff];
