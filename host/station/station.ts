/**
 * Continuous provisioning: watch for keyfobs, provision each once, and wait
 * for it to be taken away before that port counts again (a keyfob left in
 * its socket is not provisioned twice; a new one at the same path is new).
 * Several ports run at once, each with its own session.
 *
 * Stopping (the signal, count reached, or the record refusing more serials
 * because the bank holds one of its line's serials as another token): no new
 * keyfob is started, the ones in hand finish, then runStation resolves.
 */
import { lstatSync, statSync } from "node:fs";
import { DeviceSession, type SessionOptions } from "../device/session.js";
import { kindOfName, listKeyfobs, transportFor, type OpenOptions } from "../transport/discover.js";
import type { Transport } from "../transport/transport.js";
import type { FactoryRecord } from "./factory-record.js";
import { registerRecorded, type BankTarget } from "./bank-client.js";
import { FLASH_TRANSPORTS, FlashError, flashBoard } from "../flash/flasher.js";
import { provisionKeyfob, type ProvisionOptions, type ProvisionResult, type ProvisionStep } from "./provision.js";

export const DEFAULT_POLL_MS = 200;

export interface StationTotals {
  good: number;
  failed: number;
}

/**
 * What runStation ends with: the totals, and why it stopped early when no
 * further keyfob could be provisioned: the bank holds one of the line's
 * serials as another token, or the record refuses serials of this batch
 * (exported meanwhile, or full).
 */
export interface StationOutcome extends StationTotals {
  collision?: string;
}

export type StationEvent =
  | { type: "attached"; port: string }
  | { type: "step"; port: string; step: ProvisionStep }
  | { type: "result"; result: ProvisionResult; totals: StationTotals }
  | { type: "detached"; port: string }
  | { type: "error"; port?: string; message: string };

export interface StationOptions {
  record: FactoryRecord;
  /** Watch these paths; without them, USB-discovered keyfobs (serial and HID). */
  ports?: string[];
  /** Stop after this many good tokens. */
  count?: number;
  signal?: AbortSignal;
  provision?: Omit<ProvisionOptions, "onStep">;
  session?: SessionOptions;
  transport?: OpenOptions;
  /** Build the transport for a path (default: serial or "hid:" HID). */
  openTransport?: (path: string) => Transport;
  pollMs?: number;
  /** Register each good token with the bank right after it is locked. */
  bank?: BankTarget;
  /**
   * Blank boards too: a board that answers with NodeMCU's REPL gets this
   * firmware image (fobkit flash) first, then is provisioned in the same pass.
   */
  flashImage?: { image: Uint8Array; files: { name: string; data: Uint8Array }[] };
  onEvent?: (e: StationEvent) => void;
}

interface PortState {
  state: "busy" | "done";
  /** identity() of the device being (or last) provisioned there. */
  id: string | undefined;
}

/**
 * Which device is at a path now, or undefined if none. A replugged keyfob
 * gets a fresh device node (or a fresh PTY link), so the identity changes
 * even when the operator swaps keyfobs faster than we poll.
 */
function identity(path: string): string | undefined {
  const p = path.startsWith("hid:") ? path.slice(4) : path;
  try {
    const l = lstatSync(p, { bigint: true });
    const s = statSync(p, { bigint: true });
    return `${l.ino}:${l.ctimeNs}:${s.rdev}:${s.ino}`;
  } catch {
    return undefined;
  }
}

/** Register a good token; the outcome goes into the result and the record, never into its status. True when the bank holds its serial as another token. */
export async function withRegistration(record: FactoryRecord, bank: BankTarget, result: ProvisionResult): Promise<boolean> {
  const r = await registerRecorded(record, bank, result.serial!);
  result.registration = r.ok ? "registered" : "failed";
  if (!r.ok) result.registrationError = r.error;
  return !r.ok && r.collision === true;
}

/**
 * Install the firmware on a board that still has NodeMCU's REPL. A board that
 * already runs fobkit (locked or not) is left as it is: provisioning decides.
 */
async function flashIfBlank(path: string, upload: { image: Uint8Array; files: { name: string; data: Uint8Array }[] }, signal: AbortSignal | undefined, step: (s: ProvisionStep) => void): Promise<void> {
  // Only a UART reaches NodeMCU's REPL; a keyfob found on HID already runs fobkit (FLASH_TRANSPORTS).
  if (!FLASH_TRANSPORTS.includes(kindOfName(path))) return;
  step("flash");
  try {
    await flashBoard({ port: path, image: upload.image, files: upload.files, signal });
  } catch (e) {
    if (e instanceof FlashError && (e.code === "firmware" || e.code === "locked")) return;
    throw new Error(`flash: ${(e as Error).message}`);
  }
}

export async function runStation(o: StationOptions): Promise<StationOutcome> {
  const totals: StationTotals = { good: 0, failed: 0 };
  const ports = new Map<string, PortState>();
  const inHand = new Set<Promise<void>>();
  const emit = (e: StationEvent) => o.onEvent?.(e);
  const pollMs = o.pollMs ?? DEFAULT_POLL_MS;
  const open = o.openTransport ?? ((p: string) => transportFor(p, o.transport));
  /** Why no further keyfob can be provisioned: another record uses this line (the bank said so), or the record refuses this batch. */
  let collided: string | undefined;
  const finished = () => collided !== undefined || o.signal?.aborted || (o.count !== undefined && totals.good >= o.count);
  // With --count, start no more keyfobs than could still be needed if all in hand succeed.
  const mayStart = () => !finished() && (o.count === undefined || totals.good + busyCount() < o.count);
  const busyCount = () => [...ports.values()].filter((s) => s.state === "busy").length;

  o.record.recoverInterrupted();

  const work = async (path: string) => {
    emit({ type: "attached", port: path });
    let session: DeviceSession | undefined;
    let result: ProvisionResult;
    try {
      if (o.flashImage) await flashIfBlank(path, o.flashImage, o.signal, (step) => emit({ type: "step", port: path, step }));
      session = await DeviceSession.open(open(path), o.session);
      result = await provisionKeyfob(session, o.record, { ...o.provision, onStep: (step) => emit({ type: "step", port: path, step }) });
    } catch (e) {
      result = { status: "failed", port: path, reason: (e as Error).message, durationMs: 0 };
    } finally {
      await session?.close();
    }
    // The record refuses this station's serials now: every keyfob after this one would be refused too.
    if (result.refused) {
      collided = result.reason!;
      emit({ type: "error", port: path, message: collided });
    }
    if (result.status === "good" && o.bank && result.serial && (await withRegistration(o.record, o.bank, result))) {
      // The record says why when it could note the conflict; otherwise the bank's answer does.
      collided = o.record.provisioningRefusal() ?? result.registrationError!;
      emit({ type: "error", port: path, message: collided });
    }
    if (result.status === "good") totals.good++;
    else totals.failed++;
    emit({ type: "result", result, totals: { ...totals } });
    ports.get(path)!.state = "done";
  };

  let wake: (() => void) | undefined;
  const onAbort = () => wake?.();
  o.signal?.addEventListener("abort", onAbort);
  try {
    while (!finished()) {
      let candidates: string[];
      try {
        candidates = o.ports ? o.ports.filter((p) => identity(p) !== undefined) : (await listKeyfobs()).map((d) => d.path);
      } catch (e) {
        emit({ type: "error", message: `cannot list ports: ${(e as Error).message}` });
        candidates = [];
      }
      for (const [path, st] of ports) {
        if (st.state === "done" && (!candidates.includes(path) || identity(path) !== st.id)) {
          ports.delete(path);
          emit({ type: "detached", port: path });
        }
      }
      for (const path of candidates) {
        if (ports.has(path) || !mayStart()) continue;
        ports.set(path, { state: "busy", id: identity(path) });
        const p = work(path).finally(() => {
          inHand.delete(p);
          wake?.();
        });
        inHand.add(p);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, pollMs);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      wake = undefined;
    }
    await Promise.all(inHand);
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
  }
  return { ...totals, ...(collided !== undefined ? { collision: collided } : {}) };
}
