/**
 * privacyIDEA's PSKC import once crashed on malformed files. Random damage
 * to a good file must end in tokens or a PskcError, never another exception
 * (TypeError, RangeError, a crypto error) and never a hang.
 */
import { randomInt } from "node:crypto";
import { describe, expect, it } from "vitest";
import { PASSWORD, PSK, pskc, token, type PskcProtection } from "./helpers.js";

const PIECES = ["<", ">", "/", "&", "&amp;", "&#x0;", '"', "'", "=", ":", "pskc:", "xmlns:a='b'", "<!--", "]]>", "<![CDATA[", "\u0000", "é", "\n", "0", "-1", "99999999999"];

function mutate(s: string): string {
  if (s.length === 0) return PIECES[randomInt(PIECES.length)];
  const at = randomInt(s.length);
  switch (randomInt(5)) {
    case 0: // flip a character
      return s.slice(0, at) + String.fromCharCode(s.charCodeAt(at) ^ (1 << randomInt(7))) + s.slice(at + 1);
    case 1: // delete a run
      return s.slice(0, at) + s.slice(at + 1 + randomInt(40));
    case 2: // insert markup-ish text
      return s.slice(0, at) + PIECES[randomInt(PIECES.length)] + s.slice(at);
    case 3: // duplicate a run
      return s.slice(0, at) + s.slice(at, at + randomInt(200)) + s.slice(at);
    default: // truncate
      return s.slice(0, at);
  }
}

describe.each([
  ["pre-shared key", PSK],
  ["password", PASSWORD],
] as [string, PskcProtection][])("random damage to a %s file", (_n, protection) => {
  it("ends in tokens or a PskcError, 1500 times", () => {
    const good = pskc.writePskc([token(), token({ algorithm: "SHA256", timeDrift: 2 }), token()], protection);
    const codes = new Map<string, number>();
    let accepted = 0;
    for (let i = 0; i < 1500; i++) {
      let bad = mutate(good);
      if (randomInt(3) === 0) bad = mutate(bad);
      try {
        const tokens = pskc.readPskc(bad, protection);
        accepted++;
        for (const t of tokens) expect(t.secret.length).toBeGreaterThanOrEqual(16);
      } catch (e) {
        if (!(e instanceof pskc.PskcError)) throw new Error(`non-PskcError on mutation ${i}: ${String(e)}\n${bad}`);
        codes.set(e.code, (codes.get(e.code) ?? 0) + 1);
      }
    }
    // Damage mostly lands in markup; some hits only whitespace or names we ignore.
    expect(codes.get("malformed") ?? 0).toBeGreaterThan(100);
    expect(accepted).toBeLessThan(1500);
  });
});
