/**
 * `fobkit app setup` and `fobkit app code`: the customer's software token in
 * Node (issue 15 item 3), for the bank's QA and for scripts. The same
 * protocol as the web app (host/soft/client.ts over host/soft/protocol.ts);
 * the seed is sealed at rest in a store directory (host/app/store.ts) and is
 * never printed, logged, or written anywhere else.
 *
 * The clock: `app code` reads the host's wall clock through host/clock.ts,
 * like every other fobkit command that reads the time, so the project's
 * existing FOBKIT_CLOCK_OFFSET moves it with a bank run on an offset clock
 * (tests, `make demo`). No new switch was added for it.
 */
import { isIP } from "node:net";
import { wallClock } from "../clock.js";
import { readPasswordFile } from "../pskc/key-files.js";
import { PskcError } from "../pskc/types.js";
import { activationPasswordProblem, setUp, SoftSetupError, type SetUpResult } from "../soft/client.js";
import { validUserId } from "../soft/protocol.js";
import { claimStore, codeAt, prepareStore, saveToken, StoreError } from "../app/store.js";
import { CliError, EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, type Command, type Io, type OptionSpec } from "./command.js";

const JSON_OPTION: OptionSpec = { type: "boolean", help: "print the result (or the refusal) as JSON on stdout" };
const STORE_OPTION: OptionSpec = { type: "string", placeholder: "DIR", help: "the token store: a directory of your own (created 0700 by setup)" };
const EXIT_HELP = "Exit status: 0 done, 1 refused by the bank (reason code on stderr and in --json), 2 bad usage or input, 3 failed (network, store).";

type SetupRefusal = Pick<SoftSetupError, "code" | "message" | "detail">;

function when(ms: unknown): string | undefined {
  if (typeof ms !== "number" && typeof ms !== "string") return undefined;
  const d = new Date(ms);
  return Number.isNaN(d.getTime()) ? undefined : d.toISOString();
}

/** The English sentence for each refusal code the bank or the client gives. */
export function refusalMessage(e: SetupRefusal, userId: string): string {
  const left = typeof e.detail?.attemptsLeft === "number" ? e.detail.attemptsLeft : undefined;
  switch (e.code) {
    case "unknown_user":
      return `the bank knows no user ID ${userId} under this service ID: check both IDs against the mail "トークン発行のご案内"`;
    case "bad_user_id":
      return `user ID ${userId} is not valid (its last digit is a check digit): check it against the mail`;
    case "already_set_up":
      return `user ID ${userId} has already been set up, and a user ID sets up once: to use another device, deactivate the token and have a new one issued`;
    case "setup_expired":
      return "the time to set up this issuance has passed, and it is now void: have a new token issued";
    case "setup_not_yet": {
      const from = when(e.detail?.setupFrom);
      return `set-up is allowed only from the day after the last deactivation (bank's time zone)${from ? `: from ${from}` : ""}`;
    }
    case "voided":
      return "this issuance is void (too many wrong activation passwords, or expired): have a new token issued";
    case "wrong_password":
    case "wrong_password_local":
      return `wrong activation password${left === undefined ? "" : left > 0 ? `; ${left} more wrong ${left === 1 ? "try voids" : "tries void"} the issuance` : "; that was the last try: the issuance is void, have a new token issued"}`;
    case "ticket_expired":
      return "the set-up took too long between its two steps: run the command again";
    case "bad_confirmation":
      return "the bank's key confirmation did not verify, so nothing was stored: is --bank the bank's own address?";
    case "bad_response":
      return `the bank's answer was not a set-up answer (${e.message}): is --bank the bank's address?`;
    default:
      return e.message || e.code;
  }
}

function fail(io: Io, json: boolean, command: string, code: string, message: string, exit: number, detail?: Record<string, unknown>): number {
  const verdict = exit === EXIT_REFUSED ? "refused" : exit === EXIT_USAGE ? "bad input" : "failed";
  io.stderr.write(`fobkit ${command}: ${verdict}: ${code}: ${message}\n`);
  if (json) io.stdout.write(JSON.stringify({ ok: false, error: { code, message, ...(detail && Object.keys(detail).length ? { detail } : {}) } }) + "\n");
  return exit;
}

function storeFailure(io: Io, json: boolean, command: string, e: StoreError): number {
  const exit = e.code === "no_store" || e.code === "no_token" || e.code === "token_exists" || e.code === "busy" || e.code === "not_a_directory" ? EXIT_USAGE : EXIT_FAILED;
  return fail(io, json, command, "store_" + e.code, e.message, exit);
}

/** --bank: an http(s) URL with nothing but scheme, host and port (and an optional trailing /); plain HTTP only to this machine. */
export function bankUrl(value: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new CliError(`--bank must be the bank's URL, e.g. https://bank.example.jp, got ${JSON.stringify(value)}`);
  }
  if (u.protocol !== "https:" && u.protocol !== "http:") throw new CliError(`--bank must be an https:// URL, got ${JSON.stringify(value)}`);
  if (u.username || u.password || u.search || u.hash || (u.pathname !== "/" && u.pathname !== "/app/" && u.pathname !== "/app")) {
    throw new CliError(`--bank is the bank's address only (scheme, host, port), e.g. https://bank.example.jp, got ${JSON.stringify(value)}`);
  }
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const loopback = host === "localhost" || (isIP(host) === 4 && host.startsWith("127.")) || host === "::1";
  if (u.protocol === "http:" && !loopback) throw new CliError(`refusing plain HTTP to ${u.host}: use https:// (plain http:// only to this machine, e.g. http://127.0.0.1:8700)`);
  return u.origin;
}

export const appSetup: Command = {
  name: "app setup",
  summary: "set up a software token (初期設定) with the IDs from the mail and your activation password",
  usage: "--bank URL --service-id S --user-id U --activation-password-file F --store DIR [--json]",
  description:
    "Runs the set-up protocol with the bank: an OPAQUE login (RFC 9807) with the activation password, after\n" +
    "which both sides derive the token's seed from the session and confirm it with MACs. The password and the\n" +
    "seed never cross the network; the seed is sealed in DIR (AES-256-GCM under DIR/store.key, mode 0600).\n" +
    "Each try counts: five wrong activation passwords void the issuance, and a user ID sets up once.\n" +
    "The password file's first line is the password (a trailing newline is not part of it); keep it 0600.\n" +
    "\n" +
    "Example:\n" +
    "  fobkit app setup --bank https://bank.example.jp --service-id 10112235 --user-id 999800000001 \\\n" +
    "      --activation-password-file ~/.fobkit/activation.pw --store ~/.fobkit/token\n" +
    "  fobkit app code --store ~/.fobkit/token\n" +
    EXIT_HELP,
  options: {
    bank: { type: "string", placeholder: "URL", help: "the bank's address, e.g. https://bank.example.jp (http:// only to 127.0.0.1/localhost)" },
    "service-id": { type: "string", placeholder: "S", help: "the service ID from the mail (8 digits)" },
    "user-id": { type: "string", placeholder: "U", help: "the user ID from the mail (12 digits)" },
    "activation-password-file": { type: "string", placeholder: "F", help: "file whose first line is the activation password (利用開始パスワード)" },
    store: STORE_OPTION,
    json: JSON_OPTION,
  },
  async run({ values }, io) {
    const json = !!values.json;
    const name = "app setup";
    for (const o of ["bank", "service-id", "user-id", "activation-password-file", "store"]) {
      if (values[o] === undefined) throw new CliError(`fobkit ${name}: --${o} is required (see fobkit ${name} --help)`, EXIT_USAGE, "missing_option");
    }
    const bank = bankUrl(values.bank);
    const serviceId = String(values["service-id"]);
    const userId = String(values["user-id"]).replace(/[\s-]/g, "");
    if (!/^[0-9]{8}$/.test(serviceId)) throw new CliError(`--service-id must be 8 digits, got ${JSON.stringify(serviceId)}`, EXIT_USAGE, "bad_service_id");
    if (!/^[0-9]{12}$/.test(userId)) throw new CliError(`--user-id must be 12 digits, got ${JSON.stringify(userId)}`, EXIT_USAGE, "bad_user_id");
    if (!validUserId(userId)) throw new CliError(`--user-id ${userId} is not valid: its last digit is a check digit and does not match (a mistyped or swapped digit?)`, EXIT_USAGE, "bad_user_id");
    let password: string;
    try {
      password = readPasswordFile(values["activation-password-file"]);
    } catch (e) {
      if (e instanceof PskcError) throw new CliError(`--activation-password-file: ${e.message}`, EXIT_USAGE, "bad_password_file");
      throw e;
    }
    // The rule the bank's side applied at issuance: a password it can never have been given costs no try.
    const problem = activationPasswordProblem(password);
    if (problem) throw new CliError(`--activation-password-file: ${problem}`, EXIT_USAGE, "bad_password");
    const store = String(values.store);
    let release: (() => void) | undefined;
    try {
      // Before the bank is asked: a try costs one of five, so nothing local may fail after it. The store is claimed
      // first, so a second set-up into it is refused here rather than spending a try (and voiding this one's ticket).
      release = claimStore(store);
      prepareStore(store);
    } catch (e) {
      release?.();
      if (e instanceof StoreError) return storeFailure(io, json, name, e);
      throw e;
    }
    try {
      let result: SetUpResult;
      try {
        result = await setUp({ bankUrl: bank, serviceId, userId, password, seed: "bytes" });
      } catch (e) {
        if (e instanceof SoftSetupError) {
          // Exit 3 when nothing was decided (unreachable, a 5xx, an answer that is not the protocol's); 2 for input the
          // client refused before asking; 1 for the bank's (or the PAKE's) no.
          const exit = e.code === "network" || e.code === "unavailable" || (e.code === "bad_response" && (e.status ?? 0) >= 500) ? EXIT_FAILED : e.code === "bad_input" ? EXIT_USAGE : EXIT_REFUSED;
          return fail(io, json, name, e.code, refusalMessage(e, userId), exit, e.detail);
        }
        throw e;
      }
      const seed = result.seedBytes;
      if (!seed) return fail(io, json, name, "failed", "the client returned no seed", EXIT_FAILED);
      const params = result.paramsText;
      try {
        saveToken(store, { bankUrl: bank, serviceId, userId, params, setupAt: wallClock(io.env)() }, seed);
      } catch (e) {
        seed.fill(0);
        if (e instanceof StoreError) return storeFailure(io, json, name, e);
        throw e;
      }
      if (json) io.stdout.write(JSON.stringify({ ok: true, serviceId, userId, bank: result.params.bank, store }) + "\n");
      else io.stdout.write(`set up: user ID ${userId} at ${result.params.bank}\nthe seed is sealed in ${store}; show a code with: fobkit app code --store ${store}\n`);
      return EXIT_OK;
    } finally {
      release();
    }
  },
};

export const appCode: Command = {
  name: "app code",
  summary: "show the software token's current code, the bank's name and the seconds left",
  usage: "--store DIR [--json]",
  description:
    "Prints the current 8-digit code (60-second steps), the name of the bank that issued the token (check it)\n" +
    "and the seconds until the next code. With --json: {ok, code, bank, serviceId, userId, secondsLeft}.\n" +
    "The store must be yours: a key file that group or others can read is refused, as ssh refuses a key.\n" +
    "The time is this machine's clock (FOBKIT_CLOCK_OFFSET shifts it, as for every fobkit command that reads the time).\n" +
    "\n" +
    "Example:\n" +
    "  fobkit app code --store ~/.fobkit/token\n" +
    "  fobkit app code --store ~/.fobkit/token --json | jq -r .code\n" +
    EXIT_HELP,
  options: { store: STORE_OPTION, json: JSON_OPTION },
  async run({ values }, io) {
    const json = !!values.json;
    if (values.store === undefined) throw new CliError("fobkit app code: --store is required (see fobkit app code --help)", EXIT_USAGE, "missing_option");
    const store = String(values.store);
    const now = wallClock(io.env);
    try {
      const r = await codeAt(store, now());
      const secondsLeft = Math.ceil(r.msLeft / 1000);
      if (json) io.stdout.write(JSON.stringify({ ok: true, code: r.code, bank: r.info.params.bank, serviceId: r.info.serviceId, userId: r.info.userId, secondsLeft }) + "\n");
      else io.stdout.write(`${r.code}\nbank: ${r.info.params.bank}\nnext code in ${secondsLeft} s\n`);
      return EXIT_OK;
    } catch (e) {
      if (e instanceof StoreError) return storeFailure(io, json, "app code", e);
      throw e;
    }
  },
};

export const APP_COMMANDS: Command[] = [appSetup, appCode];
