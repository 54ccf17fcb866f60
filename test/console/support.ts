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
