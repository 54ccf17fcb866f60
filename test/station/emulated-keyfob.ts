/**
 * An emulated keyfob (hil's Emulator running the built Lua image) on a real
 * PTY (hil's PtyLink: socat + serialport, paced at 115200 baud): what the
 * station sees as /dev/ttyUSBn. unplug() takes the PTY away, as pulling the
 * USB cable does; the state directory (the keyfob's flash) survives for a
 * re-attach.
 */
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Emulator, type EmulatorOptions } from "../../hil/emulator.js";
import { PtyLink } from "../../hil/pty.js";
import { IMAGE } from "../support/paths.js";

export interface EmulatedKeyfob {
  emu: Emulator;
  link: PtyLink;
  path: string;
  stateDir: string;
  unplug(): Promise<void>;
}

/** powerOn false: the PTY is there but the board is not powered yet (call emu.boot()). */
export async function attachKeyfob(path: string, opts: Partial<EmulatorOptions> = {}, powerOn = true): Promise<EmulatedKeyfob> {
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), "fobkit-fob-"));
  const emu = new Emulator({ imagePath: IMAGE, countInstructions: false, realtime: true, ...opts, stateDir });
  const link = await PtyLink.open(emu, { path });
  if (powerOn) emu.boot();
  let gone = false;
  return {
    emu, link, path, stateDir,
    async unplug() {
      if (gone) return;
      gone = true;
      await link.close();
      emu.close();
    },
  };
}
