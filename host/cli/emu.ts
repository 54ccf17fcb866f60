/** `fobkit emu`: an emulated keyfob on a real PTY (hil/), for people and tests. */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { runEmuCli } from "../../hil/cli.js";
import { faultHelp } from "../../hil/faults.js";
import { LINK_BAUD } from "../../protocol/codes.js";
import { CliError, type Command } from "./command.js";

export const emuCommand: Command = {
  name: "emu",
  summary: "run an emulated keyfob on a PTY (the built firmware in a 32-bit Lua VM)",
  usage: "--pty PATH --state DIR [options]",
  description: `The firmware image runs unmodified on a simulated NodeMCU board (DS3231
RTC with drift, SPIFFS flash in DIR with power-cut injection, button, MAX7219
display). The host tools open PATH like any serial port.

Control on stdin, one command per line:
  press | power-cut | boot | advance SECONDS | fault NAME on|off | usb on|off | brown-out

USB: plugged in unless --battery. On battery a locked keyfob deep-sleeps
between presses (a press wakes it; {"event":"sleep"} and {"event":"wake"}
show it), and bytes on PATH are lost both ways: the USB bridge has no power.
"usb on" plugs it in; a sleeping keyfob then needs one press to wake and
stays awake while USB is there (protocol/SPEC.md). "brown-out" resets the
chip as a sagging battery would (node.bootreason 3, 22).
Events on stdout, one JSON object per line, first {"event":"ready","pty":PATH},
then {"event":"display","text":"..."} and others. Ends on Ctrl-C or end of stdin.

Faults (--fault NAME, repeatable or comma-separated; or "fault NAME on" later),
each one a real board can meet, to see the firmware fail closed:
${faultHelp()}

examples:
  fobkit emu --pty /tmp/keyfob0 --state /tmp/keyfob0.d --drift-ppm 20
  fobkit emu --pty /tmp/keyfob1 --state /tmp/keyfob1.d --fault i2c-timeout --fault close-error
  fobkit emu --pty /tmp/keyfob2 --state /tmp/keyfob2.d --battery
  fobkit emu --pty /tmp/keyfob3 --state /tmp/keyfob3.d --spiffs-worn`,
  options: {
    pty: { type: "string", placeholder: "PATH", help: "where to create the PTY link the host opens" },
    state: { type: "string", placeholder: "DIR", help: "the board's flash (created; holds the image's .lc files, init.lua, records)" },
    time: { type: "string", placeholder: "UNIX", help: "RTC time at start, unix seconds in 2000..2099 (default: now)" },
    "drift-ppm": { type: "string", placeholder: "N", help: "RTC crystal error in ppm, positive = fast (default 0)" },
    baud: { type: "string", placeholder: "RATE", help: `modelled line speed, bytes are paced to it (default ${LINK_BAUD})` },
    image: { type: "string", placeholder: "FILE", help: "install this Lua image (default: build/firmware/fobkit.lua if DIR has none)" },
    build: { type: "string", placeholder: "FILE", help: "the NodeMCU build's sdkconfig fragment: its modules, console settings and partition table, read from beside it (default nodemcu-build/sdkconfig.fobkit)" },
    "no-rng": { type: "boolean", help: "a board without a hardware RNG (the firmware must fail closed)" },
    "no-rtc": { type: "boolean", help: "no DS3231 on the bus (the firmware must fail closed)" },
    fault: { type: "string", multiple: true, placeholder: "NAME", help: "switch a fault on from power-on (see Faults above)" },
    battery: { type: "boolean", help: "start unplugged, on the battery: a locked keyfob deep-sleeps between presses" },
    "spiffs-worn": { type: "boolean", help: "start from a worn SPIFFS: DIR's files (after any install) written again and again without a format, so every create or append on the board garbage-collects first: block erases of up to 500 ms each (hil/spiffs-gc.ts)" },
    blank: { type: "boolean", help: "install nothing: a new DIR is a factory-fresh board that boots into the Lua REPL (see fobkit flash)" },
  },
  async run({ values }, io) {
    const blank = values.blank === true;
    delete values.blank;
    if (blank && values.image !== undefined) throw new CliError("--blank and --image exclude each other (a blank board has no image)");
    // A DIR with an init.lua holds an image (the install removes fobkit.lua once fobkit.lc loads):
    // installing again would be a second install on an unformatted SPIFFS, wearing it.
    if (!blank && values.image === undefined && typeof values.state === "string" && !existsSync(join(values.state, "init.lua"))) {
      // build/node/host/cli -> build/firmware/fobkit.lua
      const built = resolve(import.meta.dirname, "..", "..", "..", "firmware", "fobkit.lua");
      if (existsSync(built)) values.image = built;
    }
    const argv: string[] = [];
    for (const [k, v] of Object.entries(values)) {
      if (v === undefined || v === false) continue;
      for (const one of Array.isArray(v) ? v : [v]) {
        argv.push(`--${k}`);
        if (one !== true) argv.push(String(one));
      }
    }
    return runEmuCli(argv, {
      stdout: (l) => io.stdout.write(l + "\n"),
      stderr: (l) => io.stderr.write(l + "\n"),
      stdin: io.stdin,
    });
  },
};
