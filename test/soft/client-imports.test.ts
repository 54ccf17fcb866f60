/**
 * host/soft/client.ts runs unchanged in the browser (the web app at /app/
 * loads it): it may import only the OPAQUE library and protocol.ts, and use
 * no Node global (Buffer, process, require).
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { expect, it } from "vitest";
import { ROOT } from "../support/paths.js";

it("client.ts and protocol.ts import nothing but @serenity-kit/opaque and each other, and touch no Node global", () => {
  for (const file of ["client.ts", "protocol.ts"]) {
    const text = readFileSync(join(ROOT, "host", "soft", file), "utf8");
    const code = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
    const specifiers = [...code.matchAll(/\bfrom\s+"([^"]+)"|\bimport\s*\(\s*"([^"]+)"\s*\)|\bimport\s+"([^"]+)"/g)].map((m) => m[1] ?? m[2] ?? m[3]);
    for (const s of specifiers) expect(["@serenity-kit/opaque", "./protocol.js"], `${file} imports ${s}`).toContain(s);
    expect(code, file).not.toMatch(/\b(Buffer|process|require|__dirname)\b/);
  }
});
