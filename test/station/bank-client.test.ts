/**
 * The factory's bank client prints what the bank answers (its refusal's code
 * and message) on the operator's terminal and into the factory record: a
 * hostile or broken server's control characters are written out as escapes
 * (as JSON.stringify writes them), never sent to the terminal.
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { printable, registerToken } from "../../host/station/bank-client.js";
import type { TokenRow } from "../../host/station/factory-record.js";

let server: Server | undefined;
afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

/** A bank that refuses every registration with `body`. */
async function refusingBank(body: unknown): Promise<URL> {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(409, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  return new URL(`http://127.0.0.1:${(server!.address() as AddressInfo).port}/`);
}

const ROW = { serial: "FK0001", algorithm: "SHA1", digits: 8, period: 60 } as TokenRow;
const CONTROLS = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

describe("the bank's answers are printed without their control characters", () => {
  it("a refusal whose code and message carry terminal escapes, CR, BEL and a bidi override is reported with each escaped", async () => {
    const url = await refusingBank({ error: { code: "evil\u001b[31m", message: "clear\u001b[2J\u001b]0;retitled\u0007\rover\bwrite\u202egnp.exe\nnext line \u0085C1 back\\slash" } });
    const r = await registerToken({ url, key: "fbk_test" }, ROW, randomBytes(20));
    expect(r.ok).toBe(false);
    const error = (r as { error: string }).error;
    expect(error).not.toMatch(CONTROLS);
    expect(error).toBe(
      "bank refused (HTTP 409 evil\\u001b[31m: clear\\u001b[2J\\u001b]0;retitled\\u0007\\rover\\bwrite\\u202egnp.exe\\nnext line \\u0085C1 back\\\\slash)",
    );
  });

  it("printable leaves ordinary text as it is, Japanese included", () => {
    expect(printable("serial FK0001: already registered (重複); nothing was imported")).toBe("serial FK0001: already registered (重複); nothing was imported");
    expect(printable("\t")).toBe("\\t");
  });
});
