/**
 * Hostile XML: entity expansion, external entities (a local file and a URL
 * on a live server that counts requests), XInclude, deep nesting, size.
 * Each is refused with a clear error and nothing else happens.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../support/paths.js";
import { PSK, edit, expectRefused, pskc, token } from "./helpers.js";

let server: Server;
let url: string;
let requests = 0;

beforeAll(async () => {
  server = createServer((_req, res) => {
    requests++;
    res.end("<!ENTITY leak 'fetched'>");
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

/** A valid file with something spliced in after the XML declaration. */
function withDoctype(doctype: string, body = ""): string {
  let xml = pskc.writePskc([token({ serial: "HOSTILE-1" })], PSK);
  xml = edit(xml, '<?xml version="1.0" encoding="UTF-8"?>\n', `<?xml version="1.0" encoding="UTF-8"?>\n${doctype}\n`);
  if (body) xml = edit(xml, "<pskc:Manufacturer>fobkit</pskc:Manufacturer>", `<pskc:Manufacturer>${body}</pskc:Manufacturer>`);
  return xml;
}

const BILLION_LAUGHS = `<!DOCTYPE pskc:KeyContainer [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>`;

describe("hostile XML", () => {
  it("refuses a billion-laughs file at once, without expanding anything", () => {
    const xml = withDoctype(BILLION_LAUGHS, "&lol9;");
    const t0 = performance.now();
    const err = expectRefused(() => pskc.readPskc(xml, PSK), "unsafe_xml");
    expect(performance.now() - t0).toBeLessThan(1000);
    expect(err.message).toMatch(/DOCTYPE is not allowed/);
    expect(err.message).toMatch(/line 2/);
  });

  it("refuses an external entity naming /etc/passwd, and no part of that file shows up", () => {
    const xml = withDoctype('<!DOCTYPE pskc:KeyContainer [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>', "&xxe;");
    const err = expectRefused(() => pskc.readPskc(xml, PSK), "unsafe_xml");
    const passwd = readFileSync("/etc/passwd", "utf8").split("\n")[0];
    expect(passwd.length).toBeGreaterThan(0);
    expect(err.message).not.toContain(passwd);
    expect(err.message).not.toContain("root:");
  });

  it("refuses external general and parameter entities and an external DTD pointing at a live server, which hears nothing", async () => {
    const files = [
      withDoctype(`<!DOCTYPE pskc:KeyContainer [ <!ENTITY xxe SYSTEM "${url}/general"> ]>`, "&xxe;"),
      withDoctype(`<!DOCTYPE pskc:KeyContainer [ <!ENTITY % remote SYSTEM "${url}/param"> %remote; ]>`),
      withDoctype(`<!DOCTYPE pskc:KeyContainer SYSTEM "${url}/external.dtd">`),
      withDoctype(`<!DOCTYPE pskc:KeyContainer PUBLIC "-//X//Y" "${url}/public.dtd">`),
    ];
    for (const xml of files) expectRefused(() => pskc.readPskc(xml, PSK), "unsafe_xml");
    // The server is live: a fetch made now would be counted.
    const probe = await fetch(`${url}/probe`);
    await probe.text();
    expect(requests).toBe(1);
  });

  it("refuses XInclude as an element RFC 6030 does not allow there, and the server hears nothing", async () => {
    const before = requests;
    let xml = pskc.writePskc([token({ serial: "XI-1" })], PSK);
    xml = edit(
      xml,
      "<pskc:SerialNo>XI-1</pskc:SerialNo>",
      `<pskc:SerialNo>XI-1</pskc:SerialNo><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="${url}/xinclude" parse="text"/>`,
    );
    const err = expectRefused(() => pskc.readPskc(xml, PSK), "malformed");
    expect(err.message).toMatch(/<xi:include> \(line \d+\) in namespace "http:\/\/www.w3.org\/2001\/XInclude" is not allowed in <DeviceInfo>/);
    await new Promise((r) => setTimeout(r, 50));
    expect(requests).toBe(before);
  });

  it("refuses an entity reference even without a DOCTYPE, and an entity declaration anywhere", () => {
    expectRefused(() => pskc.readPskc(withDoctype("", "&xxe;"), PSK), "unsafe_xml");
    expectRefused(() => pskc.readPskc(withDoctype("", "<!ENTITY x 'y'>"), PSK), "unsafe_xml");
  });

  it("refuses elements nested 100,000 deep quickly (no stack overflow)", () => {
    let xml = pskc.writePskc([token()], PSK);
    const n = 100_000;
    xml = edit(xml, "</pskc:DeviceInfo>", `${"<x>".repeat(n)}${"</x>".repeat(n)}</pskc:DeviceInfo>`);
    const t0 = performance.now();
    const err = expectRefused(() => pskc.readPskc(xml, PSK), "unsafe_xml");
    expect(err.message).toMatch(/nested deeper than 64/);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it("refuses one element with 40,000 attributes at once (duplicate checks are linear, and there is a limit)", () => {
    const attrs = Array.from({ length: 40_000 }, (_, i) => `a${i}="1"`).join(" ");
    const xml = edit(pskc.writePskc([token()], PSK), "</pskc:DeviceInfo>", `<v:x xmlns:v="urn:example:v" ${attrs}/></pskc:DeviceInfo>`);
    const t0 = performance.now();
    const err = expectRefused(() => pskc.readPskc(xml, PSK), "unsafe_xml");
    expect(err.message).toMatch(/<v:x> has more than 64 attributes \(at line \d+\)/);
    // A bound against a hang, not a benchmark (25-28 s before the fix).
    expect(performance.now() - t0).toBeLessThan(5000);
  });

  it("still finds a duplicate attribute among many, and one spelt with two prefixes of one namespace", () => {
    const attrs = Array.from({ length: 60 }, (_, i) => `a${i}="1"`).join(" ");
    const base = pskc.writePskc([token()], PSK);
    const dup = edit(base, "</pskc:DeviceInfo>", `<v:x xmlns:v="urn:example:v" ${attrs} a7="2"/></pskc:DeviceInfo>`);
    expect(expectRefused(() => pskc.readPskc(dup, PSK), "malformed").message).toMatch(/duplicate attribute a7/);
    const expanded = edit(base, "</pskc:DeviceInfo>", '<v:x xmlns:v="urn:example:v" xmlns:w="urn:example:v" v:a="1" w:a="2"/></pskc:DeviceInfo>');
    expect(expectRefused(() => pskc.readPskc(expanded, PSK), "malformed").message).toMatch(/duplicate attribute \{urn:example:v\}a/);
  });

  describe("a 64 MiB hostile file is refused in seconds", () => {
    const MiB = 1024 * 1024;
    /** A valid file padded to 64 MiB with `unit` repeated inside DeviceInfo (then closed by `close`). */
    function hostile(open: string, unit: string, close = ""): string {
      const base = pskc.writePskc([token()], PSK);
      const room = 64 * MiB - base.length - open.length - close.length;
      return edit(base, "</pskc:DeviceInfo>", `${open}${unit.repeat(Math.floor(room / unit.length))}${close}</pskc:DeviceInfo>`);
    }
    it.each([
      ["16 million empty elements", "", "<a/>", "", /more than 1200000 elements/],
      ["elements of 60 attributes each", "", `<a ${Array.from({ length: 60 }, (_, i) => `b${i}="1"`).join(" ")}/>`, "", /more than 1200000 attributes in the file/],
      ["one element's text", "<a>", "x", "</a>", /more than 1048576 characters of text in <a>/],
      ["CDATA", "<a><![CDATA[", "x", "]]></a>", /more than 1048576 characters of text in <a>/],
    ])("%s", (_n, open, unit, close, msg) => {
      const xml = hostile(open, unit, close);
      expect(xml.length).toBeGreaterThan(63 * MiB);
      expect(xml.length).toBeLessThanOrEqual(64 * MiB);
      const t0 = performance.now();
      const err = expectRefused(() => pskc.readPskc(xml, PSK), "unsafe_xml");
      expect(err.message).toMatch(msg);
      // Generous: about 2 s on an idle core for the element case, more on a loaded machine.
      expect(performance.now() - t0).toBeLessThan(30_000);
    }, 120_000);
  });

  it("refuses a file over the size limit before parsing it", () => {
    const xml = pskc.writePskc([token(), token()], PSK);
    const err = expectRefused(() => pskc.readPskc(xml, PSK, { maxBytes: 1000 }), "unsafe_xml");
    expect(err.message).toMatch(/over the limit of 1000/);
    expect(() => pskc.readPskc(xml, PSK, { maxBytes: xml.length })).not.toThrow();
  });

  it("refuses a PBKDF2 iteration count meant to burn CPU", () => {
    const xml = edit(
      pskc.writePskc([token()], { kind: "password", password: "pw", iterations: 1000 }),
      "<IterationCount>1000</IterationCount>",
      "<IterationCount>2147483647</IterationCount>",
    );
    const t0 = performance.now();
    const err = expectRefused(() => pskc.readPskc(xml, { kind: "password", password: "pw" }), "malformed");
    expect(err.message).toMatch(/above the limit of 20000000/);
    expect(performance.now() - t0).toBeLessThan(1000);
  });

  it("the XML parser cannot reach files or the network: it imports neither", () => {
    const src = readFileSync(join(ROOT, "host/pskc/xml-parse.ts"), "utf8");
    const imports = [...src.matchAll(/^import .* from "([^"]+)";$/gm)].map((m) => m[1]);
    expect(imports.sort()).toEqual(["./constants.js", "./types.js"]);
  });
  it("refuses a huge attribute value and a flood of references as unsafe_xml, naming the limit", () => {
    const good = pskc.writePskc([token({ serial: "HOSTILE-1" })], PSK);
    const withAttr = (value: string) =>
      edit(good, "<pskc:KeyContainer ", `<pskc:KeyContainer xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:schemaLocation="${value}" `);
    // A short one is fine (the reader ignores xsi attributes), so the refusals below are about size alone.
    expect(pskc.readPskc(withAttr("urn:ietf:params:xml:ns:keyprov:pskc pskc.xsd &amp; x"), PSK)).toHaveLength(1);
    // 64 KiB and one character of plain text in one attribute.
    expect(expectRefused(() => pskc.readPskc(withAttr("a".repeat(64 * 1024 + 1)), PSK), "unsafe_xml").message).toMatch(/attribute value longer than 65536 characters/);
    // 300,000 references, each short attribute under the cap: bounded per file.
    const many = Array.from({ length: 60 }, (_, i) => `v:a${i}="${"&amp;".repeat(5000)}"`).join(" ");
    const flood = edit(good, "<pskc:KeyContainer ", `<pskc:KeyContainer xmlns:v="urn:example:v" ${many} `);
    expect(expectRefused(() => pskc.readPskc(flood, PSK), "unsafe_xml").message).toMatch(/more than 200000 character or entity references in the file/);
  });
});
