/**
 * A PostgreSQL server that cannot be reached is "unavailable" (HTTP 503 with
 * Retry-After, CLI exit 3: host/server/api-error.ts, host/cli/bank-common.ts),
 * never an internal error. Real pg client, real refused connection: port 1 on
 * loopback, where nothing listens. (Faults under load, with a private
 * cluster, are issue 14 item 5's tests.)
 */
import { randomBytes } from "node:crypto";
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
