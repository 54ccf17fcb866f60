/**
 * The customer's software token in the browser (/app/): the set-up screen
 * (初期設定) and the code screen. All text through textContent (no HTML is
 * ever built from strings), CSP forbids inline script (host/app/app.ts).
 *
 * The code screen needs nothing from the network: the token is in IndexedDB
 * (keystore.ts) and the shell in the service worker's cache (sw.ts). The
 * set-up code (client.js and the OPAQUE WebAssembly) is loaded only when a
 * set-up starts.
 */
import { parseSoftTokenParams, stepAt, totpFromKey, validUserId } from "@fobkit/soft/protocol.js";
import { chosenLang, rememberLang, WORDS, type Lang, type Words } from "./i18n.js";
import { loadToken, probeStorage, removeToken, saveToken, type StoredToken } from "./keystore.js";

let lang: Lang = chosenLang();
let w: Words = WORDS[lang];
let timer: ReturnType<typeof setTimeout> | undefined;
/** What is on screen, redrawn on a language switch. */
let screen: { kind: "setup"; notice?: string } | { kind: "code"; token: StoredToken; notice?: string } = { kind: "setup" };

const root = document.getElementById("app") as HTMLElement;

function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<Record<string, string>> = {}, ...children: (Node | string | undefined)[]): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) if (v !== undefined) e.setAttribute(k, v);
  for (const c of children) if (c !== undefined) e.append(c);
  return e;
}

function header(): HTMLElement {
  const toggle = el("button", { type: "button", class: "link", id: "lang-toggle", lang: lang === "ja" ? "en" : "ja" }, w.language);
  toggle.addEventListener("click", () => {
    lang = lang === "ja" ? "en" : "ja";
    rememberLang(lang);
    render();
    // render() replaced the button: give the focus to its successor, or a keyboard user is thrown back to the page's top.
    document.getElementById("lang-toggle")?.focus();
  });
  return el("header", {}, el("span", { class: "brand" }, w.title), toggle);
}

function render(): void {
  w = WORDS[lang];
  document.documentElement.lang = lang;
  document.title = w.title;
  if (timer) clearTimeout(timer);
  timer = undefined;
  const main = screen.kind === "setup" ? setupScreen(screen.notice) : codeScreen(screen.token, screen.notice);
  root.replaceChildren(header(), main);
}

// ------------------------------------------------------------------ set-up

type ClientModule = typeof import("@fobkit/soft/client.js");

/** What a refusal says to the customer; `e` is a SoftSetupError (client.ts) or anything thrown. */
export function refusalText(e: unknown, words: Words): string {
  const err = e as { code?: string; detail?: Record<string, unknown> };
  const code = typeof err?.code === "string" ? err.code : e instanceof TypeError ? "network" : "failed";
  const detail = err?.detail ?? {};
  if (code === "wrong_password" || code === "wrong_password_local") {
    return words.wrongPassword(typeof detail.attemptsLeft === "number" ? detail.attemptsLeft : undefined);
  }
  if (code === "setup_not_yet") {
    const from = detail.setupFrom as number | string | undefined;
    const when = from === undefined ? undefined : new Date(from);
    // An instant (the start of the next day in the bank's time zone), shown in the device's own zone.
    const shown = when && !Number.isNaN(when.getTime()) ? when.toLocaleString(lang === "ja" ? "ja-JP" : "en-GB", { dateStyle: "long", timeStyle: "short" }) : undefined;
    return words.setupNotYet(shown);
  }
  return words.errors[code] ?? words.errors.failed;
}

function field(id: string, label: string, hint: string, input: HTMLInputElement): HTMLElement {
  input.id = id;
  input.setAttribute("aria-describedby", `${id}-hint ${id}-error`);
  return el("div", { class: "field" }, el("label", { for: id }, label), input, el("p", { class: "hint", id: `${id}-hint` }, hint), el("p", { class: "field-error", id: `${id}-error` }));
}

function setupScreen(notice?: string): HTMLElement {
  const serviceId = el("input", { type: "text", inputmode: "numeric", autocomplete: "off", maxlength: "8", pattern: "[0-9]{8}", required: "", spellcheck: "false" });
  const userId = el("input", { type: "text", inputmode: "numeric", autocomplete: "username", maxlength: "12", pattern: "[0-9]{12}", required: "", spellcheck: "false" });
  // autocomplete off, not current-password: the activation password is spent by this one set-up, and a password
  // manager that saves it keeps a copy of a secret that has no further use (the seed never depends on it again).
  const password = el("input", { type: "password", autocomplete: "off", required: "", maxlength: "128" });
  const show = el("input", { type: "checkbox", id: "show-password" });
  show.addEventListener("change", () => (password.type = show.checked ? "text" : "password"));
  // A refusal is said once: where the focus moves (below), as the WAI-ARIA APG alert pattern has it (an alert must
  // not move the focus; so a message the focus moves to is no alert, or it is heard twice, as a live region and on
  // focus). Not a live region, then; tabindex -1: the focus can be put on it, never tabbed to.
  const status = el("div", { class: "status", id: "setup-status", tabindex: "-1" });
  // The progress note takes no focus: a polite status message (WCAG 2.2 SC 4.1.3).
  const progress = el("p", { class: "progress", role: "status", id: "setup-progress" });
  const button = el("button", { type: "submit" }, w.setupButton);
  const form = el(
    "form",
    { novalidate: "", "aria-labelledby": "setup-heading" },
    field("service-id", w.serviceId, w.serviceIdHint, serviceId),
    field("user-id", w.userId, w.userIdHint, userId),
    field("password", w.password, w.passwordHint, password),
    el("div", { class: "check" }, show, el("label", { for: "show-password" }, w.showPassword)),
    status,
    progress,
    button,
  );

  function fieldError(input: HTMLInputElement, text: string): boolean {
    const out = document.getElementById(`${input.id}-error`)!;
    out.textContent = text;
    input.setAttribute("aria-invalid", text ? "true" : "false");
    return !text;
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    status.textContent = "";
    status.className = "status";
    password.setAttribute("aria-describedby", "password-hint password-error");
    const s = serviceId.value.trim();
    const u = userId.value.replace(/[\s-]/g, "");
    const ok = [
      fieldError(serviceId, /^[0-9]{8}$/.test(s) ? "" : w.badServiceId),
      fieldError(userId, !/^[0-9]{12}$/.test(u) ? w.badUserIdFormat : validUserId(u) ? "" : w.badUserIdCheck),
      fieldError(password, password.value ? "" : w.emptyPassword),
    ];
    const firstBad = [serviceId, userId, password][ok.indexOf(false)];
    if (firstBad) {
      firstBad.focus();
      return;
    }
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    progress.textContent = w.settingUp;
    try {
      // Storage first, the bank last-but-one: a set-up is spent at the bank once it succeeds, so nothing that
      // can fail locally may come after it (review R4).
      try {
        await probeStorage();
      } catch {
        throw Object.assign(new Error("storage"), { code: "no_storage" });
      }
      const client = (await import(CLIENT)) as ClientModule;
      const r = await client.setUp({ bankUrl: location.origin, serviceId: s, userId: u, password: password.value, seed: "key" });
      if (!r.seedKey) throw Object.assign(new Error("no key"), { code: "failed" });
      const token: StoredToken = { params: r.paramsText, key: r.seedKey, savedAt: Date.now() };
      try {
        await saveToken(token);
      } catch {
        throw Object.assign(new Error("storage"), { code: "storage" });
      }
      // Ask the browser not to evict the token's storage under disk pressure (Storage Standard §4.4,
      // "persistent" bucket); a browser that says no still keeps it unless space runs out.
      void navigator.storage?.persist?.().catch(() => false);
      password.value = "";
      // The manual's 初期設定完了 screen, as a notice above the first code.
      screen = { kind: "code", token, notice: w.setupDone };
      render();
      (document.getElementById("code") as HTMLElement | null)?.focus();
    } catch (e) {
      progress.textContent = "";
      status.className = "status error";
      const code = (e as { code?: string }).code;
      status.textContent = code === "no_storage" ? w.noStorage : code === "storage" ? w.saveFailed : refusalText(e, w);
      button.disabled = false;
      form.removeAttribute("aria-busy");
      // The focus goes where the error is said (WCAG 3.3.1). A wrong password: to the password, emptied for the
      // next try and described by the bank's answer. Anything else concerns no one field: to the answer itself.
      if (code === "wrong_password" || code === "wrong_password_local") {
        password.value = "";
        password.setAttribute("aria-invalid", "true");
        password.setAttribute("aria-describedby", "setup-status password-hint password-error");
        // Enter in the field left the focus there, and focusing it again is no event: nothing would be said. Out and
        // back in, so the screen reader speaks the field with its description, the bank's answer first.
        if (document.activeElement === password) password.blur();
        password.focus();
      } else {
        status.focus();
      }
    }
  });

  return el(
    "main",
    { id: "main" },
    el("h1", { id: "setup-heading" }, w.setupHeading),
    notice ? el("p", { class: "flash", role: "status", id: "notice", tabindex: "-1" }, notice) : undefined,
    el("p", {}, w.setupIntro),
    form,
  );
}

/** Kept in a variable so the code screen loads without the set-up code (and works offline without it). */
const CLIENT = "@fobkit/soft/client.js";

// ------------------------------------------------------------------ code

function codeScreen(token: StoredToken, notice?: string): HTMLElement {
  // Checked when stored and when loaded (parseSoftTokenParams): every field is this token's, no fallback needed.
  const p = parseSoftTokenParams(token.params);
  const period = p.period;
  const code = el("output", { id: "code", class: "code", "aria-live": "polite", "aria-atomic": "true", "aria-labelledby": "code-label", tabindex: "-1" });
  const progress = el("progress", { id: "countdown", max: String(period), "aria-labelledby": "countdown-label" });
  const seconds = el("span", { id: "countdown-label", class: "seconds" });
  let shownStep = -1;

  async function tick(): Promise<void> {
    const now = Date.now();
    const { step, msLeft } = stepAt(now, period, p.t0);
    if (step !== shownStep) {
      shownStep = step;
      const digits = await totpFromKey(token.key, step, p.digits);
      // Grouped 4+4 on screen for reading; the accessible text is the plain digits.
      code.textContent = `${digits.slice(0, 4)} ${digits.slice(4)}`;
      code.dataset.code = digits;
      code.setAttribute("aria-label", digits.split("").join(" "));
    }
    const left = Math.ceil(msLeft / 1000);
    progress.value = left;
    progress.setAttribute("aria-valuetext", w.secondsLeft(left));
    seconds.textContent = w.secondsLeft(left);
    // Wake at the next whole second of the step, so the counter and the code change on time.
    timer = setTimeout(() => void tick(), (msLeft % 1000 || 1000) + 5);
  }

  const removeButton = el("button", { type: "button", class: "secondary" }, w.remove);
  const confirmBox = el("div", { class: "confirm", hidden: "", role: "group", "aria-labelledby": "remove-question" });
  const yes = el("button", { type: "button", class: "danger" }, w.removeYes);
  const no = el("button", { type: "button", class: "secondary" }, w.removeNo);
  confirmBox.append(el("p", { id: "remove-question" }, w.removeConfirm), el("div", { class: "actions" }, yes, no));
  removeButton.addEventListener("click", () => {
    confirmBox.hidden = false;
    removeButton.hidden = true;
    no.focus();
  });
  no.addEventListener("click", () => {
    confirmBox.hidden = true;
    removeButton.hidden = false;
    removeButton.focus();
  });
  yes.addEventListener("click", async () => {
    await removeToken();
    screen = { kind: "setup", notice: w.removed };
    render();
    // The buttons are gone with the screen: the focus goes to the notice saying what was done.
    document.getElementById("notice")?.focus();
  });

  queueMicrotask(() => void tick());
  void checkClock();
  return el(
    "main",
    { id: "main" },
    el("h1", {}, w.codeHeading),
    notice ? el("p", { class: "flash", role: "status", id: "notice", tabindex: "-1" }, notice) : undefined,
    el("p", { class: "bank" }, el("span", { class: "label" }, w.bank + " "), el("strong", { id: "bank-name" }, p.bank)),
    el("p", { class: "hint" }, w.checkBank),
    el("p", { class: "status error", id: "clock-warning", role: "alert", hidden: "" }),
    el("p", { class: "label", id: "code-label" }, w.code),
    code,
    el("div", { class: "countdown" }, progress, seconds),
    el("p", { class: "hint" }, w.userIdShown(p.userId)),
    el("p", { class: "hint", id: "offline-ready", hidden: document.documentElement.dataset.offlineReady ? undefined : "" }, w.offlineReady),
    el("div", { class: "remove" }, removeButton, confirmBox),
  );
}

/**
 * The bank accepts a code one step either side of its own clock (a phone's is NTP-set): a device clock
 * off by more than CLOCK_TOLERANCE_MS shows codes the bank refuses. When the bank can be reached, compare
 * (half the round trip allowed for) and say so; offline, nothing is shown.
 */
const CLOCK_TOLERANCE_MS = 30_000;
async function checkClock(): Promise<void> {
  try {
    const t0 = Date.now();
    const res = await fetch("/app/time", { cache: "no-store" });
    const t1 = Date.now();
    const { now } = (await res.json()) as { now: number };
    const skew = now - (t0 + t1) / 2;
    const box = document.getElementById("clock-warning");
    if (!box || typeof now !== "number") return;
    box.hidden = Math.abs(skew) <= CLOCK_TOLERANCE_MS + (t1 - t0) / 2;
    box.textContent = box.hidden ? "" : w.clockOff(Math.max(1, Math.round(Math.abs(skew) / 60_000)));
    document.documentElement.dataset.clockChecked = box.hidden ? "ok" : "off";
  } catch {
    // Offline or the bank unreachable: no check, no warning.
  }
}

// ------------------------------------------------------------------ start

async function registerServiceWorker(): Promise<void> {
  if (!("serviceWorker" in navigator)) return;
  const version = document.querySelector<HTMLMetaElement>('meta[name="fobkit-shell"]')?.content ?? "0";
  try {
    await navigator.serviceWorker.register(`/app/sw.js?v=${encodeURIComponent(version)}`, { scope: "/app/" });
    await navigator.serviceWorker.ready;
    document.documentElement.dataset.offlineReady = "true";
    const note = document.getElementById("offline-ready");
    if (note) note.hidden = false;
  } catch {
    // No offline copy (e.g. a private window); the app still works online.
  }
}

async function start(): Promise<void> {
  let token: StoredToken | undefined;
  try {
    token = await loadToken();
  } catch {
    token = undefined;
  }
  screen = token ? { kind: "code", token } : { kind: "setup" };
  render();
  document.documentElement.dataset.ready = "true";
  void registerServiceWorker();
}

void start();
