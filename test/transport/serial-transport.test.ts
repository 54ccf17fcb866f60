/**
 * SerialTransport on real PTYs with serialport's real binding: the contract
 * rules of transport.ts, one by one, and what an unplug looks like.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { SerialTransport } from "../../host/transport/serial-transport.js";
import { TransportError } from "../../host/transport/transport.js";
import { ptyPair, type PtyPair } from "./pty-pair.js";

let pair: PtyPair;
const opened: SerialTransport[] = [];

function transport(path: string): SerialTransport {
  const t = new SerialTransport({ path });
  opened.push(t);
  return t;
}

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(TransportError);
    return (e as TransportError).code;
  }
  return "resolved";
}

/** Read until n bytes arrived (a PTY may deliver a write in pieces). */
async function readN(t: SerialTransport, n: number): Promise<number[]> {
  const got: number[] = [];
  while (got.length < n) got.push(...(await t.read()));
  return got;
}

beforeEach(async () => {
  pair = await ptyPair();
});

afterEach(async () => {
  for (const t of opened.splice(0)) await t.close();
  await pair.dispose();
});

describe("SerialTransport on a real PTY", () => {
  it("carries bytes both ways, in order, and counts them", async () => {
    const host = transport(pair.host);
    const dev = transport(pair.device);
    await host.open();
    await dev.open();
    const frame = Uint8Array.from([0, 3, 1, 2, 3, 0, 0xff, 0]);
    await host.write(frame);
    expect(await readN(dev, frame.length)).toEqual([...frame]);
    const big = Uint8Array.from({ length: 3000 }, (_, i) => (i * 7) & 255);
    await dev.write(big);
    expect(await readN(host, big.length)).toEqual([...big]);
    expect(host.stats).toEqual({ bytesWritten: 8, bytesRead: 3000 });
  });

  it("keeps bytes that arrive while no read is pending", async () => {
    const host = transport(pair.host);
    const dev = transport(pair.device);
    await host.open();
    await dev.open();
    await dev.write(Uint8Array.from([1, 2, 3]));
    await dev.write(Uint8Array.from([4, 5]));
    await new Promise((r) => setTimeout(r, 50));
    expect(await readN(host, 5)).toEqual([1, 2, 3, 4, 5]);
  });

  it("refuses a second concurrent read, a second open, and calls before open", async () => {
    const host = transport(pair.host);
    expect(await code(host.read())).toBe("not_open");
    expect(await code(host.write(Uint8Array.of(0)))).toBe("not_open");
    await host.open();
    expect(await code(host.open())).toBe("already_open");
    const first = code(host.read());
    expect(await code(host.read())).toBe("read_pending");
    await host.close();
    expect(await first).toBe("closed");
  });

  it("names a missing port not_found", async () => {
    expect(await code(transport(pair.dir + "/nothing-here").open())).toBe("not_found");
  });

  it("close() rejects the pending read with closed, fires onClose once, and is idempotent", async () => {
    const host = transport(pair.host);
    await host.open();
    const events: string[] = [];
    host.onClose((e) => events.push(e.reason));
    const pending = code(host.read());
    await host.close();
    await host.close();
    expect(await pending).toBe("closed");
    expect(events).toEqual(["closed"]);
    expect(host.isOpen).toBe(false);
    expect(await code(host.write(Uint8Array.of(0, 1, 0)))).toBe("not_open");
  });

  it("an unplug rejects the pending read with unplugged and fires onClose('unplugged')", async () => {
    const host = transport(pair.host);
    await host.open();
    const events: string[] = [];
    host.onClose((e) => events.push(e.reason));
    const pending = code(host.read());
    const t0 = Date.now();
    await pair.unplug();
    expect(await pending).toBe("unplugged");
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(events).toEqual(["unplugged"]);
    expect(await code(host.write(Uint8Array.of(0, 1, 0)))).toBe("unplugged");
    await host.close();
  });
});
