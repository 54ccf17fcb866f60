/**
 * Finding keyfobs: serial ports whose USB bridge is one a keyfob board
 * carries, HID devices with the keyfob's USB id, plus paths the operator
 * names (an emulator's PTY has no USB id and is not listed by the OS).
 * Opening a link by the name the user typed: "hid:PATH" is HID, anything
 * else a serial port.
 */
import { createRequire } from "node:module";
import { existsSync } from "node:fs";
import { SerialPort } from "serialport";
import { HidTransport, type HidOpener } from "./hid-transport.js";
import { SerialTransport } from "./serial-transport.js";
import type { Transport, TransportKind } from "./transport.js";

/** USB-UART bridges of ESP32 boards (vendor:product, lower-case hex as serialport reports them). */
export const SERIAL_USB_IDS: Record<string, string> = {
  "10c4:ea60": "Silicon Labs CP210x (ESP32-DevKitC)",
  "1a86:7523": "WCH CH340",
  "1a86:55d4": "WCH CH9102 (ESP32-DevKitC V4)",
  "303a:1001": "Espressif USB Serial/JTAG (ESP32-S3/C3)",
};

/**
 * The keyfob's own HID interface: pid.codes' vendor id 0x1209 with PID
 * 0x0001, which pid.codes reserves for testing; a production keyfob needs
 * its own allocated PID here.
 */
export const HID_USB_ID = { vendorId: 0x1209, productId: 0x0001 };

export interface FoundDevice {
  path: string;
  kind: "serial" | "hid";
  /** "vvvv:pppp" when the OS knows it. */
  usbId?: string;
  description?: string;
  /** Named by the operator rather than found by USB id. */
  named?: boolean;
}

export async function listSerialKeyfobs(): Promise<FoundDevice[]> {
  const ports = await SerialPort.list();
  const out: FoundDevice[] = [];
  for (const p of ports) {
    const id = p.vendorId && p.productId ? `${p.vendorId.toLowerCase()}:${p.productId.toLowerCase()}` : undefined;
    if (id && SERIAL_USB_IDS[id]) out.push({ path: p.path, kind: "serial", usbId: id, description: SERIAL_USB_IDS[id] });
  }
  return out;
}

export function listHidKeyfobs(): FoundDevice[] {
  let HID: typeof import("node-hid");
  try {
    HID = createRequire(import.meta.url)("node-hid") as typeof import("node-hid");
  } catch {
    return []; // no HID support on this machine: serial keyfobs still work
  }
  const hex = (n: number) => n.toString(16).padStart(4, "0");
  return HID.devices(HID_USB_ID.vendorId, HID_USB_ID.productId)
    .filter((d) => d.path)
    .map((d) => ({ path: "hid:" + d.path!, kind: "hid" as const, usbId: `${hex(d.vendorId)}:${hex(d.productId)}`, description: d.product ?? "fobkit keyfob (HID)" }));
}

/** Serial and HID keyfobs, plus the named paths that exist now. */
export async function listKeyfobs(named: string[] = []): Promise<FoundDevice[]> {
  const found = [...(await listSerialKeyfobs()), ...listHidKeyfobs()];
  for (const p of named) {
    if (found.some((f) => f.path === p)) continue;
    const kind = p.startsWith("hid:") ? "hid" : "serial";
    if (existsSync(kind === "hid" ? p.slice(4) : p)) found.push({ path: p, kind, named: true });
  }
  return found;
}

export interface OpenOptions {
  baudRate?: number;
  hidOpener?: HidOpener;
}

/** The kind of link a name opens: "hid:PATH" is HID, anything else a serial port. */
export function kindOfName(name: string): TransportKind {
  return name.startsWith("hid:") ? "hid" : "serial";
}

/**
 * A command (or library call) used on a kind of link it cannot work over
 * (yubikey-manager's commands declare their connections the same way):
 * refused before anything is opened.
 */
export class TransportKindError extends Error {
  readonly code = "bad_transport";
  constructor(
    readonly what: string,
    readonly path: string,
    readonly kind: TransportKind,
    readonly accepts: readonly TransportKind[],
  ) {
    super(`${what} works over ${accepts.join(" or ")} only: ${path} is ${kind === "hid" ? "a HID device" : `a ${kind} port`}`);
    this.name = "TransportKindError";
  }
}

/** Throw TransportKindError unless the name opens a kind in accepts. */
export function checkTransportKind(name: string, accepts: readonly TransportKind[], what: string): void {
  const kind = kindOfName(name);
  if (!accepts.includes(kind)) throw new TransportKindError(what, name, kind, accepts);
}

/**
 * A transport for a name as the user typed it: "hid:/dev/hidraw3" or a
 * serial path. With accepts, a name of another kind is refused
 * (TransportKindError) before anything is opened.
 */
export function transportFor(name: string, options: OpenOptions = {}, accepts?: { kinds: readonly TransportKind[]; what: string }): Transport {
  if (accepts) checkTransportKind(name, accepts.kinds, accepts.what);
  if (name.startsWith("hid:")) return new HidTransport({ path: name.slice(4), open: options.hidOpener });
  return new SerialTransport({ path: name, baudRate: options.baudRate });
}
