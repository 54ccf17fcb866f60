/**
 * `fobkit bank ...` in process through runCli (the same entry as
 * bin/fobkit.js): exit statuses 0/1/2, --json on every outcome, reason codes
 * on stderr, import from PSKC files (host/pskc writes them; the reader
 * checks their MAC), and key rotation. Codes from oathtool at the bank's
 * time: the wall clock shifted by FOBKIT_CLOCK_OFFSET (host/clock.ts, read by
 * every bank command), which the test moves a step forward instead of waiting.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { writePskc, type PskcToken } from "../../host/pskc/index.js";
import { ENGINES, oathtool } from "../registry/support.js";
import { runCliCaptured } from "./support.js";

/** A 5-s step: the CLI runs on the wall clock plus FOBKIT_CLOCK_OFFSET, which nextStep moves by one step. */
const PERIOD = 5;

interface Out {
  code: number;
  stdout: string;
  stderr: string;
  json: any;
}

describe.each(ENGINES)("fobkit bank CLI on $name", (engine) => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let drop: () => Promise<void>;
  /** Seconds the bank's clock (FOBKIT_CLOCK_OFFSET) is ahead of the wall clock. */
  let offset = 0;
  /**
   * Moves the bank's clock (whole seconds, as FOBKIT_CLOCK_OFFSET is) to the first second of its next step, as waiting
   * for that step did: every code after it is in a later step than any before it, with most of a step left to use it.
   */
  const nextStep = () => {
    const now = Date.now() / 1000 + offset;
    offset += Math.ceil((Math.floor(now / PERIOD) + 1) * PERIOD - now);
  };

  async function bank(...args: string[]): Promise<Out> {
    const r = await runCliCaptured(["bank", ...args], { ...env, FOBKIT_CLOCK_OFFSET: String(offset) });
    return { ...r, json: args.includes("--json") ? JSON.parse(r.stdout.trim().split("\n").at(-1)!) : undefined };
  }

  const seeds = new Map<string, Buffer>();
  function pskcFile(name: string, serials: string[], password = "correct horse"): string {
    const tokens: PskcToken[] = serials.map((serial) => {
      const secret = seeds.get(serial) ?? randomBytes(20);
      seeds.set(serial, secret);
      return { serial, manufacturer: "fobkit", model: "FK-1", keyId: serial, algorithm: "SHA1", digits: 8, period: PERIOD, t0: 0, secret: Buffer.from(secret) };
    });
    const path = join(dir, name);
    writeFileSync(path, writePskc(tokens, { kind: "password", password, iterations: 1000 }));
    return path;
  }
  /** The code a keyfob `fast` seconds ahead of the bank's clock shows now. */
  const code = (serial: string, fast = 0) => oathtool(seeds.get(serial)!, Date.now() / 1000 + offset + fast, { period: PERIOD });

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), "fobkit-cli-"));
    offset = 0;
    const f = await engine.fresh();
    drop = f.drop;
    writeFileSync(join(dir, "password"), "correct horse\n");
    env = { FOBKIT_BANK_DB: f.url, FOBKIT_BANK_KEK_FILE: join(dir, "bank.kek"), USER: "alice", PATH: process.env.PATH };
    expect((await bank("init-kek")).code).toBe(0);
  });
  afterEach(async () => {
    await drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("init-kek writes a 0600 key file and refuses to overwrite it", async () => {
    expect(statSync(env.FOBKIT_BANK_KEK_FILE!).mode & 0o777).toBe(0o600);
    const again = await bank("init-kek", "--json");
    expect(again.code).toBe(2);
    expect(again.json).toMatchObject({ ok: false });
  });

  it("imports a PSKC file whole, refuses a duplicate and a wrong password with nothing changed", async () => {
    const a = pskcFile("a.pskc", ["FK0001", "FK0002", "FK0003"]);
    const ok = await bank("import", a, "--password-file", join(dir, "password"), "--json");
    expect(ok).toMatchObject({ code: 0, json: { ok: true, imported: 3, serials: ["FK0001", "FK0002", "FK0003"] } });
    // One duplicate among new serials: refused (1), named, none imported.
    const b = pskcFile("b.pskc", ["FK0004", "FK0002", "FK0005"]);
    const dup = await bank("import", b, "--password-file", join(dir, "password"), "--json");
    expect(dup).toMatchObject({ code: 1, json: { ok: false, error: { code: "duplicate_serial", detail: { serials: ["FK0002"] } } } });
    expect(dup.stderr).toMatch(/refused: duplicate_serial/);
    expect((await bank("status", "--serial", "FK0004")).code).toBe(2);
    // The wrong password fails the MAC: bad input (2), nothing imported.
    writeFileSync(join(dir, "wrong"), "wrong horse");
    const c = pskcFile("c.pskc", ["FK0006"]);
    const mac = await bank("import", c, "--password-file", join(dir, "wrong"), "--json");
    expect(mac).toMatchObject({ code: 2, json: { error: { code: "pskc_mac_mismatch" } } });
    expect((await bank("status", "--serial", "FK0006")).code).toBe(2);
    // Hostile XML: an entity expansion bomb.
    const bomb = join(dir, "bomb.pskc");
    writeFileSync(bomb, '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><KeyContainer Version="1.0" xmlns="urn:ietf:params:xml:ns:keyprov:pskc">&b;</KeyContainer>');
    const hostile = await bank("import", bomb, "--password-file", join(dir, "password"), "--json");
    expect(hostile).toMatchObject({ code: 2, json: { error: { code: "pskc_unsafe_xml" } } });
    // The refusals are in the audit.
    const audit = await bank("audit", "--json");
    expect(audit.json.records.filter((r: any) => r.action === "import").map((r: any) => r.outcome)).toEqual(["pskc_mac_mismatch", "pskc_unsafe_xml"]);
    // Neither key file: bad usage.
    expect((await bank("import", a)).code).toBe(2);
  });

  it("walks the lifecycle with the exit statuses and --json", async () => {
    await bank("import", pskcFile("a.pskc", ["FK0001"]), "--password-file", join(dir, "password"));
    expect(await bank("issue", "--serial", "FK0001", "--customer", "c1", "--json")).toMatchObject({ code: 0, json: { ok: true, token: { state: "issued", customer: "c1" } } });
    expect(await bank("issue", "--serial", "FK0001", "--customer", "c2", "--json")).toMatchObject({ code: 1, json: { error: { code: "not_issuable" } } });
    expect(await bank("issue", "--serial", "NOPE", "--customer", "c2", "--json")).toMatchObject({ code: 2, json: { error: { code: "unknown_serial" } } });
    expect(await bank("activate", "--serial", "FK0001", "--code", "1234567", "--json")).toMatchObject({ code: 2, json: { error: { code: "bad_code" } } });
    expect(await bank("activate", "--serial", "FK0001", "--code", "12a45678")).toMatchObject({ code: 2 });
    expect(await bank("activate", "--serial", "FK0001", "--code", code("FK0001"), "--json")).toMatchObject({ code: 0, json: { result: "accepted", state: "active" } });
    nextStep();
    const next = code("FK0001");
    expect(await bank("verify", "--customer", "c1", "--code", next, "--json")).toMatchObject({ code: 0, json: { ok: true, result: "accepted" } });
    const replay = await bank("verify", "--customer", "c1", "--code", next, "--json");
    expect(replay).toMatchObject({ code: 1, json: { ok: false, error: { code: "replayed" } } });
    expect(replay.stderr).toMatch(/refused: replayed/);
    expect(await bank("unlock", "--customer", "c1", "--json")).toMatchObject({ code: 1, json: { error: { code: "not_locked" } } });
    for (let i = 0; i < 5; i++) expect((await bank("verify", "--customer", "c1", "--code", "00000000")).code).toBe(1);
    expect(await bank("status", "--customer", "c1", "--json")).toMatchObject({ code: 0, json: { token: { state: "locked", failCount: 5 } } });
    expect(await bank("unlock", "--customer", "c1", "--staff", "bob", "--json")).toMatchObject({ code: 0, json: { token: { state: "active" } } });
    // Resync: the keyfob's clock now runs ten minutes fast (120 steps); it shows
    // one code, then the next a step later.
    const FAST = 600;
    nextStep();
    const c1 = code("FK0001", FAST);
    nextStep();
    const r = await bank("resync", "--serial", "FK0001", "--code", c1, "--code", code("FK0001", FAST), "--json");
    expect(r).toMatchObject({ code: 0, json: { result: "accepted" } });
    expect(r.json.drift).toBeGreaterThanOrEqual(119);
    expect(r.json.drift).toBeLessThanOrEqual(121);
    expect(await bank("resync", "--serial", "FK0001", "--code", "12345678", "--json")).toMatchObject({ code: 2 });
    nextStep();
    expect(await bank("deactivate", "--customer", "c1", "--code", code("FK0001", FAST), "--json")).toMatchObject({ code: 0, json: { state: "retired" } });
    nextStep();
    expect(await bank("activate", "--serial", "FK0001", "--code", code("FK0001", FAST), "--json")).toMatchObject({ code: 1, json: { error: { code: "retired" } } });
    // The audit names the staff member and the CLI as the source.
    const audit = await bank("audit", "--serial", "FK0001", "--json");
    const unlock = audit.json.records.find((x: any) => x.action === "unlock" && x.outcome === "ok");
    expect(unlock).toMatchObject({ actor: "staff:bob", source: "cli" });
    expect(audit.json.records.find((x: any) => x.action === "issue")).toMatchObject({ actor: "staff:alice" });
    const text = await bank("audit", "--serial", "FK0001");
    expect(text.stdout.split("\n").filter(Boolean).length).toBe(audit.json.records.length);
    // --request needs --customer or --serial (the audit has no index on request ids): 2, naming the rule.
    const alone = await bank("audit", "--request", "app-1:x", "--json");
    expect(alone).toMatchObject({ code: 2 });
    expect(alone.stderr + alone.stdout).toMatch(/--request.*--customer.*--serial/);
    expect(await bank("audit", "--serial", "FK0001", "--request", "app-1:x", "--json")).toMatchObject({ code: 0, json: { records: [] } });
  });

  it("unlock is the operator's break-glass path: no maker-checker, said in --help, and each unlock audited as break-glass, naming the rule it passed", async () => {
    const help = await bank("unlock", "--help");
    expect(help.stdout).toMatch(/break-glass/);
    expect(help.stdout).toMatch(/maker-checker/);
    await bank("import", pskcFile("u.pskc", ["FK0001"]), "--password-file", join(dir, "password"));
    await bank("issue", "--serial", "FK0001", "--customer", "c1");
    expect((await bank("activate", "--serial", "FK0001", "--code", code("FK0001"))).code).toBe(0);
    const outs = [];
    for (let i = 0; i < 3; i++) {
      for (let j = 0; j < 5; j++) await bank("verify", "--customer", "c1", "--code", "00000000");
      outs.push(await bank("unlock", "--customer", "c1", "--staff", "ops", "--json"));
    }
    // The third in 24 hours is past what a teller may do alone: done all the same (the operator holds the database and
    // the key file), and said so, on the answer and in the audit.
    expect(outs.map((o) => [o.code, o.json.breakGlass, o.json.ruleBypassed])).toEqual([
      [0, true, false],
      [0, true, false],
      [0, true, true],
    ]);
    expect(outs[2].stderr).toMatch(/break-glass.*maker-checker/);
    const audit = await bank("audit", "--customer", "c1", "--json");
    const unlocks = audit.json.records.filter((x: any) => x.action === "unlock").sort((a: any, b: any) => a.id - b.id);
    expect(unlocks.map((u: any) => [u.actor, u.source, u.outcome, u.detail.breakGlass, u.detail.ruleBypassed, u.detail.unlocksInDay])).toEqual([
      ["staff:ops", "cli", "ok", true, false, 0],
      ["staff:ops", "cli", "ok", true, false, 1],
      ["staff:ops", "cli", "ok", true, true, 2],
    ]);
  });

  it("withdraw: a lost keyfob is retired without its code and never issued again; a bad reason is 2 and changes nothing", async () => {
    await bank("import", pskcFile("w.pskc", ["FK0001", "FK0002"]), "--password-file", join(dir, "password"));
    await bank("issue", "--serial", "FK0001", "--customer", "c1");
    expect(await bank("withdraw", "--customer", "c1", "--reason", "misplaced", "--json")).toMatchObject({ code: 2 });
    expect(await bank("withdraw", "--customer", "c1", "--json")).toMatchObject({ code: 2 });
    expect(await bank("status", "--serial", "FK0001", "--json")).toMatchObject({ json: { token: { state: "issued", withdrawn: null } } });
    const w = await bank("withdraw", "--customer", "c1", "--reason", "lost");
    expect(w.code).toBe(0);
    expect(w.stdout).toMatch(/^withdrew FK0001 \(lost\): retired; it will not be issued again; c1 may be issued another keyfob/);
    expect(await bank("status", "--serial", "FK0001")).toMatchObject({ code: 0, stdout: expect.stringMatching(/withdrawn\s+lost/) });
    expect(await bank("issue", "--serial", "FK0002", "--customer", "c1", "--json")).toMatchObject({ code: 0, json: { token: { state: "issued" } } });
    expect(await bank("issue", "--serial", "FK0001", "--customer", "c3", "--json")).toMatchObject({ code: 1, json: { error: { code: "barred" } } });
    expect(await bank("withdraw", "--customer", "c9", "--reason", "lost", "--json")).toMatchObject({ code: 1, json: { error: { code: "no_token" } } });
  });

  it("tokens: lines by state, pages, counts; a bad state is 2", async () => {
    await bank("import", pskcFile("t.pskc", ["FK0002", "FK0001"]), "--password-file", join(dir, "password"));
    await bank("issue", "--serial", "FK0002", "--customer", "c2");
    const all = await bank("tokens");
    expect(all.code).toBe(0);
    expect(all.stdout.trim().split("\n").map((l) => l.split("\t").slice(0, 3))).toEqual([["FK0001", "in_stock", "-"], ["FK0002", "issued", "c2"]]);
    expect(await bank("tokens", "--state", "issued", "--json")).toMatchObject({ code: 0, json: { tokens: [{ serial: "FK0002" }], next: null } });
    expect(await bank("tokens", "--limit", "1", "--json")).toMatchObject({ json: { tokens: [{ serial: "FK0001" }], next: "FK0001" } });
    expect(await bank("tokens", "--after", "FK0001", "--json")).toMatchObject({ json: { tokens: [{ serial: "FK0002" }] } });
    expect((await bank("tokens", "--counts")).stdout).toBe("in_stock\t1\nissued\t1\nactive\t0\nlocked\t0\nretired\t0\n");
    expect(await bank("tokens", "--state", "lost")).toMatchObject({ code: 2, stderr: expect.stringMatching(/--state must be one of/) });
    expect((await bank("tokens", "--counts", "--state", "issued")).code).toBe(2);
  });

  it("bad usage is 2: a missing option, an unknown option, a command without the key file", async () => {
    expect((await bank("issue", "--customer", "c1")).code).toBe(2);
    expect((await bank("issue", "--serial", "A", "--customer", "c1", "--bogus")).code).toBe(2);
    const trustAll = await bank("serve", "--listen", "127.0.0.1:0", "--trust-proxy", "*");
    expect(trustAll.code).toBe(2);
    expect(trustAll.stderr).toMatch(/--trust-proxy: "\*" is not an IP address or CIDR range/);
    expect((await bank("verify", "--customer", "c1", "--code", "12345678", "--kek-file", join(dir, "absent.kek"))).code).toBe(2);
    const noKek = { ...env };
    delete noKek.FOBKIT_BANK_KEK_FILE;
    const saved = env;
    env = noKek;
    const r = await bank("verify", "--customer", "c1", "--code", "12345678");
    env = saved;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--kek-file/);
  });

  it("--json: a failure before the command runs (bad option, missing key file, unknown option) is still one JSON line on stdout", async () => {
    const badOption = await bank("issue", "--customer", "c1", "--bogus", "--json");
    expect(badOption.code).toBe(2);
    expect(badOption.json).toMatchObject({ ok: false, error: { code: "bad_usage", message: expect.stringMatching(/--bogus/) } });
    const noKek = await bank("verify", "--customer", "c1", "--code", "12345678", "--kek-file", join(dir, "absent.kek"), "--json");
    expect(noKek.code).toBe(2);
    expect(noKek.json).toMatchObject({ ok: false, error: { message: expect.stringMatching(/absent\.kek/) } });
    expect(noKek.stdout.trim().split("\n")).toHaveLength(1);
  });

  it("--window is capped at what the clock model justifies, with a clear error (issue 11, item 7)", async () => {
    for (const w of ["16", "999999"]) {
      const r = await bank("verify", "--customer", "c1", "--code", "12345678", "--window", w);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(/--window \/ FOBKIT_BANK_WINDOW must be at most 15 steps, got \d+: the clock model/);
    }
    const saved = env;
    env = { ...env, FOBKIT_BANK_WINDOW: "40" };
    const fromEnv = await bank("serve", "--listen", "127.0.0.1:0");
    env = saved;
    expect(fromEnv.code).toBe(2);
    expect(fromEnv.stderr).toMatch(/at most 15 steps, got 40/);
    // At the cap it is taken: the refusal is about the customer, not the option.
    expect(await bank("verify", "--customer", "c1", "--code", "12345678", "--window", "15", "--json")).toMatchObject({ code: 1, json: { error: { code: "no_token" } } });
  });

  it("add-key prints the key once and stores only its hash; list-keys and revoke-key", async () => {
    const k = await bank("add-key", "--role", "channel", "--label", "app", "--json");
    expect(k).toMatchObject({ code: 0, json: { role: "channel" } });
    expect(k.json.key).toMatch(/^fbk_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
    const list = await bank("list-keys", "--json");
    expect(list.json.keys).toEqual([expect.objectContaining({ id: k.json.id, role: "channel", label: "app", revokedAt: null })]);
    // The secret is everything after "fbk_<id>_" (it may itself contain "_").
    expect(list.stdout).not.toContain(k.json.key.slice("fbk_".length + 12 + 1));
    expect((await bank("revoke-key", "--id", k.json.id)).code).toBe(0);
    expect((await bank("revoke-key", "--id", k.json.id)).code).toBe(1);
    expect((await bank("add-key", "--role", "admin")).code).toBe(2);
  });

  it("add-key --owner: a staff key names the staff member who uses it; an unknown owner or a non-staff key is refused, nothing made", async () => {
    writeFileSync(join(dir, "suzuki.pw"), "suzuki-supervisor-pw-1\n", { mode: 0o600 });
    expect((await bank("add-staff", "--name", "suzuki", "--role", "supervisor", "--password-file", join(dir, "suzuki.pw"))).code).toBe(0);
    const k = await bank("add-key", "--role", "staff", "--label", "teller app", "--owner", "suzuki", "--json");
    expect(k).toMatchObject({ code: 0, json: { role: "staff", owner: "suzuki" } });
    expect(await bank("add-key", "--role", "staff", "--owner", "nobody", "--json")).toMatchObject({ code: 1, json: { error: { code: "unknown_staff" } } });
    expect(await bank("add-key", "--role", "channel", "--owner", "suzuki", "--json")).toMatchObject({ code: 2, json: { error: { code: "bad_owner" } } });
    expect((await bank("list-keys", "--json")).json.keys).toEqual([expect.objectContaining({ id: k.json.id, role: "staff", owner: "suzuki" })]);
    expect((await bank("list-keys")).stdout).toContain("owner suzuki");
  });

  it("add-key refuses a label that could spoof the approvals page (a bidi override, a line separator), naming the code point; no key made", async () => {
    for (const [label, cp] of [["app \u202e(owner: bob)", "U+202E"], ["app\u2028owner: bob", "U+2028"], ["te\u200bller", "U+200B"], ["app\x85", "U+0085"]]) {
      const r = await bank("add-key", "--role", "staff", "--label", label, "--json");
      expect(r).toMatchObject({ code: 2, json: { error: { code: "bad_label" } } });
      expect(r.json.error.message).toContain(cp);
    }
    expect((await bank("list-keys", "--json")).json.keys).toEqual([]);
  });

  it("rotate-key re-seals every seed under a new key; --prune drops the old one", async () => {
    await bank("import", pskcFile("a.pskc", ["FK0001", "FK0002"]), "--password-file", join(dir, "password"));
    await bank("issue", "--serial", "FK0001", "--customer", "c1");
    await bank("activate", "--serial", "FK0001", "--code", code("FK0001"));
    const oldKey = readFileSync(env.FOBKIT_BANK_KEK_FILE!, "utf8");
    const r = await bank("rotate-key", "--prune", "--json");
    expect(r).toMatchObject({ code: 0, json: { resealed: 2 } });
    expect(r.json.dropped).toHaveLength(1);
    expect(Object.keys(r.json.after)).toEqual([r.json.kekId]);
    const lines = readFileSync(env.FOBKIT_BANK_KEK_FILE!, "utf8").split("\n").filter((l) => l && !l.startsWith("#"));
    expect(lines).toHaveLength(1);
    expect(oldKey).not.toContain(lines[0]);
    nextStep();
    expect(await bank("verify", "--customer", "c1", "--code", code("FK0001"), "--json")).toMatchObject({ code: 0 });
  });
});
