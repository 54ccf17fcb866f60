/**
 * The keyfob image on lua32 (build/lua32/lua32: NodeMCU's int32/float32
 * number model) with the Lua-side NodeMCU stand-ins of
 * test/support/nodemcu-stand-ins.lua. A board is a directory: its SPIFFS
 * (fobkit.lua, init.lua, the record files). Each run() is one power-on of
 * that board: a new lua32 process, so flash survives and RAM does not.
 *
 * Inside a run's Lua, the global BOARD drives the board (BOARD.boot(),
 * BOARD.rx(bytes), BOARD.press(), BOARD.advance(ms), BOARD.take_tx(), ...)
 * and out(key, value) records a result: strings come back hex-encoded,
 * numbers and booleans as they are.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { LUA32 } from "./lua-vm.js";
import { INIT_SOURCE } from "../../host/flash/init-lua.js";
import { bytecodeName, imageFilePaths } from "../../host/flash/image-files.js";

export const STAND_INS = resolve(import.meta.dirname, "nodemcu-stand-ins.lua");
/** What the flasher writes as init.lua: the real, fail-closed one. */
export const INIT_LUA = INIT_SOURCE;

/** A fresh board directory with every file of the image (image-files.ts; each checked) and init.lua installed. */
export function newBoard(imagePath: string, init = INIT_LUA): string {
  const dir = mkdtempSync(join(tmpdir(), "fobkit-lua32-"));
  for (const f of imageFilePaths(imagePath)) {
    copyFileSync(f.path, join(dir, f.name));
    if (!readFileSync(join(dir, f.name)).equals(readFileSync(f.path))) throw new Error(`newBoard: ${f.name} differs from ${f.path}`);
  }
  // As the flasher does: node.compile each file on the board (init.lua boots fobkit.lc).
  run(dir, imageFilePaths(imagePath).map((f) => `node.compile(${JSON.stringify(f.name)}) os.remove(${JSON.stringify(f.name)})`).join("\n"));
  for (const f of imageFilePaths(imagePath)) {
    if (!existsSync(join(dir, bytecodeName(f.name)))) throw new Error(`newBoard: node.compile wrote no ${bytecodeName(f.name)}`);
  }
  writeFileSync(join(dir, "init.lua"), init);
  return dir;
}

/** A Lua string literal for bytes. */
export function luaBytes(bytes: ArrayLike<number>): string {
  return '"' + Array.from(bytes, (b) => "\\" + String(b).padStart(3, "0")).join("") + '"';
}

const PRELUDE = String.raw`
BOARD = dofile(STAND_INS)
local results = {}
function out(key, v)
  if type(v) == "string" then v = { hex = (v:gsub(".", function(c) return string.format("%02x", c:byte()) end)) } end
  results[#results + 1] = { key, v }
end
local function finish()
  local parts = {}
  for _, kv in ipairs(results) do
    local v = kv[2]
    local s
    if type(v) == "table" then s = '{"hex":"' .. v.hex .. '"}'
    elseif type(v) == "number" then
      s = math.type(v) == "float" and ('{"float":"' .. string.format("%.9g", v) .. '"}') or string.format("%d", v)
    elseif type(v) == "boolean" then s = tostring(v)
    else s = "null" end
    parts[#parts + 1] = string.format("%q", kv[1]) .. ":" .. s
  end
  io.write("{" .. table.concat(parts, ",") .. "}")
end
`;

export type RunValue = number | boolean | null | { hex: string } | { float: string };

/** One power-on of the board in dir: run body (Lua) after the stand-ins are loaded. */
export function run(dir: string, body: string): Record<string, RunValue> {
  const script = `STAND_INS = ${JSON.stringify(STAND_INS)}\n${PRELUDE}\nlocal ok, err = pcall(function()\n${body}\nend)\nif not ok then out("harness_error", tostring(err)) end\nfinish()\n`;
  const r = spawnSync(LUA32, ["-"], { cwd: dir, input: script, maxBuffer: 1 << 26 });
  if (r.error) throw new Error(`lua32: ${r.error.message} (scripts/setup.sh builds build/lua32/lua32)`);
  if (r.status !== 0) throw new Error(`lua32 exited ${r.status}: ${r.stderr.toString()}`);
  const res = JSON.parse(r.stdout.toString()) as Record<string, RunValue>;
  if (res.harness_error) throw new Error(`lua32 run failed: ${Buffer.from((res.harness_error as { hex: string }).hex, "hex").toString()}`);
  return res;
}

export function hexBytes(v: RunValue | undefined): number[] {
  if (v === null || v === undefined || typeof v !== "object" || !("hex" in v)) throw new TypeError(`not a byte string: ${JSON.stringify(v)}`);
  return Array.from(Buffer.from(v.hex, "hex"));
}
