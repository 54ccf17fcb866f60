/**
 * API key labels (api-keys.ts createApiKey, attack review L7), on SQLite and PostgreSQL. The console's approvals page
 * names a key as "API key '<label>' (owner: <name>)"; a label holding a bidi override, a zero-width character or a
 * line/paragraph separator could make that line read as another key's, or another owner's. Such a label is refused
 * with the code point it holds, and no key is made. Before, only U+0000-U+001F were refused.
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createApiKey, listApiKeys } from "../../host/registry/api-keys.js";
import type { Database } from "../../host/registry/database.js";
import { RegistryError } from "../../host/registry/types.js";
import { ENGINES, freshDb } from "./support.js";

/** One of each class refused, with the code point the error must name. */
const REFUSED: [string, string, string][] = [
  ["C0 control (as before)", "app\x1bx", "U+001B"],
  ["DEL", "app\x7f", "U+007F"],
  ["C1 control NEL", "app\x85x", "U+0085"],
  ["C1 control, the last", "\x9fapp", "U+009F"],
  ["Cf right-to-left override", "app \u202e(owner: bob)", "U+202E"],
  ["Cf right-to-left isolate", "app\u2067x", "U+2067"],
  ["Cf zero-width space", "te\u200bller", "U+200B"],
  ["Cf zero-width joiner", "te\u200dller", "U+200D"],
  ["Cf byte order mark", "\ufeffapp", "U+FEFF"],
  ["Cf soft hyphen", "tel\u00adler", "U+00AD"],
  ["Cf tag character (outside the BMP)", "app\u{e0041}", "U+E0041"],
  ["Zl line separator", "app\u2028(owner: bob)", "U+2028"],
  ["Zp paragraph separator", "app\u2029(owner: bob)", "U+2029"],
];

describe.each(ENGINES)("API key labels on $name", (engine) => {
  let db: Database;
  let drop: () => Promise<void>;
  beforeEach(async () => ({ db, drop } = await freshDb(engine)));
  afterEach(async () => drop());

  it.each(REFUSED)("refuses a %s, naming its code point, and makes no key", async (_, label, cp) => {
    const e = await createApiKey(db, "staff", label).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(RegistryError);
    expect(e).toMatchObject({ code: "bad_label", kind: "bad_input" });
    expect((e as Error).message).toContain(cp);
    expect(await listApiKeys(db)).toEqual([]);
  });

  it("takes printable labels in any script, emoji (outside the BMP) and plain spaces included", async () => {
    for (const label of ["branch 12 teller app", "支店12 窓口アプリ", "café — app", "🔑 app", "x".repeat(200)]) await createApiKey(db, "staff", label);
    expect((await listApiKeys(db)).map((k) => k.label).sort()).toEqual(["branch 12 teller app", "支店12 窓口アプリ", "café — app", "🔑 app", "x".repeat(200)].sort());
  });
});
