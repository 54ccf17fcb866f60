/**
 * Runs the built `fobkit` (FOBKIT_BUILD's tree) as a real process: for the
 * CLI's exit codes and for several `bank serve` processes on one database.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { NODE_BUILD } from "../support/paths.js";

const MAIN = resolve(NODE_BUILD, "host", "cli", "main.js");
const ENTRY = `const { runCli } = await import(${JSON.stringify(pathToFileURL(MAIN).href)}); process.exitCode = await runCli(process.argv.slice(1));`;

/** `wrap`: a command the CLI runs under (e.g. strace with its options), or none. */
export function fobkitProcess(args: string[], env: NodeJS.ProcessEnv = {}, wrap: string[] = []): ChildProcess {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is not built: run npx tsc -p tsconfig.node.json (--outDir $FOBKIT_BUILD/node)`);
  const argv = [...wrap, process.execPath, "--input-type=module", "-e", ENTRY, ...args];
  return spawn(argv[0], argv.slice(1), { env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
}

/** The last line of a `--json` run's stdout, parsed; undefined if it is not JSON. */
export function lastJson(stdout: string): any {
  try {
    return JSON.parse(stdout.trim().split("\n").pop() ?? "");
  } catch {
    return undefined;
  }
}

export async function runFobkit(args: string[], env: NodeJS.ProcessEnv = {}, wrap: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
  const p = fobkitProcess(args, env, wrap);
  let stdout = "";
  let stderr = "";
  p.stdout!.on("data", (d) => (stdout += d));
  p.stderr!.on("data", (d) => (stderr += d));
  const code = await new Promise<number>((res) => p.on("close", (c) => res(c ?? -1)));
  return { code, stdout, stderr };
}

/** Starts `fobkit bank serve ... --listen 127.0.0.1:0`; resolves with its URL once it listens. */
export async function startServeProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ url: string; proc: ChildProcess; stop(): Promise<void>; info: Record<string, unknown> }> {
  const proc = fobkitProcess(["bank", "serve", "--listen", "127.0.0.1:0", "--json", ...args], env);
  let stderr = "";
  proc.stderr!.on("data", (d) => (stderr += d));
  let info: Record<string, unknown> = {};
  const url = await new Promise<string>((res, rej) => {
    let out = "";
    const timer = setTimeout(() => rej(new Error("bank serve did not start in 20 s: " + stderr)), 20_000);
    proc.stdout!.on("data", (d) => {
      out += d;
      const line = out.split("\n").find((l) => l.includes('"listening"'));
      if (line) {
        clearTimeout(timer);
        info = JSON.parse(line);
        res(info.listening as string);
      }
    });
    proc.on("exit", (c) => {
      clearTimeout(timer);
      rej(new Error(`bank serve exited ${c}: ${stderr}`));
    });
  });
  return {
    url,
    proc,
    info,
    stop: () =>
      new Promise<void>((res) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return res();
        proc.once("exit", () => res());
        proc.kill("SIGTERM");
      }),
  };
}
