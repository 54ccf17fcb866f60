/**
 * SharedPort (host/flash/shared-port.ts): leases of one open port, one after
 * another, each a Transport by transport.ts's rules; a lease's close keeps
 * the port open; bytes that arrive while no lease is open are dropped (as by
 * a closed port); the port going away ends the open lease as an unplug.
 */
import { describe, expect, it } from "vitest";
import { SharedPort } from "../../host/flash/shared-port.js";
import { TransportError, type Transport, type TransportCloseEvent } from "../../host/transport/transport.js";

/** An open byte pipe: push() is the device sending, unplug() the USB bridge going away. */
function fakePort() {
  let reader: { resolve: (b: Uint8Array) => void; reject: (e: Error) => void } | undefined;
  const queue: Uint8Array[] = [];
  const listeners: ((e: TransportCloseEvent) => void)[] = [];
  const written: number[] = [];
  let open = true;
  let closes = 0;
  const end = (reason: "closed" | "unplugged") => {
    if (!open) return;
    open = false;
    reader?.reject(new TransportError(reason, `fake: ${reason}`));
    reader = undefined;
    for (const l of listeners) l({ reason });
  };
  const t: Transport = {
    kind: "serial",
    path: "/dev/fake",
    get isOpen() {
      return open;
    },
    stats: { bytesWritten: 0, bytesRead: 0 },
    open: async () => undefined,
    close: async () => {
      closes++;
      end("closed");
    },
    write: async (b) => {
      written.push(...b);
    },
    read: () => {
      const q = queue.shift();
      if (q) return Promise.resolve(q);
      return new Promise((resolve, reject) => (reader = { resolve, reject }));
    },
    onClose: (l) => {
      listeners.push(l);
      return () => undefined;
    },
  };
  return {
    t,
    written,
    closes: () => closes,
    push: (b: number[]) => {
      const r = reader;
      reader = undefined;
      if (r) r.resolve(Uint8Array.from(b));
      else queue.push(Uint8Array.from(b));
    },
    unplug: () => end("unplugged"),
  };
}

const tick = () => new Promise((r) => setTimeout(r, 0));

describe("SharedPort", () => {
  it("hands the port to one lease after another; a lease's close keeps the port open; bytes between leases are dropped", async () => {
    const f = fakePort();
    const port = new SharedPort(f.t);
    const a = port.lease();
    await a.open();
    expect(() => port.lease()).toThrow(/still open/);
    f.push([1, 2]);
    expect([...(await a.read())]).toEqual([1, 2]);
    await a.write(Uint8Array.of(9));
    const pending = a.read();
    await a.close();
    await expect(pending).rejects.toMatchObject({ code: "closed" });
    await expect(a.read()).rejects.toMatchObject({ code: "not_open" });
    expect(f.closes()).toBe(0);
    expect(f.t.isOpen).toBe(true);
    // No lease open: a late reply is dropped, not handed to the next one.
    f.push([3]);
    await tick();
    const b = port.lease();
    await b.open();
    f.push([4]);
    expect([...(await b.read())]).toEqual([4]);
    expect(f.written).toEqual([9]);
    expect(a.stats).toEqual({ bytesWritten: 1, bytesRead: 2 });
    await port.close();
    expect(f.closes()).toBe(1);
    expect(b.isOpen).toBe(false);
  });

  it("the port going away ends the open lease as an unplug, and a new lease cannot open", async () => {
    const f = fakePort();
    const port = new SharedPort(f.t);
    const a = port.lease();
    await a.open();
    const events: string[] = [];
    a.onClose((e) => events.push(e.reason));
    const pending = a.read();
    f.unplug();
    await expect(pending).rejects.toMatchObject({ code: "unplugged" });
    expect(events).toEqual(["unplugged"]);
    await expect(port.lease().open()).rejects.toMatchObject({ code: "unplugged" });
    await port.close();
  });
});
