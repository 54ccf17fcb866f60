import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { expectRefused, pskc, tmp, writeTmp } from "./helpers.js";

describe("readPskFile", () => {
  const key = randomBytes(16);
  const hex = key.toString("hex");

  it.each([
    ["one line", `${hex}\n`],
    ["no newline", hex],
    ["upper case with CRLF", `${hex.toUpperCase()}\r\n`],
    ["after a UTF-8 byte order mark", `\ufeff${hex}\n`],
    ["grouped and wrapped", `${hex.slice(0, 8)} ${hex.slice(8, 16)}\n\t${hex.slice(16, 24)}  ${hex.slice(24)}\n\n`],
  ])("reads %s", (_n, text) => {
    expect(pskc.readPskFile(writeTmp("k.hex", text)).equals(key)).toBe(true);
  });

  it.each([
    ["15 bytes", hex.slice(0, 30), /30 hex digits; an AES-128 key is exactly 32/],
    ["17 bytes", `${hex}ab`, /34 hex digits/],
    ["a 32-byte key", randomBytes(32).toString("hex"), /64 hex digits/],
    ["an odd digit count", hex.slice(0, 31), /31 hex digits/],
    ["a non-hex character", `${hex.slice(0, 31)}g`, /character 32 \(whitespace aside\) is not one/],
    ["a 0x prefix", `0x${hex}`, /not one/],
    ["base64 instead of hex", key.toString("base64"), /not one|hex digits/],
    ["an empty file", "", /empty/],
    ["only whitespace", " \n\n", /empty/],
  ])("refuses %s without echoing the content", (_n, text, msg) => {
    const path = writeTmp("k.hex", text);
    const err = expectRefused(() => pskc.readPskFile(path), "bad_key_file", [key]);
    expect(err.message).toMatch(msg);
    expect(err.message).toContain(path);
    if (text.trim().length >= 8) expect(err.message).not.toContain(text.trim().slice(0, 8));
  });

  it("refuses a missing file and a directory with the reason", () => {
    expect(expectRefused(() => pskc.readPskFile(join(tmp(), "nope.hex")), "bad_key_file").message).toMatch(/ENOENT/);
    expect(expectRefused(() => pskc.readPskFile(tmp()), "bad_key_file").message).toMatch(/EISDIR/);
  });
});

describe("readPasswordFile", () => {
  it.each([
    ["with LF", "s3cret pass\n", "s3cret pass"],
    ["with CRLF", "s3cret pass\r\n", "s3cret pass"],
    ["without newline", "s3cret pass", "s3cret pass"],
    ["only one trailing newline is dropped", "s3cret\n\n", "s3cret\n"],
    ["inner and surrounding spaces kept", "  a b  \n", "  a b  "],
    ["UTF-8", "pässwörd🔑\n", "pässwörd🔑"],
  ])("%s", (_n, text, want) => {
    expect(pskc.readPasswordFile(writeTmp("pw", text))).toBe(want);
  });

  it.each([
    ["an empty file", ""],
    ["a lone newline", "\n"],
    ["a lone CRLF", "\r\n"],
  ])("refuses %s", (_n, text) => {
    expect(expectRefused(() => pskc.readPasswordFile(writeTmp("pw", text)), "bad_key_file").message).toMatch(/empty/);
  });

  it("refuses text that is not UTF-8, and a missing file", () => {
    expectRefused(() => pskc.readPasswordFile(writeTmp("pw", Buffer.from([0x70, 0xff, 0x77]))), "bad_key_file");
    expectRefused(() => pskc.readPasswordFile(join(tmp(), "nope")), "bad_key_file");
  });

  it("the password read from a file opens a file written with it", () => {
    const path = writeTmp("pw", "batch-7 password\n");
    const t = { serial: "PW-1", manufacturer: "fobkit", keyId: "PW-1", algorithm: "SHA1" as const, digits: 8, period: 60, t0: 0, secret: randomBytes(20) };
    const xml = pskc.writePskc([t], { kind: "password", password: "batch-7 password", iterations: 1000 });
    expect(pskc.readPskc(xml, { kind: "password", password: pskc.readPasswordFile(path) })[0].secret.equals(t.secret)).toBe(true);
  });
});
