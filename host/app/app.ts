/**
 * The customers' software-token web app at /app/ (issue 15 item 3), a
 * Fastify plugin on the bank's server beside the API and the console. It
 * serves files only: the set-up calls (/app/v1/setup/...) are the API's
 * public routes (host/soft), and the token never comes back here.
 *
 * What is served, from where (nothing is bundled):
 * - /app/                 the page (built here: import map, shell version)
 * - /app/{main,i18n,keystore,sw}.js  the browser code, tsconfig.web.json's build (build/web)
 * - /app/soft/{protocol,client}.js   host/soft as the Node build compiled it (build/node/host/soft):
 *                         the very modules the bank and `fobkit app` run
 * - /app/vendor/opaque.js @serenity-kit/opaque's single ES module (WebAssembly inlined)
 * - /app/manifest.webmanifest, /app/icons/*  installable-app metadata (icons.ts)
 * - /app/time             the bank's clock, {now}: the page warns when the device's clock is off
 *                         by more than the bank's window (codes would be refused)
 *
 * Security: CSP `script-src 'self' 'wasm-unsafe-eval'` plus the hash of the
 * one inline element, the import map (an import map is inline-only in
 * Chromium and is checked against script-src like any inline script; CSP3
 * §8.2 hash source): no inline code can run. 'wasm-unsafe-eval' lets OPAQUE's
 * WebAssembly compile (CSP3 §2.3.1 keyword, WebAssembly CSP integration);
 * it allows no JavaScript eval. connect-src 'self': the page talks only to
 * this bank.
 */
import { createHash } from "node:crypto";
import { existsSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply } from "fastify";
import { addPageHeaders } from "../server/security-headers.js";
import { APP_CSS } from "./assets.js";
import { iconPng, iconSvg } from "./icons.js";

export interface AppPluginOptions {
  /** The build tree holding web/ and node/ (default: <repo>/$FOBKIT_BUILD or <repo>/build). */
  buildDir?: string;
  /** The bank's clock (unix ms), told to the page at GET /app/time so it can warn of a device clock that is off. */
  now?: () => number;
}

/** The repository's root: the nearest directory up from here with a package.json (works from host/app and build/node/host/app). */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error("cannot find the fobkit repository root above " + fileURLToPath(import.meta.url));
    dir = up;
  }
}

interface Asset {
  body: Buffer;
  type: string;
}

const JS = "text/javascript; charset=utf-8";

/** Icons are drawn once per process (~90 ms of pixel work), not once per server built. */
let icons: Map<string, Asset> | undefined;
function iconAssets(): Map<string, Asset> {
  icons ??= new Map([
    ["/app/icons/icon.svg", { body: Buffer.from(iconSvg()), type: "image/svg+xml" }],
    ["/app/icons/icon-192.png", { body: iconPng(192), type: "image/png" }],
    ["/app/icons/icon-512.png", { body: iconPng(512), type: "image/png" }],
    ["/app/icons/maskable-512.png", { body: iconPng(512, true), type: "image/png" }],
  ]);
  return icons;
}

const OPAQUE_JS = join(dirname(createRequire(import.meta.url).resolve("@serenity-kit/opaque/package.json")), "esm", "index.js");

/** Where each of the web app's built files is read from. */
function appFiles(buildDir: string): Record<string, string> {
  const web = join(buildDir, "web", "host", "app", "web");
  const soft = join(buildDir, "node", "host", "soft");
  return {
    "/app/main.js": join(web, "main.js"),
    "/app/i18n.js": join(web, "i18n.js"),
    "/app/keystore.js": join(web, "keystore.js"),
    "/app/sw.js": join(web, "sw.js"),
    "/app/soft/protocol.js": join(soft, "protocol.js"),
    "/app/soft/client.js": join(soft, "client.js"),
    "/app/vendor/opaque.js": OPAQUE_JS,
  };
}

interface LoadedAssets {
  assets: Map<string, Asset>;
  missing: string[];
  /** The shell's version: a change to any file served makes a new service worker and cache (sw.ts). */
  version: string;
  /** Size, mtime and inode of every file as read: the cache entry holds while they do. */
  stamp: string;
}

/**
 * The web app's files and the shell's version, read and hashed once per build directory per process, not once
 * per server built (a process that builds many servers, the tests and the worker cluster, read ~0.5 MB and
 * hashed it each time). A file that changed since (a rebuild while the process runs) changes its size, mtime or
 * inode, so the next server built reads the directory afresh, as every server did; a server already running
 * keeps what it read at start, as before.
 */
const loaded = new Map<string, LoadedAssets>();

function stampOf(files: Record<string, string>): string {
  return Object.values(files)
    .map((file) => {
      const st = statSync(file, { throwIfNoEntry: false });
      return st ? `${st.size}:${st.mtimeMs}:${st.ino}` : "-";
    })
    .join(",");
}

/** The web app's files; a missing build leaves a file out (served 503 with how to build it). */
function loadAssets(buildDir: string): LoadedAssets {
  const files = appFiles(buildDir);
  const stamp = stampOf(files);
  const hit = loaded.get(buildDir);
  if (hit?.stamp === stamp) return hit;
  const assets = new Map<string, Asset>();
  const missing: string[] = [];
  for (const [url, file] of Object.entries(files)) {
    if (existsSync(file)) assets.set(url, { body: readFileSync(file), type: JS });
    else missing.push(url);
  }
  assets.set("/app/app.css", { body: Buffer.from(APP_CSS), type: "text/css; charset=utf-8" });
  for (const [url, a] of iconAssets()) assets.set(url, a);
  assets.set("/app/manifest.webmanifest", { body: Buffer.from(JSON.stringify(MANIFEST, null, 2)), type: "application/manifest+json" });
  const h = createHash("sha256");
  for (const [url, a] of [...assets].sort(([x], [y]) => x.localeCompare(y))) h.update(url).update("\0").update(a.body);
  const entry = { assets, missing, version: h.digest("hex").slice(0, 16), stamp };
  loaded.set(buildDir, entry);
  return entry;
}

/** W3C Web App Manifest: installable with scope /app/ (the app never leaves it). */
const MANIFEST = {
  name: "ワンタイムパスワード",
  short_name: "ワンタイム",
  description: "インターネットバンキングのワンタイムパスワード（ソフトウェアトークン）",
  lang: "ja",
  dir: "ltr",
  id: "/app/",
  start_url: "/app/",
  scope: "/app/",
  display: "standalone",
  orientation: "portrait",
  background_color: "#ffffff",
  theme_color: "#0b5cad",
  icons: [
    { src: "/app/icons/icon-192.png", sizes: "192x192", type: "image/png", purpose: "any" },
    { src: "/app/icons/icon-512.png", sizes: "512x512", type: "image/png", purpose: "any" },
    { src: "/app/icons/maskable-512.png", sizes: "512x512", type: "image/png", purpose: "maskable" },
    { src: "/app/icons/icon.svg", sizes: "any", type: "image/svg+xml", purpose: "any" },
  ],
};

export const IMPORT_MAP = JSON.stringify({ imports: { "@serenity-kit/opaque": "/app/vendor/opaque.js", "@fobkit/soft/": "/app/soft/" } });

function page(version: string): string {
  return `<!doctype html>
<html lang="ja">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="fobkit-shell" content="${version}">
<meta name="theme-color" content="#0b5cad">
<meta name="referrer" content="no-referrer">
<title>ワンタイムパスワード</title>
<link rel="manifest" href="/app/manifest.webmanifest">
<link rel="icon" href="/app/icons/icon.svg" type="image/svg+xml">
<link rel="apple-touch-icon" href="/app/icons/icon-192.png">
<link rel="stylesheet" href="/app/app.css">
<script type="importmap">${IMPORT_MAP}</script>
<script type="module" src="/app/main.js"></script>
</head>
<body>
<div id="app"><p>読み込み中…</p></div>
<noscript><p>このアプリを使うには JavaScript を有効にしてください。 (JavaScript is needed.)</p></noscript>
</body>
</html>
`;
}

export function appCsp(): string {
  const mapHash = createHash("sha256").update(IMPORT_MAP).digest("base64");
  return [
    "default-src 'none'",
    `script-src 'self' 'wasm-unsafe-eval' 'sha256-${mapHash}'`,
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "manifest-src 'self'",
    "worker-src 'self'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join("; ");
}

export async function appPlugin(app: FastifyInstance, options: AppPluginOptions): Promise<void> {
  const root = repoRoot();
  const buildDir = options.buildDir ?? resolve(root, process.env.FOBKIT_BUILD ?? "build");
  const { assets, missing, version } = loadAssets(buildDir);
  const index = Buffer.from(page(version));
  const csp = appCsp();

  addPageHeaders(app, {
    csp,
    referrerPolicy: "no-referrer",
    // Revalidate every time: the service worker keeps the offline copy, not the HTTP cache.
    cacheControl: "no-cache",
    more: { "cross-origin-opener-policy": "same-origin" },
  });

  const send = (reply: FastifyReply, a: Asset) => reply.type(a.type).send(a.body);
  const now = options.now ?? Date.now;
  // The bank's clock is now's answer only: never from a cache (RFC 9111 §5.2.2.5).
  app.get("/app/time", async (_req, reply) => {
    reply.header("cache-control", "no-store");
    return { now: now() };
  });
  app.get("/app", (_req, reply) => reply.redirect("/app/", 308));
  app.get("/app/", (_req, reply) => reply.type("text/html; charset=utf-8").send(index));
  for (const url of [...assets.keys(), ...missing]) {
    app.get(url, (_req, reply) => {
      const a = assets.get(url);
      if (a) return send(reply, a);
      return reply
        .code(503)
        .type("text/plain; charset=utf-8")
        .send(`${url} is not built: run \`make host\` (npx tsc -p tsconfig.node.json && npx tsc -p tsconfig.web.json)\n`);
    });
  }
}
