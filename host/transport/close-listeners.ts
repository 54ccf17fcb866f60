/** The close-listener list every Transport keeps; fires at most once. */
import type { TransportCloseEvent } from "./transport.js";

export class CloseListeners {
  private listeners = new Set<(e: TransportCloseEvent) => void>();
  private fired = false;

  add(listener: (e: TransportCloseEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  fire(event: TransportCloseEvent): void {
    if (this.fired) return;
    this.fired = true;
    for (const l of [...this.listeners]) {
      try {
        l(event);
      } catch {
        // A listener's own failure must not stop the others from learning the link is gone.
      }
    }
  }
}
