/**
 * The same protocol/ source, three ways: the tsc build in Node and the Lua
 * image on fengari (32-bit integers) and Debian lua5.3 (64-bit integers).
 * A suite takes a ProtocolBuild and runs one batch of calls (one VM run).
 */
import { callLua, type LuaCall, type LuaVmKind } from "../support/lua-vm.js";
import { LIB_IMAGE, nodeBuild } from "../support/paths.js";

export interface ProtocolBuild {
  name: string;
  /** Call protocol functions by name; results as JSON values (undefined fields dropped). */
  run(calls: { fn: string; args: unknown[] }[]): Promise<unknown[]>;
}

export type Protocol = any;

export async function jsProtocol(): Promise<Protocol> {
  return nodeBuild("protocol/index.js");
}

/** JSON round trip: what a Lua result looks like (no undefined fields). */
export function plain<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

export async function jsBuild(): Promise<ProtocolBuild> {
  const p = await jsProtocol();
  return {
    name: "node",
    async run(calls) {
      return calls.map((c) => {
        const f = p[c.fn];
        if (typeof f !== "function") throw new Error(`node: no protocol.${c.fn}`);
        return plain(f(...c.args));
      });
    },
  };
}

export function luaBuild(vm: LuaVmKind): ProtocolBuild {
  return {
    name: vm,
    async run(calls) {
      const luaCalls: LuaCall[] = calls.map((c) => ({ fn: "protocol." + c.fn, args: c.args }));
      const results = await callLua(vm, LIB_IMAGE, luaCalls);
      return results.map((r, i) => {
        if (!r.ok) throw new Error(`${vm}: protocol.${calls[i].fn} failed: ${r.error}`);
        return r.value;
      });
    },
  };
}

/** The Lua VMs the differential tests cover: the device's integer width (fengari; lua32 also has its float32), and a 64-bit one. */
export const LUA_TARGETS: LuaVmKind[] = ["fengari", "lua5.3", "lua32"];

/** True if a Lua result carries a float anywhere (lua-vm marks them {$float}). */
export function hasFloat(v: unknown): boolean {
  return JSON.stringify(v).includes('"$float"');
}
