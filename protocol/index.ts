// The wire format shared by the firmware (Lua) and the host (Node). See SPEC.md.
export {};
