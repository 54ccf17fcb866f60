/**
 * `make demo`: the line a factory and a bank run, end to end, on three
 * emulated keyfobs, narrated. Every step runs the real `fobkit` command a
 * person would type (shown with a `$`), and checks its outcome: the demo
 * exits non-zero the moment the story goes wrong, so `make test` runs it too.
 *
 * Time: codes are single use and one step is 60 s, so instead of waiting
 * the demo moves the keyfobs (`advance 60` on the emulator's control line)
 * and the host tools (FOBKIT_CLOCK_OFFSET) forward together.
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { EmuProcess } from "../hil/emu-process.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
const FOBKIT = join(ROOT, "bin", "fobkit.js");
const KEEP = process.argv.includes("--keep");
const tty = process.stdout.isTTY;
const bold = (s: string) => (tty ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (tty ? `\x1b[2m${s}\x1b[0m` : s);
const green = (s: string) => (tty ? `\x1b[32m${s}\x1b[0m` : s);

const work = mkdtempSync(join(tmpdir(), "fobkit-demo-"));
let clockOffset = 0;
let stepNo = 0;
const TOTAL_STEPS = 27;
const keyfobs: Keyfob[] = [];

class DemoFailure extends Error {}

function step(title: string): void {
  stepNo++;
  process.stdout.write(`\n${bold(`[${stepNo}/${TOTAL_STEPS}] ${title}`)}\n`);
}

function say(text: string): void {
  process.stdout.write(`  ${text}\n`);
}

const short = (p: string) => p.split(work + "/").join("");

/** Run `fobkit ...` as a person would; check its exit status; return stdout. */
/** Every fobkit command the demo runs: the teller's name, the demo's clock, the bank's database and key file. */
function cliEnv(): NodeJS.ProcessEnv {
  return { ...process.env, USER: "teller-1", FOBKIT_CLOCK_OFFSET: String(clockOffset), FOBKIT_BANK_DB: `sqlite:${join(work, "bank.sqlite")}`, FOBKIT_BANK_KEK_FILE: join(work, "bank.kek") };
}

function fobkit(args: string[], expectStatus = 0, opts: { show?: (out: string, err: string) => string } = {}): string {
  process.stdout.write(dim(`  $ fobkit ${args.map(short).join(" ")}\n`));
  const r = spawnSync(process.execPath, [FOBKIT, ...args], {
    cwd: work,
    encoding: "utf8",
    env: cliEnv(),
  });
  const shown = opts.show ? opts.show(r.stdout, r.stderr) : (r.stdout + r.stderr).trim();
  for (const line of short(shown).split("\n").filter(Boolean)) process.stdout.write(`    ${line}\n`);
  if (r.status !== expectStatus) {
    throw new DemoFailure(`fobkit ${args[0]} ${args[1] ?? ""} exited ${r.status}, expected ${expectStatus}\n${r.stdout}${r.stderr}`);
  }
  return r.stdout;
}

/** Run `fobkit ...` in the background (several at once); resolves with its outcome. */
function fobkitAsync(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [FOBKIT, ...args], { cwd: work, env: cliEnv() });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => (stdout += d));
    p.stderr.on("data", (d) => (stderr += d));
    p.on("close", (status) => resolve({ status, stdout, stderr }));
  });
}

function summariseFlash(j: any): string {
  return `${(j.imageBytes / 1024).toFixed(0)} KiB in ${j.lines} lines, CRC-32 ${j.crc} checked on the board, ` +
    `${(j.totalMs / 1000).toFixed(1)} s; it restarted and answers INFO: ${j.info.state}, firmware ${j.info.firmware}`;
}

/** One emulated board: `fobkit emu --blank` (a factory-fresh NodeMCU) on a PTY. */
class Keyfob extends EmuProcess {
  constructor(readonly name: string, pty: string) {
    super({ fobkit: FOBKIT, pty, state: join(work, name), blank: true });
  }
}

/** One minute passes for the keyfobs and the host alike. */
async function aMinuteLater(): Promise<void> {
  clockOffset += 60;
  for (const k of keyfobs) k.advance(60);
  // Let the emulators take the command before the next press.
  await new Promise((r) => setTimeout(r, 300));
  say(dim("(one minute later: the keyfobs' clocks and the host's move on together)"));
}

async function main(): Promise<void> {
  const t0 = Date.now();
  process.stdout.write(bold("fobkit demo") + ` — the whole line on three emulated keyfobs (work dir ${work})\n`);

  step("Three factory-fresh boards on serial ports");
  say("Each is an emulated NodeMCU (ESP32) with nothing in flash: it boots into the Lua REPL.");
  say("The board has a DS3231 clock, SPIFFS flash, a button and an 8-digit display; its UART is a real PTY.");
  for (const n of [1, 2, 3]) {
    const k = new Keyfob(`keyfob${n}`, join(work, `ttyKEYFOB${n}`));
    keyfobs.push(k);
  }
  for (const k of keyfobs) {
    await k.ready();
    say(`${k.name}: ${short(k.pty)} ${green("ready")}`);
  }

  step("Install the firmware on all three, through the REPL");
  say("Uploaded in checked lines; the board computes a CRC-32 of what it wrote; then it restarts into the firmware.");
  const flashes = keyfobs.map((k) => fobkitAsync(["flash", "--port", k.pty, "--json"]));
  for (const [i, r] of (await Promise.all(flashes)).entries()) {
    process.stdout.write(dim(`  $ fobkit flash --port ${short(keyfobs[i].pty)}\n`));
    if (r.status !== 0) throw new DemoFailure(`fobkit flash ${keyfobs[i].pty} exited ${r.status}\n${r.stdout}${r.stderr}`);
    const j = JSON.parse(r.stdout);
    say(`  ${keyfobs[i].name}: ${summariseFlash(j)}`);
  }

  step("A factory-fresh keyfob");
  fobkit(["info", "--port", keyfobs[0].pty]);
  say(`button press shows: ${bold(await keyfobs[0].press())}`);

  step("The station provisions and locks all three");
  say("For each: next serial of the batch, seed from the host's CSPRNG, clock from UTC, self-test, lock.");
  const labels = fobkit(["station", "--factory", join(work, "factory.sqlite"), "--line", "1", "--ports", keyfobs.map((k) => k.pty).join(","), "--count", "3", "--operator", "demo"], 0, {
    show: (out, err) => err.trim().split("\n").filter((l) => /GOOD|FAIL|stopped|batch/.test(l)).join("\n") + "\n" + out.trim().split("\n").map((s) => `label to print: ${s}`).join("\n"),
  });
  const serials = labels.trim().split("\n").map((l) => l.trim().split(/\s+/)[0]);
  if (serials.length !== 3) throw new DemoFailure(`expected 3 labels, got ${JSON.stringify(labels)}`);

  step("Export the batch for the bank (RFC 6030 PSKC, seeds encrypted)");
  const psk = join(work, "bank-transport.hex");
  writeFileSync(psk, randomBytes(16).toString("hex") + "\n", { mode: 0o600 });
  say("The factory and the bank share a transport key (AES-128), here a fresh random one.");
  fobkit(["export", "--factory", join(work, "factory.sqlite"), "--batch", "1", "--out", join(work, "batch1.pskcxml"), "--psk-file", psk]);

  step("The bank imports the file (MAC checked, all or nothing)");
  fobkit(["bank", "init-kek"]);
  fobkit(["bank", "import", join(work, "batch1.pskcxml"), "--psk-file", psk]);

  // Which keyfob got which serial: ask each one.
  const holderOf = (s: string) => {
    const k = keyfobs.find((k) => spawnSync(process.execPath, [FOBKIT, "info", "--port", k.pty, "--json"], { encoding: "utf8" }).stdout.includes(`"${s}"`));
    if (!k) throw new DemoFailure(`no keyfob answers INFO with serial ${s}`);
    return k;
  };
  const serial = serials[0];
  const owner = holderOf(serial);
  const customer = "C-10112235";

  step(`Staff issue keyfob ${serial} to customer ${customer}`);
  fobkit(["bank", "issue", "--serial", serial, "--customer", customer]);

  step("The customer presses the button");
  const code1 = await owner.press();
  say(`the display shows ${bold(code1)}`);

  step("Start of use (利用開始): activation with the displayed code");
  fobkit(["bank", "activate", "--serial", serial, "--code", code1]);

  step("A login: the next code is verified");
  await aMinuteLater();
  const code2 = await owner.press();
  say(`the display shows ${bold(code2)}`);
  fobkit(["bank", "verify", "--customer", customer, "--code", code2]);

  step("The same code again is refused (single use)");
  fobkit(["bank", "verify", "--customer", customer, "--code", code2], 1);

  step("Five wrong codes in a row lock the keyfob");
  for (let i = 0; i < 5; i++) {
    const wrong = String((Number(code2) + 11111111 * (i + 1)) % 100000000).padStart(8, "0");
    fobkit(["bank", "verify", "--customer", customer, "--code", wrong], 1);
  }
  fobkit(["bank", "status", "--serial", serial]);

  step("Even the right code is refused while locked");
  await aMinuteLater();
  const code3 = await owner.press();
  fobkit(["bank", "verify", "--customer", customer, "--code", code3], 1);

  step("Staff lift the stop (停止状態の解除)");
  fobkit(["bank", "unlock", "--customer", customer]);

  step("Deactivation (利用解除) with a current code");
  await aMinuteLater();
  const code4 = await owner.press();
  say(`the display shows ${bold(code4)}`);
  fobkit(["bank", "deactivate", "--customer", customer, "--code", code4]);

  step("A retired keyfob cannot simply be activated again");
  await aMinuteLater();
  const code5 = await owner.press();
  fobkit(["bank", "activate", "--serial", serial, "--code", code5], 1);

  step("Issued again, then activated");
  fobkit(["bank", "issue", "--serial", serial, "--customer", customer]);
  fobkit(["bank", "activate", "--serial", serial, "--code", code5]);
  fobkit(["bank", "status", "--serial", serial]);

  step("The customer loses the keyfob: staff withdraw it, no code needed");
  fobkit(["bank", "withdraw", "--customer", customer, "--reason", "lost"]);

  step(`A replacement, keyfob ${serials[1]}, for the same customer`);
  fobkit(["bank", "issue", "--serial", serials[1], "--customer", customer]);
  const code6 = await holderOf(serials[1]).press();
  say(`the new keyfob shows ${bold(code6)}`);
  fobkit(["bank", "activate", "--serial", serials[1], "--code", code6]);

  step("The lost keyfob is never issued again, even if it turns up");
  fobkit(["bank", "issue", "--serial", serial, "--customer", "C-10112236"], 1);

  step("The bank's keyfobs by state");
  fobkit(["bank", "tokens", "--counts"]);

  step("The audit trail");
  fobkit(["bank", "audit"], 0, { show: (out) => out.trim().split("\n").slice(-8).join("\n") });

  step("The bank goes online: `fobkit bank serve` (API, staff console, the customer's app)");
  const server = await startServer();
  try {
    await softTokenSteps(server.url);
    step("The staff console: the same bank in a browser (/console/)");
    await consoleStep(server.url, customer, serials[1]);
  } finally {
    await server.stop();
  }

  process.stdout.write(`\n${green(bold("demo complete"))} in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
}

/** `fobkit bank serve` on a free port, with its URL once it listens. */
async function startServer(): Promise<{ url: string; stop(): Promise<void> }> {
  process.stdout.write(dim("  $ fobkit bank serve --listen 127.0.0.1:0\n"));
  const env = { ...process.env, FOBKIT_BANK_DB: `sqlite:${join(work, "bank.sqlite")}`, FOBKIT_BANK_KEK_FILE: join(work, "bank.kek") };
  const server = spawn(process.execPath, [FOBKIT, "bank", "serve", "--listen", "127.0.0.1:0", "--json"], { cwd: work, env, stdio: ["ignore", "pipe", "pipe"] });
  const stop = async () => {
    server.kill("SIGTERM");
    await new Promise((r) => (server.exitCode !== null ? r(null) : server.once("exit", r)));
  };
  try {
    const url = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new DemoFailure("bank serve did not start in 20 s")), 20_000);
      server.stdout.on("data", (d) => {
        out += d;
        const m = /"listening":"([^"]+)"/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      server.on("exit", (c) => reject(new DemoFailure(`bank serve exited ${c}`)));
    });
    say(`listening on ${bold(url)}: /v1/ (API), /console/ (staff), /app/ (the customer's software token)`);
    return { url, stop };
  } catch (e) {
    await stop();
    throw e;
  }
}

/**
 * The manual's software token, flows 1-3: the bank's settings, an issuance
 * whose mail a local SMTP server catches, the app's set-up with the IDs
 * from the mail and the customer's activation password (a 0600 file, never
 * printed), its first code, and start of use.
 */
async function softTokenSteps(url: string): Promise<void> {
  const customer = "C-10112237";
  step(`Software token (ソフトウェアトークン) for customer ${customer}: issuance (トークン発行)`);
  fobkit(["bank", "soft-config", "--service-id", "10112235", "--bank-name", "ふぉぶ信用金庫", "--app-url", `${url}/app/`]);
  const { SMTPServer } = await import("smtp-server");
  const { simpleParser } = await import("mailparser");
  const mails: { subject: string; text: string }[] = [];
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ["STARTTLS", "AUTH"],
    logger: false,
    onData(stream, _session, done) {
      simpleParser(stream).then((m) => (mails.push({ subject: m.subject ?? "", text: m.text ?? "" }), done()), done);
    },
  });
  await new Promise<void>((r) => smtp.listen(0, "127.0.0.1", r));
  const port = (smtp.server.address() as { port: number }).port;
  const pw = join(work, "activation.pw");
  writeFileSync(pw, "Mirai-" + randomBytes(6).toString("base64url") + "\n", { mode: 0o600 });
  say(`The customer chose an activation password (利用開始パスワード), kept in ${short(pw)} (0600, never printed); the bank receives only an OPAQUE registration record.`);
  let issued: { serviceId: string; userId: string };
  try {
    // In the background: the SMTP server runs in this process and must answer while soft-issue waits.
    const args = ["bank", "soft-issue", "--customer", customer, "--mail", "taro@example.jp", "--activation-password-file", pw, "--smtp", `smtp://127.0.0.1:${port}/?tls=off`, "--mail-from", "otp@bank.example.jp", "--json"];
    process.stdout.write(dim(`  $ fobkit ${args.map(short).join(" ")}\n`));
    const r = await fobkitAsync(args);
    for (const line of short((r.stdout + r.stderr).trim()).split("\n").filter(Boolean)) process.stdout.write(`    ${line}\n`);
    if (r.status !== 0) throw new DemoFailure(`fobkit bank soft-issue exited ${r.status}\n${r.stdout}${r.stderr}`);
    issued = JSON.parse(r.stdout);
    const until = Date.now() + 10_000;
    while (mails.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  } finally {
    await new Promise<void>((r) => smtp.close(() => r()));
  }
  const mail = mails[0];
  if (!mail) throw new DemoFailure("the issuance mail did not arrive");
  say(`mail to taro@example.jp: ${bold(mail.subject)}`);
  for (const line of mail.text.split("\n").filter((l) => /^(サービスID|ユーザID|アプリ)/.test(l))) say("  " + line);

  step("App initial set-up (アプリの初期設定): OPAQUE with the password, the seed derived on both sides");
  const store = join(work, "soft-token");
  fobkit(["app", "setup", "--bank", url, "--service-id", issued.serviceId, "--user-id", issued.userId, "--activation-password-file", pw, "--store", store]);
  const shown = JSON.parse(fobkit(["app", "code", "--store", store, "--json"]));
  say(`the app shows ${bold(shown.code)} and the bank's name ${bold(shown.bank)}`);

  step("Start of use (利用開始) with the app's code");
  fobkit(["bank", "activate", "--customer", customer, "--code", shown.code]);
  fobkit(["bank", "status", "--customer", customer]);
}

/**
 * A teller account with a one-time password (kept in a 0600 file in the work
 * dir, never printed), and Chromium (when installed) signing in to the
 * running server and photographing the customer's and the keyfob's pages.
 */
async function consoleStep(url: string, customer: string, serial: string): Promise<void> {
  const pwFile = join(work, "madoguchi.pw");
  writeFileSync(pwFile, randomBytes(15).toString("base64url") + "\n", { mode: 0o600 });
  fobkit(["bank", "add-staff", "--name", "madoguchi", "--role", "teller", "--password-file", pwFile]);
  {
    say(`console: ${bold(url + "/console/")} — staff ID madoguchi, one-time password in ${short(pwFile)} (mode 0600; never printed)`);
    const chromiumPath = process.env.FOBKIT_CHROMIUM ?? "/usr/bin/chromium";
    if (!existsSync(chromiumPath)) {
      say(`(no Chromium at ${chromiumPath}: open the URL yourself with make demo ARGS=--keep; screenshots skipped)`);
      return;
    }
    const { launchChromium } = await import("./chromium.js");
    const shots = join(ROOT, "build", "console-screens");
    mkdirSync(shots, { recursive: true });
    const browser = await launchChromium({ locale: "ja-JP" });
    try {
      const page = await browser.context.newPage();
      await page.goto(url + "/console/");
      await page.getByLabel("職員番号").fill("madoguchi");
      await page.getByLabel("パスワード").fill((await import("node:fs")).readFileSync(pwFile, "utf8").trim());
      await page.getByRole("button", { name: "ログイン" }).click();
      await page.getByRole("button", { name: "ログアウト" }).waitFor();
      await page.getByRole("searchbox", { name: "検索" }).fill(customer);
      await page.getByRole("searchbox", { name: "検索" }).press("Enter");
      await page.waitForURL(/\/console\/customers\//);
      await page.screenshot({ path: join(shots, "demo-customer.png"), fullPage: true });
      await page.goto(`${url}/console/keyfobs/${encodeURIComponent(serial)}`);
      const state = await page.locator("dl.facts dd").nth(1).innerText();
      await page.screenshot({ path: join(shots, "demo-keyfob.png"), fullPage: true });
      say(`Chromium signed in as madoguchi, searched ${customer}, opened keyfob ${serial} (状態: ${state.trim()})`);
      say(`console: screenshots in build/console-screens/demo-customer.png and demo-keyfob.png`);
    } finally {
      await browser.close();
    }
  }
}

let code = 0;
try {
  await main();
} catch (e) {
  code = 1;
  process.stderr.write(`\ndemo FAILED at step ${stepNo}: ${e instanceof DemoFailure ? e.message : (e as Error).stack}\n`);
} finally {
  await Promise.all(keyfobs.map((k) => k.stop()));
  if (KEEP || code !== 0) process.stderr.write(`work dir kept: ${work}\n`);
  else rmSync(work, { recursive: true, force: true });
}
process.exitCode = code;
