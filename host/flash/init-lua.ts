/**
 * The one init.lua every keyfob runs at boot (Kconfig LUA_INIT_STRING
 * "@init.lua"), written by `fobkit flash` (flasher.ts) and by the emulator's
 * installImage (hil/install.ts). Change it here only.
 *
 * Why it looks like this (NodeMCU dev-esp32 at 7c5bb151):
 * - lua.c pmain runs init.lua through docall: an error is printed and
 *   nothing restarts (lua.c near 96-112 and 266-277), so the console would
 *   stay a Lua REPL and anyone on USB could read the record. The first line
 *   therefore takes the console from the interpreter: uart.on with a data
 *   callback and run_input 0 clears linput.c's run_input, and from then on
 *   user_main.c console_nodemcu_task never feeds a byte to the REPL (uart.c
 *   uart_on near 146-158). It needs no uart.start and allocates almost
 *   nothing, so it cannot run out of memory where the image would.
 * - After a failed load, pcall(collectgarbage): "not enough memory" leaves the
 *   failed load as garbage (fengari has no GC API, hence the pcall).
 * - Everything that can fail runs under pcall: loading fobkit.lc (its bytecode
 *   can run out of memory; a missing or truncated file raises), and its start(), which returns
 *   an error text instead of raising when its own boot fails (it puts "Err"
 *   on the display first when the display works).
 * - A failed boot restarts with back-off: BACKOFF_FIRST_MS, doubling, at
 *   most MAX_RESTARTS times, then it stays down (console deaf, display
 *   showing the error) until the power is cycled. The count lives in two
 *   rtcmem slots (rtcmem.c: RTC_NOINIT memory, kept across esp_restart,
 *   random after power-on; a magic word tells a count from garbage), so
 *   counting costs no flash wear. A build without rtcmem cannot count: it
 *   does not restart at all (fail-closed) rather than loop for ever.
 * - A good boot clears the count.
 * Every constant stays below 2^31 (NodeMCU's 32-bit integers).
 */

/** rtcmem slots: [RESTART_SLOT] = magic, [RESTART_SLOT + 1] = failed boots so far. */
export const RESTART_SLOT = 120;
/** "FBRC" as a 32-bit word. */
/**
 * ESP32 reset to app_main: ROM, second-stage bootloader and image check,
 * about 300 ms unoptimised (docs/power.md:273, Espressif ESP Techpedia "ESP
 * Chip Startup Time Optimization"; a deep-sleep wake takes the same path).
 * One figure for the flasher's wait after node.restart() and the emulator's
 * restart and wake.
 */
export const ESP32_BOOT_MS = 300;
export const RESTART_MAGIC = 0x46425243;
export const MAX_RESTARTS = 5;
export const BACKOFF_FIRST_MS = 2000;

/**
 * The image's core as the board holds it: bytecode, compiled on the board at
 * install (node.compile, node.c:718-779; host/flash/image-files.ts), so boot
 * never runs the parser (bench/results/memory.json: source vs bytecode).
 */
export const BOOT_FILE = "fobkit.lc";

/** init.lua booting `boot` (BOOT_FILE on every board; the memory bench also measures a source boot). */
export function initSource(boot: string = BOOT_FILE): string {
  // One statement a line, no indentation: the flasher uploads every byte at 115200 baud.
  return `-- fobkit boot (host/flash/init-lua.ts): fail-closed
uart.on(0,"data",0,function() end,0)
local ok,err=pcall(function() return dofile("${boot}").start() end)
local rc=rtcmem
if ok and err==nil then
if rc then rc.write32(${RESTART_SLOT},${RESTART_MAGIC},0) end
return
end
pcall(collectgarbage)
print("fobkit: boot failed: "..tostring(err))
if not rc then
print("fobkit: no rtcmem to count restarts: staying down")
return
end
local magic,n=rc.read32(${RESTART_SLOT},2)
if magic~=${RESTART_MAGIC} or n<0 or n>${MAX_RESTARTS} then n=0 end
if n>=${MAX_RESTARTS} then
print("fobkit: ${MAX_RESTARTS} restarts failed: staying down until power-on")
return
end
rc.write32(${RESTART_SLOT},${RESTART_MAGIC},n+1)
tmr.create():alarm(${BACKOFF_FIRST_MS}<<n,tmr.ALARM_SINGLE,function() node.restart() end)
`;
}

export const INIT_SOURCE = initSource();
