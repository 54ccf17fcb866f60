/** Run `fobkit` in this process with captured stdout/stderr and a Ctrl-C switch. */
import { PassThrough, Writable } from "node:stream";
import { runCli } from "../../host/cli/main.js";

export interface Captured {
  stdout: string;
  stderr: string;
}

export class CliRun {
  readonly out: Captured = { stdout: "", stderr: "" };
  readonly abort = new AbortController();
  private lineListeners: ((line: string) => void)[] = [];
  private errListeners: ((text: string) => void)[] = [];
  private partial = "";

  /** `env`: added to this process's environment for the command. */
  constructor(private readonly env: NodeJS.ProcessEnv = {}) {}

  /** Called for every complete stdout line. */
  onLine(f: (line: string) => void): void {
    this.lineListeners.push(f);
  }

  /** Called for every stderr write. */
  onStderr(f: (text: string) => void): void {
    this.errListeners.push(f);
  }

  run(argv: string[]): Promise<number> {
    const stdout = new Writable({
      write: (chunk, _enc, cb) => {
        const s = chunk.toString();
        this.out.stdout += s;
        this.partial += s;
        let i: number;
        while ((i = this.partial.indexOf("\n")) >= 0) {
          const line = this.partial.slice(0, i);
          this.partial = this.partial.slice(i + 1);
          for (const f of this.lineListeners) f(line);
        }
        cb();
      },
    });
    const stderr = new Writable({
      write: (chunk, _enc, cb) => {
        const s = chunk.toString();
        this.out.stderr += s;
        for (const f of this.errListeners) f(s);
        cb();
      },
    });
    return runCli(argv, { stdout, stderr, stdin: new PassThrough(), env: { ...process.env, ...this.env }, signal: this.abort.signal });
  }
}

export async function fobkit(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Captured & { code: number }> {
  const r = new CliRun(env);
  const code = await r.run(argv);
  return { code, ...r.out };
}
