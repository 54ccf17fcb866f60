/**
 * The private cluster's port must be one no outgoing connection can be
 * given: a restart frees it for a moment, and a port from the ephemeral
 * range can be taken then by any test's connection (pg-cluster.ts).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { privatePort, startPgCluster } from "./pg-cluster.js";
import pg from "pg";

const [ephemeralLow] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);

describe("the private PostgreSQL cluster's port", () => {
  it("lies below the kernel's ephemeral range", async () => {
    for (let i = 0; i < 20; i++) {
      const port = await privatePort();
      expect(port).toBeLessThan(ephemeralLow);
      expect(port).toBeGreaterThanOrEqual(1024);
    }
  });

  it("is the one the cluster answers on, before and after a restart", async () => {
    const cluster = await startPgCluster();
    try {
      expect(cluster.port).toBeLessThan(ephemeralLow);
      const ask = async () => {
        const c = new pg.Client({ connectionString: cluster.url });
        await c.connect();
        try {
          return (await c.query("SELECT current_setting('port')::int AS p")).rows[0].p;
        } finally {
          await c.end();
        }
      };
      expect(await ask()).toBe(cluster.port);
      await cluster.restart();
      expect(await ask()).toBe(cluster.port);
    } finally {
      cluster.stop();
    }
  });
});
