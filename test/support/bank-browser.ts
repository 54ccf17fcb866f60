/**
 * A bank server (SQLite, in this process), and with useBankAndBrowser one Chromium, for a test file or block: registers the file's
 * beforeAll/afterAll and hands back the live objects. For browser tests that need nothing else set up.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll } from "vitest";
import type { Database } from "../../host/registry/database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { startServer } from "../../host/server/serve.js";
import { launchChromium } from "../../tools/chromium.js";
import { ENGINES, freshDb } from "../registry/support.js";

export interface BankAndBrowser {
  db: Database;
  server: Awaited<ReturnType<typeof startServer>>;
  browser: Awaited<ReturnType<typeof launchChromium>>;
}

/** One bank server on a fresh SQLite database for the enclosing file or describe block. */
export function useBank(): Omit<BankAndBrowser, "browser"> {
  const live = {} as Omit<BankAndBrowser, "browser">;
  let drop: (() => Promise<void>) | undefined;
  beforeAll(async () => {
    const f = await freshDb(ENGINES[0]);
    live.db = f.db;
    drop = f.drop;
    live.server = await startServer({ db: f.db, keys: KeyRing.fromKeys([{ id: "k1", key: randomBytes(32) }]), listen: "127.0.0.1:0" });
  }, 60_000);
  afterAll(async () => {
    await live.server?.close();
    await drop?.();
  });
  return live;
}

export function useBankAndBrowser(opts: { locale: string }): BankAndBrowser {
  const live = useBank() as BankAndBrowser;
  beforeAll(async () => {
    live.browser = await launchChromium({ locale: opts.locale });
  }, 60_000);
  // Registered after useBank's: vitest runs afterAll hooks in reverse, so the browser closes before the server.
  afterAll(async () => {
    await live.browser?.close();
  });
  return live;
}
