/**
 * The console models seen where they matter, on the link: the emulator on a
 * real PTY (socat) and the host side through the real serialport package.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { SerialPort } from "serialport";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { loadHil, tempDir } from "./support.js";
import { LINK_BAUD } from "../../protocol/codes.js";

type Hil = Awaited<ReturnType<typeof loadHil>>;
let hil: Hil;
beforeAll(async () => {
  hil = await loadHil();
}, 120_000);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

async function boardOnPty(init: string) {
  const dir = tempDir("emu-pty-con-");
  writeFileSync(join(dir, "init.lua"), init);
  const emu = new hil.Emulator({ stateDir: dir, time: 1700000000, countInstructions: false, realtime: true });
  cleanups.push(() => emu.close());
  const path = join(dir, "tty");
  const link = await hil.PtyLink.open(emu, { path });
  cleanups.push(() => link.close());
  const port = await new Promise<SerialPort>((resolve, reject) => {
    const p = new SerialPort({ path, baudRate: LINK_BAUD, autoOpen: false });
    p.open((err) => (err ? reject(err) : resolve(p)));
  });
  cleanups.push(() => new Promise<void>((r) => (port.isOpen ? port.close(() => r()) : r())));
  let received = "";
  const waiters: { re: RegExp; resolve: () => void }[] = [];
  port.on("data", (chunk: Buffer) => {
    received += chunk.toString("latin1");
    for (const w of waiters.splice(0)) {
      if (w.re.test(received)) w.resolve();
      else waiters.push(w);
    }
  });
  const until = (re: RegExp, timeoutMs = 10000) =>
    new Promise<void>((resolve, reject) => {
      if (re.test(received)) return resolve();
      const timer = setTimeout(() => reject(new Error(`no ${re} in ${timeoutMs} ms; got ${JSON.stringify(received.slice(-200))}`)), timeoutMs);
      waiters.push({ re, resolve: () => (clearTimeout(timer), resolve()) });
    });
  const send = (data: string | Buffer) => new Promise<void>((resolve, reject) => port.write(data, (e) => (e ? reject(e) : port.drain(() => resolve()))));
  emu.boot();
  return { emu, send, until, received: () => received };
}

describe("console on the link", () => {
  it("a keyfob that never called uart.start hears nothing: what the host sends before it is gone (uart.c:70-71)", async () => {
    // The button starts the console, so the order does not depend on the machine's load.
    const b = await boardOnPty(`
      uart.on(0, "data", "\\n", function(d) uart.write(0, "got:" .. d) end, 0)
      gpio.config({ gpio = 27, dir = gpio.IN, pull = gpio.PULL_UP })
      gpio.trig(27, gpio.INTR_DOWN, function() uart.start(0) uart.write(0, "started\\n") gpio.trig(27) end)
    `);
    await b.send("early\n");
    for (let i = 0; i < 500 && b.emu.counters.uartRxBytes < 6; i++) await new Promise((r) => setTimeout(r, 10));
    expect(b.emu.counters.uartRxBytes).toBe(6); // "early\n" reached the board's UART
    b.emu.press();
    await b.until(/started\n$/);
    await b.send("late\n");
    await b.until(/got:late\n$/);
    expect(b.received()).not.toContain("got:early");
  }, 20_000);

  it("bytes sent while Lua is blocked overflow the 128-byte FIFO once the queue, ring and stash are full; the rest arrive", async () => {
    // "!" makes Lua write 2000 bytes: the console driver has no TX buffer, so
    // Lua blocks about 162 ms, while the host's next 1000 bytes arrive.
    const b = await boardOnPty(`
      n = 0
      uart.on(0, "data", 0, function(d)
        n = n + 1
        if d == "!" then uart.write(0, string.rep("x", 2000)) end
        if d == "?" then uart.write(0, "n=" .. n .. ";") end
      end, 0)
      uart.start(0)
    `);
    const overruns: number[] = [];
    b.emu.on("uart-overrun", (e: { lost: number }) => overruns.push(e.lost));
    await b.send(Buffer.concat([Buffer.from("!"), Buffer.alloc(1000, 0x61)]));
    await b.until(/x{2000}$/);
    await b.send("?");
    await b.until(/n=\d+;$/);
    const n = Number(/n=(\d+);$/.exec(b.received())![1]);
    const lost = b.emu.counters.uartRxLost;
    expect(lost).toBeGreaterThan(0);
    expect(overruns.reduce((a, x) => a + x, 0)).toBe(lost);
    // Whatever the line's timing did, every byte either reached Lua or was lost to an overflow.
    expect(n + lost).toBe(1 + 1000 + 1);
    // Before the first loss: 100 queued + 1 in hand + at most 256 in the ring + a stash + 128 in the FIFO.
    expect(n).toBeGreaterThan(100 + 1 + 128);
  }, 20_000);
});
