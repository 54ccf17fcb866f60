/**
 * Talks to NodeMCU's Lua REPL over a Transport the way nodemcu-uploader and
 * nodemcu-tool do: send one line, wait for the prompt ("> ", or ">> " while
 * a statement is incomplete), take what came between the echo and the
 * prompt as the answer. Works with echo on (the default) or off.
 */
import { TransportError, type Transport } from "../transport/transport.js";

export const PROMPT = "> ";
export const PROMPT2 = ">> ";
/**
 * Output of the board not yet taken as an answer. A REPL line's answer is a
 * few bytes; a board past this is broken (a print loop, a boot loop on a
 * fast USB-CDC console) and its output is not kept: every byte kept is also
 * searched for the prompt again.
 */
export const MAX_PENDING_OUTPUT = 1024 * 1024;

export class ReplError extends Error {
  constructor(
    readonly code: "no_prompt" | "lua_error" | "closed" | "aborted" | "flood",
    message: string,
  ) {
    super(message);
    this.name = "ReplError";
  }
}

/** A line for pipeline(), with a timeout of its own. */
export interface PipelineLine {
  line: string;
  timeoutMs?: number;
  /**
   * Bytes that may be sent behind this line (LFs included) until it has
   * answered; pipeline()'s windowBytes when not given. A line that writes
   * flash takes less than one that only computes or reads (flasher.ts).
   */
  windowBytes?: number;
}

export interface ReplAnswer {
  /** Output between the echoed line and the prompt, LF line ends, no trailing LF. */
  output: string;
  /** True if the REPL now waits for the rest of a statement (">> "). */
  continuation: boolean;
  /** The board echoed the line. */
  echoed: boolean;
}

export class ReplClient {
  readonly transport: Transport;
  private buf = "";
  /** A CR ended the last chunk: it may be the first half of a CR LF. */
  private heldCR = false;
  private waiter: (() => void) | undefined;
  private ended: Error | undefined;
  private readonly loop: Promise<void>;

  constructor(transport: Transport) {
    this.transport = transport;
    this.loop = this.readLoop();
  }

  private async readLoop(): Promise<void> {
    for (;;) {
      let chunk: Uint8Array;
      try {
        chunk = await this.transport.read();
      } catch (e) {
        this.ended = e instanceof Error ? e : new Error(String(e));
        this.waiter?.();
        return;
      }
      // ESP-IDF's console may turn LF into CR LF (CONFIG_NEWLIB_STDOUT_LINE_ENDING_CRLF): only the new bytes
      // are converted (a CR at a chunk's end waits for the next), so a long answer costs linear time.
      let text = (this.heldCR ? "\r" : "") + Buffer.from(chunk).toString("latin1");
      this.heldCR = text.endsWith("\r");
      if (this.heldCR) text = text.slice(0, -1);
      this.buf += text.replace(/\r\n/g, "\n");
      if (this.buf.length > MAX_PENDING_OUTPUT) {
        this.ended = new ReplError("flood", `${this.transport.path}: the board sent more than ${MAX_PENDING_OUTPUT} bytes without the answer awaited (a print or boot loop?)`);
        this.clear();
        this.waiter?.();
        return;
      }
      this.waiter?.();
    }
  }

  /** Forget the board's output so far (a CR held for a CR LF included). */
  private clear(): void {
    this.buf = "";
    this.heldCR = false;
  }

  /** Wait until test(buffer) holds, or the timeout; returns whether it held. */
  private async waitFor(test: (b: string) => boolean, timeoutMs: number): Promise<boolean> {
    const until = Date.now() + timeoutMs;
    while (!test(this.buf)) {
      if (this.ended instanceof ReplError) throw this.ended;
      if (this.ended) throw new ReplError("closed", `${this.transport.path}: link closed (${this.ended.message})`);
      const left = until - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.waiter = undefined;
          resolve();
        }, left);
        this.waiter = () => {
          clearTimeout(t);
          this.waiter = undefined;
          resolve();
        };
      });
    }
    return true;
  }

  private async send(text: string): Promise<void> {
    try {
      await this.transport.write(Buffer.from(text, "latin1"));
    } catch (e) {
      if (e instanceof TransportError) throw new ReplError("closed", e.message);
      throw e;
    }
  }

  /**
   * Get to a clean "> " prompt: a line end shows the prompt (or submits a
   * half line a broken transfer left in the board's line buffer); a line
   * with a lone "$" is a syntax error in any context, which ends a pending
   * multi-line statement. Returns false if no REPL answers (e.g. the
   * firmware holds the UART).
   */
  async sync(timeoutMs = 1500): Promise<boolean> {
    this.clear();
    // CR LF ends a line whatever came before: linput.c skips the second of a CR LF / LF CR pair.
    await this.send("\r\n");
    for (let round = 0; round < 4; round++) {
      if (!(await this.waitFor((b) => b.endsWith(PROMPT), timeoutMs))) return false;
      // Let whatever else is on its way arrive, then look at the last prompt.
      await new Promise((r) => setTimeout(r, 50));
      if (!this.buf.endsWith(PROMPT)) continue;
      if (!this.buf.endsWith(PROMPT2)) {
        this.clear();
        return true;
      }
      this.clear();
      await this.send("$\n");
    }
    return false;
  }

  /** Send one line (no LF in it) and wait for the prompt after it. */
  async run(line: string, timeoutMs = 5000): Promise<ReplAnswer> {
    if (/[\r\n]/.test(line)) throw new TypeError("ReplClient.run: one line at a time");
    this.clear();
    const echo = line + "\n";
    await this.send(echo);
    // Echo first (if echo is on), then output, then a prompt ("> " ends ">> " too).
    const done = (b: string) => !echo.startsWith(b) && (b.startsWith(echo) ? b.slice(echo.length) : b).endsWith(PROMPT);
    if (!(await this.waitFor(done, timeoutMs))) {
      throw new ReplError("no_prompt", `${this.transport.path}: no Lua prompt after a line (${timeoutMs} ms)`);
    }
    let b = this.buf;
    this.clear();
    const echoed = b.startsWith(echo);
    if (echoed) b = b.slice(echo.length);
    const continuation = b.endsWith(PROMPT2);
    b = b.slice(0, b.length - (continuation ? PROMPT2.length : PROMPT.length));
    return { output: b.replace(/\n$/, ""), continuation, echoed };
  }

  /** run(), failing with lua_error if the board printed a Lua error. */
  async exec(line: string, timeoutMs?: number): Promise<string> {
    const a = await this.run(line, timeoutMs);
    const err = /(^|\n)Lua error: \t?(.*)/.exec(a.output);
    if (err) throw new ReplError("lua_error", `the board's Lua said: ${err[2].slice(0, 200)}`);
    return a.output;
  }

  /**
   * Send lines that each complete a statement, keeping the oldest unanswered
   * line and at most `windowBytes` more (LFs included) in flight; one prompt
   * per line. A line's own windowBytes (PipelineLine) bounds the bytes behind
   * it instead, until it answered: each unanswered line's bound holds, the
   * oldest line always goes, and lines are sent whole (one write each), so a
   * line the bound cuts waits. windowBytes is what the board's receive path holds while a line
   * runs: the running line itself left it before it ran (its bytes went one
   * by one to the REPL's line buffer, user_main.c:179-194), and every line
   * before it has answered, so only the lines behind it can pile up there.
   * Only for a REPL whose echo is off (the echo could contain "> "). A line
   * may carry its own timeout (node.compile needs longer than a data line);
   * it runs from the moment the line is the oldest unanswered one.
   * onAck(i, output) follows each line the board has run, with what it
   * printed (no trailing LF); a Lua error stops everything. Returns every
   * line's output.
   */
  async pipeline(
    lines: readonly (string | PipelineLine)[],
    windowBytes: number,
    timeoutMs: number,
    onAck: (i: number, output: string) => void,
    signal?: AbortSignal,
  ): Promise<string[]> {
    const items = lines.map((l) => (typeof l === "string" ? { line: l } : l));
    for (const it of items) if (/[\r\n]/.test(it.line)) throw new TypeError("ReplClient.pipeline: one line at a time");
    // Where each line ends in the byte stream (its LF included).
    const ends: number[] = [];
    let end = 0;
    for (const it of items) ends.push((end += it.line.length + 1));
    this.clear();
    let sent = 0;
    let acked = 0;
    const outputs: string[] = [];
    while (acked < items.length) {
      // Every unanswered line k allows ends[k] + its window bytes to be sent; the oldest always goes.
      for (;;) {
        if (sent >= items.length) break;
        let limit = Infinity;
        for (let k = acked; k < sent && ends[k] < limit; k++) limit = Math.min(limit, ends[k] + (items[k].windowBytes ?? windowBytes));
        if (sent > acked && ends[sent] > limit) break;
        if (signal?.aborted) throw new ReplError("aborted", "interrupted");
        await this.send(items[sent].line + "\n");
        sent++;
      }
      const wait = items[acked].timeoutMs ?? timeoutMs;
      if (!(await this.waitFor((b) => b.indexOf(PROMPT) >= 0, wait))) {
        throw new ReplError("no_prompt", `${this.transport.path}: no Lua prompt after a line (${wait} ms)`);
      }
      const at = this.buf.indexOf(PROMPT);
      // ">> " (a statement continued on the next line) ends in "> " too.
      const out = this.buf.slice(0, this.buf[at - 1] === ">" ? at - 1 : at);
      // What is answered is dropped: the buffer holds only output not yet taken (MAX_PENDING_OUTPUT).
      this.buf = this.buf.slice(at + PROMPT.length);
      const err = /Lua error: \t?(.*)/.exec(out);
      if (err) throw new ReplError("lua_error", `the board's Lua said: ${err[1].slice(0, 200)}`);
      const output = out.replace(/\n$/, "");
      outputs.push(output);
      onAck(acked++, output);
    }
    this.clear();
    return outputs;
  }

  /** Send a line and do not wait (node.restart()). */
  async fire(line: string): Promise<void> {
    await this.send(line + "\n");
  }

  /** Stop reading; the transport is closed (a DeviceSession needs its own read loop). */
  async close(): Promise<void> {
    await this.transport.close().catch(() => undefined);
    await this.loop;
  }
}
