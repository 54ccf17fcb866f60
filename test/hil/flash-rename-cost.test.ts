/** A refused rename costs what SPIFFS_rename spends before it refuses (spiffs_hydrogen.c:929-938 at 0dbb3f71). */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { FlashStore } from "../../hil/flash.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function store(): FlashStore {
  const d = mkdtempSync(join(tmpdir(), "fobkit-flash-rename-"));
  dirs.push(d);
  return new FlashStore(d);
}

function put(f: FlashStore, name: string): void {
  expect(f.openWrite(name, true)).toBe("ok");
  expect(f.write(name, 0, new Uint8Array([1, 2, 3]))).toBe("ok");
}

it("one name lookup when the old name is missing, two when the new name exists (SPIFFS_ERR_CONFLICTING_NAME)", () => {
  const f = store();
  put(f, "a");
  put(f, "b");
  const refused = () => f.calls.get("rename-refused")?.count ?? 0;
  expect(f.rename("missing", "c")).toBe("fail");
  expect(refused()).toBe(1);
  expect(f.rename("a", "b")).toBe("fail");
  expect(refused()).toBe(3);
});
