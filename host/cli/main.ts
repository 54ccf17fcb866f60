/**
 * `fobkit` entry: finds the command, parses its options strictly, runs it.
 * Help text is generated from the command definitions, and README's CLI
 * reference is generated from this same help (tools/gen-cli-reference).
 */
import { parseArgs } from "node:util";
import { COMMANDS } from "./commands.js";
import { disableCoreDumps } from "./core-dumps.js";
import { CliError, EXIT_FAILED, EXIT_USAGE, type Command, type Io } from "./command.js";

const VERSION = "0.1.0";

export function findCommand(argv: string[]): { command?: Command; rest: string[]; prefix: string } {
  // Longest match first: "bank issue" before "bank".
  for (let n = Math.min(2, argv.length); n >= 1; n--) {
    const name = argv.slice(0, n).join(" ");
    const command = COMMANDS.find((c) => c.name === name);
    if (command) return { command, rest: argv.slice(n), prefix: name };
  }
  return { rest: argv, prefix: argv[0] ?? "" };
}

export function commandHelp(c: Command): string {
  const lines = [`usage: fobkit ${c.name}${c.usage ? " " + c.usage : Object.keys(c.options).length ? " [options]" : ""}`, "", c.summary];
  if (c.description) lines.push("", c.description.trimEnd());
  if (c.transports) lines.push("", `transports: ${c.transports.join(", ")} (${c.transports.includes("hid") ? "hid:PATH for HID, any other path is serial" : "a hid:PATH is refused"})`);
  const opts = Object.entries(c.options);
  if (opts.length) {
    lines.push("", "options:");
    const rows = opts.map(([name, o]) => {
      const flag = `${o.short ? "-" + o.short + ", " : "    "}--${name}${o.type === "string" ? " " + (o.placeholder ?? "VALUE") : ""}`;
      return [flag, o.help + (o.multiple ? " (repeatable)" : "")] as const;
    });
    rows.push(["-h, --help", "show this help"]);
    const width = Math.max(...rows.map((r) => r[0].length));
    for (const [flag, help] of rows) lines.push(`  ${flag.padEnd(width)}  ${help}`);
  }
  return lines.join("\n") + "\n";
}

export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  const groups = new Map<string, Command[]>();
  for (const c of COMMANDS) {
    const g = c.name.startsWith("bank ") ? "bank (the bank's token registry)" : c.name.startsWith("app ") ? "app (the customer's software token)" : c.name === "emu" || c.name === "flash" ? "board and emulator" : "factory";
    groups.set(g, [...(groups.get(g) ?? []), c]);
  }
  const lines = ["usage: fobkit <command> [options]", "", "fobkit provisions hardware OTP keyfobs and runs the bank's token registry."];
  for (const [g, cs] of groups) {
    lines.push("", `${g}:`);
    for (const c of cs) lines.push(`  ${c.name.padEnd(width)}  ${c.summary}`);
  }
  lines.push("", "Run `fobkit <command> --help` for a command's options.", "Exit status: 0 done, 1 refused, 2 bad usage or input, 3 failed.");
  return lines.join("\n") + "\n";
}

function defaultIo(): Io & { dispose(): void } {
  const ac = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write("\nfobkit: interrupted; finishing the item in hand (Ctrl-C again to abort now)\n");
    ac.abort();
  };
  process.on("SIGINT", onSigint);
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    signal: ac.signal,
    dispose: () => process.off("SIGINT", onSigint),
  };
}

/** --json anywhere before a `--`: a script reads stdout, so a failure must be JSON there too. */
function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf("--");
  return (end < 0 ? argv : argv.slice(0, end)).includes("--json");
}

/** The shape every command's --json failure has (bank-common.ts reportError). */
function writeJsonError(io: Io, code: string, message: string): void {
  io.stdout.write(JSON.stringify({ ok: false, error: { code, message } }) + "\n");
}

export async function runCli(argv: string[], io?: Io): Promise<number> {
  const own = io ? undefined : defaultIo();
  const env = io ?? own!;
  try {
    if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
      if (argv[0] === "help" && argv.length > 1) return runCli([...argv.slice(1), "--help"], env);
      env.stdout.write(mainHelp());
      return argv.length === 0 ? EXIT_USAGE : 0;
    }
    if (argv[0] === "--version") {
      env.stdout.write(`fobkit ${VERSION}\n`);
      return 0;
    }
    const { command, rest, prefix } = findCommand(argv);
    if (!command) {
      const sub = COMMANDS.filter((c) => c.name.startsWith(prefix + " "));
      if (sub.length) {
        env.stderr.write(`fobkit ${prefix}: which one? ${sub.map((c) => c.name.split(" ")[1]).join(", ")}\n`);
      } else {
        env.stderr.write(`fobkit: unknown command '${prefix}'. Run \`fobkit --help\` for the list.\n`);
      }
      return EXIT_USAGE;
    }
    if (rest.includes("--help") || rest.includes("-h")) {
      env.stdout.write(commandHelp(command));
      return 0;
    }
    // Seeds, keys and passwords pass through most commands: a crash must not write them to a core file.
    const cores = disableCoreDumps();
    if (!cores.ok) env.stderr.write(`fobkit ${command.name}: warning: could not turn core dumps off (${cores.why}); a crash could write seeds to disk: run it with \`ulimit -c 0\` or systemd's LimitCORE=0\n`);
    let parsed;
    try {
      // Node 20's parseArgs rejects keys present with the value undefined (e.g. `short: undefined`).
      const options = Object.fromEntries(
        Object.entries(command.options).map(([k, o]) => [k, Object.fromEntries(Object.entries({ type: o.type, short: o.short, multiple: o.multiple, default: o.default }).filter(([, v]) => v !== undefined))]),
      );
      parsed = parseArgs({ args: rest, options: options as any, allowPositionals: !!command.positionals, strict: true });
    } catch (e) {
      const message = (e as Error).message.replace(/\. To specify a positional.*$/s, "");
      env.stderr.write(`fobkit ${command.name}: ${message}\nRun \`fobkit ${command.name} --help\` for usage.\n`);
      if (wantsJson(argv)) writeJsonError(env, "bad_usage", message);
      return EXIT_USAGE;
    }
    return await command.run({ values: parsed.values as Record<string, any>, positionals: parsed.positionals }, env);
  } catch (e) {
    if (e instanceof CliError) {
      env.stderr.write(`fobkit: ${e.message}\n`);
      if (wantsJson(argv)) writeJsonError(env, e.code, e.message);
      return e.exitCode;
    }
    const message = (e as Error).message ?? String(e);
    env.stderr.write(`fobkit: ${message}\n`);
    if (env.env.FOBKIT_DEBUG) env.stderr.write(String((e as Error).stack) + "\n");
    if (wantsJson(argv)) writeJsonError(env, "failed", message);
    return EXIT_FAILED;
  } finally {
    own?.dispose();
  }
}
