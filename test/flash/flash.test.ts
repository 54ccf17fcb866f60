/**
 * fobkit flash against emulated boards on real PTYs (socat + serialport at
 * 115200 baud): a blank board is flashed and answers INFO; an upload broken
 * at a random point (seeded) by a power cut or by the host going away
 * (inside the image's largest file) resumes from the board's verified prefix and ends with the right CRC; a
 * locked keyfob executes none of the Lua source sent to its UART.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterEach, describe, expect, it } from "vitest";
import { Emulator } from "../../hil/emulator.js";
import { NEWLIB_BUFSIZ } from "../../hil/nodemcu/file.js";
import { PtyLink } from "../../hil/pty.js";
import { DeviceSession } from "../../host/device/session.js";
import { crc32, crcHex } from "../../host/flash/crc32.js";
import { FlashError, flashBoard, IMAGE_NAME, imageDataLines, INIT_NAME, INIT_SOURCE, RX_PATH_BYTES, WINDOW_BYTES, type FlashResult } from "../../host/flash/flasher.js";
import { ReplClient } from "../../host/flash/repl-client.js";
import { LZ_MARK, LZ_WINDOW, lzDecode } from "../../host/flash/lua-chunks.js";
import { SerialTransport } from "../../host/transport/serial-transport.js";
import * as P from "../../protocol/index.js";
import { fobkit } from "../station/cli-io.js";
import { IMAGE, NODE_BUILD } from "../support/paths.js";
import { bytecodeName, imageFilePaths } from "../../host/flash/image-files.js";
import { prng } from "../support/prng.js";
import { LINK_BAUD } from "../../protocol/codes.js";
import { compileChunk } from "../../hil/compile.js";

const image = readFileSync(IMAGE);
// The image's other files (host/flash/image-files.ts), installed beside the core.
const files = imageFilePaths(IMAGE).slice(1).map((f) => ({ name: f.name, data: readFileSync(f.path) }));
const imageBytes = image.length + files.reduce((n, f) => n + f.data.length, 0);
// The largest file of the image, where the resume tests break the upload; base: its offset in the whole image.
const target = (() => {
  const all = [{ name: IMAGE_NAME, data: image }, ...files];
  const k = all.reduce((best, f, i) => (f.data.length > all[best].data.length ? i : best), 0);
  return { ...all[k], base: all.slice(0, k).reduce((n, f) => n + f.data.length, 0) };
})();
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

function temp(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

/** A board on a PTY, in-process; blank unless an image is given. */
async function boardOnPty(opts: { imagePath?: string } = {}) {
  const dir = temp("fobkit-flash-");
  const path = join(dir, "tty");
  const stateDir = join(dir, "state");
  const emu = new Emulator({ stateDir, imagePath: opts.imagePath, time: 1_764_000_000, realtime: true, countInstructions: false });
  const link = await PtyLink.open(emu, { path });
  emu.boot();
  cleanups.push(async () => {
    await link.close();
    emu.close();
  });
  return { emu, link, path, stateDir };
}

/** Every file checked (r.bytecode: the board's CRC of each .lc), compiled, its source removed; init.lua last. */
function expectInstalled(stateDir: string, r: FlashResult): void {
  expect(readFileSync(join(stateDir, "init.lua"), "latin1")).toBe(INIT_SOURCE);
  for (const name of ["fobkit.lua", ...files.map((f) => f.name)]) {
    expect(existsSync(join(stateDir, name + ".part")), name).toBe(false);
    expect(existsSync(join(stateDir, name)), name).toBe(false);
    const lc = readFileSync(join(stateDir, bytecodeName(name)));
    expect(lc.length, name).toBeGreaterThan(0);
    expect(r.bytecode.find((b) => b.name === bytecodeName(name))).toEqual({ name: bytecodeName(name), bytes: lc.length });
  }
}

/** Power cycle a board a failed flash left: it boots into its REPL, and a clean run installs the image. */
async function expectInstallAfterPowerCycle(b: { emu: Emulator; path: string; stateDir: string }): Promise<void> {
  b.emu.powerCut();
  b.emu.boot();
  const r = await flashBoard({ port: b.path, image, files });
  expect(r.info.state).toBe("blank");
  expectInstalled(b.stateDir, r);
}

function report(what: string, r: FlashResult): void {
  console.log(`${what}: ${r.imageBytes} B image, ${r.lines} lines, wire ${r.wireBytesOut} B out / ${r.wireBytesIn} B in, upload ${(r.uploadMs / 1000).toFixed(1)} s, total ${(r.totalMs / 1000).toFixed(1)} s, resumed at ${r.resumedFrom}`);
}

describe("fobkit flash", () => {
  it("flashes a board started with `fobkit emu --blank`; it restarts into the firmware and answers INFO as a blank keyfob; a second flash is refused", async () => {
    const dir = temp("fobkit-flash-cli-");
    const path = join(dir, "tty");
    const stateDir = join(dir, "state");
    const runner = `import { runCli } from ${JSON.stringify(join(NODE_BUILD, "host", "cli", "main.js"))}; process.exitCode = await runCli(process.argv.slice(1));`;
    const child: ChildProcess = spawn(process.execPath, ["--input-type=module", "-e", runner, "emu", "--blank", "--pty", path, "--state", stateDir, "--time", "1764000000"], { stdio: ["pipe", "pipe", "pipe"] });
    const events: Record<string, unknown>[] = [];
    const ready = new Promise<void>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`fobkit emu exited with ${code}`)));
      createInterface({ input: child.stdout! }).on("line", (l) => {
        const e = JSON.parse(l);
        events.push(e);
        if (e.event === "ready") resolve();
      });
    });
    cleanups.push(async () => {
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.stdin!.end();
        await gone;
      }
    });
    await ready;
    expect(events.map((e) => e.event).slice(0, 2)).toEqual(["boot", "repl"]);
    expect(existsSync(join(stateDir, "fobkit.lua"))).toBe(false);

    const r = await fobkit(["flash", "--port", path, "--image", IMAGE, "--json"]);
    expect(r.stderr).not.toMatch(/fobkit: /);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout);
    expect(out).toMatchObject({ imageBytes, crc: crcHex(crc32(image)), alreadyThere: false, resumedFrom: 0 });
    expect(out.info).toMatchObject({ state: "blank", seedSet: false, lockSet: false, model: "FOBKIT-1", serial: "" });
    expect(r.stderr).toMatch(/flash: 100%/); // not a TTY: plain progress lines
    expectInstalled(stateDir, out);
    expect(events.filter((e) => e.event === "boot").map((e) => e.init)).toEqual([false, true]);
    console.log(`fobkit flash, ${imageBytes} B at ${LINK_BAUD} baud: upload ${(out.uploadMs / 1000).toFixed(1)} s, total ${(out.totalMs / 1000).toFixed(1)} s, wire ${out.wireBytesOut} B out / ${out.wireBytesIn} B in (${((out.wireBytesOut * 10) / LINK_BAUD).toFixed(1)} s at 10 bits per byte)`);

    const again = await fobkit(["flash", "--port", path, "--image", IMAGE]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/already runs fobkit .*state blank.*nothing to do/);
  }, 120_000);

  it.each([
    ["a power cut during a flash write", 0x1f2e3d4c, "power"],
    ["the host going away mid-line", 0x0badcafe, "host"],
  ] as const)("an upload broken by %s resumes from the verified prefix and ends with the right CRC", async (_what, seed, how) => {
    const rnd = prng(seed);
    const b = await boardOnPty();
    // Broken inside the largest file (the core's first file is the loader alone, a few hundred bytes).
    const lines = imageDataLines(target.name, target.data, 0);
    const allLines = [{ name: IMAGE_NAME, data: image }, ...files].reduce((n, f) => n + imageDataLines(f.name, f.data, 0).length, 0);
    const breakAt = 20 + rnd.int(lines.length - 40);
    const breakDone = target.base + lines[breakAt].offset;
    let first: unknown;
    if (how === "power") {
      // Armed once the upload is past the break point: the next flash write loses the power.
      let armed = false;
      first = await flashBoard({ port: b.path, image, files, lineTimeoutMs: 1000, onProgress: (p) => {
        if (!armed && p.done >= breakDone) {
          armed = true;
          b.emu.powerCutAtWrite(1);
        }
      } }).catch((e) => e);
      expect(b.emu.powered).toBe(false);
      b.emu.boot(); // power back: still no init.lua, so the REPL again
    } else {
      const ac = new AbortController();
      first = await flashBoard({ port: b.path, image, files, signal: ac.signal, onProgress: (p) => p.done >= breakDone && ac.abort() }).catch((e) => e);
      // The broken link left part of a line in the board's line buffer.
      const t = new SerialTransport({ path: b.path });
      await t.open();
      await t.write(Buffer.from(lines[breakAt + 1].line.slice(0, 1 + rnd.int(lines[breakAt + 1].line.length - 2)), "latin1"));
      await new Promise((r) => setTimeout(r, 100));
      await t.close();
    }
    expect(first).toBeInstanceOf(FlashError);
    // What the broken upload left: the file itself, cut short (the flasher writes a source under its own name).
    const part = readFileSync(join(b.stateDir, target.name));
    expect(part.length).toBeGreaterThan(0);
    expect(part.length).toBeLessThan(target.data.length);
    expect(existsSync(join(b.stateDir, "init.lua"))).toBe(false);

    const r = await flashBoard({ port: b.path, image, files });
    report(`resumed after ${how === "power" ? "a power cut" : "a broken link"}`, r);
    // The files before the target are complete on the board: the run starts in the target.
    if (how === "power") expect(r.resumedFrom).toBe(target.base + part.length);
    else {
      // The board's stale FILE still buffered up to newlib's 128 bytes; the flasher's
      // first line closes it, which flushes them (hil/nodemcu/file.ts).
      expect(r.resumedFrom).toBeGreaterThanOrEqual(target.base + part.length);
      expect(r.resumedFrom - target.base - part.length).toBeLessThan(NEWLIB_BUFSIZ);
    }
    expect(r.lines).toBeLessThan(allLines - 10);
    expect(r.crc).toBe(crcHex(crc32(image)));
    expect(r.info.state).toBe("blank");
    expectInstalled(b.stateDir, r);
  }, 120_000);

  it("a file on the board that is not a prefix of the image's is rewritten from the start", async () => {
    const b = await boardOnPty();
    const junk = Buffer.from(target.data.subarray(0, 5000));
    junk[1234] ^= 1;
    writeFileSync(join(b.stateDir, target.name), junk);
    const r = await flashBoard({ port: b.path, image, files });
    expect(r.resumedFrom).toBe(0);
    // Every line of every file sent: nothing of the junk kept.
    expect(r.lines).toBe([{ name: IMAGE_NAME, data: image }, ...files].reduce((n, f) => n + imageDataLines(f.name, f.data, 0).length, 0));
    expectInstalled(b.stateDir, r);
  }, 120_000);
});

describe("the image's data lines are LZ-coded (lua-chunks.ts lzChunk, the board's _fk.z)", () => {
  it("every byte value, the marker itself, digits after decimal escapes and references up to the window's end reach the board's flash exact, and repeated text costs well under its size on the wire", async () => {
    // A Lua source (node.compile must take it) whose long string holds every byte value but CR and LF
    // (the lexer normalizes them), the marker "`" among digits, and text repeated near LZ_WINDOW apart.
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i).filter((i) => i !== 10 && i !== 13));
    const rnd = prng(0x5eed1234);
    const filler = Buffer.from(Array.from({ length: 4000 }, () => "abcdefghijklmnopqrstuvwxyz0123456789"[rnd.int(36)]).join(""), "latin1");
    const text = Buffer.from("local t={} for i=1,40 do t[i]=`".replace("`", "i*i") + " end\n", "latin1");
    const body = Buffer.concat([Buffer.from("local s=[==[", "latin1"), all, Buffer.from("`1`2``\x01" + "9`", "latin1"), filler, filler.subarray(0, 60), Buffer.from("]==]\n", "latin1"), ...Array.from({ length: 60 }, () => text), Buffer.from("return s\n", "latin1")]);
    const b = await boardOnPty();
    const extra = { name: "fobkit-lz.lua", data: body };
    const r = await flashBoard({ port: b.path, image, files: [...files, extra] });
    // The board's CRC of what it read back matched (else verify failed), the .lc loads.
    expect(r.bytecode.map((x) => x.name)).toContain("fobkit-lz.lc");
    const lines = imageDataLines(extra.name, body, 0);
    expect(lines.reduce((n, c) => n + c.length, 0)).toBe(body.length);
    // Repeated Lua text (60 copies of one line) goes as references: a fraction of its size on the wire.
    const repeated = Buffer.concat(Array.from({ length: 60 }, () => text));
    const wire = imageDataLines(extra.name, repeated, 0).reduce((n, c) => n + c.line.length + 1, 0);
    expect(wire).toBeLessThan(repeated.length * 0.25);
    report("lz image", r);
  }, 120_000);
});

describe("after node.restart() (shared-port.ts)", () => {
  it("the port stays open until the restarted firmware answers INFO: one open for the whole flash, so no reopen per INFO try (and no DTR/RTS toggle that could reset an auto-reset board)", async () => {
    const b = await boardOnPty();
    let opens = 0;
    let closes = 0;
    const open = () => {
      const t = new SerialTransport({ path: b.path });
      const o = t.open.bind(t);
      const c = t.close.bind(t);
      t.open = () => {
        opens++;
        return o();
      };
      t.close = () => {
        closes++;
        return c();
      };
      return t;
    };
    // The first INFO goes before the emulated boot can be through, so at least one try times out.
    const r = await flashBoard({ port: b.path, image, files, openTransport: open, restartWaitMs: 0 });
    expect(r.info.state).toBe("blank");
    expect(opens).toBe(1);
    expect(closes).toBeGreaterThanOrEqual(1);
    expectInstalled(b.stateDir, r);
    report("one open", r);
  }, 120_000);
});

describe("REPL lockdown", () => {
  it("a locked keyfob executes none of the Lua source sent on its UART, framed or not, and still works", async () => {
    const b = await boardOnPty({ imagePath: IMAGE });
    let session = await DeviceSession.open(new SerialTransport({ path: b.path }));
    await session.setClock(1_764_003_600); // ahead of the running RTC: never "backwards" on a slow machine
    await session.writeSeed({ algorithm: "SHA1", digits: 8, period: 60, seed: Uint8Array.from(Buffer.from("12345678901234567890")) });
    await session.setSerial("FK00000042");
    await session.lock("FK00000042");
    const before = await session.info();
    expect(before.state).toBe("locked");
    await session.close();

    const evil = [
      'io.open("pwned","w"):write("x")',
      '=io.open("pwned","w"):write("x")',
      'file.rename("fobkit.lc","pwned")',
      "node.restart()",
      'uart.on("data", 0, function() end, 1)',
    ];
    const stateBefore = readdirSync(b.stateDir).sort();
    const bootsBefore = b.emu.counters.boots;
    const heard: number[] = [];
    b.emu.on("uart", (x: Uint8Array) => heard.push(...x));
    const t = new SerialTransport({ path: b.path });
    await t.open();
    for (const line of evil) {
      for (const end of ["\n", "\r\n", "\r"]) await t.write(Buffer.from(line + end, "latin1"));
      // The same text as the body of intact frames (COBS, CRC-16), alone and behind a version byte.
      const text = Array.from(Buffer.from(line + "\n", "latin1"));
      await t.write(Uint8Array.from(P.encodeFrame(text, text.length)));
      const versioned = [1, ...text];
      await t.write(Uint8Array.from(P.encodeFrame(versioned, versioned.length)));
    }
    await new Promise((r) => setTimeout(r, 1500));
    await t.close();

    expect(existsSync(join(b.stateDir, "pwned"))).toBe(false);
    expect(readdirSync(b.stateDir).sort()).toEqual(stateBefore);
    expect(b.emu.counters.boots).toBe(bootsBefore);
    // No REPL answered: nothing of the source came back as echo.
    const said = Buffer.from(heard).toString("latin1");
    expect(said).not.toContain("pwned");
    expect(said).not.toContain("io.open");

    session = await DeviceSession.open(new SerialTransport({ path: b.path }));
    const after = await session.info();
    await session.close();
    expect(after).toMatchObject({ state: "locked", serial: "FK00000042", hardwareId: before.hardwareId, seedSet: true });
    const shown = new Promise<string>((resolve) => b.emu.on("display", (e: { text: string }) => /^\d{8}$/.test(e.text) && resolve(e.text)));
    b.emu.press();
    expect(await shown).toMatch(/^\d{8}$/);

    const r = await fobkit(["flash", "--port", b.path, "--image", IMAGE]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/locked .*nothing to do/);
    expect(existsSync(join(b.stateDir, "pwned"))).toBe(false);
  }, 120_000);
});

/**
 * `line` with its first lowercase letter (a-y) inside the W"..." literal one
 * higher: the line still parses and carries as many bytes.
 */
function flipLetter(line: string): string {
  const q = line.indexOf('"') + 1;
  const at = q + [...line.slice(q)].findIndex((c) => c >= "a" && c < "z");
  return line.slice(0, at) + String.fromCharCode(line.charCodeAt(at) + 1) + line.slice(at + 1);
}

/**
 * The board boots whatever init.lua it holds (Kconfig LUA_INIT_STRING "@init.lua"):
 * an install must never leave one that boots a damaged init.lua or a damaged image,
 * or the console may stay deaf (init-lua.ts takes it first) and only esptool helps.
 */
describe("an install never leaves an init.lua that boots something bad", () => {
  const initLines = imageDataLines(`${INIT_NAME}.part`, Buffer.from(INIT_SOURCE, "latin1"), 0).map((c) => c.line);

  /**
   * A serial port whose wire turns the data line `good` into `bad` (a UART
   * bit error); by default one letter inside the first data line of init.lua.
   */
  function corruptingPort(path: string, good = initLines[0], bad = flipLetter(good)) {
    const hit = { line: "", count: 0 };
    return {
      hit,
      open: () => {
        const t = new SerialTransport({ path });
        const write = t.write.bind(t);
        t.write = (b: Uint8Array) => {
          const s = Buffer.from(b).toString("latin1");
          if (s === good + "\n") {
            hit.count++;
            hit.line = bad;
            return write(Buffer.from(bad + "\n", "latin1"));
          }
          return write(b);
        };
        return t;
      },
    };
  }

  it("a bit error inside init.lua's upload: the flash fails, and the board holds no damaged init.lua (the old one or none)", async () => {
    const b = await boardOnPty();
    // What a previous install that never restarted left: an init.lua (an older one here).
    const old = "-- an older fobkit init.lua\n" + INIT_SOURCE;
    writeFileSync(join(b.stateDir, "init.lua"), old, "latin1");
    const port = corruptingPort(b.path);
    const e = await flashBoard({ port: b.path, image, files, openTransport: port.open }).catch((x) => x);
    expect(port.hit.count).toBe(1);
    expect(e).toBeInstanceOf(FlashError);
    expect((e as FlashError).code).toBe("verify");
    expect((e as FlashError).message).toMatch(/init\.lua/);
    const initPath = join(b.stateDir, "init.lua");
    if (existsSync(initPath)) expect(readFileSync(initPath, "latin1")).toBe(old);
    expect(existsSync(join(b.stateDir, "init.lua.part"))).toBe(false);
    // Power cycle: no damaged init.lua runs, the board is at its REPL again, and a clean run installs.
    await expectInstallAfterPowerCycle(b);
  }, 120_000);

  it("a bit error inside a source file's upload: its read-back check (stepped by the next file's data lines) fails the flash; no source is removed, no init.lua written", async () => {
    // A line in the middle of the largest file, and a literal letter in it (not
    // inside an LZ reference) whose successor still compiles once the board has
    // decoded it (references after it copy the changed byte too): only the
    // board's CRC of what it reads back can tell.
    const lines = imageDataLines(target.name, target.data, 0);
    const k = lines.length >> 1;
    const decodeWith = (line: string): Buffer => {
      let h = "";
      let out = "";
      for (const [j, c] of lines.entries()) {
        // Data lines hold printable text here (the image has no byte that needs a decimal escape).
        const str = JSON.parse(`"${(j === k ? line : c.line).slice(2, -1).replace(/\\"/g, '\\u0022')}"`) as string;
        const o = lzDecode(h, str);
        out += o;
        h = (h + o).slice(-(LZ_WINDOW + 1));
      }
      return Buffer.from(out, "latin1");
    };
    const good = lines[k].line;
    expect(decodeWith(good).equals(target.data)).toBe(true);
    let bad = "";
    for (let i = 2; bad === "" && i < good.length - 1; i++) {
      if (good.slice(Math.max(0, i - 3), i).includes(LZ_MARK) || !(good.charCodeAt(i) >= 0x61 && good.charCodeAt(i) < 0x7a)) continue;
      const cand = good.slice(0, i) + String.fromCharCode(good.charCodeAt(i) + 1) + good.slice(i + 1);
      try {
        compileChunk(decodeWith(cand), target.name);
      } catch {
        continue; // this flip breaks the syntax: node.compile would fail before the check
      }
      bad = cand;
    }
    expect(bad.length).toBe(good.length);
    const b = await boardOnPty();
    const port = corruptingPort(b.path, good, bad);
    const e = await flashBoard({ port: b.path, image, files, openTransport: port.open }).catch((x) => x);
    expect(port.hit.count).toBe(1);
    expect(e).toBeInstanceOf(FlashError);
    expect((e as FlashError).code).toBe("verify");
    expect((e as FlashError).message).toContain(`${target.name} on the board has ${target.data.length} `);
    expect((e as FlashError).message).toContain(`expected ${target.data.length} ${crcHex(crc32(target.data))}`);
    expect(existsSync(join(b.stateDir, "init.lua"))).toBe(false);
    expect(existsSync(join(b.stateDir, target.name))).toBe(true);
    // Power cycle: the REPL, and a clean run installs.
    await expectInstallAfterPowerCycle(b);
  }, 120_000);

  /** What a complete install whose node.restart() never came leaves: init.lua and every .lc (the sources removed). */
  let installed: Promise<Map<string, Buffer>> | undefined;
  const installedFiles = () => (installed ??= (async () => {
    const done = await boardOnPty();
    await flashBoard({ port: done.path, image, files });
    done.emu.powerCut();
    const names = readdirSync(done.stateDir).filter((f) => f === "init.lua" || f.endsWith(".lc"));
    return new Map(names.map((f) => [f, readFileSync(join(done.stateDir, f))]));
  })());

  it.each([
    ["a power cut while node.compile writes a .lc", "power"],
    ["a failed flash write of a .lc (node.compile raises; its check would fail)", "fail"],
  ] as const)("a re-run after an install that never restarted, with %s: no init.lua is left to boot the damaged image", async (_what, how) => {
    const done = await installedFiles();
    expect([...done.keys()]).toContain("init.lua");
    const b = await boardOnPty();
    for (const [f, data] of done) writeFileSync(join(b.stateDir, f), data);
    const lcName = bytecodeName(target.name);

    // The re-run: node.compile of the target opens its .lc (truncating it), then writes it: that write is cut or fails.
    const flash = b.emu.flash;
    const openWrite = flash.openWrite.bind(flash);
    let armed = false;
    flash.openWrite = (name: string, truncate: boolean) => {
      if (!armed && name === lcName) {
        armed = true;
        if (how === "power") flash.cutAtWrite(2);
        else flash.failAtWrite(2);
      }
      return openWrite(name, truncate);
    };
    const e = await flashBoard({ port: b.path, image, files, lineTimeoutMs: 1000 }).catch((x) => x);
    expect(armed).toBe(true);
    expect(b.emu.powered).toBe(how !== "power");
    expect(e).toBeInstanceOf(FlashError);
    if (how === "fail") expect((e as FlashError).message).toMatch(/node\.compile of .* failed/);
    const lc = readFileSync(join(b.stateDir, lcName));
    expect(lc.equals(done.get(lcName)!)).toBe(false); // the install's .lc is damaged now
    expect(existsSync(join(b.stateDir, "init.lua"))).toBe(false);

    // Power cycle: the REPL (nothing boots the damaged .lc), and a run completes the install.
    flash.openWrite = openWrite;
    if (how === "fail") b.emu.powerCut();
    b.emu.boot();
    const r = await flashBoard({ port: b.path, image, files });
    expect(r.info.state).toBe("blank");
    expectInstalled(b.stateDir, r);
  }, 120_000);
});

describe("the upload's pipeline (ReplClient.pipeline, WINDOW_BYTES)", () => {
  /** A board on a PTY, its REPL in sync and its console at the install's baud. */
  async function replAtLinkBaud() {
    const b = await boardOnPty();
    const t = new SerialTransport({ path: b.path, baudRate: LINK_BAUD });
    await t.open();
    const repl = new ReplClient(t);
    cleanups.push(() => repl.close());
    expect(await repl.sync()).toBe(true);
    await repl.exec(`uart.setup(0,${LINK_BAUD},8,0,1,0)`);
    return { b, t, repl };
  }

  it("keeps the running line and WINDOW_BYTES behind it in flight, and the board's receive path loses none of them while a line keeps it busy", async () => {
    const { b, t, repl } = await replAtLinkBaud();
    // A line that keeps the board's Lua in SPIFFS for ~250 ms (hil/flash.ts: 15 ms + 6 ms per KB),
    // then lines two of which fit the window: while it runs, only the lines behind it wait in the receive path.
    const lineLen = WINDOW_BYTES / 2 - 1;
    const busy = 'local f=io.open("big","wb") for i=1,40 do f:write(string.rep("x",1024)) end f:close()';
    const rnd = prng(0x10ad);
    const data = Array.from({ length: 12 }, (_, i) => `=${i}, "${Buffer.from(rnd.bytes(300)).toString("base64").slice(0, lineLen - 12)}"`.slice(0, lineLen));
    const lines = [busy, ...data, busy, ...data];
    // Bytes written behind the oldest unanswered line, at each write.
    let written = 0;
    let acked = 0;
    let behindMax = 0;
    const write = t.write.bind(t);
    t.write = (bytes: Uint8Array) => {
      written += bytes.length;
      const oldest = lines.findIndex((_, i) => i >= acked);
      behindMax = Math.max(behindMax, written - lines.slice(0, oldest + 1).reduce((n, l) => n + l.length + 1, 0));
      return write(bytes);
    };
    const outs = await repl.pipeline(lines, WINDOW_BYTES, 5000, (i) => (acked = i + 1));
    expect(outs).toEqual(lines.map((l) => (l === busy ? "" : l.slice(1).replace(/, "/, "\t").replace(/"$/, ""))));
    expect(b.emu.counters.uartRxLost).toBe(0);
    expect(b.emu.counters.tasksLost).toBe(0);
    // Two lines behind the running one (a window that counts the running line holds one).
    expect(behindMax).toBeGreaterThan(WINDOW_BYTES - (lineLen + 1));
    expect(behindMax).toBeLessThanOrEqual(WINDOW_BYTES);
  }, 60_000);
  it("keeps each line's own window: WINDOW_BYTES behind a line that writes flash, up to RX_PATH_BYTES behind one that only computes, and the board loses none", async () => {
    const { b, t, repl } = await replAtLinkBaud();
    // ~250 ms in SPIFFS (the flash cache off, only the FIFO takes bytes), then ~150 ms of Lua
    // computing (1.875 us a VM instruction) with the RX ISR running.
    const flashing = 'local f=io.open("big","wb") for i=1,40 do f:write(string.rep("x",1024)) end f:close()';
    const computing = "local x=0 for i=1,20000 do x=x+i end";
    const lineLen = 199;
    const rnd = prng(0x5eed);
    const data = Array.from({ length: 6 }, (_, i) => `=${i}, "${Buffer.from(rnd.bytes(300)).toString("base64").slice(0, lineLen - 12)}"`.slice(0, lineLen));
    const items = [{ line: flashing }, ...data.map((line) => ({ line, windowBytes: RX_PATH_BYTES })), { line: computing, windowBytes: RX_PATH_BYTES }, ...data.map((line) => ({ line, windowBytes: RX_PATH_BYTES }))];
    const ends = items.map((_, i) => items.slice(0, i + 1).reduce((n, it) => n + it.line.length + 1, 0));
    // Bytes written behind each of the two slow lines while it was unanswered.
    let written = 0;
    let acked = 0;
    const behind = [0, 0];
    const slow = [0, data.length + 1];
    const write = t.write.bind(t);
    t.write = (bytes: Uint8Array) => {
      written += bytes.length;
      slow.forEach((k, j) => {
        if (acked <= k) behind[j] = Math.max(behind[j], written - ends[k]);
      });
      return write(bytes);
    };
    await repl.pipeline(items, WINDOW_BYTES, 5000, (i) => (acked = i + 1));
    expect(b.emu.counters.uartRxLost).toBe(0);
    expect(b.emu.counters.tasksLost).toBe(0);
    expect(behind[0]).toBeLessThanOrEqual(WINDOW_BYTES);
    // Two data lines behind the computing line: more than WINDOW_BYTES, within RX_PATH_BYTES.
    expect(behind[1]).toBeGreaterThan(WINDOW_BYTES);
    expect(behind[1]).toBe(ends[slow[1] + 2] - ends[slow[1]]);
    expect(behind[1]).toBeLessThanOrEqual(RX_PATH_BYTES);
  }, 60_000);
});

describe("a write the board refuses during the upload", () => {
  it("SPIFFS full inside the second file's upload: the flash fails saying a write failed, not that the first file's bytecode does not load", async () => {
    const b = await boardOnPty();
    // The fault goes on as the host sends the second file's third data line: the lines still in
    // flight before it are the same file's data lines, so its writes are what SPIFFS refuses.
    const third = imageDataLines(files[0].name, files[0].data, 0)[2].line + "\n";
    let hits = 0;
    const open = () => {
      const t = new SerialTransport({ path: b.path });
      const write = t.write.bind(t);
      t.write = (bytes: Uint8Array) => {
        if (Buffer.from(bytes).toString("latin1") === third) {
          hits++;
          b.emu.setFault("flash-full", true);
        }
        return write(bytes);
      };
      return t;
    };
    const e = await flashBoard({ port: b.path, image, files, openTransport: open }).catch((x) => x);
    b.emu.setFault("flash-full", false);
    expect(hits).toBe(1);
    expect(e).toBeInstanceOf(FlashError);
    expect((e as FlashError).message).not.toMatch(/does not load/);
    expect((e as FlashError).message).toMatch(/write/);
    expect(existsSync(join(b.stateDir, "init.lua"))).toBe(false);
    await expectInstallAfterPowerCycle(b);
  }, 120_000);
});
