/**
 * A browser without a browser for the console's HTTP tests: cookies kept,
 * redirects not followed, the CSRF token read off a page.
 */
export interface Res {
  status: number;
  location: string | null;
  text: string;
  setCookie: string[];
}

/** A browser without a browser: cookies kept, redirects not followed. */
export class Client {
  cookies = new Map<string, string>();
  constructor(readonly base: string, readonly headers: Record<string, string> = {}) {}
  async req(method: string, path: string, opts: { form?: Record<string, string>; headers?: Record<string, string> } = {}): Promise<Res> {
    const headers: Record<string, string> = { ...this.headers, ...opts.headers };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
    if (opts.form) headers["content-type"] = "application/x-www-form-urlencoded";
    const res = await fetch(this.base + path, { method, headers, redirect: "manual", body: opts.form ? new URLSearchParams(opts.form).toString() : undefined });
    const setCookie = res.headers.getSetCookie();
    for (const c of setCookie) {
      const [pair] = c.split(";");
      const i = pair.indexOf("=");
      const v = pair.slice(i + 1);
      if (v === "" || /Max-Age=0/i.test(c)) this.cookies.delete(pair.slice(0, i));
      else this.cookies.set(pair.slice(0, i), v);
    }
    return { status: res.status, location: res.headers.get("location"), text: await res.text(), setCookie };
  }
  get = (path: string) => this.req("GET", path);
  post = (path: string, form: Record<string, string>, headers?: Record<string, string>) => this.req("POST", path, { form, headers });
  async signIn(staff: string, password: string, next?: string): Promise<Res> {
    return this.post("/console/sign-in", { staff, password, ...(next ? { next } : {}) });
  }
  /** The CSRF token the page's forms carry. */
  async csrf(path = "/console/"): Promise<string> {
    const page = await this.get(path);
    const m = /name="_csrf" value="([^"]+)"/.exec(page.text);
    if (!m) throw new Error(`no CSRF token on ${path}: ${page.status} ${page.text.slice(0, 200)}`);
    return m[1];
  }
}

/**
 * A bank the CLI set up in a temp directory, as the console's browser tests start from: a key file, `serials`
 * imported from a password-protected PSKC batch (SHA-1, 8 digits, `period` s), and `staff` members added with their
 * passwords. `fobkit(...)` runs the built CLI on it and returns stdout, throwing on a non-zero exit.
 */
export async function cliBank(o: { prefix: string; serials: string[]; period: number; staff: { name: string; password: string; role: "teller" | "supervisor" }[] }) {
  const { randomBytes } = await import("node:crypto");
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { writePskc } = await import("../../host/pskc/index.js");
  const { runFobkit } = await import("../server/spawn.js");
  const dir = mkdtempSync(join(tmpdir(), o.prefix));
  const env: NodeJS.ProcessEnv = { FOBKIT_BANK_DB: "sqlite:" + join(dir, "bank.sqlite"), FOBKIT_BANK_KEK_FILE: join(dir, "bank.kek"), USER: "setup" };
  const fobkit = async (...args: string[]): Promise<string> => {
    const r = await runFobkit(args, env);
    if (r.code !== 0) throw new Error(`fobkit ${args.join(" ")} exited ${r.code}: ${r.stderr}`);
    return r.stdout;
  };
  const seeds = new Map<string, Buffer>();
  await fobkit("bank", "init-kek");
  const tokens = o.serials.map((serial) => {
    const secret = randomBytes(20);
    seeds.set(serial, secret);
    return { serial, manufacturer: "fobkit", model: "FK-1", keyId: serial, algorithm: "SHA1" as const, digits: 8, period: o.period, t0: 0, secret: Buffer.from(secret) };
  });
  writeFileSync(join(dir, "batch.pskc"), writePskc(tokens, { kind: "password", password: "transport password", iterations: 1000 }));
  writeFileSync(join(dir, "batch.pw"), "transport password\n", { mode: 0o600 });
  await fobkit("bank", "import", join(dir, "batch.pskc"), "--password-file", join(dir, "batch.pw"));
  for (const s of o.staff) {
    writeFileSync(join(dir, s.name + ".pw"), s.password + "\n", { mode: 0o600 });
    await fobkit("bank", "add-staff", "--name", s.name, "--role", s.role, "--password-file", join(dir, s.name + ".pw"));
  }
  return { dir, env, seeds, fobkit };
}
