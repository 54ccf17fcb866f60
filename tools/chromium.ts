/**
 * Debian's Chromium (/usr/bin/chromium, installed by scripts/setup.sh) driven
 * by playwright-core, which downloads no browser. The flags keep it off the
 * network: the machines are on a closed network, where Chromium's background
 * services (component updates, sync, QUIC probes) would hang on connections.
 * A fresh profile directory each time, removed on close.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext } from "playwright-core";

export const CHROMIUM = process.env.FOBKIT_CHROMIUM ?? "/usr/bin/chromium";
export const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** ignoreHTTPSErrors: for a test's self-signed certificate only. */
export async function launchChromium(opts: { locale?: string; ignoreHTTPSErrors?: boolean } = {}): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  // launchPersistentContext passes the profile as --user-data-dir.
  const profile = mkdtempSync(join(tmpdir(), "fobkit-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_FLAGS,
    locale: opts.locale ?? "en-US",
    viewport: { width: 1100, height: 760 },
    timeout: 30_000,
    ...(opts.ignoreHTTPSErrors ? { ignoreHTTPSErrors: true } : {}),
  });
  return {
    context,
    close: async () => {
      await context.close().catch(() => undefined);
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
