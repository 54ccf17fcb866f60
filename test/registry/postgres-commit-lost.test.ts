/**
 * A COMMIT whose connection dies before its answer arrives (PostgresDatabase.tx).
 * The transaction may have committed or not; the server must not guess. A
 * TCP proxy between the pool and a PostgreSQL cluster of the test's own
 * lets COMMIT through and then cuts both sides before the answer, or cuts
 * the connection instead of passing COMMIT on:
 * - committed, answer lost: tx() resolves with fn's value (pg_xact_status said committed);
 * - never committed: DatabaseUnavailableError, outcome "none";
 * - the server restarted meanwhile: outcome "unknown" (the xid may name another transaction now).
 */
import { createServer, connect, type Server, type Socket } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DatabaseUnavailableError } from "../../host/registry/database.js";
import { PostgresDatabase } from "../../host/registry/postgres-database.js";
import { startPgCluster, type PgCluster } from "../support/pg-cluster.js";

/** The simple-query message pg sends for client.query("COMMIT"): 'Q', int32 length 11, "COMMIT\0" (PostgreSQL protocol §55.7). */
const COMMIT_MESSAGE = Buffer.from("Q\0\0\0\x0bCOMMIT\0", "latin1");

type Mode = "pass" | "lose-answer" | "lose-commit";

type Proxy = { port: number; mode: Mode; onCut?: () => Promise<void>; cutError?: unknown; server: Server; close(): Promise<void> };

function proxy(targetPort: number): Promise<Proxy> {
  const sockets = new Set<Socket>();
  const state: Proxy = {
    port: 0,
    mode: "pass",
    server: undefined as unknown as Server,
    close: () =>
      new Promise<void>((res) => {
        for (const s of sockets) s.destroy();
        state.server.close(() => res());
      }),
  };
  state.server = createServer((client) => {
    const upstream = connect(targetPort, "127.0.0.1");
    sockets.add(client).add(upstream);
    let answering = true;
    const cut = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("data", (d: Buffer) => {
      if (state.mode !== "pass" && d.includes(COMMIT_MESSAGE)) {
        const mode = state.mode;
        state.mode = "pass";
        answering = false;
        if (mode === "lose-commit") return cut();
        upstream.write(d);
        // Long enough for PostgreSQL to commit; the answer is never passed on.
        // onCut's failure (a restart that did not come back) is kept for the test to assert on,
        // not left as an unhandled rejection that fails the run from outside any test.
        setTimeout(async () => {
          try {
            await state.onCut?.();
          } catch (e) {
            state.cutError = e;
          }
          cut();
        }, 300);
        return;
      }
      upstream.write(d);
    });
    upstream.on("data", (d: Buffer) => {
      if (answering) client.write(d);
    });
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  });
  return new Promise((res) =>
    state.server.listen(0, "127.0.0.1", () => {
      state.port = (state.server.address() as { port: number }).port;
      res(state);
    }),
  );
}

describe("PostgreSQL: a COMMIT whose answer is lost", () => {
  let cluster: PgCluster | undefined;
  let px: Awaited<ReturnType<typeof proxy>>;
  let db: PostgresDatabase;
  let direct: pg.Pool;

  beforeAll(async () => {
    cluster = await startPgCluster();
    px = await proxy(cluster.port);
    direct = new pg.Pool({ connectionString: cluster.url, max: 1 });
    direct.on("error", () => undefined);
    await direct.query("CREATE TABLE decided (v text)");
    db = new PostgresDatabase(`postgres://postgres@127.0.0.1:${px.port}/postgres`);
  });
  afterAll(async () => {
    await db?.close().catch(() => undefined);
    await direct?.end().catch(() => undefined);
    await px?.close();
    cluster?.stop();
  });

  const rows = async (v: string) => (await direct.query("SELECT count(*)::int AS n FROM decided WHERE v = $1", [v])).rows[0].n;
  const decide = (v: string) =>
    db.tx(async (t) => {
      await t.run("INSERT INTO decided VALUES (?)", [v]);
      return `decided ${v}`;
    });

  it("returns the decision when the transaction did commit", async () => {
    px.mode = "lose-answer";
    await expect(decide("a")).resolves.toBe("decided a");
    expect(await rows("a")).toBe(1);
  });

  it("says nothing was done when COMMIT never reached the server", async () => {
    px.mode = "lose-commit";
    const e = await decide("b").catch((x) => x);
    expect(e).toBeInstanceOf(DatabaseUnavailableError);
    expect(e.outcome).toBe("none");
    expect(await rows("b")).toBe(0);
  });

  it("says the outcome is unknown when the server restarted before it could be asked", async () => {
    px.mode = "lose-answer";
    px.onCut = () => cluster!.restart();
    const e = await decide("c").catch((x) => x);
    px.onCut = undefined;
    expect(px.cutError).toBeUndefined();
    expect(e).toBeInstanceOf(DatabaseUnavailableError);
    expect(e.outcome).toBe("unknown");
    // It had committed: "unknown" was the honest answer, "none" would have been a lie.
    expect(await rows("c")).toBe(1);
  });
});
