/**
 * API key authentication. Keys are checked against the database (hashes
 * only, see registry/api-keys.ts); a verified key is remembered for a few
 * seconds so a busy server does not pay a query per request. Revoking a key
 * therefore takes effect within KEY_CACHE_MS on every server.
 */
import { createHash } from "node:crypto";
import { authenticateApiKey } from "../registry/api-keys.js";
import type { Database } from "../registry/database.js";
import type { Role } from "../registry/types.js";

export const KEY_CACHE_MS = 5000;
const MAX_CACHED = 1000;

export class KeyCache {
  private readonly cache = new Map<string, { id: string; role: Role; until: number }>();
  constructor(private readonly db: Database) {}

  async check(key: string): Promise<{ id: string; role: Role } | undefined> {
    const h = createHash("sha256").update(key).digest("base64");
    const now = Date.now();
    const hit = this.cache.get(h);
    if (hit && hit.until > now) return hit;
    const found = await authenticateApiKey(this.db, key);
    if (!found) {
      this.cache.delete(h);
      return undefined;
    }
    if (this.cache.size >= MAX_CACHED) this.cache.clear();
    this.cache.set(h, { ...found, until: now + KEY_CACHE_MS });
    return found;
  }
}
