/**
 * The console's pages: server-rendered HTML, every value escaped (html.ts),
 * every control labelled, usable by keyboard alone (native links, buttons,
 * forms; a skip link; focus always visible). A page that answers a change or a
 * refusal opens with the focus on its message (autofocus, the first in the
 * page wins over a form field's): a live region's text present at load is no
 * change to announce, so after a redirect a screen reader would say nothing
 * of "Issued." otherwise; Tab goes on from there into the page.
 */
import type { AuditRecord, TokenKind, TokenState, TokenStatus } from "../registry/types.js";
import { KIND_LABELS } from "../registry/soft-tokens.js";
import type { Approval } from "../registry/approvals.js";
import type { StaffInfo, StaffRole } from "../registry/staff.js";
import { Html, html, qs, seg } from "./html.js";
import type { Lang, Words } from "./i18n.js";
import type { KeyfobRow, Sort } from "./queries.js";

/** What every page knows about the request. */
export interface View {
  lang: Lang;
  w: Words;
  /** The path and query of this page (the language switch comes back here). */
  here: string;
  staff?: { name: string; role: StaffRole; csrf: string };
  timeZone: string;
}

/** Made once per language and zone: a DateTimeFormat costs ~0.1 ms to build, 50 per list page. */
const FORMATS = new Map<string, Intl.DateTimeFormat>();

export function when(v: View, ms: number | string | null | undefined): string {
  if (ms === null || ms === undefined) return v.w.never;
  const d = new Date(typeof ms === "string" ? ms : Number(ms));
  const key = v.lang + " " + v.timeZone;
  let f = FORMATS.get(key);
  if (!f) FORMATS.set(key, (f = new Intl.DateTimeFormat(v.lang === "ja" ? "ja-JP" : "en-GB", { timeZone: v.timeZone, dateStyle: "medium", timeStyle: "medium" })));
  return f.format(d);
}

const csrfField = (v: View) => html`<input type="hidden" name="_csrf" value="${v.staff?.csrf ?? ""}">`;

/** The token's kind (issue 15): ソフトウェアトークン / キーホルダー型. */
export function kindBadge(v: View, k: TokenKind): Html {
  return html`<span class="kind kind-${k}">${v.lang === "ja" ? KIND_LABELS[k].ja : KIND_LABELS[k].en}</span>`;
}

export function stateBadge(v: View, s: TokenState): Html {
  return html`<span class="state state-${s}">${v.w.stateNames[s] ?? s}</span>`;
}

export function layout(v: View, title: string, body: Html, opts: { nav?: string; flash?: string; error?: string } = {}): Html {
  const w = v.w;
  const navItem = (key: string, href: string, label: string) => html`<li><a href="${href}"${opts.nav === key ? html` aria-current="page"` : ""}>${label}</a></li>`;
  const langLink = (l: Lang, label: string) =>
    html`<a href="/console/lang${qs({ to: l, back: v.here })}" lang="${l}" hreflang="${l}"${v.lang === l ? html` aria-current="true"` : ""}>${label}</a>`;
  return html`<!doctype html>
<html lang="${v.lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} — ${w.appName}</title>
<link rel="stylesheet" href="/console/assets/console.css">
<script src="/console/assets/console.js" defer></script>
</head>
<body>
<a class="skip" href="#main">${w.skip}</a>
<header>
<span class="brand">${w.appName}</span>
${v.staff
    ? html`<nav aria-label="${w.appName}"><ul>
${navItem("home", "/console/", w.home)}
${navItem("locked", "/console/keyfobs?state=locked", w.lockedNow)}
${navItem("stock", "/console/keyfobs?state=in_stock", w.inStock)}
${navItem("all", "/console/keyfobs", w.allKeyfobs)}
${navItem("audit", "/console/audit", w.audit)}
${v.staff.role === "supervisor" ? [navItem("approvals", "/console/approvals", w.approvals), navItem("staff", "/console/staff", w.staff)] : ""}
</ul></nav>`
    : ""}
<div class="who">
<span class="lang" role="group" aria-label="${w.language}">${langLink("ja", "日本語")} | ${langLink("en", "English")}</span>
${v.staff
    ? html`<span>${v.staff.name} (${v.staff.role === "supervisor" ? w.supervisor : w.teller})</span>
<form method="post" action="/console/sign-out">${csrfField(v)}<button type="submit" class="secondary">${w.signOut}</button></form>`
    : ""}
</div>
</header>
<main id="main" tabindex="-1">
<h1>${title}</h1>
${opts.flash ? html`<p class="flash" role="status" tabindex="-1" autofocus>${opts.flash}</p>` : ""}
${opts.error ? html`<p class="error" role="alert" tabindex="-1" autofocus>${opts.error}</p>` : ""}
${body}
</main>
</body>
</html>
`;
}

export function signInPage(v: View, next: string, opts: { staffId?: string; error?: string } = {}): Html {
  const w = v.w;
  return layout(
    v,
    w.signInTitle,
    html`<form method="post" action="/console/sign-in">
<input type="hidden" name="next" value="${next}">
<label for="staff">${w.staffId}</label>
<input id="staff" name="staff" type="text" autocomplete="username" required maxlength="64" value="${opts.staffId ?? ""}" autofocus>
<label for="password">${w.password}</label>
<input id="password" name="password" type="password" autocomplete="current-password" required maxlength="1024">
<p><button type="submit">${w.signIn}</button></p>
</form>`,
    { error: opts.error },
  );
}

export function searchForm(v: View, q = ""): Html {
  return html`<form method="get" action="/console/search" role="search">
<label for="q">${v.w.search}</label>
<input id="q" name="q" type="search" value="${q}" maxlength="64" required aria-describedby="q-hint">
<button type="submit">${v.w.search}</button>
<div id="q-hint" class="muted">${v.w.searchHint}</div>
</form>`;
}

export function homePage(v: View, counts: Record<TokenState, number>, pending: number | undefined): Html {
  const w = v.w;
  const stateLink = (s: TokenState) => html`<a href="/console/keyfobs${qs({ state: s })}">${w.stateNames[s]}</a>`;
  return layout(
    v,
    w.home,
    html`${searchForm(v)}
<h2 id="counts">${w.countsByState}</h2>
<table aria-labelledby="counts"><thead><tr><th scope="col">${w.state}</th><th scope="col" class="num">${w.count}</th></tr></thead>
<tbody>${(Object.keys(counts) as TokenState[]).map((s) => html`<tr><td>${stateLink(s)}</td><td class="num">${counts[s].toLocaleString(v.lang === "ja" ? "ja-JP" : "en-GB")}</td></tr>`)}</tbody></table>
${pending !== undefined ? html`<p><a href="/console/approvals">${w.pending}: ${pending}</a></p>` : ""}`,
    { nav: "home" },
  );
}

export function searchResultsPage(v: View, q: string, serials: string[], customers: string[]): Html {
  const w = v.w;
  const body = html`${searchForm(v, q)}
<h2>${w.results}</h2>
${serials.length + customers.length === 0 ? html`<p>${w.noResults}</p>` : ""}
${serials.length ? html`<h3>${w.serial}</h3><ul>${serials.map((s) => html`<li><a href="/console/keyfobs/${seg(s)}">${s}</a></li>`)}</ul>` : ""}
${customers.length ? html`<h3>${w.customer}</h3><ul>${customers.map((c) => html`<li><a href="/console/customers/${seg(c)}">${c}</a></li>`)}</ul>` : ""}`;
  return layout(v, w.search, body, { nav: "home" });
}

function auditTable(v: View, records: AuditRecord[], caption: string): Html {
  const w = v.w;
  if (records.length === 0) return html`<p>${w.noResults}</p>`;
  return html`<table><caption class="muted">${caption}</caption><thead><tr>
<th scope="col">${w.at}</th><th scope="col">${w.action}</th><th scope="col">${w.outcome}</th><th scope="col">${w.serial}</th><th scope="col">${w.customer}</th><th scope="col">${w.actor}</th><th scope="col">${w.source}</th><th scope="col">${w.detail}</th></tr></thead>
<tbody>${records.map(
    (r) => html`<tr><td>${when(v, r.at)}</td><td>${r.action}</td><td>${r.outcome}</td>
<td>${r.serial ? html`<a href="/console/keyfobs/${seg(r.serial)}">${r.serial}</a>` : ""}</td>
<td>${r.customer ? html`<a href="/console/customers/${seg(r.customer)}">${r.customer}</a>` : ""}</td>
<td>${r.actor}</td><td>${r.source}</td><td>${r.detail ? JSON.stringify(r.detail) : ""}</td></tr>`,
  )}</tbody></table>`;
}

export interface KeyfobFacts {
  token: TokenStatus;
  lastAcceptedAt: number | null;
  history: AuditRecord[];
}

/** Which staff actions a keyfob's state allows (the registry refuses the rest anyway). */
export function allowedActions(t: TokenStatus): { issue: boolean; unlock: boolean; withdraw: boolean; resync: boolean } {
  const live = t.state === "issued" || t.state === "active" || t.state === "locked";
  const keyfob = t.kind !== "soft"; // a soft token is never issued again, and its clock needs no resync
  return {
    issue: keyfob && (t.state === "in_stock" || (t.state === "retired" && t.withdrawn !== "lost" && t.withdrawn !== "stolen")),
    unlock: t.state === "locked",
    withdraw: live,
    resync: keyfob && live,
  };
}

export function keyfobPage(v: View, f: KeyfobFacts, opts: { flash?: string; error?: string } = {}): Html {
  const w = v.w;
  const t = f.token;
  const a = allowedActions(t);
  const base = `/console/keyfobs/${seg(t.serial)}`;
  const barred = t.withdrawn === "lost" || t.withdrawn === "stolen";
  const body = html`<dl class="facts">
<dt>${w.serial}</dt><dd>${t.serial}</dd>
<dt>${w.state}</dt><dd>${stateBadge(v, t.state)}${barred ? html` <span class="state state-locked">${t.withdrawn === "stolen" ? w.reasonNames.stolen : w.reasonNames.lost}: ${v.lang === "ja" ? "再発行不可" : "never issued again"}</span>` : ""}</dd>
<dt>${w.customer}</dt><dd>${t.customer ? html`<a href="/console/customers/${seg(t.customer)}">${t.customer}</a>` : w.none}</dd>
<dt>${v.lang === "ja" ? "種類" : "Kind"}</dt><dd>${kindBadge(v, t.kind)}${t.kind === "soft" ? html` <span class="muted">${t.setUp ? (v.lang === "ja" ? "アプリ設定済" : "app set up") : v.lang === "ja" ? "アプリ未設定" : "app not set up"}</span>` : ""}</dd>
<dt>${w.issuance}</dt><dd>${t.issuance}</dd>
<dt>${w.failCount}</dt><dd>${t.failCount}</dd>
<dt>${w.drift}</dt><dd>${t.drift}</dd>
<dt>${w.lastAccepted}</dt><dd>${when(v, f.lastAcceptedAt)}</dd>
<dt>${w.withdrawnReason}</dt><dd>${t.withdrawn ? w.reasonNames[t.withdrawn] : w.none}</dd>
<dt>${w.updated}</dt><dd>${when(v, t.updatedAt)}</dd>
</dl>
<h2>${w.actions}</h2>
<div class="actions">
${a.issue ? html`<form class="inline" method="get" action="${base}/issue"><button type="submit">${w.issue}</button></form>` : ""}
${a.unlock ? html`<form class="inline" method="post" action="${base}/unlock">${csrfField(v)}<button type="submit">${w.unlock}</button></form>` : ""}
${a.withdraw ? html`<form class="inline" method="get" action="${base}/withdraw"><button type="submit" class="danger">${w.withdraw}</button></form>` : ""}
${a.resync ? html`<form class="inline" method="get" action="${base}/resync"><button type="submit" class="secondary">${w.resync}</button></form>` : ""}
</div>
${!a.issue && !a.unlock && !a.withdraw && !a.resync ? html`<p>${w.noActions}</p>` : ""}
<p class="muted">${w.deactivationNote}</p>
<h2>${w.history}</h2>
${auditTable(v, f.history, `${w.history}: ${t.serial}`)}`;
  return layout(v, `${w.keyfobTitle} ${t.serial}`, body, opts);
}

export function issueFormPage(v: View, t: TokenStatus, opts: { customer?: string; error?: string } = {}): Html {
  const w = v.w;
  const base = `/console/keyfobs/${seg(t.serial)}`;
  return layout(
    v,
    `${w.issueTitle} ${t.serial}`,
    html`<p>${w.issueHelp}</p>
<form method="post" action="${base}/issue">${csrfField(v)}
<label for="customer">${w.customerId}</label>
<input id="customer" name="customer" type="text" required maxlength="64" pattern="[A-Za-z0-9._@:+\\-]{1,64}" autocomplete="off" value="${opts.customer ?? ""}" autofocus>
<p><button type="submit">${w.confirm}</button> <a href="${base}">${w.cancel}</a></p>
</form>`,
    { error: opts.error },
  );
}

export function withdrawFormPage(v: View, t: TokenStatus, opts: { error?: string } = {}): Html {
  const w = v.w;
  const base = `/console/keyfobs/${seg(t.serial)}`;
  const reasons: [string, string][] = [["lost", w.reasonLost], ...(v.staff?.role === "supervisor" ? ([["stolen", w.reasonStolen]] as [string, string][]) : []), ["returned", w.reasonReturned], ["faulty", w.reasonFaulty]];
  return layout(
    v,
    `${w.withdrawTitle} ${t.serial}`,
    html`<p>${w.withdrawHelp}</p>
<dl class="facts"><dt>${w.serial}</dt><dd>${t.serial}</dd><dt>${w.customer}</dt><dd>${t.customer ?? w.none}</dd><dt>${w.state}</dt><dd>${stateBadge(v, t.state)}</dd></dl>
<form method="post" action="${base}/withdraw">${csrfField(v)}
<fieldset><legend>${w.reason}</legend>
${reasons.map(([r, label], i) => html`<label><input type="radio" name="reason" value="${r}" required${i === 0 ? html` checked` : ""}> ${label}</label>`)}
</fieldset>
<p class="warning" id="bar-warning">${w.barWarning}</p>
<label><input type="checkbox" name="confirmed" value="yes" required aria-describedby="bar-warning"> ${w.confirmWithdraw}</label>
<p><button type="submit" class="danger">${w.confirm}</button> <a href="${base}">${w.cancel}</a></p>
</form>`,
    { error: opts.error },
  );
}

export function resyncFormPage(v: View, t: TokenStatus, opts: { error?: string } = {}): Html {
  const w = v.w;
  const base = `/console/keyfobs/${seg(t.serial)}`;
  const digits = `[0-9]{${t.digits}}`;
  return layout(
    v,
    `${w.resyncTitle} ${t.serial}`,
    html`<p>${w.resyncHelp}</p>
<form method="post" action="${base}/resync">${csrfField(v)}
<label for="code1">${w.firstCode}</label>
<input id="code1" name="code1" type="text" inputmode="numeric" autocomplete="off" required pattern="${digits}" maxlength="${t.digits}" autofocus>
<label for="code2">${w.secondCode}</label>
<input id="code2" name="code2" type="text" inputmode="numeric" autocomplete="off" required pattern="${digits}" maxlength="${t.digits}">
<p><button type="submit">${w.confirm}</button> <a href="${base}">${w.cancel}</a></p>
</form>`,
    { error: opts.error },
  );
}

export function customerPage(v: View, customer: string, current: TokenStatus | undefined, had: { serial: string; issuedAt: number; state?: TokenState; holder?: string | null }[], history: AuditRecord[]): Html {
  const w = v.w;
  const body = html`<h2>${w.currentKeyfob}</h2>
${current
    ? html`<dl class="facts"><dt>${w.serial}</dt><dd><a href="/console/keyfobs/${seg(current.serial)}">${current.serial}</a></dd>
<dt>${w.state}</dt><dd>${stateBadge(v, current.state)}</dd><dt>${w.failCount}</dt><dd>${current.failCount}</dd></dl>`
    : html`<p>${w.noCurrentKeyfob}</p>`}
<h2>${w.keyfobsHad}</h2>
${had.length
    ? html`<table><thead><tr><th scope="col">${w.serial}</th><th scope="col">${w.at}</th><th scope="col">${w.state}</th></tr></thead><tbody>
${had.map((k) => html`<tr><td><a href="/console/keyfobs/${seg(k.serial)}">${k.serial}</a></td><td>${when(v, k.issuedAt)}</td><td>${k.state ? (k.holder === customer ? stateBadge(v, k.state) : html`<span class="muted">${v.lang === "ja" ? "他のお客さまへ再発行" : "re-issued to another customer"}</span>`) : ""}</td></tr>`)}
</tbody></table>`
    : html`<p>${w.noResults}</p>`}
<h2>${w.history}</h2>
${auditTable(v, history, `${w.history}: ${customer}`)}`;
  return layout(v, `${w.customerTitle} ${customer}`, body);
}

export interface ListView {
  state?: TokenState;
  prefix: string;
  sort: Sort;
  desc: boolean;
  rows: KeyfobRow[];
  total: number;
  page: number;
  pages: number;
}

export function listResults(v: View, l: ListView): Html {
  const w = v.w;
  const link = (page: number) => `/console/keyfobs${qs({ state: l.state, q: l.prefix, sort: l.sort, dir: l.desc ? "desc" : undefined, page })}`;
  return html`<p role="status">${l.total.toLocaleString(v.lang === "ja" ? "ja-JP" : "en-GB")} ${w.total} — ${w.page} ${l.page} ${w.of} ${l.pages}</p>
${l.rows.length
    ? html`<table><thead><tr><th scope="col">${w.serial}</th><th scope="col">${w.state}</th><th scope="col">${w.customer}</th><th scope="col" class="num">${w.failCount}</th><th scope="col" class="num">${w.issuance}</th><th scope="col">${w.updated}</th></tr></thead><tbody>
${l.rows.map((r) => html`<tr><td><a href="/console/keyfobs/${seg(r.serial)}">${r.serial}</a>${r.kind === "soft" ? html` ${kindBadge(v, r.kind)}` : ""}</td><td>${stateBadge(v, r.state)}${r.withdrawn ? html` <span class="muted">(${w.reasonNames[r.withdrawn]})</span>` : ""}</td>
<td>${r.customer ? html`<a href="/console/customers/${seg(r.customer)}">${r.customer}</a>` : ""}</td><td class="num">${r.failCount}</td><td class="num">${r.issuance}</td><td>${when(v, r.updatedAt)}</td></tr>`)}
</tbody></table>`
    : html`<p>${w.noResults}</p>`}
<nav class="pager" aria-label="${w.page}">
${l.page > 1 ? html`<a href="${link(l.page - 1)}" rel="prev">${w.previous}</a>` : ""}
${l.page < l.pages ? html`<a href="${link(l.page + 1)}" rel="next">${w.next}</a>` : ""}
</nav>`;
}

export function listPage(v: View, l: ListView): Html {
  const w = v.w;
  const title = l.state === "locked" ? w.lockedNow : l.state === "in_stock" ? w.inStock : l.state ? w.stateNames[l.state] : w.allKeyfobs;
  const opt = (value: string, label: string, selected: boolean) => html`<option value="${value}"${selected ? html` selected` : ""}>${label}</option>`;
  const body = html`<form id="list-filter" method="get" action="/console/keyfobs" class="filters" aria-label="${w.filter}">
<div><label for="f-state">${w.state}</label><select id="f-state" name="state">${opt("", w.anyState, !l.state)}${(Object.keys(w.stateNames) as TokenState[]).map((s) => opt(s, w.stateNames[s], l.state === s))}</select></div>
<div><label for="f-q">${w.prefix}</label><input id="f-q" name="q" type="search" maxlength="64" value="${l.prefix}"></div>
<div><label for="f-sort">${w.sortBy}</label><select id="f-sort" name="sort">${opt("serial", w.serial, l.sort === "serial")}${opt("customer", w.customer, l.sort === "customer")}${opt("updated", w.updated, l.sort === "updated")}</select></div>
<div><label for="f-dir">${w.order}</label><select id="f-dir" name="dir">${opt("asc", w.ascending, !l.desc)}${opt("desc", w.descending, l.desc)}</select></div>
<div><button type="submit">${w.apply}</button></div>
</form>
<div id="results" aria-live="polite">${listResults(v, l)}</div>`;
  return layout(v, title, body, { nav: l.state === "locked" ? "locked" : l.state === "in_stock" ? "stock" : l.state ? undefined : "all" });
}

export interface AuditView {
  serial: string;
  customer: string;
  staff: string;
  from: string;
  to: string;
  records: AuditRecord[];
  page: number;
  /** Cursors of the next (older) and previous (newer) pages (queries.ts AuditPage). */
  older: number | null;
  newer: number | null;
}

export function auditPageHtml(v: View, a: AuditView, error?: string): Html {
  const w = v.w;
  const filters = { serial: a.serial, customer: a.customer, staff: a.staff, from: a.from, to: a.to };
  const input = (id: string, name: keyof typeof filters, label: string, type = "text") =>
    html`<div><label for="${id}">${label}</label><input id="${id}" name="${name}" type="${type}" maxlength="64" value="${filters[name]}"></div>`;
  const body = html`<form method="get" action="/console/audit" class="filters" aria-label="${w.filter}">
${input("a-serial", "serial", w.serial)}${input("a-customer", "customer", w.customerId)}${input("a-staff", "staff", w.staffMember)}
${input("a-from", "from", w.from, "date")}${input("a-to", "to", w.to, "date")}
<div><button type="submit">${w.apply}</button></div>
</form>
<p><a href="/console/audit.csv${qs(filters)}" download>${w.downloadCsv}</a></p>
${auditTable(v, a.records, `${w.audit} — ${w.page} ${a.page}`)}
<nav class="pager" aria-label="${w.page}">
${a.newer !== null ? html`<a href="/console/audit${qs({ ...filters, after: a.newer, page: Math.max(1, a.page - 1) })}" rel="prev">${w.previous}</a>` : ""}
${a.older !== null ? html`<a href="/console/audit${qs({ ...filters, before: a.older, page: a.page + 1 })}" rel="next">${w.next}</a>` : ""}
</nav>`;
  return layout(v, w.audit, body, { nav: "audit", error });
}

/**
 * Who asked: a member as their actor name (`console:<ID>`); an API key (`staff:<key id>`, a request through the HTTP
 * API) as what it is, by its label and owner, so a supervisor does not take a bare id for a person, or approve what
 * they asked themselves through a system whose key they hold (the rule refuses a recorded owner; one with none is
 * theirs to check).
 */
function makerCell(v: View, a: Approval): Html {
  const w = v.w;
  const k = a.makerKey;
  if (!k) return html`${a.maker}`;
  return html`<strong>${w.makerKey}</strong> ${k.label ? (v.lang === "ja" ? html`「${k.label}」 ` : html`“${k.label}” `) : ""}<span class="muted">(${k.id})</span>${k.revoked ? html` <span class="muted">${w.makerKeyRevoked}</span>` : ""}
<br><span class="muted">${w.makerKeyNote}</span><br>${k.owner ? w.makerKeyOwner(k.owner) : html`<span class="warning-text">${w.makerKeyNoOwner}</span>`}`;
}

export function approvalsPage(v: View, pending: Approval[], decided: Approval[], flash?: string, error?: string): Html {
  const w = v.w;
  const row = (a: Approval, actions: boolean) => html`<tr><td>${a.id}</td><td>${a.action === "unlock" ? w.unlock : a.action}</td>
<td>${a.serial ? html`<a href="/console/keyfobs/${seg(a.serial)}">${a.serial}</a>` : ""}</td>
<td>${a.customer ? html`<a href="/console/customers/${seg(a.customer)}">${a.customer}</a>` : ""}</td><td>${makerCell(v, a)}</td><td>${when(v, a.madeAt)}</td>
<td>${actions
    ? html`<form class="inline" method="post" action="/console/approvals/${a.id}/approve">${csrfField(v)}<button type="submit" aria-label="${w.approve} ${a.id}">${w.approve}</button></form>
<form class="inline" method="post" action="/console/approvals/${a.id}/reject">${csrfField(v)}<button type="submit" class="secondary" aria-label="${w.reject} ${a.id}">${w.reject}</button></form>`
    : html`${a.state} ${a.checker ?? ""} ${a.outcome ?? ""}`}</td></tr>`;
  const head = html`<thead><tr><th scope="col">ID</th><th scope="col">${w.action}</th><th scope="col">${w.serial}</th><th scope="col">${w.customer}</th><th scope="col">${w.maker}</th><th scope="col">${w.madeAt}</th><th scope="col">${w.actions}</th></tr></thead>`;
  return layout(
    v,
    w.approvals,
    html`<h2>${w.pending}</h2>
${pending.length ? html`<table>${head}<tbody>${pending.map((a) => row(a, true))}</tbody></table>` : html`<p>${w.noPending}</p>`}
<h2>${w.history}</h2>
${decided.length ? html`<table>${head}<tbody>${decided.map((a) => row(a, false))}</tbody></table>` : html`<p>${w.noResults}</p>`}`,
    { nav: "approvals", flash, error },
  );
}

/** A locked member's state: until when, and from which client addresses (each with its own end), for the supervisor. */
function lockedCell(v: View, s: StaffInfo): Html {
  const w = v.w;
  const from = s.lockedFrom.map((l) => html`<li>${w.signinLockedFrom} ${l.source === "*" ? w.everyAddress : l.source}: ${w.signinLockedUntil(when(v, l.until))}</li>`);
  return html`<span class="state state-locked">${w.signinLocked}</span> ${w.signinLockedUntil(when(v, s.lockedUntil))}<ul class="locked-from">${from}</ul>`;
}

export function staffPage(v: View, staff: StaffInfo[], flash?: string, error?: string): Html {
  const w = v.w;
  return layout(
    v,
    w.staff,
    html`<table><thead><tr><th scope="col">${w.staffId}</th><th scope="col">${w.role}</th><th scope="col">${w.state}</th><th scope="col">${w.lastSignin}</th><th scope="col">${w.actions}</th></tr></thead><tbody>
${staff.map(
  (s) => html`<tr><td>${s.name}</td><td>${s.role === "supervisor" ? w.supervisor : w.teller}</td>
<td>${s.disabled ? w.disabled : s.locked ? lockedCell(v, s) : "—"}</td><td>${when(v, s.lastSigninAt)}</td>
<td>${s.locked && !s.disabled ? html`<form class="inline" method="post" action="/console/staff/${seg(s.name)}/unlock">${csrfField(v)}<button type="submit" aria-label="${w.unlockStaff} ${s.name}">${w.unlockStaff}</button></form>` : ""}</td></tr>`,
)}
</tbody></table>`,
    { nav: "staff", flash, error },
  );
}

export function messagePage(v: View, title: string, message: string, link?: { href: string; label: string }): Html {
  return layout(v, title, html`<p class="error" role="alert" tabindex="-1" autofocus>${message}</p>${link ? html`<p><a href="${link.href}">${link.label}</a></p>` : ""}`);
}
