/**
 * The emulator on a real PTY (socat) talked to with the real serialport
 * package, as the host tool will: in-process (PtyLink) and through the CLI.
 */
import { spawn } from "node:child_process";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { SerialPort } from "serialport";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { BANNER } from "../../hil/repl.js";
import { NODE_BUILD } from "../support/paths.js";
import { buildFixture, loadHil, tempDir } from "./support.js";
import { LINK_BAUD } from "../../protocol/codes.js";

type Hil = Awaited<ReturnType<typeof loadHil>>;
let hil: Hil;
let image: string;
beforeAll(async () => {
  image = buildFixture();
  hil = await loadHil();
}, 120_000);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function openPort(path: string, baudRate = LINK_BAUD): Promise<SerialPort> {
  return new Promise((resolve, reject) => {
    const p = new SerialPort({ path, baudRate, autoOpen: false });
    p.open((err) => (err ? reject(err) : resolve(p)));
  });
}

/** Collect from the port until the data ends with `tail`. */
function receiveUntil(port: SerialPort, tail: string, timeoutMs = 10000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      port.off("data", onData);
      reject(new Error(`no ${JSON.stringify(tail)} in ${timeoutMs} ms; got ${JSON.stringify(data.toString("latin1"))}`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (data.toString("latin1").endsWith(tail)) {
        clearTimeout(timer);
        port.off("data", onData);
        resolve(data);
      }
    };
    port.on("data", onData);
  });
}

/** Collect n bytes from the port; resolves with them and the time it took. */
function receive(port: SerialPort, n: number, timeoutMs = 10000): Promise<{ data: Buffer; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    let data = Buffer.alloc(0);
    const timer = setTimeout(() => {
      port.off("data", onData);
      reject(new Error(`received ${data.length} of ${n} bytes in ${timeoutMs} ms`));
    }, timeoutMs);
    const onData = (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (data.length >= n) {
        clearTimeout(timer);
        port.off("data", onData);
        resolve({ data, ms: performance.now() - t0 });
      }
    };
    port.on("data", onData);
  });
}

describe("emulator on a PTY", () => {
  it("echoes bytes through socat and serialport, paced at the modelled baud rate", async () => {
    const dir = tempDir("pty-");
    const path = join(dir, "ttyEMU");
    const emu = new hil.Emulator({ stateDir: join(dir, "state"), imagePath: image, time: 1700000000, realtime: true, countInstructions: false, baud: 38400 });
    const link = await hil.PtyLink.open(emu, { path });
    cleanups.push(() => link.close());
    // The host listens from power-on: it reads the boot text first, as from a real board.
    const port = await openPort(path, 38400);
    cleanups.push(() => new Promise<void>((r) => port.close(() => r())));
    const boot = receive(port, BANNER.length + 2);
    emu.boot();
    expect((await boot).data.toString("latin1")).toBe(BANNER + "> ");
    const payload = Buffer.from(Array.from({ length: 384 }, (_, i) => i & 255));
    const got = receive(port, payload.length);
    port.write(payload);
    const { data, ms } = await got;
    expect(data.equals(payload)).toBe(true);
    // 384 bytes at 38400 baud, 10 bits each: 100 ms on the wire (each way, overlapping)
    expect(ms).toBeGreaterThanOrEqual(95);
    console.log(`PTY echo of 384 bytes at 38400 baud: ${ms.toFixed(0)} ms (wire time 100 ms)`);
  }, 30_000);

  it("runs as `fobkit emu`: ready event, serial echo, press -> display event, clean exit on stdin EOF", async () => {
    const dir = tempDir("pty-cli-");
    const path = join(dir, "ttyEMU");
    const child = spawn(process.execPath, [join(NODE_BUILD, "hil", "cli.js"), "--pty", path, "--state", join(dir, "state"), "--image", image, "--time", "1700000000"], { stdio: ["pipe", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    cleanups.push(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    const events: Record<string, unknown>[] = [];
    const waiters: { pred: (e: Record<string, unknown>) => boolean; resolve: (e: Record<string, unknown>) => void }[] = [];
    createInterface({ input: child.stdout }).on("line", (line) => {
      const e = JSON.parse(line) as Record<string, unknown>;
      events.push(e);
      for (const w of [...waiters]) if (w.pred(e)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(e);
      }
    });
    const waitFor = (pred: (e: Record<string, unknown>) => boolean, ms = 15000) =>
      new Promise<Record<string, unknown>>((resolve, reject) => {
        const hit = events.find(pred);
        if (hit) return resolve(hit);
        const t = setTimeout(() => reject(new Error(`no such event in ${ms} ms; got ${JSON.stringify(events)}; stderr ${stderr}`)), ms);
        waiters.push({ pred, resolve: (e) => (clearTimeout(t), resolve(e)) });
      });

    expect(await waitFor((e) => e.event === "ready")).toMatchObject({ event: "ready", pty: path });
    const port = await openPort(path);
    // Opened just after boot: the tail of the boot text may still be on the line.
    const got = receiveUntil(port, "hello");
    port.write(Buffer.from("hello"));
    const text = (await got).toString("latin1");
    expect(text.endsWith("hello")).toBe(true);
    expect((BANNER + "> ").endsWith(text.slice(0, -5))).toBe(true);
    child.stdin.write("press\n");
    expect(await waitFor((e) => e.event === "display" && e.text === "00000001")).toBeTruthy();
    child.stdin.write("advance nope\n");
    expect(await waitFor((e) => e.event === "error" && e.kind === "command")).toBeTruthy();
    await new Promise<void>((r) => port.close(() => r()));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    child.stdin.end();
    expect(await exited).toBe(0);
    expect(events.at(-1)).toMatchObject({ event: "exit", reason: "stdin closed" });
    expect(existsSync(path)).toBe(false); // the link is gone
  }, 30_000);

  it("shuts down cleanly on SIGTERM: socat gone, link removed", async () => {
    const dir = tempDir("pty-term-");
    const path = join(dir, "ttyEMU");
    const child = spawn(process.execPath, [join(NODE_BUILD, "hil", "cli.js"), "--pty", path, "--state", join(dir, "state"), "--image", image], { stdio: ["pipe", "pipe", "pipe"] });
    cleanups.push(() => {
      if (child.exitCode === null) child.kill("SIGKILL");
    });
    const lines: string[] = [];
    const ready = new Promise<void>((resolve) =>
      createInterface({ input: child.stdout }).on("line", (l) => {
        lines.push(l);
        if (l.includes('"ready"')) resolve();
      }),
    );
    await ready;
    expect(existsSync(path)).toBe(true);
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(JSON.parse(lines.at(-1)!)).toMatchObject({ event: "exit", reason: "SIGTERM" });
    expect(existsSync(path)).toBe(false);
  }, 30_000);

  it("rejects bad arguments with a usage error", async () => {
    const child = spawn(process.execPath, [join(NODE_BUILD, "hil", "cli.js"), "--pty", "/tmp/x", "--baud", "12345", "--state", "/tmp/y"], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (d) => (stderr += d));
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    expect(code).toBe(2);
    expect(stderr).toMatch(/--baud 12345 is not a rate/);
  });

  it("--build: a build file it cannot read or model stops it before the PTY exists (exit 3, the setting named)", async () => {
    const dir = tempDir("pty-cli-build-");
    const bad = join(dir, "sdkconfig.int64");
    writeFileSync(bad, "CONFIG_LUA_NUMBER_INT64=y\n");
    for (const [build, why] of [[bad, /CONFIG_LUA_NUMBER_INT64/], [join(dir, "missing"), /cannot read the NodeMCU build file/]] as const) {
      const path = join(dir, "tty");
      const child = spawn(process.execPath, [join(NODE_BUILD, "hil", "cli.js"), "--pty", path, "--state", join(dir, "state"), "--build", build], { stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr += d));
      const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
      expect(code).toBe(3);
      expect(stderr).toMatch(why);
      expect(existsSync(path)).toBe(false);
    }
  });
});
