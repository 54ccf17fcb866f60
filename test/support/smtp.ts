/**
 * A real SMTP server for tests (the smtp-server package) that keeps every
 * message it receives, raw and parsed (mailparser), so tests read the mail
 * as a customer's mail program would.
 */
import { SMTPServer } from "smtp-server";
import { simpleParser, type ParsedMail } from "mailparser";
import type { AddressInfo } from "node:net";

export interface ReceivedMail {
  from: string;
  to: string[];
  raw: Buffer;
  parsed: ParsedMail;
}

export interface TestSmtp {
  url: string;
  port: number;
  mails: ReceivedMail[];
  /** Resolves with the next mail to arrive (or the n-th, counting from 1, if already there). */
  waitFor(n: number, timeoutMs?: number): Promise<ReceivedMail>;
  /** Refuse every message from now on with a 451 (a relay that is down for mail). */
  refuse(on: boolean): void;
  /** With `auth`: the user names that signed in (AUTH PLAIN/LOGIN with the right password), in order. */
  logins: string[];
  close(): Promise<void>;
}

/** `auth`: the server asks for AUTH (over plain TCP: a test on loopback) and takes only this user and password. */
export async function startTestSmtp(o: { auth?: { user: string; pass: string } } = {}): Promise<TestSmtp> {
  const mails: ReceivedMail[] = [];
  const logins: string[] = [];
  const waiters: (() => void)[] = [];
  let refusing = false;
  const server = new SMTPServer({
    authOptional: !o.auth,
    disabledCommands: o.auth ? ["STARTTLS"] : ["STARTTLS", "AUTH"],
    allowInsecureAuth: !!o.auth,
    onAuth(auth, _session, done) {
      if (o.auth && auth.username === o.auth.user && auth.password === o.auth.pass) {
        logins.push(auth.username!);
        return done(null, { user: auth.username });
      }
      return done(Object.assign(new Error("authentication failed"), { responseCode: 535 }));
    },
    logger: false,
    onData(stream, session, done) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", async () => {
        if (refusing) return done(Object.assign(new Error("mailbox unavailable"), { responseCode: 451 }));
        const raw = Buffer.concat(chunks);
        mails.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((r) => r.address),
          raw,
          parsed: await simpleParser(raw),
        });
        for (const w of waiters.splice(0)) w();
        done();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.server.address() as AddressInfo).port;
  return {
    url: `smtp://127.0.0.1:${port}/?tls=off`,
    port,
    mails,
    logins,
    refuse: (on) => {
      refusing = on;
    },
    async waitFor(n, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      while (mails.length < n) {
        if (Date.now() > until) throw new Error(`no mail #${n} within ${timeoutMs} ms (have ${mails.length})`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200);
        });
      }
      return mails[n - 1];
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
