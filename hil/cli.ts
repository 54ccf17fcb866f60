/**
 * `fobkit emu --pty PATH --state DIR [--time UNIX] [--drift-ppm N]
 *             [--baud RATE (LINK_BAUD)] [--image FILE] [--build FILE] [--no-rng] [--no-rtc] [--fault NAME]... [--battery]`
 *
 * Runs the emulated keyfob with its console UART on a PTY at PATH. Control
 * on stdin, one command per line: press | power-cut | boot | advance SECONDS
 * | fault NAME on|off | usb on|off | brown-out. --battery starts with USB unplugged (a
 * locked keyfob then deep-sleeps; bytes on the PTY are lost until `usb on`).
 * Events on stdout, one JSON object per line: {"event":"ready","pty":PATH}
 * first, then display/boot/error/... (see EmulatorEvent). Diagnostics on
 * stderr. Ends cleanly on SIGINT, SIGTERM or end of stdin.
 *
 * Exit codes: 0 clean shutdown, 2 usage error, 3 failure (socat, image...).
 */
import { createInterface } from "node:readline";
import { pathToFileURL } from "node:url";
import { LINK_BAUD } from "../protocol/codes.js";
import { Emulator, type EmulatorEvent } from "./emulator.js";
import { FAULT_NAMES, faultHelp, isFault, type Fault } from "./faults.js";
import { PtyLink } from "./pty.js";
import { UART_BAUDS } from "./nodemcu/uart.js";

export const EMU_USAGE =
  `usage: fobkit emu --pty PATH --state DIR [--time UNIX] [--drift-ppm N] [--baud ${LINK_BAUD}] [--image FILE] [--build FILE] [--no-rng] [--no-rtc] [--fault NAME]... [--battery] [--spiffs-worn]\n` +
  "stdin commands: press | power-cut | boot | advance SECONDS | fault NAME on|off | usb on|off | brown-out\n" +
  "faults (--fault NAME, repeatable or comma-separated):\n" +
  faultHelp();
const COMMANDS = "press | power-cut | boot | advance SECONDS | fault NAME on|off | usb on|off | brown-out";

export interface EmuCliIo {
  stdout: (line: string) => void;
  stderr: (line: string) => void;
  stdin: NodeJS.ReadableStream;
}

class UsageError extends Error {}

interface EmuArgs {
  pty: string;
  state: string;
  time?: number;
  driftPpm?: number;
  baud: number;
  image?: string;
  build?: string;
  rng: boolean;
  rtc: boolean;
  faults: Fault[];
  battery: boolean;
  spiffsWorn: boolean;
}

function parseArgs(argv: string[]): EmuArgs {
  const out: Partial<EmuArgs> & { baud: number; rng: boolean; rtc: boolean; faults: Fault[]; battery: boolean; spiffsWorn: boolean } = { baud: LINK_BAUD, rng: true, rtc: true, faults: [], battery: false, spiffsWorn: false };
  const num = (flag: string, v: string | undefined): number => {
    if (v === undefined || !/^-?\d+(\.\d+)?$/.test(v)) throw new UsageError(`${flag} needs a number, got ${v === undefined ? "nothing" : JSON.stringify(v)}`);
    return Number(v);
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || v.startsWith("--")) throw new UsageError(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case "--pty": out.pty = value(); break;
      case "--state": out.state = value(); break;
      case "--image": out.image = value(); break;
      case "--build": out.build = value(); break;
      case "--time": out.time = num(a, argv[++i]); break;
      case "--drift-ppm": out.driftPpm = num(a, argv[++i]); break;
      case "--baud": out.baud = num(a, argv[++i]); break;
      case "--no-rng": out.rng = false; break;
      case "--no-rtc": out.rtc = false; break;
      case "--battery": out.battery = true; break;
      case "--spiffs-worn": out.spiffsWorn = true; break;
      case "--fault":
        for (const f of value().split(",")) {
          if (!isFault(f)) throw new UsageError(`--fault ${JSON.stringify(f)} is not a fault; known: ${FAULT_NAMES.join(", ")}`);
          if (!out.faults.includes(f)) out.faults.push(f);
        }
        break;
      default: throw new UsageError(`unknown argument ${JSON.stringify(a)}`);
    }
  }
  if (!out.pty) throw new UsageError("--pty PATH is required");
  if (!out.state) throw new UsageError("--state DIR is required");
  if (!UART_BAUDS.includes(out.baud)) throw new UsageError(`--baud ${out.baud} is not a rate NodeMCU's uart.setup accepts`);
  if (out.time !== undefined && (!Number.isInteger(out.time) || out.time < 946684800 || out.time >= 4102444800)) throw new UsageError(`--time must be whole Unix seconds in 2000..2099, got ${out.time}`);
  return out as EmuArgs;
}

const defaultIo: EmuCliIo = {
  stdout: (l) => process.stdout.write(l + "\n"),
  stderr: (l) => process.stderr.write(l + "\n"),
  stdin: process.stdin,
};

/** Run the emulator CLI until shutdown; resolves with the exit code. */
export async function runEmuCli(argv: string[], io: EmuCliIo = defaultIo): Promise<number> {
  let args: EmuArgs;
  try {
    args = parseArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr(`fobkit emu: ${e.message}\n${EMU_USAGE}`);
    return 2;
  }
  const emit = (o: object) => io.stdout(JSON.stringify(o));
  let emu: Emulator;
  try {
    emu = new Emulator({ stateDir: args.state, imagePath: args.image, time: args.time, driftPpm: args.driftPpm, baud: args.baud, build: args.build, rng: args.rng, rtc: args.rtc, faults: args.faults, vbus: !args.battery, spiffsWorn: args.spiffsWorn, realtime: true, countInstructions: false });
  } catch (e) {
    io.stderr(`fobkit emu: ${(e as Error).message}`);
    return 3;
  }
  emu.on("event", (e: EmulatorEvent) => emit(e));
  // A signal while socat starts must still end in a clean shutdown.
  let early: string | undefined;
  const onEarly = (sig: NodeJS.Signals) => void (early = sig);
  process.on("SIGINT", onEarly);
  process.on("SIGTERM", onEarly);
  let link: PtyLink;
  try {
    link = await PtyLink.open(emu, { path: args.pty, baud: args.baud });
  } catch (e) {
    io.stderr(`fobkit emu: ${(e as Error).message}`);
    return 3;
  } finally {
    process.off("SIGINT", onEarly);
    process.off("SIGTERM", onEarly);
  }
  if (early !== undefined) {
    await link.close();
    emu.close();
    emit({ event: "exit", reason: early });
    return 0;
  }
  return new Promise<number>((resolve) => {
    let done = false;
    const rl = createInterface({ input: io.stdin });
    const shutdown = async (why: string) => {
      if (done) return;
      done = true;
      process.off("SIGINT", onSig);
      process.off("SIGTERM", onSig);
      rl.close();
      await link.close();
      emu.close();
      emit({ event: "exit", reason: why });
      resolve(0);
    };
    const onSig = (sig: NodeJS.Signals) => void shutdown(sig);
    process.on("SIGINT", onSig);
    process.on("SIGTERM", onSig);
    rl.on("close", () => void shutdown("stdin closed"));
    // Handlers first, then "ready": a host may signal as soon as it reads it.
    emu.boot();
    emit({ event: "ready", pty: args.pty, baud: args.baud, state: args.state });
    rl.on("line", (raw) => {
      const line = raw.trim();
      if (line === "") return;
      const [cmd, ...rest] = line.split(/\s+/);
      try {
        if (cmd === "press" && rest.length === 0) emu.press();
        else if (cmd === "power-cut" && rest.length === 0) emu.powerCut();
        else if (cmd === "boot" && rest.length === 0) emu.boot();
        else if (cmd === "advance" && rest.length === 1 && /^\d+(\.\d+)?$/.test(rest[0])) emu.advance(Number(rest[0]));
        else if (cmd === "brown-out" && rest.length === 0) emu.brownOut();
        else if (cmd === "usb" && rest.length === 1 && (rest[0] === "on" || rest[0] === "off")) emu.setUsb(rest[0] === "on");
        else if (cmd === "fault" && rest.length === 2 && (rest[1] === "on" || rest[1] === "off")) {
          if (!isFault(rest[0])) throw new Error(`unknown fault ${JSON.stringify(rest[0])}; known: ${FAULT_NAMES.join(", ")}`);
          emu.setFault(rest[0], rest[1] === "on");
          emit({ event: "fault", faults: emu.activeFaults });
        } else throw new Error(`unknown command ${JSON.stringify(line)}; commands: ${COMMANDS}`);
      } catch (e) {
        emit({ event: "error", kind: "command", message: (e as Error).message });
      }
    });
  });
}

// `node build/node/hil/cli.js ...` runs it directly (tests; the fobkit CLI imports runEmuCli).
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  runEmuCli(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
