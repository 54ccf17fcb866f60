/**
 * A PostgreSQL server that cannot be reached is "unavailable" (HTTP 503 with
 * Retry-After, CLI exit 3: host/server/api-error.ts, host/cli/bank-common.ts),
 * never an internal error. Real pg client, real refused connection: port 1 on
 * loopback, where nothing listens. (Faults under load, with a private
 * cluster, are issue 14 item 5's tests.)
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { expect, it } from "vitest";
import { PostgresDatabase } from "../../host/registry/postgres-database.js";
import { KeyRing } from "../../host/registry/key-ring.js";
import { Registry } from "../../host/registry/registry.js";
import { RegistryError } from "../../host/registry/types.js";

it("a verification against an unreachable PostgreSQL fails as database_unavailable, retryable, naming no password", async () => {
  const db = new PostgresDatabase("postgres://bank:s3cret@127.0.0.1:1/bank");
  const reg = new Registry(db, { keys: KeyRing.fromKeys([{ id: "k", key: randomBytes(32) }]) });
  try {
    for (const attempt of [() => reg.verify("cust-1", "12345678", { name: "channel:x", source: "127.0.0.1" }), () => reg.issue("FK1", "cust-1", { name: "staff:x", source: "cli" })]) {
      const e = await attempt().then(() => undefined, (x) => x);
      expect(e).toBeInstanceOf(RegistryError);
      expect(e).toMatchObject({ code: "database_unavailable", kind: "unavailable" });
      expect(e.message).not.toContain("s3cret");
    }
  } finally {
    await db.close();
  }
});

// A Unix socket in libpq's URL form, user without host: WHATWG URL rejects `postgres://u@/db`,
// node-postgres accepts it (node_modules/pg-connection-string/index.js:26-31, a dummy host).
it("takes a Unix-socket URL postgres://user:pw@/db?host=/dir; a socket that is not there is database_unavailable, naming no password", async () => {
  const db = new PostgresDatabase("postgres://bank:s3cret@/bank?host=/nonexistent-fobkit-socket-dir");
  expect(db.description).toBe("postgres://bank:***@/bank?host=%2Fnonexistent-fobkit-socket-dir");
  const reg = new Registry(db, { keys: KeyRing.fromKeys([{ id: "k", key: randomBytes(32) }]) });
  try {
    const e = await reg.verify("cust-1", "12345678", { name: "channel:x", source: "127.0.0.1" }).then(() => undefined, (x) => x);
    expect(e).toMatchObject({ code: "database_unavailable", kind: "unavailable" });
    expect(e.message).toContain("/nonexistent-fobkit-socket-dir/.s.PGSQL.5432");
    expect(e.message).not.toContain("s3cret");
  } finally {
    await db.close();
  }
});

it.skipIf(!existsSync("/var/run/postgresql/.s.PGSQL.5432"))("reaches the local PostgreSQL over its Unix socket (postgres://postgres@/test?host=/var/run/postgresql)", async () => {
  const db = new PostgresDatabase("postgres://postgres@/test?host=/var/run/postgresql");
  try {
    // inet_server_addr() is NULL on a Unix-socket connection (PostgreSQL docs §9.26, "Session Information Functions").
    expect(await db.get("SELECT inet_server_addr() AS addr, current_user AS u")).toEqual({ addr: null, u: "postgres" });
  } finally {
    await db.close();
  }
});
