/** Runs a FaultyLinkKeyfob behind a Transport's device end: bytes in, replies out, until the link ends. */
import type { Transport } from "../../host/transport/transport.js";
import type { FaultyLinkKeyfob } from "./link-faults.js";

export function serveKeyfob(link: Transport, fob: FaultyLinkKeyfob): Promise<void> {
  return (async () => {
    for (;;) {
      let chunk: Uint8Array;
      try {
        chunk = await link.read();
      } catch {
        return;
      }
      // A byte at a time, so each request is acted on only after the keyfob finished the one before.
      for (let i = 0; i < chunk.length; i++) {
        const logged = fob.log.length;
        const replies = fob.receive(chunk.subarray(i, i + 1));
        const busy = fob.log.length > logged ? fob.faults.busyMs?.[fob.log[fob.log.length - 1]] ?? 0 : 0;
        const wait = busy + (replies.length > 0 ? fob.faults.replyDelayMs ?? 0 : 0);
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        for (const reply of replies) {
          try {
            await link.write(reply);
          } catch {
            return;
          }
        }
      }
    }
  })();
}
