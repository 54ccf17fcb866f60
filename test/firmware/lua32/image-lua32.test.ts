/**
 * The whole image on lua32 (Debian's lua5.3 built with LUA_32BITS -m32:
 * int32, float32 and 32-bit pointers, NodeMCU's number model), with the
 * Lua-side NodeMCU stand-ins: boot, one provisioning over the console UART,
 * a reboot, and a press that puts the code on the MAX7219.
 *
 * The clock is set to t = 1700000000, where float32 arithmetic goes wrong:
 * 1700000000 / 60 is 28333334 in float32 (FIELD-NOTES), the true step is
 * 28333333. A firmware that let a float into its time arithmetic would show
 * the code of the wrong step here, and only here (fengari and the other VMs
 * have doubles).
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { Max7219 } from "../../../hil/max7219.js";
import { hexBytes, luaBytes, newBoard, run } from "../../support/lua32-board.js";
import { callLua, ref } from "../../support/lua-vm.js";
import { IMAGE, LIB_IMAGE, nodeBuild } from "../../support/paths.js";
import { ascii, referenceHotp } from "../otp/otp-suite.js";

const TIMEOUT = 120_000;
const T0 = 1700000000;
const SEED = ascii("12345678901234567890");
const SERIAL = ascii("FK-0001-7");

type Protocol = typeof import("../../../protocol/index.js");
let P: Protocol;
const boards: string[] = [];

function frame(req: Parameters<Protocol["encodeRequest"]>[0]): number[] {
  const wire = P.encodeRequest(req);
  expect(wire.length, "a valid request").toBeGreaterThan(0);
  return wire;
}

function replies(bytes: number[]) {
  return P.decodeStream(bytes, true).map((e) => {
    expect(e.event, "a whole frame").toBe(P.RX_FRAME);
    return e.msg as import("../../../protocol/index.js").Reply;
  });
}

function display(tx: number[]): string {
  const d = new Max7219();
  for (let i = 0; i + 1 < tx.length; i += 2) d.transaction(Uint8Array.of(tx[i], tx[i + 1]));
  return d.text();
}

function opened(out: Record<string, unknown>): string[] {
  return Buffer.from(hexBytes(out.opened as never)).toString().split("\n");
}

afterAll(() => {
  for (const b of boards) rmSync(b, { recursive: true, force: true });
});

describe("the image on lua32 (NodeMCU's int32/float32) with NodeMCU stand-ins", { timeout: TIMEOUT }, () => {
  it("the VM has NodeMCU's number model: int32, float32 (1700000000/60 floors to 28333334), 4-byte size_t", async () => {
    const out = run(newBoard(IMAGE), `
      out("maxint", math.maxinteger)
      out("floor", math.floor(1700000000 / 60))
      out("third", 1 / 3)
      out("size_t", string.packsize("T"))
    `);
    expect(out).toEqual({ maxint: 2147483647, floor: 28333334, third: { float: "0.333333343" }, size_t: 4 });
  });

  it("the firmware's TOTP at t = 1700000000 is step 28333333's code; a float step would give step 28333334's", async () => {
    // Both computed in the image on lua32: the firmware's own path, and the
    // same HMAC at the counter a float division would pick.
    const results = await callLua("lua32", LIB_IMAGE, [
      { fn: "otp.prepareKey", args: [SEED, 1] },
      { fn: "otp.totp", args: [ref(0), { hi: Math.floor(T0 / 65536), lo: T0 % 65536 }, 60, 8] },
      { fn: "otp.hotp", args: [ref(0), 0, 28333334, 8] },
    ]);
    const right = referenceHotp(SEED, 28333333n, 8, "sha1");
    const wrong = referenceHotp(SEED, 28333334n, 8, "sha1");
    expect(right).not.toBe(wrong);
    expect(results[1]).toEqual({ ok: true, value: Number(right) });
    expect(results[2]).toEqual({ ok: true, value: Number(wrong) });
  });

  it("boots blank, is provisioned and locked over UART0, reboots locked and shows the right code on a press", async () => {
    P = await nodeBuild<Protocol>("protocol/index.js");
    const dir = newBoard(IMAGE);
    boards.push(dir);

    // Power-on 1: blank. Provision the way the station does.
    const reqs = [
      frame({ cmd: P.CMD_INFO, rid: 1 }),
      // SHA-512 is valid on the wire but not in the keyfob (firmware/otp/hash.ts): refused, nothing written.
      frame({ cmd: P.CMD_WRITE_SEED, rid: 9, algorithm: P.ALG_SHA512, digits: 8, period: 60, seed: [...SEED, ...SEED, ...SEED, ...SEED.slice(0, 4)] }),
      frame({ cmd: P.CMD_SET_CLOCK, rid: 2, timeHi: 0, timeLo: T0, flags: 0 }),
      frame({ cmd: P.CMD_WRITE_SEED, rid: 3, algorithm: P.ALG_SHA1, digits: 8, period: 60, seed: SEED }),
      frame({ cmd: P.CMD_SET_SERIAL, rid: 4, serial: SERIAL }),
      frame({ cmd: P.CMD_SELF_TEST, rid: 5 }),
      frame({ cmd: P.CMD_LOCK, rid: 6, serial: SERIAL }),
      frame({ cmd: P.CMD_INFO, rid: 7 }),
    ];
    const first = run(dir, `
      out("booted", BOARD.boot())
      out("opened_at_boot", table.concat(BOARD.opened, "\\n"))
      -- uart.c:64-71: without uart.start(0) the console drops every byte (issue 10 finding 1).
      out("console_started_by_image", BOARD.console.started)
      BOARD.rx(${luaBytes(reqs.flat())})
      out("tx", BOARD.take_tx())
      out("callback_errors", #BOARD.errors)
      out("rtc_base", BOARD.ds3231.base)
      out("rtc_status", BOARD.ds3231.reg[0x0f])
      out("opened", table.concat(BOARD.opened, "\\n"))
    `);
    expect(first.booted).toBe(true);
    // Not locked yet: the first write command loads the provisioning file, once; the boot does not
    // (a blank boot holding it too would peak above the 80 KB goal).
    expect(opened({ opened: first.opened_at_boot })).not.toContain("fobkit-prov.lc");
    expect(opened(first).filter((n) => n === "fobkit-prov.lc")).toHaveLength(1);
    expect(first.console_started_by_image).toBe(true);
    expect(first.callback_errors).toBe(0);
    const r1 = replies(hexBytes(first.tx));
    expect(r1.map((r) => [r.rid, r.status])).toEqual([
      [1, P.STATUS_OK],
      [9, P.STATUS_BAD_ARGUMENT],
      ...[2, 3, 4, 5, 6, 7].map((rid) => [rid, P.STATUS_OK]),
    ]);
    expect(r1[0].info?.state).toBe(P.STATE_BLANK);
    expect(r1[7].info?.state).toBe(P.STATE_LOCKED);
    expect(Buffer.from(r1[5].selfTest!.code).toString()).toBe(referenceHotp(SEED, 28333333n, 8, "sha1"));
    expect([r1[5].selfTest!.timeHi, r1[5].selfTest!.timeLo]).toEqual([0, T0]);

    // Power-on 2: the record from flash, the RTC kept its time on the battery.
    const second = run(dir, `
      BOARD.ds3231.base = ${first.rtc_base}
      BOARD.ds3231.reg[0x0f] = ${first.rtc_status}
      out("booted", BOARD.boot())
      BOARD.advance(5000)
      BOARD.press()
      BOARD.advance(50)
      BOARD.release()
      out("spi", table.concat(BOARD.spi))
      BOARD.rx(${luaBytes([
        frame({ cmd: P.CMD_SELF_TEST, rid: 8 }),
        frame({ cmd: P.CMD_WIPE, rid: 10, serial: SERIAL }),
        frame({ cmd: P.CMD_SET_CLOCK, rid: 11, timeHi: 0, timeLo: T0 + 99, flags: P.CLOCK_FORCE }),
      ].flat())})
      out("tx", BOARD.take_tx())
      out("callback_errors", #BOARD.errors)
      out("opened", table.concat(BOARD.opened, "\\n"))
    `);
    expect(second.booted).toBe(true);
    expect(second.callback_errors).toBe(0);
    // 1700000005 s: still step 28333333 (float32 would say 28333334).
    expect(display(hexBytes(second.spi))).toBe(referenceHotp(SEED, 28333333n, 8, "sha1"));
    const r2 = replies(hexBytes(second.tx));
    expect(r2.map((r) => [r.rid, r.status])).toEqual([[8, P.STATUS_LOCKED], [10, P.STATUS_LOCKED], [11, P.STATUS_LOCKED]]);
    // A locked keyfob boots, shows its code and refuses writes without ever opening the provisioning code.
    expect(opened(second)).toContain("fobkit.lc");
    expect(opened(second).filter((n) => n.startsWith("fobkit-prov"))).toEqual([]);
    // A SHA-1 record needs no SHA-256: its file is never opened either.
    expect([...opened(first), ...opened(second)].filter((n) => n.startsWith("fobkit-sha256"))).toEqual([]);
  });

  it("a SHA-256 keyfob loads fobkit-sha256 to provision and at each boot, never fobkit-prov once locked, and shows the right code", async () => {
    P = P ?? (await nodeBuild<Protocol>("protocol/index.js"));
    const dir = newBoard(IMAGE);
    boards.push(dir);
    const seed = ascii("12345678901234567890123456789012");
    const first = run(dir, `
      out("booted", BOARD.boot())
      BOARD.rx(${luaBytes([
        frame({ cmd: P.CMD_SET_CLOCK, rid: 1, timeHi: 0, timeLo: T0, flags: 0 }),
        frame({ cmd: P.CMD_WRITE_SEED, rid: 2, algorithm: P.ALG_SHA256, digits: 8, period: 60, seed }),
        frame({ cmd: P.CMD_SET_SERIAL, rid: 3, serial: SERIAL }),
        frame({ cmd: P.CMD_LOCK, rid: 4, serial: SERIAL }),
      ].flat())})
      out("tx", BOARD.take_tx())
      out("rtc_base", BOARD.ds3231.base)
      out("rtc_status", BOARD.ds3231.reg[0x0f])
      out("opened", table.concat(BOARD.opened, "\\n"))
    `);
    expect(replies(hexBytes(first.tx)).map((r) => r.status)).toEqual([P.STATUS_OK, P.STATUS_OK, P.STATUS_OK, P.STATUS_OK]);
    expect(opened(first)).toContain("fobkit-sha256.lc");
    const second = run(dir, `
      BOARD.ds3231.base = ${first.rtc_base}
      BOARD.ds3231.reg[0x0f] = ${first.rtc_status}
      out("booted", BOARD.boot())
      BOARD.advance(5000)
      BOARD.press()
      BOARD.advance(50)
      BOARD.release()
      out("spi", table.concat(BOARD.spi))
      out("callback_errors", #BOARD.errors)
      out("opened", table.concat(BOARD.opened, "\\n"))
    `);
    expect(second.booted).toBe(true);
    expect(second.callback_errors).toBe(0);
    expect(display(hexBytes(second.spi))).toBe(referenceHotp(seed, 28333333n, 8, "sha256"));
    expect(opened(second)).toContain("fobkit-sha256.lc");
    expect(opened(second).filter((n) => n.startsWith("fobkit-prov"))).toEqual([]);
  });

  it("a keyfob provisioned but not locked comes back blank after a power cycle (nothing is written before LOCK), loads fobkit-prov again and locks", async () => {
    P = P ?? (await nodeBuild<Protocol>("protocol/index.js"));
    const dir = newBoard(IMAGE);
    boards.push(dir);
    const provisioning = (rid: number, flags: number) => [
      frame({ cmd: P.CMD_SET_CLOCK, rid, timeHi: 0, timeLo: T0, flags }),
      frame({ cmd: P.CMD_WRITE_SEED, rid: rid + 1, algorithm: P.ALG_SHA1, digits: 8, period: 60, seed: SEED }),
      frame({ cmd: P.CMD_SET_SERIAL, rid: rid + 2, serial: SERIAL }),
    ];
    const first = run(dir, `
      BOARD.boot()
      BOARD.rx(${luaBytes(provisioning(1, 0).flat())})
      out("tx", BOARD.take_tx())
      out("rtc_base", BOARD.ds3231.base)
      out("rtc_status", BOARD.ds3231.reg[0x0f])
    `);
    expect(replies(hexBytes(first.tx)).map((r) => r.status)).toEqual([P.STATUS_OK, P.STATUS_OK, P.STATUS_OK]);
    const second = run(dir, `
      BOARD.ds3231.base = ${first.rtc_base}
      BOARD.ds3231.reg[0x0f] = ${first.rtc_status}
      out("booted", BOARD.boot())
      BOARD.rx(${luaBytes([
        frame({ cmd: P.CMD_INFO, rid: 9 }),
        ...provisioning(10, P.CLOCK_FORCE),
        frame({ cmd: P.CMD_LOCK, rid: 13, serial: SERIAL }),
        frame({ cmd: P.CMD_INFO, rid: 14 }),
      ].flat())})
      out("tx", BOARD.take_tx())
      out("opened", table.concat(BOARD.opened, "\\n"))
    `);
    const r = replies(hexBytes(second.tx));
    expect(r.map((x) => [x.rid, x.status])).toEqual([[9, 0], [10, 0], [11, 0], [12, 0], [13, 0], [14, 0]]);
    expect(r[0].info?.state).toBe(P.STATE_BLANK);
    expect(r[5].info?.state).toBe(P.STATE_LOCKED);
    expect(opened(second)).toContain("fobkit-prov.lc");
  });

  for (const damage of ["missing", "corrupt"] as const) {
    it(`a keyfob not locked whose fobkit-prov.lc is ${damage} refuses every write (INTERNAL), changes nothing and still answers INFO`, async () => {
      P = P ?? (await nodeBuild<Protocol>("protocol/index.js"));
      const dir = newBoard(IMAGE);
      boards.push(dir);
      const f = "fobkit-prov.lc";
      if (damage === "missing") rmSync(join(dir, f));
      else writeFileSync(join(dir, f), readFileSync(join(dir, f)).subarray(0, 3000));
      const reqs = [
        frame({ cmd: P.CMD_SET_CLOCK, rid: 1, timeHi: 0, timeLo: T0, flags: 0 }),
        frame({ cmd: P.CMD_WRITE_SEED, rid: 2, algorithm: P.ALG_SHA1, digits: 8, period: 60, seed: SEED }),
        frame({ cmd: P.CMD_LOCK, rid: 3, serial: SERIAL }),
        frame({ cmd: P.CMD_INFO, rid: 4 }),
      ];
      const out = run(dir, `
        out("booted", BOARD.boot())
        BOARD.rx(${luaBytes(reqs.flat())})
        out("tx", BOARD.take_tx())
        out("callback_errors", #BOARD.errors)
        out("rtc_status", BOARD.ds3231.reg[0x0f])
      `);
      expect(out.booted).toBe(true);
      expect(out.callback_errors).toBe(0);
      const r = replies(hexBytes(out.tx));
      expect(r.map((x) => [x.rid, x.status])).toEqual([[1, P.STATUS_INTERNAL], [2, P.STATUS_INTERNAL], [3, P.STATUS_INTERNAL], [4, P.STATUS_OK]]);
      expect(r[3].info?.state).toBe(P.STATE_BLANK);
      expect(existsSync(join(dir, "token.rec"))).toBe(false);
    });
  }
});
