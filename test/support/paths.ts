/**
 * Where tests find the builds. FOBKIT_BUILD lets parallel work use a private
 * build tree (e.g. FOBKIT_BUILD=build/mine); `make test` uses ./build.
 */
import { resolve } from "node:path";

export const ROOT = resolve(import.meta.dirname, "..", "..");
export const BUILD = resolve(ROOT, process.env.FOBKIT_BUILD ?? "build");
/** The Lua image: `make firmware` writes it. */
export const IMAGE = resolve(BUILD, "firmware", "fobkit.lua");
/** The tsc (Node) build of the shared sources. */
export const NODE_BUILD = resolve(BUILD, "node");

/** Import a module of the tsc build, e.g. nodeBuild("protocol/index.js"). */
export async function nodeBuild<T = any>(rel: string): Promise<T> {
  return (await import(resolve(NODE_BUILD, rel))) as T;
}
/**
 * Every firmware and protocol module as one bundle (firmware/lib-image.ts),
 * for the tests that run the OTP core and the protocol on Lua VMs; the image
 * holds only what the keyfob runs.
 */
export const LIB_IMAGE = resolve(BUILD, "firmware", "fobkit-lib.lua");
