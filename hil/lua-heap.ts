/**
 * The Lua heap the board would hold for a fengari state: a census of every
 * object reachable from the registry and the threads' stacks, each counted at
 * its size in NodeMCU's Lua 5.3 with 32-bit pointers, integers and floats
 * (nodemcu-firmware 7c5bb151 components/lua/lua-5.3; TValue is a 4-byte Value
 * and an int tag, lobject.h:135-142: 8 bytes). fengari has no allocator to
 * count (JS owns its memory), so the census stands in for one.
 *
 * Only reachable objects are counted: garbage is what the board's emergency
 * full collection frees before an allocation fails (lmem.c:86-94). Every size
 * is a lower bound of what the board allocates, so a census over the heap
 * means the board ran out too:
 *   - Table 32 bytes (lobject.h:547-556); each entry of its hash part a Node
 *     of 20 (lobject.h:528-540: TValue + TKey with `next`), the part rounded
 *     up to a power of two (ltable.c sizes it so); integer keys 1..n that may
 *     sit in the array part 8 bytes each.
 *   - String sizeof(UTString) 16 + length + 1 (lstring.c createstrobj; the
 *     8-byte L_Umaxalign rounds TString's 16 to 16); short strings (up to
 *     LUAI_MAXSHORTLEN 40, llimits.h:183) are interned: each text once.
 *     The string table's buckets, 4 bytes each, at least MINSTRTABSIZE 128
 *     (llimits.h:194).
 *   - Lua closure 16 + 4 per upvalue, C closure 16 + 8 per upvalue
 *     (lfunc.h sizeLclosure/sizeCclosure; lobject.h ClosureHeader); light C
 *     functions are no object. UpVal 16 (lfunc.h:35-45), each once.
 *   - Proto 76 (lobject.h Proto: 12 of header and bytes, 8 ints, 8 pointers)
 *     + 4 per instruction, 8 per constant, 4 per inner Proto, 8 per upvalue
 *     description, 12 per local variable; line information is not counted.
 *   - Userdata sizeof(UUdata) 24 + its length.
 *   - A thread: LX 124 (LUA_EXTRASPACE 4 + lua_State 120, lstate.h:195-217),
 *     8 per stack slot and 36 per CallInfo beyond base_ci (lstate.h:95-112).
 *     The global_State is not counted.
 * Not counted: ROTables (`readonly`, fengari.ts markReadOnly: in flash on the
 * board, with everything in them) and tables the emulator adds that the board
 * does not have (markEmulatorOnly: the strict globals' metatable).
 */
import type { LuaState } from "./fengari.js";
import { lua } from "./fengari.js";

const TVALUE = 8;
const TABLE = 32;
const NODE = 20;
const TSTRING = 16;
const MAXSHORTLEN = 40;
const MINSTRTABSIZE = 128;
const UPVAL = 16;
const PROTO = 76;
const UDATA = 24;
const THREAD = 124;
const CALLINFO = 36;
/** fengari's variant tags (src/defs.js:297-305, as Lua 5.3's lobject.h): not exported by its lua module. */
const TNUMINT = 3 | (1 << 4);
const TLCL = 6;
const TCCL = 6 | (2 << 4);

/** A table the board does not have (emulator scaffolding): the census skips it. */
export function markEmulatorOnly(L: LuaState, idx: number): void {
  if (lua.lua_type(L, idx) !== lua.LUA_TTABLE) throw new TypeError("markEmulatorOnly: not a table");
  lua.lua_topointer(L, idx).emulatorOnly = true;
}

function pow2ceil(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

function latin1Key(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

/**
 * Bytes the board's Lua heap holds for what is reachable in L's state (a
 * lower bound, above). `skipRefs`: registry references the emulator holds
 * for itself (Machine.dofileResults, for callImage), not followed from the registry.
 */
export function luaHeapBytes(L: LuaState, skipRefs: Iterable<number> = []): number {
  const seen = new Set<unknown>();
  const shortStrings = new Set<string>();
  let bytes = 0;
  // An explicit stack: a deep structure must not overflow JS's.
  const todo: { type: number; value: unknown }[] = [];

  const str = (ts: { realstring: Uint8Array | null }): void => {
    const s = ts.realstring;
    if (!s) return;
    if (s.length <= MAXSHORTLEN) {
      const k = latin1Key(s);
      if (shortStrings.has(k)) return;
      shortStrings.add(k);
    } else {
      if (seen.has(ts)) return;
      seen.add(ts);
    }
    bytes += TSTRING + s.length + 1;
  };
  const value = (tv: { type: number; value: unknown } | undefined | null): void => {
    if (!tv) return;
    const t = tv.type & 15;
    if (t === lua.LUA_TSTRING) {
      if (tv.value) str(tv.value as { realstring: Uint8Array });
    }
    else if (t === lua.LUA_TTABLE || t === lua.LUA_TFUNCTION || t === lua.LUA_TUSERDATA || t === lua.LUA_TTHREAD) todo.push(tv);
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const proto = (p: any): void => {
    // The parser puts a closure on the stack before its Proto is made (lparser.c luaY_parser).
    if (!p || seen.has(p)) return;
    seen.add(p);
    bytes += PROTO + 4 * p.code.length + TVALUE * p.k.length + 4 * p.p.length + 8 * p.upvalues.length + 12 * p.locvars.length;
    for (const k of p.k) value(k);
    for (const inner of p.p) proto(inner);
    for (const u of p.upvalues) if (u?.name) str(u.name);
    for (const v of p.locvars) if (v?.varname) str(v.varname);
    if (p.source) str(p.source);
  };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const thread = (T: any): void => {
    bytes += THREAD + TVALUE * (T.stack?.length ?? 0);
    for (let ci = T.base_ci.next; ci; ci = ci.next) bytes += CALLINFO;
    for (let i = 0; i < T.top; i++) value(T.stack[i]);
  };

  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const table = (x: any, skip?: Set<unknown>): void => {
    let arrayish = 0;
    let hashed = 0;
    for (const e of x.strong.values()) {
      if (skip?.has(e)) continue;
      value(e.key);
      value(e.value);
      // Keys 1..n may sit in the array part (a TValue each); every other key takes a Node.
      if (e.key.type === TNUMINT && e.key.value >= 1 && e.key.value <= x.strong.size) arrayish++;
      else hashed++;
    }
    bytes += TABLE + TVALUE * arrayish + (hashed > 0 ? NODE * pow2ceil(hashed) : 0);
    if (x.metatable) todo.push({ type: lua.LUA_TTABLE, value: x.metatable });
  };

  thread(L.l_G.mainthread);
  // The registry, less the emulator's own references (its other entries are as on the board).
  const registry = L.l_G.l_registry.value;
  const skip = new Set<unknown>();
  for (const ref of skipRefs) {
    for (const e of registry.strong.values()) if (e.key.type === TNUMINT && e.key.value === ref) skip.add(e);
  }
  seen.add(registry);
  table(registry, skip);
  for (const mt of L.l_G.mt) if (mt) todo.push({ type: lua.LUA_TTABLE, value: mt });
  for (let tv = todo.pop(); tv; tv = todo.pop()) {
    const o = tv.value;
    if (o === null || o === undefined || seen.has(o)) continue;
    seen.add(o);
    const t = tv.type & 15;
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    const x = o as any;
    if (t === lua.LUA_TTABLE) {
      if (!x.readonly && !x.emulatorOnly) table(x);
    } else if (tv.type === TLCL) {
      bytes += 16 + 4 * x.nupvalues;
      proto(x.p);
      for (const u of x.upvals) {
        if (!u || seen.has(u)) continue;
        seen.add(u);
        bytes += UPVAL;
        value(u);
      }
    } else if (tv.type === TCCL) {
      bytes += 16 + TVALUE * x.nupvalues;
      for (const u of x.upvalue) value(u);
    } else if (t === lua.LUA_TUSERDATA) {
      bytes += UDATA + (x.len ?? 0);
      if (x.metatable) todo.push({ type: lua.LUA_TTABLE, value: x.metatable });
      value(x.uservalue);
    } else if (t === lua.LUA_TTHREAD) {
      if (x !== L.l_G.mainthread) thread(x);
    }
  }
  bytes += 4 * Math.max(MINSTRTABSIZE, pow2ceil(shortStrings.size));
  return bytes;
}
