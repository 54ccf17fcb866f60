/**
 * Entry of the library bundle (build/firmware/fobkit-lib.lua): every module,
 * for the tests that run the OTP core and the protocol on Lua VMs. It is
 * never installed on a keyfob; the keyfob's image is firmware/image.ts.
 */
export * as otp from "./otp/index.js";
export * as protocol from "../protocol/index.js";
export { start } from "./app/main.js";
/** The keyfob on the in-memory board (firmware/sim): the app suite's Lua runner. */
export * as sim from "./sim/memory-keyfob.js";
