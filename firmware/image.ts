/**
 * Entry of the Lua image (build/firmware/fobkit.lua). The bundle returns this
 * module's table: init.lua calls start(); tests reach the pure modules.
 */
export * as otp from "./otp/index.js";
export * as protocol from "../protocol/index.js";
export { start } from "./app/main.js";
