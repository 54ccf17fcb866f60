/**
 * `fobkit app`'s token store (host/app/store.ts) and the `app code` /
 * `app setup` commands' local checks: codes against oathtool (an outside
 * implementation), modes, refusals of unsafe stores, tamper detection, and
 * the seed in no file of the store in any encoding. The set-up against a
 * bank is in test/app/app-flow.test.ts.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { createServer, type AddressInfo, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { codeAt, KEY_FILE, prepareStore, saveToken, StoreError, TOKEN_FILE } from "../../host/app/store.js";
import { processOwner } from "../../host/process-owner.js";
import { oathtool } from "../registry/support.js";
import { runCliCaptured } from "../server/support.js";
import { fobkitProcess } from "../server/spawn.js";
import { seedForms } from "../support/seed-forms.js";

/** RFC 6238's SHA-256 seed (errata: 32 bytes). */
const RFC_SEED = Buffer.from("12345678901234567890123456789012");
const PARAMS = JSON.stringify({ bank: "テスト信用金庫", serviceId: "10112235", userId: "999800000009", algorithm: "SHA256", digits: 8, period: 60, t0: 0 });
const T = { bankUrl: "http://127.0.0.1:8700", serviceId: "10112235", userId: "999800000009", params: PARAMS, setupAt: 1_700_000_000_000 };

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return runCliCaptured(args, env);
}

describe("app token store", () => {
  let dir: string;
  let store: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "fobkit-app-store-"));
    store = join(dir, "token");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("gives oathtool's codes (RFC 6238 SHA-256 seed, 8 digits, 60 s) and wipes the seed it was given", async () => {
    const seed = Buffer.from(RFC_SEED);
    saveToken(store, T, seed);
    expect(seed.every((b) => b === 0)).toBe(true);
    for (const t of [59, 1111111109, 1234567890, 2000000000, 2147483648, 20000000000]) {
      const r = await codeAt(store, t * 1000);
      expect(r.code).toBe(oathtool(RFC_SEED, t, { algorithm: "SHA256" }));
      expect(r.info.params.bank).toBe("テスト信用金庫");
    }
    // FIELD-NOTES' table, as a second source.
    expect((await codeAt(store, 59_000)).code).toBe("18920136");
    expect((await codeAt(store, 59_000)).msLeft).toBe(1000);
  });

  it("makes the directory 0700 and the key and token files 0600, and leaves no temp file", () => {
    saveToken(store, T, Buffer.from(RFC_SEED));
    expect(lstatSync(store).mode & 0o777).toBe(0o700);
    expect(lstatSync(join(store, KEY_FILE)).mode & 0o777).toBe(0o600);
    expect(lstatSync(join(store, TOKEN_FILE)).mode & 0o777).toBe(0o600);
    expect(readFileSync(join(store, KEY_FILE)).length).toBe(32);
    expect(readdirSync(store).sort()).toEqual([KEY_FILE, TOKEN_FILE].sort());
  });

  it("holds the seed in no file, in no encoding", () => {
    saveToken(store, T, Buffer.from(RFC_SEED));
    const all = Buffer.concat(readdirSync(store).map((f) => readFileSync(join(store, f))));
    for (const form of seedForms(RFC_SEED)) expect(all.includes(form), `seed form ${form.length} bytes`).toBe(false);
  });

  it("refuses a key file group or others can read, a symlinked key file, and a directory others can write, as ssh does", async () => {
    saveToken(store, T, Buffer.from(RFC_SEED));
    chmodSync(join(store, KEY_FILE), 0o640);
    await expect(codeAt(store, 0)).rejects.toMatchObject({ code: "unsafe_key_file" });
    chmodSync(join(store, KEY_FILE), 0o604);
    await expect(codeAt(store, 0)).rejects.toMatchObject({ code: "unsafe_key_file" });
    chmodSync(join(store, KEY_FILE), 0o600);
    await expect(codeAt(store, 0)).resolves.toBeTruthy();

    chmodSync(store, 0o777);
    await expect(codeAt(store, 0)).rejects.toMatchObject({ code: "unsafe_store" });
    chmodSync(store, 0o700);

    const other = join(dir, "elsewhere.key");
    writeFileSync(other, readFileSync(join(store, KEY_FILE)), { mode: 0o600 });
    rmSync(join(store, KEY_FILE));
    symlinkSync(other, join(store, KEY_FILE));
    await expect(codeAt(store, 0)).rejects.toMatchObject({ code: "unsafe_key_file" });
  });

  it("refuses a token file whose IDs or bank name were edited, or a sealed seed moved from another store", async () => {
    saveToken(store, T, Buffer.from(RFC_SEED));
    const path = join(store, TOKEN_FILE);
    const good = readFileSync(path, "utf8");
    const edit = (f: (j: any) => void) => {
      const j = JSON.parse(good);
      f(j);
      writeFileSync(path, JSON.stringify(j));
    };
    edit((j) => (j.userId = "999800000019"));
    await expect(codeAt(store, 0)).rejects.toMatchObject({ code: "tampered" });
    edit((j) => (j.params = j.params.replace("テスト信用金庫", "偽信用金庫")));
    await expect(codeAt(store, 0)).rejects.toMatchObject({ code: "tampered" });
    const store2 = join(dir, "token2");
    saveToken(store2, T, Buffer.alloc(32, 7));
    const other = JSON.parse(readFileSync(join(store2, TOKEN_FILE), "utf8"));
    edit((j) => ((j.sealed = other.sealed), (j.iv = other.iv)));
    await expect(codeAt(store, 0)).rejects.toMatchObject({ code: "tampered" });
    writeFileSync(path, good);
    await expect(codeAt(store, 59_000)).resolves.toMatchObject({ code: "18920136" });
  });

  it("refuses a sealed token whose parameters are not a set-up's, naming the field (no code of the wrong length or step)", async () => {
    saveToken(store, { ...T, params: PARAMS.replace('"digits":8', '"digits":6') }, Buffer.from(RFC_SEED));
    await expect(codeAt(store, 59_000)).rejects.toMatchObject({ code: "bad_token_file", message: expect.stringContaining("the token's digits is 6, expected 8") });
    rmSync(store, { recursive: true });
    saveToken(store, { ...T, params: PARAMS.replace('"period":60', '"period":0') }, Buffer.from(RFC_SEED));
    await expect(codeAt(store, 59_000)).rejects.toMatchObject({ code: "bad_token_file", message: expect.stringContaining("the token's period is 0, expected 60") });
  });

  it("refuses to set up into a store that holds a token, before anything is asked of the bank", () => {
    saveToken(store, T, Buffer.from(RFC_SEED));
    expect(() => prepareStore(store)).toThrow(StoreError);
    expect(() => prepareStore(store)).toThrow(/already holds the token of user ID 999800000009/);
  });
});

describe("fobkit app code / app setup (local checks)", () => {
  let dir: string;
  let store: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "fobkit-app-cli-"));
    store = join(dir, "token");
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** An empty store (0700) and `app setup` arguments for it against a bank that is not there (port 9: refused at once). */
  function setupAgainstNoBank(): { args: string[]; claim: string } {
    const pw = join(dir, "pw");
    writeFileSync(pw, "activation-pw-1\n", { mode: 0o600 });
    mkdirSync(store, { mode: 0o700 });
    const args = ["app", "setup", "--bank", "http://127.0.0.1:9", "--service-id", "10112235", "--user-id", "999800000009", "--activation-password-file", pw, "--store", store, "--json"];
    return { args, claim: join(store, "setup.claim") };
  }

  it("two set-ups racing into one store: one stores its token, the other is refused token_exists, none is overwritten", async () => {
    const { spawn } = await import("node:child_process");
    const { fileURLToPath, pathToFileURL } = await import("node:url");
    const storeJs = pathToFileURL(join(fileURLToPath(new URL("../../build/node/host/app/store.js", import.meta.url)))).href;
    // Each child waits for a common instant, then saves its own seed: the check-then-write windows overlap.
    const child = (dirPath: string, fill: number, at: number) =>
      new Promise<string>((resolve, reject) => {
        const src = `const s = await import(${JSON.stringify(storeJs)}); while (Date.now() < ${at}); try { s.saveToken(${JSON.stringify(dirPath)}, ${JSON.stringify(T)}, Buffer.alloc(32, ${fill})); console.log("ok"); } catch (e) { console.log(e.code ?? String(e)); }`;
        const p = spawn(process.execPath, ["--input-type=module", "-e", src], { stdio: ["ignore", "pipe", "inherit"] });
        let out = "";
        p.stdout.on("data", (d) => (out += d));
        p.on("error", reject);
        p.on("exit", () => resolve(out.trim()));
      });
    for (let round = 0; round < 6; round++) {
      const d = join(dir, `race-${round}`);
      if (round % 2) prepareStore(d); // half the rounds into a prepared store (key exists), half into a new one
      const at = Date.now() + 700;
      const outcomes = await Promise.all([child(d, 0x61, at), child(d, 0x62, at)]);
      expect([...outcomes].sort(), `round ${round}`).toEqual(["ok", "token_exists"]);
      const winner = outcomes[0] === "ok" ? 0x61 : 0x62;
      // The stored token is the winner's, and it opens under the store's one key.
      expect((await codeAt(d, 1_234_567_890_000)).code).toBe(oathtool(Buffer.alloc(32, winner), 1_234_567_890, { algorithm: "SHA256" }));
      expect(readdirSync(d).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    }
  }, 60_000);

  it("a setup.claim that is no regular file (a directory, a symlink, a FIFO) is refused with a clear error naming it, without hanging or asking the bank", async () => {
    const { args, claim } = setupAgainstNoBank();
    const refused = (r: { code: number; stdout: string; stderr: string }) => {
      expect(r.code, r.stderr).toBe(3);
      expect(JSON.parse(r.stdout).error.code).toBe("store_unsafe_store");
      expect(r.stderr).toContain(`${claim} is not a regular file`);
    };
    mkdirSync(claim);
    refused(await cli(args));
    rmSync(claim, { recursive: true });
    // A symlink is not followed: what it points at is never read.
    writeFileSync(join(dir, "elsewhere"), "linux:x:1:1\n");
    symlinkSync(join(dir, "elsewhere"), claim);
    refused(await cli(args));
    rmSync(claim);
    // A FIFO: a read would wait for a writer that never comes. In a child process, so a hang fails the test instead of blocking it.
    execFileSync("mkfifo", [claim]);
    const child = fobkitProcess(args);
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d) => (stdout += d));
    child.stderr!.on("data", (d) => (stderr += d));
    const hang = setTimeout(() => child.kill("SIGKILL"), 30_000);
    const code = await new Promise<number | null>((r) => child.on("close", (c) => r(c)));
    clearTimeout(hang);
    expect(code, `killed after 30 s: the set-up hung on the FIFO (${stderr})`).not.toBeNull();
    refused({ code: code!, stdout, stderr });
    // Nothing was changed: the odd file is still there, the store holds nothing else.
    expect(readdirSync(store)).toEqual(["setup.claim"]);
  }, 60_000);

  it("a second set-up into a store whose set-up is under way is refused locally, before it asks the bank (each try costs one of five); a claim left by a killed set-up does not block the next", async () => {
    const pw = join(dir, "pw");
    writeFileSync(pw, "activation-pw-1\n", { mode: 0o600 });
    // A bank that takes the connection and does not answer yet: the first set-up waits there, holding the store.
    const asked: Socket[] = [];
    const slow = createServer((s) => asked.push(s));
    await new Promise<void>((r) => slow.listen(0, "127.0.0.1", () => r()));
    const slowUrl = `http://127.0.0.1:${(slow.address() as AddressInfo).port}`;
    const args = (bank: string) => ["app", "setup", "--bank", bank, "--service-id", "10112235", "--user-id", "999800000009", "--activation-password-file", pw, "--store", store, "--json"];
    try {
      const first = fobkitProcess(args(slowUrl));
      const exited = new Promise((r) => first.on("exit", r));
      for (let i = 0; i < 2000 && asked.length === 0 && first.exitCode === null; i++) await new Promise((r) => setTimeout(r, 10));
      expect(asked, "the first set-up never reached the bank").toHaveLength(1);

      // The second run, unless it asks the bank: then its connection is the answer (it would wait there, as the first does).
      const askedAgain = new Promise<never>((_, reject) => slow.once("connection", () => reject(new Error("the second set-up asked the bank"))));
      const second = await Promise.race([cli(args(slowUrl)), askedAgain]);
      expect(second.code, second.stderr).toBe(2);
      expect(JSON.parse(second.stdout).error.code).toBe("store_busy");
      expect(second.stderr).toContain("another fobkit app setup");
      expect(asked).toHaveLength(1);

      // The first set-up dies (kill -9) holding the claim: the next run sees its process gone and goes on to the bank.
      first.kill("SIGKILL");
      await exited;
      const third = await cli(args("http://127.0.0.1:9"));
      expect(third.code, third.stderr).toBe(3);
      expect(JSON.parse(third.stdout).error.code).toBe("network");
      // Its claim is released: nothing of it is left in the store.
      expect(readdirSync(store)).toEqual([KEY_FILE]);
    } finally {
      for (const s of asked) s.destroy();
      await new Promise((r) => slow.close(r));
    }
  }, 60_000);

  /** A claim as a set-up of another boot of this machine left it (crashed, then the machine rebooted): its boot id is not this one, its file older than this boot. */
  const claimOfLastBoot = (machine = readFileSync("/etc/machine-id", "latin1").trim()) => {
    const [, , ...rest] = processOwner()!.split(":");
    return `linux:00000000-0000-4000-8000-000000000000:${rest.join(":")}\n0123456789ab\nmachine:${machine}\n`;
  };
  const BEFORE_BOOT = new Date("2020-01-01T00:00:00Z");

  it("a claim left by a set-up that crashed before a reboot is taken over; one of another machine, or newer than this boot, is not", async () => {
    const { args, claim } = setupAgainstNoBank();
    // The claim names its holder: this process's boot, PID namespace, PID and start time, and the machine.
    const ours = processOwner()!;
    expect(ours).toMatch(new RegExp(`^linux:${readFileSync("/proc/sys/kernel/random/boot_id", "latin1").trim()}:pid:\\[\\d+\\]:${process.pid}:\\d+$`));

    // Left by the last boot of this machine: taken over, the set-up goes on to the bank (unreachable here: exit 3, network).
    writeFileSync(claim, claimOfLastBoot(), { mode: 0o600 });
    utimesSync(claim, BEFORE_BOOT, BEFORE_BOOT);
    const taken = await cli(args);
    expect(taken.code, taken.stderr).toBe(3);
    expect(JSON.parse(taken.stdout).error.code).toBe("network");
    expect(readdirSync(store).sort()).toEqual([KEY_FILE]);

    // And when the set-up that was taking it over died too, leaving its take-over lock (named after the claim it took).
    const { createHash } = await import("node:crypto");
    const { spawnSync } = await import("node:child_process");
    writeFileSync(claim, claimOfLastBoot(), { mode: 0o600 });
    utimesSync(claim, BEFORE_BOOT, BEFORE_BOOT);
    const lock = join(store, `.setup.claim.${createHash("sha256").update(claimOfLastBoot(), "latin1").digest("hex").slice(0, 16)}.takeover`);
    writeFileSync(lock, `${ours.replace(/:\d+:\d+$/, `:${spawnSync("true").pid}:1`)}\nfedcba987654\n`, { mode: 0o600 });
    const again = await cli(args);
    expect(again.code, again.stderr).toBe(3);
    expect(JSON.parse(again.stdout).error.code).toBe("network");
    expect(readdirSync(store).sort()).toEqual([KEY_FILE]);

    // Another machine's (a store on a shared file system): its set-up may be running; refused, nothing asked.
    for (const [text, when] of [
      [claimOfLastBoot("ffffffffffffffffffffffffffffffff"), BEFORE_BOOT],
      // This machine's id but written since this boot: no boot of this machine made it. Another machine with a copied id may have.
      [claimOfLastBoot(), new Date()],
    ] as const) {
      writeFileSync(claim, text, { mode: 0o600 });
      utimesSync(claim, when, when);
      const r = await cli(args);
      expect(r.code, r.stderr).toBe(2);
      expect(JSON.parse(r.stdout).error.code).toBe("store_busy");
      expect(r.stderr).toContain(`delete ${claim}`);
      expect(readFileSync(claim, "latin1")).toBe(text);
      rmSync(claim);
    }
  }, 60_000);

  it("set-ups racing to take over one stale claim (a dead process's, or a last boot's): exactly one holds the store, and nothing is left after", async () => {
    const { spawn, spawnSync } = await import("node:child_process");
    const { fileURLToPath, pathToFileURL } = await import("node:url");
    const storeJs = pathToFileURL(join(fileURLToPath(new URL("../../build/node/host/app/store.js", import.meta.url)))).href;
    const RACERS = 4;
    // Each child waits for a common instant, claims, says what it got, and (if it holds the store) keeps it until told.
    const child = (d: string, at: number, release: string) =>
      new Promise<string>((resolve, reject) => {
        const src = `import { existsSync } from "node:fs"; const s = await import(${JSON.stringify(storeJs)}); while (Date.now() < ${at}); let r; try { const free = s.claimStore(${JSON.stringify(d)}); console.log("holds"); while (!existsSync(${JSON.stringify(release)})) await new Promise((ok) => setTimeout(ok, 20)); free(); } catch (e) { console.log(e.code ?? String(e)); }`;
        const p = spawn(process.execPath, ["--input-type=module", "-e", src], { stdio: ["ignore", "pipe", "inherit"] });
        let out = "";
        p.stdout.on("data", (b) => {
          out += b;
          if (out.includes("\n")) resolve(out.trim());
        });
        p.on("error", reject);
        p.on("exit", () => resolve(out.trim()));
      });
    const [, , ...rest] = processOwner()!.split(":");
    const ns = rest.slice(0, -2).join(":");
    for (let round = 0; round < 6; round++) {
      const d = join(dir, `race-${round}`);
      mkdirSync(d, { mode: 0o700 });
      const claim = join(d, "setup.claim");
      if (round % 2) {
        writeFileSync(claim, claimOfLastBoot(), { mode: 0o600 });
        utimesSync(claim, BEFORE_BOOT, BEFORE_BOOT);
      } else {
        // A process of this boot that is gone: its PID answers nothing now.
        const dead = spawnSync("true").pid!;
        writeFileSync(claim, `linux:${processOwner()!.split(":")[1]}:${ns}:${dead}:1\n0123456789ab\n`, { mode: 0o600 });
      }
      const release = join(dir, `release-${round}`);
      const at = Date.now() + 1000;
      const outcomes = await Promise.all(Array.from({ length: RACERS }, () => child(d, at, release)));
      expect([...outcomes].sort(), `round ${round}`).toEqual(["busy", "busy", "busy", "holds"]);
      writeFileSync(release, "");
      for (let i = 0; i < 500 && readdirSync(d).length; i++) await new Promise((r) => setTimeout(r, 20));
      expect(readdirSync(d), `round ${round}: claim, lock or temp file left`).toEqual([]);
    }
  }, 120_000);

  it("prints the code, the bank's name and the seconds left; --json gives {code, bank}", async () => {
    saveToken(store, T, Buffer.from(RFC_SEED));
    // FOBKIT_CLOCK_OFFSET (host/clock.ts) puts the clock at a known second: 2000000000 + a little.
    const offset = String(2_000_000_010 - Math.floor(Date.now() / 1000));
    const plain = await cli(["app", "code", "--store", store], { FOBKIT_CLOCK_OFFSET: offset });
    expect(plain.code).toBe(0);
    const [code, bank, left] = plain.stdout.trimEnd().split("\n");
    expect([oathtool(RFC_SEED, 2_000_000_010, { algorithm: "SHA256" }), oathtool(RFC_SEED, 2_000_000_070, { algorithm: "SHA256" })]).toContain(code);
    expect(bank).toBe("bank: テスト信用金庫");
    expect(left).toMatch(/^next code in \d{1,2} s$/);
    const j = await cli(["app", "code", "--store", store, "--json"], { FOBKIT_CLOCK_OFFSET: offset });
    const out = JSON.parse(j.stdout);
    expect(out).toMatchObject({ ok: true, bank: "テスト信用金庫", userId: "999800000009" });
    expect(out.code).toMatch(/^\d{8}$/);
    expect(out.secondsLeft).toBeGreaterThan(0);
    expect(out.secondsLeft).toBeLessThanOrEqual(60);
  });

  it("says when the bank cannot be reached (exit 3), and keeps the store for the next try", async () => {
    const pw = join(dir, "pw");
    writeFileSync(pw, "activation-pw-1\n", { mode: 0o600 });
    const r = await cli(["app", "setup", "--bank", "http://127.0.0.1:9", "--service-id", "10112235", "--user-id", "999800000009", "--activation-password-file", pw, "--store", store, "--json"]);
    expect(r.code).toBe(3);
    expect(JSON.parse(r.stdout).error.code).toBe("network");
    expect(r.stderr).toContain("cannot reach the bank at http://127.0.0.1:9");
    expect(readdirSync(store)).toEqual([KEY_FILE]);
  });

  it("explains each local refusal and exits 2 (or 3 for an unsafe store)", async () => {
    const none = await cli(["app", "code", "--store", store, "--json"]);
    expect(none.code).toBe(2);
    expect(JSON.parse(none.stdout).error.code).toBe("store_no_store");
    expect(none.stderr).toContain("fobkit app setup --store");

    saveToken(store, T, Buffer.from(RFC_SEED));
    chmodSync(join(store, KEY_FILE), 0o644);
    const loose = await cli(["app", "code", "--store", store]);
    expect(loose.code).toBe(3);
    expect(loose.stderr).toContain("can be read by group or others (mode 644)");
    expect(loose.stdout).toBe("");

    const pw = join(dir, "pw");
    writeFileSync(pw, "activation-pw-1\n", { mode: 0o600 });
    const base = ["app", "setup", "--bank", "http://127.0.0.1:1", "--service-id", "10112235", "--user-id", "999800000009", "--activation-password-file", pw, "--store", join(dir, "s2")];
    const set = (o: Record<string, string>) => {
      const a = [...base];
      for (const [k, v] of Object.entries(o)) a[a.indexOf("--" + k) + 1] = v;
      return cli(a);
    };
    expect((await set({ "service-id": "1011223" })).stderr).toContain("--service-id must be 8 digits");
    expect((await set({ "user-id": "99980000000" })).stderr).toContain("--user-id must be 12 digits");
    const check = await set({ "user-id": "999800000001" });
    expect(check.code).toBe(2);
    expect(check.stderr).toContain("check digit");
    expect((await set({ bank: "http://bank.example.jp" })).stderr).toContain("refusing plain HTTP to bank.example.jp");
    expect((await set({ bank: "https://bank.example.jp/login?x=1" })).stderr).toContain("--bank is the bank's address only");
    expect((await set({ "activation-password-file": join(dir, "missing") })).stderr).toContain("--activation-password-file");
    // A password the bank's side could never have registered (a second line, as soft-issue's rule refuses) costs no try.
    const twoLines = join(dir, "pw2");
    writeFileSync(twoLines, "activation-pw-1\n\n", { mode: 0o600 });
    const refused = await set({ "activation-password-file": twoLines });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain("--activation-password-file");
    const missing = await cli(["app", "setup", "--store", store]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("--bank is required");
    // None of these made a store.
    expect(() => lstatSync(join(dir, "s2"))).toThrow();
  });
});
