import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { loadHil, tempDir } from "./support.js";

let FlashStore: Awaited<ReturnType<typeof loadHil>>["FlashStore"];
beforeAll(async () => {
  ({ FlashStore } = await loadHil());
});

const bytes = (s: string) => Uint8Array.from(s, (c) => c.charCodeAt(0));

describe("SPIFFS model with power-cut injection", () => {
  it("a cut at the Nth write leaves the partial file content", () => {
    const dir = tempDir("flash-");
    const f = new FlashStore(dir);
    const cuts: string[] = [];
    f.onCut = (op, name) => cuts.push(`${op}:${name}`);
    f.cutAtWrite(3); // open = 1, first write = 2, second write = 3
    expect(f.openWrite("rec", true)).toBe("ok");
    expect(f.write("rec", 0, bytes("0123456789"))).toBe("ok");
    expect(f.write("rec", 10, bytes("abcdefghij"))).toBe("cut");
    expect(cuts).toEqual(["write:rec"]);
    expect(readFileSync(join(dir, "rec"), "latin1")).toBe("0123456789abcde");
    expect(f.armed).toBe(false);
  });

  it("rename refuses an existing target like SPIFFS_rename, and a cut rename did not happen", () => {
    const dir = tempDir("flash-");
    const f = new FlashStore(dir);
    f.openWrite("a", true);
    f.write("a", 0, bytes("A"));
    f.openWrite("b", true);
    expect(f.rename("a", "b")).toBe("fail");
    expect(f.rename("missing", "c")).toBe("fail");
    f.cutAtWrite(1);
    expect(f.rename("a", "c")).toBe("cut");
    expect(f.exists("a")).toBe(true);
    expect(f.exists("c")).toBe(false);
  });

  it("a cut remove leaves a short file under the old name", () => {
    const dir = tempDir("flash-");
    const f = new FlashStore(dir);
    f.openWrite("r", true);
    f.write("r", 0, bytes("12345678"));
    f.cutAtWrite(1);
    expect(f.remove("r")).toBe("cut");
    expect(readFileSync(join(dir, "r"), "latin1")).toBe("1234");
  });

  it("names follow SPIFFS under NodeMCU's empty base path: the path as given (\"/x\" is not \"x\"), \"\" is \"/\", at most 31 bytes", () => {
    const dir = tempDir("flash-");
    const f = new FlashStore(dir);
    expect(f.normalize("/init.lua")).toBe("/init.lua");
    expect(f.normalize("a/b")).toBe("a/b");
    expect(f.normalize("")).toBe("/");
    expect(f.normalize("x".repeat(31))).toBe("x".repeat(31));
    expect(f.normalize("/" + "x".repeat(30))).toBe("/" + "x".repeat(30));
    expect(f.normalize("/" + "x".repeat(31))).toBeUndefined();
    for (const name of ["/x", "x", "a/b", "..", "%2F"]) {
      expect(f.openWrite(name, true)).toBe("ok");
      expect(f.write(name, 0, bytes(name))).toBe("ok");
    }
    expect([...f.list().keys()].sort()).toEqual(["%2F", "..", "/x", "a/b", "x"]);
    for (const name of ["/x", "x", "a/b", "..", "%2F"]) expect(Buffer.from(f.read(name)!).toString("latin1")).toBe(name);
    // Every name is one file in the state directory, none outside it; beside them only SPIFFS's page
    // map (hil/spiffs-gc.ts), a name no SPIFFS file can map to (toHostName writes a leading "." as %2E).
    expect(readdirSync(dir).filter((f) => f !== ".spiffs-pages.json").length).toBe(5);
    expect(readdirSync(dir)).toContain(".spiffs-pages.json");
  });
});
