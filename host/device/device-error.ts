/** The one error type of host/device: what failed, in which command, and the keyfob's status when it answered. */
export type DeviceErrorCode =
  /** No (intact) reply within the timeout, after the retries the command allows. */
  | "timeout"
  /** The link went away during or before the command. */
  | "unplugged"
  /** The session was closed by its owner. */
  | "closed"
  /** The keyfob answered with a status other than OK; `status`/`statusName` say which. */
  | "refused"
  /** A reply that decodes but does not make sense (e.g. INFO for another device after a retry). */
  | "protocol"
  /** The request itself is invalid (caught before sending). */
  | "bad_request";

export class DeviceError extends Error {
  constructor(
    readonly code: DeviceErrorCode,
    message: string,
    /** The command name, e.g. "WRITE_SEED". */
    readonly command: string,
    /** The STATUS_* code when code is "refused". */
    readonly status?: number,
    /** Its name, e.g. "LOCKED". */
    readonly statusName?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "DeviceError";
  }
}
