/**
 * The app's service worker (scope /app/): keeps the app shell so the code
 * screen opens without a network once set up. A classic worker script (no
 * imports): it only caches.
 *
 * - The cache's name carries the shell's version (`?v=` on this script's URL,
 *   from the page's <meta name="fobkit-shell">, a hash the server computes
 *   over the shell's files): a new shell is a new worker, which fills a new
 *   cache and, once active, deletes the old ones.
 * - Shell requests go to the network first (a reachable bank always serves
 *   its current shell) and fall back to the cache; set-up calls (POST
 *   /app/v1/...) are never touched or cached.
 * - Nothing of the token is here: the token lives in IndexedDB (keystore.ts).
 */
interface SwEvent {
  waitUntil(p: Promise<unknown>): void;
}
interface SwFetchEvent extends SwEvent {
  request: Request;
  respondWith(r: Promise<Response> | Response): void;
}
interface SwScope {
  location: Location;
  addEventListener(type: "install" | "activate", h: (e: SwEvent) => void): void;
  addEventListener(type: "fetch", h: (e: SwFetchEvent) => void): void;
  skipWaiting(): Promise<void>;
  clients: { claim(): Promise<void> };
}

const sw = self as unknown as SwScope;
const VERSION = new URL(sw.location.href).searchParams.get("v") ?? "0";
const CACHE = `fobkit-app-${VERSION}`;
/** The shell: everything the code screen needs, and the set-up's code so set-up starts fast. */
const SHELL = [
  "/app/",
  "/app/app.css",
  "/app/main.js",
  "/app/i18n.js",
  "/app/keystore.js",
  "/app/manifest.webmanifest",
  "/app/icons/icon.svg",
  "/app/icons/icon-192.png",
  "/app/icons/icon-512.png",
  "/app/soft/protocol.js",
  "/app/soft/client.js",
  "/app/vendor/opaque.js",
];

sw.addEventListener("install", (e) => {
  e.waitUntil(
    caches
      .open(CACHE)
      .then((c) => c.addAll(SHELL.map((u) => new Request(u, { cache: "reload" }))))
      .then(() => sw.skipWaiting()),
  );
});

sw.addEventListener("activate", (e) => {
  e.waitUntil(
    caches
      .keys()
      .then((names) => Promise.all(names.filter((n) => n.startsWith("fobkit-app-") && n !== CACHE).map((n) => caches.delete(n))))
      .then(() => sw.clients.claim()),
  );
});

sw.addEventListener("fetch", (e) => {
  const req = e.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== sw.location.origin || !url.pathname.startsWith("/app/") || url.pathname.startsWith("/app/v1/")) return;
  // Each answer is kept under its own path (a query does not matter: /app/?anything is the page). Not every
  // navigation under /app/ as "/app/": a followed link to /app/manifest.webmanifest then replaced the offline page
  // with JSON (session 8 review).
  const key = url.pathname;
  e.respondWith(
    fetch(req).then(
      (res) => {
        if (res.ok && SHELL.includes(key)) {
          const copy = res.clone();
          void caches.open(CACHE).then((c) => c.put(key, copy));
        }
        return res;
      },
      async (err) => (await caches.match(key, { cacheName: CACHE })) ?? Promise.reject(err),
    ),
  );
});
