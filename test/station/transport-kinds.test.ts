/**
 * Each command says which links it works over and refuses the others before
 * opening anything (yubikey-manager's commands declare their connections):
 * flashing needs the UART (NodeMCU's Lua REPL), so a `hid:` path is refused
 * by `fobkit flash` and `flashBoard`, and `fobkit station --flash` never
 * hands a HID keyfob (one that already runs fobkit) to the flasher's serial
 * transport.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { FlashError, flashBoard } from "../../host/flash/flasher.js";
import { FactoryRecord } from "../../host/station/factory-record.js";
import { runStation, type StationEvent } from "../../host/station/station.js";
import type { Transport } from "../../host/transport/transport.js";
import { CliRun } from "./cli-io.js";

const dir = mkdtempSync(join(tmpdir(), "fobkit-kinds-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("transports a command accepts", () => {
  it("flashBoard refuses a hid: path with a clear error, before opening anything", async () => {
    const e = await flashBoard({ port: "hid:/dev/hidraw9", image: new Uint8Array(10) }).catch((x) => x);
    expect(e).toBeInstanceOf(FlashError);
    expect(e.code).toBe("transport");
    expect(e.message).toBe("hid:/dev/hidraw9: flashing works over serial only (NodeMCU's Lua REPL is on the UART); a HID path is a keyfob that already runs fobkit");
  });

  it("fobkit flash --port hid:PATH exits 2 naming the transports it accepts; its --help lists them", async () => {
    const run = new CliRun();
    expect(await run.run(["flash", "--port", "hid:/dev/hidraw9"])).toBe(2);
    expect(run.out.stderr).toMatch(/fobkit flash works over serial only: hid:\/dev\/hidraw9 is a HID device/);
    expect(run.out.stdout).toBe("");
    const help = new CliRun();
    expect(await help.run(["flash", "--help"])).toBe(0);
    expect(help.out.stdout).toMatch(/^transports: serial \(a hid:PATH is refused\)$/m);
    const info = new CliRun();
    expect(await info.run(["info", "--help"])).toBe(0);
    expect(info.out.stdout).toMatch(/^transports: serial, hid /m);
  });

  it("station --flash does not hand a HID keyfob to the flasher: it goes straight to provisioning over HID", async () => {
    const hidNode = join(dir, "hidraw0");
    writeFileSync(hidNode, ""); // the station watches paths that exist
    const record = FactoryRecord.open(join(dir, "f.sqlite"), { create: true, line: 1 });
    const opened: string[] = [];
    const events: StationEvent[] = [];
    const stop = new AbortController();
    try {
      await runStation({
        record,
        ports: ["hid:" + hidNode],
        flashImage: new Uint8Array(100),
        signal: stop.signal,
        pollMs: 20,
        // The HID link itself: recorded, then it fails to open (no keyfob behind it in this test).
        openTransport: (path) => {
          opened.push(path);
          return {
            kind: "hid",
            path,
            open: async () => {
              throw new Error("test: nothing behind this HID path");
            },
            close: async () => undefined,
          } as unknown as Transport;
        },
        onEvent: (e) => {
          events.push(e);
          if (e.type === "result") stop.abort();
        },
      });
    } finally {
      record.close();
    }
    expect(events.some((e) => e.type === "step" && e.step === "flash")).toBe(false);
    expect(opened).toEqual(["hid:" + hidNode]);
    const result = events.find((e) => e.type === "result");
    expect(result?.type === "result" && result.result.reason).toMatch(/nothing behind this HID path/);
  });
});
