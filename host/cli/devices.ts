/** `fobkit devices`: keyfobs attached (by USB id), and named ports; --probe asks each for INFO. */
import { EXIT_OK, type Command } from "./command.js";
import { DeviceSession } from "../device/session.js";
import { listKeyfobs, transportFor, type FoundDevice } from "../transport/discover.js";

interface Row extends FoundDevice {
  state?: string;
  serial?: string;
  hardwareId?: string;
  error?: string;
}

async function probe(d: FoundDevice, timeoutMs: number): Promise<Row> {
  let session: DeviceSession | undefined;
  try {
    session = await DeviceSession.open(transportFor(d.path), { timeoutMs, retries: 1 });
    const info = await session.info();
    return { ...d, state: info.state, serial: info.serial, hardwareId: info.hardwareId };
  } catch (e) {
    return { ...d, error: (e as Error).message };
  } finally {
    await session?.close();
  }
}

export const devicesCommand: Command = {
  name: "devices",
  transports: ["serial", "hid"],
  summary: "list attached keyfobs (serial and HID), optionally probing each",
  description: `Lists serial ports whose USB bridge a keyfob board uses, HID devices with the
keyfob's USB id, and any --port named (an emulator's PTY has no USB id).
--probe opens each and reads INFO: state and serial.`,
  options: {
    json: { type: "boolean", help: "print JSON" },
    probe: { type: "boolean", help: "ask each device for its state and serial" },
    port: { type: "string", multiple: true, help: "also list this path if it exists", placeholder: "PATH" },
  },
  async run({ values }, io) {
    const found = await listKeyfobs(values.port ?? []);
    const rows: Row[] = values.probe ? await Promise.all(found.map((d) => probe(d, 1000))) : found;
    if (values.json) {
      io.stdout.write(JSON.stringify(rows) + "\n");
      return EXIT_OK;
    }
    if (rows.length === 0) {
      io.stderr.write("no keyfobs found\n");
      return EXIT_OK;
    }
    for (const r of rows) {
      const cols = [r.path, r.kind, r.usbId ?? (r.named ? "(named)" : "-")];
      if (values.probe) cols.push(r.error ? `error: ${r.error}` : `${r.state} ${r.serial || "(no serial)"}`);
      io.stdout.write(cols.join("  ") + "\n");
    }
    return EXIT_OK;
  },
};
