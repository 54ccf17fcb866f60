/**
 * SQLite's TokenStore: every decision in its own transaction, which
 * SqliteDatabase runs under BEGIN IMMEDIATE (the write lock, so no other
 * process reads the row between this decision's read and its write) and
 * joins into a group commit with the transactions queued beside it. The
 * database is in process: reading the row, deciding and writing cost
 * microseconds each, so the transaction is already the fast shape.
 */
import type { SqliteDatabase } from "./sqlite-database.js";
import type { KeyRing } from "./key-ring.js";
import { SqlTokenStore } from "./sql-token-store.js";

export class SqliteTokenStore extends SqlTokenStore {
  constructor(db: SqliteDatabase, keys: KeyRing, now: () => number) {
    super(db, keys, now);
  }
}
