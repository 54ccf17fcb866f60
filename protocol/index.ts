/**
 * The wire format shared by the firmware (Lua) and the host (Node); written
 * down in protocol/SPEC.md. Everything here is in the firmware subset.
 */
export * from "./codes.js";
export * from "./crc16.js";
export * from "./framing.js";
export * from "./messages.js";
export * from "./messages-host.js";
export * from "./stream.js";
export * from "./hid.js";
