/** `fobkit register`: send the good tokens the bank does not have yet (after a bank outage). */
import { EXIT_FAILED, EXIT_OK, type Command, intOption } from "./command.js";
import { registerOutstanding } from "../station/bank-client.js";
import { BANK_OPTIONS, bankFrom, FACTORY_OPTIONS, openFactory, requireString } from "./provision.js";

export const registerCommand: Command = {
  name: "register",
  summary: "register good tokens not yet registered with the bank (retry after an outage)",
  description: `Sends each good token of the record (or of --batch) that the bank has not
acknowledged, with the factory role's API key. Exit 0 when all are
registered, 3 when some still failed (run it again later).

  fobkit register --factory line1.sqlite --bank https://bank.example --bank-key-file factory.key`,
  options: {
    ...FACTORY_OPTIONS,
    ...BANK_OPTIONS,
    batch: { type: "string", help: "only this batch", placeholder: "ID" },
    json: { type: "boolean", help: "print {registered, failed, errors} as JSON" },
  },
  async run({ values }, io) {
    requireString(values, "bank");
    const target = bankFrom(values)!;
    const batch = intOption(values, "batch", 1, 9999);
    const record = openFactory(values, false);
    try {
      const errors: Record<string, string> = {};
      const r = await registerOutstanding(record, target, batch, (serial, o) => {
        if (!o.ok) errors[serial] = o.error;
        if (!values.json) io.stderr.write(`${serial}: ${o.ok ? "registered" : o.error}\n`);
      });
      if (values.json) io.stdout.write(JSON.stringify({ ...r, errors }) + "\n");
      else io.stderr.write(`registered ${r.registered}, still outstanding ${r.failed}\n`);
      return r.failed === 0 ? EXIT_OK : EXIT_FAILED;
    } finally {
      record.close();
    }
  },
};
