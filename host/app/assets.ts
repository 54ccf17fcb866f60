/** The web app's only stylesheet, served from the process (no web fonts, no CDN: it must open offline and on a closed network). */
export const APP_CSS = `
:root { color-scheme: light; --fg: #1b1f24; --muted: #4d5661; --line: #c9d1d9; --accent: #0b5cad; --bad: #b42318; --ok: #166534; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font: 17px/1.6 system-ui, "Hiragino Sans", "Hiragino Kaku Gothic ProN", "Yu Gothic UI", Meiryo, "Noto Sans CJK JP", sans-serif; color: var(--fg); background: #fff; }
header { display: flex; justify-content: space-between; align-items: center; gap: 12px; padding: 10px 16px; background: var(--accent); color: #fff; }
header .brand { font-weight: 700; }
header button.link { background: transparent; color: #fff; border: 1px solid #fff; padding: 4px 10px; min-height: 44px; }
main { max-width: 34rem; margin: 0 auto; padding: 12px 16px 48px; }
h1 { font-size: 1.4rem; margin: 12px 0; }
.field { margin: 14px 0; }
label { display: block; font-weight: 700; margin-bottom: 4px; }
input[type=text], input[type=password] { width: 100%; font: inherit; font-size: 1.15rem; padding: 10px; border: 2px solid #6e7781; border-radius: 6px; letter-spacing: .05em; }
input[aria-invalid=true] { border-color: var(--bad); }
.check { display: flex; gap: 8px; align-items: center; margin: 8px 0 16px; }
.check label { display: inline; font-weight: normal; margin: 0; }
.check input { width: 22px; height: 22px; }
.hint { color: var(--muted); font-size: .92rem; margin: 4px 0; }
.field-error { color: var(--bad); font-weight: 700; margin: 4px 0 0; }
.field-error:empty { display: none; }
button { font: inherit; min-height: 48px; padding: 8px 20px; border: 2px solid var(--accent); border-radius: 6px; background: var(--accent); color: #fff; cursor: pointer; }
button.secondary { background: #fff; color: var(--accent); }
button.danger { background: var(--bad); border-color: var(--bad); }
button:disabled { opacity: .6; cursor: wait; }
:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }
.status { margin: 12px 0; min-height: 1.6em; }
.status.error { padding: 10px 12px; border-left: 5px solid var(--bad); background: #fef3f2; color: #7a271a; font-weight: 700; }
.flash { padding: 10px 12px; border-left: 5px solid var(--ok); background: #ecfdf3; }
.bank { font-size: 1.2rem; margin: 8px 0 0; }
.bank strong { font-size: 1.35rem; }
.label { color: var(--muted); margin: 16px 0 0; }
.code { display: block; font: 700 3.2rem/1.2 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; letter-spacing: .08em; font-variant-numeric: tabular-nums; margin: 4px 0 8px; }
.countdown { display: flex; align-items: center; gap: 12px; }
.countdown progress { flex: 1; height: 14px; accent-color: var(--accent); }
.seconds { font-variant-numeric: tabular-nums; white-space: nowrap; }
.remove { margin-top: 40px; border-top: 1px solid var(--line); padding-top: 16px; }
.confirm p { font-weight: 700; }
.actions { display: flex; flex-wrap: wrap; gap: 10px; }
[hidden] { display: none !important; }
`;
