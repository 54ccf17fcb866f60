/**
 * What the protocol modules put into the Lua image: nothing from TSTL's
 * lualib (it does not exist on the device) and no number that is a float on
 * 32-bit-integer Lua. The runtime half (every result an integer) is checked
 * by hasFloat() on every batch of the other protocol suites.
 */
import { readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { IMAGE, LIB_IMAGE } from "../support/paths.js";
import { imageFilePaths, PROV_FILE } from "../../host/flash/image-files.js";

/** The bundle's protocol.* module bodies, comments removed. */
function protocolModules(): Map<string, string> {
  const src = readFileSync(LIB_IMAGE, "latin1");
  const mods = new Map<string, string>();
  const re = /^\["(protocol\.[\w.-]+)"\]=function\(\.\.\.\)\s*\n([\s\S]*?)^end,$/gm;
  for (const m of src.matchAll(re)) {
    mods.set(m[1], m[2].replace(/--\[(=*)\[[\s\S]*?\]\1\]/g, "").replace(/--.*$/gm, ""));
  }
  return mods;
}

const withoutStrings = (code: string) => code.replace(/"(?:[^"\\\n]|\\.)*"/g, '""');

describe("protocol in the Lua image", () => {
  const mods = protocolModules();

  it("contains every protocol module", () => {
    expect([...mods.keys()].sort()).toEqual(
      ["protocol.codes", "protocol.crc16", "protocol.framing", "protocol.hid", "protocol.index", "protocol.messages", "protocol.messages-host", "protocol.stream"],
    );
  });

  it("uses no lualib helper and requires only its own modules and the shared core below it", () => {
    for (const [name, code] of mods) {
      expect(withoutStrings(code), name).not.toMatch(/__TS__/);
      expect(code, name).not.toMatch(/lualib_bundle/);
      for (const r of code.matchAll(/require\(\s*"([^"]*)"\s*\)/g)) expect(r[1], name).toMatch(/^(protocol|core)\./);
    }
  });

  it("has only integer literals below 2^31", () => {
    for (const [name, code] of mods) {
      // Strip identifiers so digits inside names (crc16Update) are not read as numbers.
      const numbers = withoutStrings(code).replace(/[A-Za-z_][A-Za-z_0-9]*/g, " ").match(/\b0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?/g) ?? [];
      for (const n of numbers) {
        expect(n, `${name}: ${n}`).toMatch(/^(\d+|0[xX][0-9a-fA-F]+)$/);
        expect(Number(n), `${name}: ${n}`).toBeLessThan(2 ** 31);
      }
    }
  });
});

describe("the keyfob image", () => {
  // The image is the bundle of what firmware/image.ts imports (tools/build-firmware.ts),
  // in files (host/flash/image-files.ts): host-side modules a keyfob never runs must not
  // cost it flash time or RAM, and the provisioning code is in a file of its own.
  // The split files hold modules under short ids; the build's map names them (tools/build-firmware.ts MODULE_MAP).
  const moduleMap: Record<string, Record<string, string>> = JSON.parse(readFileSync(join(dirname(IMAGE), "fobkit-modules.json"), "utf8"));
  const modulesOf = (path: string) =>
    // A short id is an integer key, a lazy module's its name (tools/split-bundle.ts).
    [...readFileSync(path, "latin1").matchAll(/\[(?:"([^"\n]+)"|(\d+))\]=function\(/g)].map((m) => moduleMap[basename(path)]?.[m[1] ?? m[2]] ?? `unmapped ${m[1] ?? m[2]}`);
  const files = imageFilePaths(IMAGE).map((f) => ({ name: f.name, modules: modulesOf(f.path) }));
  const names = files.flatMap((f) => f.modules);

  it("holds start's modules and none the keyfob never requires", () => {
    expect(names).toContain("firmware.image");
    expect(names).toContain("firmware.app.main");
    for (const hostOnly of ["firmware.lib-image", "protocol.hid", "protocol.stream", "protocol.messages-host", "firmware.otp.host"]) expect(names, hostOnly).not.toContain(hostOnly);
    // Each module once, in one file.
    expect(new Set(names).size).toBe(names.length);
  });

  it("keeps the provisioning commands and the board's write drivers out of the core: only fobkit-prov.lua holds them", () => {
    const prov = files.find((f) => f.name === PROV_FILE)!;
    // The ProvisioningBoard (firmware/board/board.ts) on NodeMCU and what only it uses.
    const writeSide = ["firmware.app.provision", "firmware.board.nodemcu-provisioning-board", "firmware.board.flash-store-write", "firmware.board.rtc-ds3231-write", "firmware.board.rng"];
    for (const m of writeSide) expect(prov.modules, m).toContain(m);
    for (const f of files.filter((x) => x.name !== PROV_FILE)) for (const m of writeSide) expect(f.modules, `${f.name} ${m}`).not.toContain(m);
  });
});
