/**
 * The shape every `fobkit` command has. Commands are thin: they parse
 * options, call the library (host/*), and print. Data goes to stdout,
 * prompts/progress/diagnostics to stderr (yubikey-manager's rule).
 */
import type { ParseArgsConfig } from "node:util";
import { checkTransportKind, TransportKindError, transportFor, type OpenOptions } from "../transport/discover.js";
import type { Transport, TransportKind } from "../transport/transport.js";

export type OptionSpec = NonNullable<ParseArgsConfig["options"]>[string] & {
  /** One line for --help; the placeholder is shown for string options. */
  help: string;
  placeholder?: string;
};

export interface Io {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  stdin: NodeJS.ReadableStream;
  env: NodeJS.ProcessEnv;
  /** Fires on Ctrl-C; commands with long work finish the item in hand. */
  signal: AbortSignal;
}

export interface Command {
  /** e.g. "provision" or "bank issue". */
  name: string;
  summary: string;
  /** Longer help: what it does, an example or two. */
  description?: string;
  usage?: string;
  options: Record<string, OptionSpec>;
  /** Allow positional arguments (documented in usage). */
  positionals?: boolean;
  /**
   * The links the command works over (its --port or --ports), shown in its
   * --help; a path of another kind is refused before anything is opened.
   */
  transports?: readonly TransportKind[];
  run(args: { values: Record<string, any>; positionals: string[] }, io: Io): Promise<number>;
}

/** Exit statuses, one meaning each across all commands. */
export const EXIT_OK = 0;
/** Refused: the request was understood and said no (wrong code, locked...). */
export const EXIT_REFUSED = 1;
/** Bad usage or bad input: nothing was changed. */
export const EXIT_USAGE = 2;
/** The operation failed (device, I/O, network). */
export const EXIT_FAILED = 3;

/** An error the CLI prints as `fobkit: <message>` with its exit status. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number = EXIT_USAGE,
    readonly code: string = "bad_usage",
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** Refuse a path the command cannot work over (Command.transports), as bad usage: nothing was opened. */
export function requirePortKind(c: Command, path: string): void {
  try {
    checkTransportKind(path, c.transports ?? ["serial", "hid"], `fobkit ${c.name}`);
  } catch (e) {
    if (e instanceof TransportKindError) throw new CliError(e.message, EXIT_USAGE, e.code);
    throw e;
  }
}

/** The transport for a path the user gave, refused unless the command accepts its kind. */
export function portTransport(c: Command, path: string, options: OpenOptions = {}): Transport {
  requirePortKind(c, path);
  return transportFor(path, options);
}

/** --NAME as a whole number in min..max, or undefined when not given. */
export function intOption(values: Record<string, any>, name: string, min: number, max: number): number | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max) throw new CliError(`--${name} must be a whole number ${min}..${max}, got '${v}'`);
  return Number(v);
}

/** --NAME as one of `allowed`, or undefined when not given; `command` prefixes the error. */
export function oneOf<T extends string>(values: Record<string, any>, name: string, allowed: readonly T[], command: string): T | undefined {
  const v = values[name];
  if (v === undefined) return undefined;
  if (!(allowed as readonly string[]).includes(v)) throw new CliError(`fobkit ${command}: --${name} must be one of ${allowed.join(", ")}, got '${v}'`);
  return v as T;
}
