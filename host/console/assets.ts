/**
 * The console's only stylesheet and script, served from the process (no CDN,
 * no web fonts: a closed bank network and a slow branch PC). Every page works
 * without the script; it only makes the list filters answer as one types.
 */
export const CONSOLE_CSS = `
:root { color-scheme: light; --fg: #1b1f24; --muted: #57606a; --line: #d0d7de; --accent: #0b5cad; --warn: #9a3412; --bad: #b42318; --ok: #166534; }
* { box-sizing: border-box; }
body { margin: 0; font: 16px/1.5 system-ui, "Hiragino Sans", "Yu Gothic UI", Meiryo, sans-serif; color: var(--fg); background: #fff; }
a { color: var(--accent); }
.skip { position: absolute; left: -999px; } .skip:focus { left: 8px; top: 8px; background: #fff; padding: 4px 8px; z-index: 2; }
header { display: flex; flex-wrap: wrap; gap: 8px 20px; align-items: center; padding: 8px 16px; border-bottom: 2px solid var(--accent); background: #f6f8fa; }
header .brand { font-weight: 700; }
ul.locked-from { margin: 4px 0 0; padding-left: 1.2em; font-size: 0.9em; }
header nav ul { display: flex; flex-wrap: wrap; gap: 4px 14px; list-style: none; margin: 0; padding: 0; }
header nav a[aria-current] { font-weight: 700; text-decoration: none; color: var(--fg); }
header .who { margin-left: auto; display: flex; gap: 10px; align-items: center; }
header form { margin: 0; }
main { padding: 12px 16px 40px; max-width: 1100px; }
h1 { font-size: 1.4rem; margin: 8px 0 12px; } h2 { font-size: 1.15rem; margin: 22px 0 8px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { color: var(--muted); } dl.facts dd { margin: 0; font-weight: 600; }
.state { display: inline-block; padding: 0 8px; border-radius: 10px; border: 1px solid var(--line); font-size: .9rem; }
.state-locked { background: #fee4e2; border-color: #fda29b; } .state-active { background: #dcfae6; border-color: #75e0a7; }
.state-retired { background: #f2f4f7; } .state-issued { background: #eff8ff; border-color: #84caff; }
.kind { display: inline-block; padding: 0 6px; border-radius: 4px; border: 1px solid var(--line); font-size: .8rem; font-weight: 400; } .kind-soft { background: #f4f3ff; border-color: #bdb4fe; }
.flash { padding: 8px 12px; border-left: 4px solid var(--ok); background: #ecfdf3; margin: 8px 0; }
.error { padding: 8px 12px; border-left: 4px solid var(--bad); background: #fef3f2; margin: 8px 0; }
.warning { padding: 8px 12px; border-left: 4px solid var(--warn); background: #fff7ed; margin: 8px 0; }
.warning-text { color: var(--warn); }
form.inline { display: inline-block; margin: 0 8px 8px 0; }
.actions { display: flex; flex-wrap: wrap; gap: 8px; align-items: flex-start; }
label { display: block; font-weight: 600; margin: 8px 0 2px; }
fieldset { border: 1px solid var(--line); margin: 8px 0; } legend { font-weight: 600; }
fieldset label { font-weight: normal; display: flex; gap: 6px; align-items: center; margin: 4px 0; }
input[type=text], input[type=search], input[type=password], input[type=date], select { font: inherit; padding: 4px 6px; border: 1px solid #8c959f; border-radius: 4px; min-width: 14em; }
button { font: inherit; padding: 4px 14px; border: 1px solid var(--accent); border-radius: 4px; background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
:focus-visible { outline: 3px solid #f79009; outline-offset: 2px; }
.filters { display: flex; flex-wrap: wrap; gap: 0 16px; align-items: flex-end; }
.filters > div { margin-bottom: 8px; }
.pager { display: flex; gap: 16px; align-items: center; margin: 8px 0; }
.muted { color: var(--muted); }
#results[aria-busy=true] { opacity: .6; }
.lang a[aria-current] { font-weight: 700; color: var(--fg); text-decoration: none; }
`;

/**
 * List filters as one types. Overlapping requests: each carries a sequence
 * number and the previous one is aborted; an answer that is not the latest
 * is dropped, so a slow early answer never overwrites a later one.
 */
export const CONSOLE_JS = `(function () {
  "use strict";
  // "Done" notes come as ?done=...; drop it from the address so a reload does not repeat the note.
  if (/[?&]done=/.test(window.location.search) && window.history.replaceState) {
    var clean = window.location.search.replace(/([?&])done=[^&]*&?/, "$1").replace(/[?&]$/, "");
    window.history.replaceState(null, "", window.location.pathname + clean);
  }
  var form = document.getElementById("list-filter");
  var results = document.getElementById("results");
  if (!form || !results || !window.fetch || !window.AbortController) return;
  var seq = 0, ctrl = null, timer = null;
  function load() {
    var mine = ++seq;
    if (ctrl) ctrl.abort();
    ctrl = new AbortController();
    var params = new URLSearchParams(new FormData(form));
    params.delete("page");
    var url = form.getAttribute("action") + "?" + params.toString();
    results.setAttribute("aria-busy", "true");
    fetch(url + "&partial=1", { signal: ctrl.signal, credentials: "same-origin" }).then(function (r) {
      if (r.status === 401) { window.location.reload(); throw new Error("signed out"); }
      if (!r.ok) throw new Error("HTTP " + r.status);
      return r.text();
    }).then(function (text) {
      if (mine !== seq) return; // a later request was made: this answer is stale
      results.innerHTML = text;
      results.removeAttribute("aria-busy");
      window.history.replaceState(null, "", url);
    }).catch(function (e) {
      if (mine !== seq || e.name === "AbortError") return;
      results.removeAttribute("aria-busy");
    });
  }
  form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(load, 250); });
  form.addEventListener("change", function () { clearTimeout(timer); load(); });
  form.addEventListener("submit", function (e) { e.preventDefault(); clearTimeout(timer); load(); });
})();
`;
