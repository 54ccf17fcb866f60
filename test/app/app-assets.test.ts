/**
 * The web app's files (host/app/app.ts loadAssets) are read and hashed once per build directory per process, and
 * read afresh when one changed: a server built after a rebuild serves the new files under a new shell version
 * (the service worker's cache key), one built from an unchanged build reuses what was read.
 */
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify from "fastify";
import { afterEach, beforeEach, expect, it } from "vitest";
import { appPlugin } from "../../host/app/app.js";
import { BUILD } from "../support/paths.js";

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "fobkit-app-assets-"));
  cpSync(join(BUILD, "web"), join(dir, "web"), { recursive: true });
  cpSync(join(BUILD, "node", "host", "soft"), join(dir, "node", "host", "soft"), { recursive: true });
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function served(): Promise<{ main: string; version: string; missing: number }> {
  const app = Fastify();
  await app.register(appPlugin, { buildDir: dir });
  const main = await app.inject({ url: "/app/main.js" });
  const page = await app.inject({ url: "/app/" });
  await app.close();
  return { main: main.statusCode === 200 ? main.body : `HTTP ${main.statusCode}`, version: /name="fobkit-shell" content="([0-9a-f]+)"/.exec(page.body)![1], missing: main.statusCode === 503 ? 1 : 0 };
}

it("serves what the build holds when each server is built: unchanged, the same; rebuilt, the new file under a new version; removed, 503", async () => {
  const first = await served();
  expect(first.main).toContain("fobkit-shell");
  expect(await served()).toEqual(first);
  const mainJs = join(dir, "web", "host", "app", "web", "main.js");
  writeFileSync(mainJs, "// rebuilt\n" + first.main);
  const rebuilt = await served();
  expect(rebuilt.main.startsWith("// rebuilt\n")).toBe(true);
  expect(rebuilt.version).not.toBe(first.version);
  // The same length, another byte: caught too (by mtime or inode, not only size).
  writeFileSync(mainJs, "// REBUILT\n" + first.main);
  expect((await served()).main.startsWith("// REBUILT\n")).toBe(true);
  rmSync(mainJs);
  expect(await served()).toMatchObject({ main: "HTTP 503", missing: 1 });
});
