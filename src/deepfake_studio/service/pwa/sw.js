/* Deepfake Studio service worker: keeps the app shell so the installed app starts offline.
 *
 * - Pages (navigations): network first; offline, the last copy of the page, else offline.html.
 * - The shell (Gradio's hashed /assets/ and /static/ files, the theme, manifest and icons):
 *   cache first, filled at install (from the page's own script and style links) and by the
 *   page itself, which posts the URLs it loaded (see web.py) so lazily loaded chunks are kept.
 * - Everything else (the REST API, Gradio's queue, uploads and result files, login): network
 *   only. Jobs, voices and audio are never stored here.
 */
const VERSION = "__VERSION__"; // replaced by the server: a new release installs a new worker
const CACHE = `deepfake-studio-shell-${VERSION}`;
const PAGE = "/";
const OFFLINE = "/pwa/offline.html";
const PRECACHE = [
  PAGE,
  OFFLINE,
  "/manifest.json",
  "/theme.css",
  "/pwa/icon.svg",
  "/pwa/icon-192.png",
  "/pwa/icon-512.png",
];
const SHELL_PREFIXES = ["/assets/", "/static/", "/pwa/", "/svelte/"];
const SHELL_FILES = ["/manifest.json", "/theme.css", "/favicon.ico"];

function isShell(url) {
  return (
    url.origin === self.location.origin &&
    (SHELL_FILES.includes(url.pathname) || SHELL_PREFIXES.some((p) => url.pathname.startsWith(p)))
  );
}

async function cacheEach(cache, urls) {
  // One failed URL must not lose the rest (cache.addAll is all or nothing).
  await Promise.all(
    urls.map(async (url) => {
      try {
        const response = await fetch(url, { credentials: "same-origin" });
        if (response.ok) await cache.put(url, response);
      } catch (_) {
        /* offline or gone: skip it */
      }
    }),
  );
}

async function precache() {
  const cache = await caches.open(CACHE);
  await cacheEach(cache, PRECACHE);
  // The page links its entry script and stylesheet: keep those too.
  const page = await cache.match(PAGE);
  if (page) {
    const html = await page.text();
    const links = [...html.matchAll(/(?:src|href)="([^"]+)"/g)]
      .map((m) => new URL(m[1], self.location.origin + PAGE))
      .filter(isShell)
      .map((u) => u.href);
    await cacheEach(cache, links);
  }
}

self.addEventListener("install", (event) => {
  event.waitUntil(precache().then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) {
        if (key.startsWith("deepfake-studio-shell-") && key !== CACHE) await caches.delete(key);
      }
      await self.clients.claim();
    })(),
  );
});

self.addEventListener("message", (event) => {
  const data = event.data || {};
  if (data.type === "cache-shell" && Array.isArray(data.urls)) {
    const urls = data.urls.map((u) => new URL(u, self.location.origin)).filter(isShell);
    event.waitUntil(caches.open(CACHE).then((cache) => cacheEach(cache, urls.map((u) => u.href))));
  }
});

async function fromNetworkFirst(request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok && new URL(request.url).pathname === PAGE && !response.redirected) {
      // Keep the app page, not the login page a token-protected server shows before login
      // (it would replace the app offline, where logging in is impossible).
      const html = await response.clone().text();
      if (!html.includes('"auth_required":true')) await cache.put(PAGE, response.clone());
    }
    return response;
  } catch (error) {
    return (
      (await cache.match(request, { ignoreSearch: true })) ||
      (await cache.match(PAGE)) ||
      (await cache.match(OFFLINE)) ||
      Response.error()
    );
  }
}

async function fromCacheFirst(request) {
  const cache = await caches.open(CACHE);
  const cached = await cache.match(request);
  if (cached) return cached;
  const response = await fetch(request);
  if (response.ok) await cache.put(request, response.clone());
  return response;
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  if (request.mode === "navigate") {
    event.respondWith(fromNetworkFirst(request));
  } else if (isShell(url)) {
    event.respondWith(fromCacheFirst(request));
  }
  // Anything else goes to the network as if there were no service worker.
});
