/**
 * "." and ".." are refused as serials and customer IDs, at the registry's door and by the API's schema: every URL
 * that would name them (/v1/tokens/:serial, /console/keyfobs/:serial, /v1/customers/:customer/...) loses them to URL
 * parsing, which removes dot segments, percent-encoded ones too. Session 8 review (s8-rev-web): both were valid.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { useBank } from "../support/bank-browser.js";
import { seg } from "../../host/console/html.js";
import { createApiKey } from "../../host/registry/api-keys.js";
import { checkCustomer, checkSerial } from "../../host/registry/validation.js";
import { RegistryError } from "../../host/registry/types.js";
import { call } from "../server/support.js";

const CLI = { name: "staff:test", source: "cli" };

describe.each([".", ".."])("%s as an ID", (id) => {
  it("cannot be named in a URL path, encoded or not (why it is refused)", () => {
    // As console/pages.ts builds a keyfob's form actions, and as the API's clients build /v1/tokens/:serial.
    for (const path of [`/console/keyfobs/${seg(id)}/unlock`, `/console/keyfobs/${id.replace(/\./g, "%2e")}/unlock`, `/v1/tokens/${encodeURIComponent(id)}/issue`]) {
      expect(new URL(path, "https://bank.example").pathname, path).not.toMatch(/\/(keyfobs|tokens)\/[^/]+\/(unlock|issue)$/);
    }
  });

  it("is refused by checkSerial and checkCustomer with an error that names it", () => {
    expect(() => checkSerial(id)).toThrow(RegistryError);
    expect(() => checkSerial(id)).toThrow(`serial may not be "${id}"`);
    expect(() => checkCustomer(id)).toThrow(`customer id may not be "${id}"`);
  });
});

describe("IDs that merely hold dots", () => {
  it.each(["...", ".a", "a.", "FK.01", "taro.yamada"])("%s is still a valid serial and customer ID", (id) => {
    expect(checkSerial(id)).toBe(id);
    expect(checkCustomer(id)).toBe(id);
  });
});

describe("at the doors", () => {
  const bank = useBank();

  it("registration (registry and API) and issuance (API) refuse them and write nothing", async () => {
    const token = (serial: string) => ({ serial, manufacturer: "fobkit", algorithm: "SHA1" as const, digits: 8, period: 60, t0: 0, secret: randomBytes(20) });
    await expect(bank.server.registry.registerOne(token(".."), CLI, "test")).rejects.toMatchObject({ code: "bad_serial", kind: "bad_input" });
    const factory = (await createApiKey(bank.db, "factory")).key;
    const staff = (await createApiKey(bank.db, "staff")).key;
    const body = (serial: string) => ({ serial, algorithm: "SHA1", digits: 8, period: 60, t0: 0, seed: randomBytes(20).toString("hex") });
    expect((await call(bank.server.url, "POST", "/v1/tokens", { key: factory, body: body(".") })).status).toBe(400);
    expect(await bank.db.get<{ n: number }>("SELECT COUNT(*) AS n FROM tokens")).toEqual({ n: 0 });
    // Control: the same request with a plain serial is taken, so the 400 above is the serial's.
    expect((await call(bank.server.url, "POST", "/v1/tokens", { key: factory, body: body("FK-DOT-1") })).status).toBe(201);
    expect((await call(bank.server.url, "POST", "/v1/tokens/FK-DOT-1/issue", { key: staff, body: { customer: ".." } })).status).toBe(400);
    expect(await bank.server.registry.status("FK-DOT-1")).toMatchObject({ state: "in_stock", customer: null });
  });
});
