/** `fobkit info`: what a keyfob says about itself (never a seed or a code). */
import { CliError, EXIT_OK, type Command, intOption, portTransport } from "./command.js";
import { DeviceSession } from "../device/session.js";
import { cliErrorFrom, requireString } from "./provision.js";

export const infoCommand: Command = {
  name: "info",
  summary: "show a keyfob's state, serial, clock and parameters",
  transports: ["serial", "hid"],
  options: {
    port: { type: "string", help: "the keyfob's port: a serial path, or hid:PATH", placeholder: "PATH" },
    json: { type: "boolean", help: "print JSON" },
    timeout: { type: "string", help: "ms to wait for the reply (default 2000)", placeholder: "MS" },
  },
  async run({ values }, io) {
    const port = requireString(values, "port");
    const timeoutMs = intOption(values, "timeout", 10, 600000);
    let session: DeviceSession | undefined;
    try {
      session = await DeviceSession.open(portTransport(infoCommand, port), { timeoutMs });
      const info = await session.info();
      if (values.json) {
        io.stdout.write(JSON.stringify({ port, ...info, clock: info.clock ?? null, reason: info.reason ?? null }) + "\n");
      } else {
        const rows: [string, string][] = [
          ["port", port], ["state", info.state + (info.reason ? ` (${info.reason})` : "")], ["serial", info.serial || "(none)"],
          ["model", info.model], ["firmware", info.firmware], ["hardware id", info.hardwareId],
          ["clock", info.clock === undefined ? "(unreadable)" : `${new Date(info.clock * 1000).toISOString()} (${info.clock}; host ${info.clock - Math.round(Date.now() / 1000) >= 0 ? "+" : ""}${info.clock - Math.round(Date.now() / 1000)} s)`],
          ["clock set", info.clockSet ? "yes" : "no"],
          ["token", info.seedSet ? `${info.algorithm}, ${info.digits} digits, ${info.period} s` : "(no seed)"],
        ];
        for (const [k, val] of rows) io.stdout.write(`${k.padEnd(12)} ${val}\n`);
      }
      return EXIT_OK;
    } catch (e) {
      const m = cliErrorFrom(e);
      if (m instanceof CliError) throw m;
      throw new CliError((e as Error).message, 3, (e as { code?: string }).code ?? "failed");
    } finally {
      await session?.close();
    }
  },
};
