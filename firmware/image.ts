/**
 * Entry of the Lua image (build/firmware/fobkit.lua): what a keyfob runs.
 * The bundle holds only the modules this entry imports (tools/build-firmware.ts)
 * and returns this module's table: init.lua calls start(). Tests that need
 * the OTP core or the protocol on Lua load build/firmware/fobkit-lib.lua
 * (firmware/lib-image.ts) instead.
 */
export { start } from "./app/main.js";
