/**
 * A load of verifications on real `bank serve` processes, every request
 * recorded with its answer, for the fault tests: each iteration sends one
 * token's code (right for the current step, or now and then wrong) to every
 * server still in rotation at once, so the same code races across processes.
 * Node's own http client with keep-alive, so a reset, a refused connection
 * and a hang are each seen as such (a hang is cut at HANG_MS and recorded).
 */
import { execFileSync } from "node:child_process";
import { Agent, request } from "node:http";

export const HANG_MS = 15_000;

export interface Sent {
  server: number;
  token: number;
  code: string;
  right: boolean;
  sentAt: number;
  doneAt: number;
  /** The X-Request-Id it was sent with (unique in the load). */
  requestId: string;
  status?: number;
  /** The API's error code and message for a non-200 answer. */
  errorCode?: string;
  errorMessage?: string;
  retryAfter?: string;
  /** No HTTP answer: the socket error's code (ECONNRESET, ECONNREFUSED...) or "hung". */
  failed?: string;
}

/** A keyfob's codes for `steps` steps from `fromMs`, from OATH Toolkit's oathtool (one call per token). */
export function codeTable(seed: Buffer, period: number, fromMs: number, steps: number): { base: number; codes: string[] } {
  const base = Math.floor(fromMs / 1000 / period);
  const out = execFileSync("oathtool", ["--totp=SHA1", "-d", "8", "-s", String(period), "-N", "@" + base * period, "-w", String(steps - 1), seed.toString("hex")]);
  return { base, codes: out.toString().trim().split("\n") };
}

function post(agent: Agent, base: URL, path: string, key: string, body: string, requestId: string): Promise<Omit<Sent, "server" | "token" | "code" | "right" | "sentAt" | "doneAt" | "requestId">> {
  return new Promise((resolve) => {
    const req = request(
      { host: base.hostname, port: base.port, path, method: "POST", agent, headers: { authorization: `Bearer ${key}`, "content-type": "application/json", "content-length": Buffer.byteLength(body), "x-request-id": requestId } },
      (res) => {
        let text = "";
        res.setEncoding("utf8");
        res.on("data", (d) => (text += d));
        res.on("error", (e: NodeJS.ErrnoException) => resolve({ failed: e.code ?? e.message }));
        res.on("end", () => {
          let parsed: any;
          try {
            parsed = JSON.parse(text);
          } catch {
            parsed = undefined;
          }
          const retry = res.headers["retry-after"];
          resolve({ status: res.statusCode, errorCode: parsed?.error?.code, errorMessage: parsed?.error?.message, ...(retry !== undefined ? { retryAfter: String(retry) } : {}) });
        });
      },
    );
    req.setTimeout(HANG_MS, () => req.destroy(Object.assign(new Error("hung"), { code: "hung" })));
    req.on("error", (e: NodeJS.ErrnoException) => resolve({ failed: e.code ?? e.message }));
    req.end(body);
  });
}

export interface LoadOptions {
  urls: string[];
  key: string;
  customers: string[];
  tables: { base: number; codes: string[] }[];
  period: number;
  /** Iterations in flight (each sends to every server in rotation). */
  concurrency: number;
  /** Share of wrong codes (each counts a failure; keep --lock-after above what the test can send). */
  wrongShare?: number;
}

export class VerifyLoad {
  readonly records: Sent[] = [];
  private sent = 0;
  /** Servers the load still sends to (a balancer's health check takes a killed one out). */
  readonly inRotation: boolean[];
  private readonly agents: Agent[];
  private running = false;
  private loops: Promise<void>[] = [];

  constructor(private readonly o: LoadOptions) {
    this.inRotation = o.urls.map(() => true);
    this.agents = o.urls.map(() => new Agent({ keepAlive: true, maxSockets: o.concurrency * 2 }));
  }

  codeNow(token: number): string {
    const t = this.o.tables[token];
    const i = Math.floor(Date.now() / 1000 / this.o.period) - t.base;
    if (i < 0 || i >= t.codes.length) throw new Error(`code table of token ${token} exhausted (step index ${i}); make it longer`);
    return t.codes[i];
  }

  private wrongCode(token: number): string {
    const near = new Set(this.o.tables[token].codes);
    for (;;) {
      const c = String(Math.floor(Math.random() * 100_000_000)).padStart(8, "0");
      if (!near.has(c)) return c;
    }
  }

  /** One request to one server, recorded. */
  async send(server: number, token: number, code: string, right: boolean): Promise<Sent> {
    const sentAt = Date.now();
    const requestId = `load-${++this.sent}`;
    const answer = await post(this.agents[server], new URL(this.o.urls[server]), `/v1/customers/${this.o.customers[token]}/verify`, this.o.key, JSON.stringify({ code }), requestId);
    const rec: Sent = { server, token, code, right, sentAt, doneAt: Date.now(), requestId, ...answer };
    this.records.push(rec);
    return rec;
  }

  start(): void {
    this.running = true;
    this.loops = Array.from({ length: this.o.concurrency }, async () => {
      while (this.running) {
        const token = Math.floor(Math.random() * this.o.customers.length);
        const right = Math.random() >= (this.o.wrongShare ?? 0.1);
        const code = right ? this.codeNow(token) : this.wrongCode(token);
        const targets = this.o.urls.map((_, i) => i).filter((i) => this.inRotation[i]);
        const sent = await Promise.all(targets.map((s) => this.send(s, token, code, right)));
        // A 503 asks for a pause (Retry-After); a client honours it rather than spin.
        if (sent.some((r) => r.status === 503 || r.failed)) await sleep(100);
      }
    });
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.loops);
    for (const a of this.agents) a.destroy();
  }

  /**
   * Resolves once every server in rotation has given a definite answer
   * (200 or 409) to a request sent after this call; rejects after `ms`.
   */
  async recovered(ms = 20_000): Promise<void> {
    const from = Date.now();
    while (Date.now() - from < ms) {
      const ok = this.inRotation.every((on, s) => !on || this.records.some((r) => r.server === s && r.sentAt >= from && (r.status === 200 || r.status === 409)));
      if (ok) return;
      await sleep(50);
    }
    const tail = this.records.filter((r) => r.sentAt >= from).slice(-5);
    throw new Error(`servers did not answer definitely within ${ms} ms of the fault; last answers: ${JSON.stringify(tail)}`);
  }
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
