/** Runs a KeyfobDouble behind a Transport's device end: bytes in, replies out, until the link ends. */
import type { Transport } from "../../host/transport/transport.js";
import type { KeyfobDouble } from "./keyfob-double.js";

export function serveDouble(link: Transport, fob: KeyfobDouble): Promise<void> {
  return (async () => {
    for (;;) {
      let chunk: Uint8Array;
      try {
        chunk = await link.read();
      } catch {
        return;
      }
      for (const reply of fob.receive(chunk)) {
        if (fob.faults.replyDelayMs) await new Promise((r) => setTimeout(r, fob.faults.replyDelayMs));
        try {
          await link.write(reply);
        } catch {
          return;
        }
      }
    }
  })();
}
