/**
 * Where the web app keeps its token: one IndexedDB record holding the
 * token's parameters and the seed as a CryptoKey.
 *
 * The key is the non-extractable HMAC-SHA-256 key deriveSeedKey made
 * (host/soft/protocol.ts): IndexedDB stores a CryptoKey by structured clone
 * (WebCrypto §"Structured clone", W3C Web Cryptography API, 2017 Rec. §13;
 * HTML's StructuredSerialize), keeping its [[extractable]] slot false, so
 * exportKey on the loaded key rejects with InvalidAccessError. The page's
 * own script, or any script injected into it, can make codes while it runs
 * but can never read the seed out. No seed bytes ever exist in JavaScript.
 */
import { parseSoftTokenParams } from "@fobkit/soft/protocol.js";

const DB_NAME = "fobkit-soft-token";
const DB_VERSION = 1;
const STORE = "token";
const ID = "current";

export interface StoredToken {
  /** The exact text the bank's MAC covered (SetupFinishResponse.params). */
  params: string;
  key: CryptoKey;
  /** Unix ms of the set-up on this device. */
  savedAt: number;
}

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB_NAME, DB_VERSION);
    req.onupgradeneeded = () => {
      if (!req.result.objectStoreNames.contains(STORE)) req.result.createObjectStore(STORE);
    };
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
    req.onblocked = () => reject(new Error("IndexedDB is blocked by another tab of this app"));
  });
}

async function run<T>(mode: IDBTransactionMode, body: (s: IDBObjectStore) => IDBRequest<T> | undefined): Promise<T | undefined> {
  const db = await open();
  try {
    return await new Promise<T | undefined>((resolve, reject) => {
      const tx = db.transaction(STORE, mode);
      const req = body(tx.objectStore(STORE));
      // Resolve when the transaction commits, not when the request succeeds: a write is durable only then.
      tx.oncomplete = () => resolve(req?.result);
      tx.onerror = () => reject(tx.error);
      tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
    });
  } finally {
    db.close();
  }
}

export async function loadToken(): Promise<StoredToken | undefined> {
  const t = (await run("readonly", (s) => s.get(ID))) as StoredToken | undefined;
  if (!t || typeof t.params !== "string" || !(t.key instanceof CryptoKey)) return undefined;
  try {
    // A record whose params do not parse cannot show a code or the bank's name: as good as none.
    parseSoftTokenParams(t.params);
  } catch {
    return undefined;
  }
  return t;
}

/** Refuses an extractable key: the store holds nothing the page could read back. */
export async function saveToken(token: StoredToken): Promise<void> {
  if (token.key.extractable) throw new TypeError("refusing to store an extractable seed key");
  await run("readwrite", (s) => s.put(token, ID));
}

/**
 * Proves, before the bank is asked, that this browser can keep the token: opens the database, writes a record
 * holding a fresh non-extractable HMAC key (the same kind of value saveToken stores: structured clone of a
 * CryptoKey), then deletes it. A set-up is single use at the bank, so a browser that cannot store the key
 * (private window, storage denied by policy or quota, a profile error) must find out before it spends the
 * user ID (review R4; `fobkit app setup` checks its store first likewise, host/cli/app.ts). Throws when any
 * step fails.
 */
export async function probeStorage(): Promise<void> {
  const key = await crypto.subtle.generateKey({ name: "HMAC", hash: "SHA-256", length: 256 }, false, ["sign"]);
  const probe = { params: "{}", key, savedAt: Date.now(), probe: true };
  await run("readwrite", (s) => s.put(probe, PROBE_ID));
  await run("readwrite", (s) => s.delete(PROBE_ID));
}
const PROBE_ID = "storage-probe";

export async function removeToken(): Promise<void> {
  await run("readwrite", (s) => s.delete(ID));
}
