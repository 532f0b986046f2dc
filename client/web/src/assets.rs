//! The page's only assets, served by `cove ui` itself: no request ever
//! leaves the machine.

/// Where the stylesheet is served.
pub const STYLE_PATH: &str = "/assets/cove.css";
/// Where the script is served.
pub const SCRIPT_PATH: &str = "/assets/cove.js";

/// Calm, readable, high contrast; a dark scheme for low light.
pub const STYLE: &str = r#"
:root { --bg: #f6f5f2; --fg: #1d1f21; --muted: #555b61; --line: #d5d2cc; --accent: #2f5d62;
  --card: #ffffff; --warn: #7a3e00; --warnbg: #fff3e0; font-size: 18px; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #15171a; --fg: #e8e6e3; --muted: #a8adb3; --line: #3a3e44; --accent: #8fc1c6;
    --card: #1d2024; --warn: #ffcc80; --warnbg: #3a2a12; } }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg); line-height: 1.5;
  font-family: system-ui, -apple-system, "Segoe UI", sans-serif; }
a { color: var(--accent); }
.skip { position: absolute; left: -999px; } .skip:focus { left: 1rem; top: 1rem; background: var(--card); padding: .5rem; }
header nav { display: flex; flex-wrap: wrap; gap: .25rem .9rem; padding: .75rem 1rem; border-bottom: 1px solid var(--line); background: var(--card); }
header nav a { text-decoration: none; padding: .15rem 0; }
header nav a[aria-current="page"] { font-weight: 600; border-bottom: 2px solid var(--accent); }
main { max-width: 52rem; margin: 0 auto; padding: 1rem 1.25rem 4rem; }
main:focus { outline: none; }
h1 { font-size: 1.6rem; font-weight: 600; } h2 { font-size: 1.2rem; margin-top: 2rem; border-bottom: 1px solid var(--line); }
ul.items { list-style: none; padding: 0; } ul.items > li { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: .6rem .8rem; margin: .5rem 0; }
.meta, .muted { color: var(--muted); font-size: .9rem; }
.archived { opacity: .65; }
form { margin: .4rem 0; } form.inline { display: inline-block; margin: .2rem .4rem .2rem 0; }
label { display: block; margin: .4rem 0; }
input[type=text], input[type=number], input[type=date], textarea, select { display: block; width: 100%; max-width: 36rem; padding: .45rem; font: inherit;
  color: var(--fg); background: var(--bg); border: 1px solid var(--line); border-radius: 6px; }
button { font: inherit; padding: .45rem .9rem; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: var(--bg); cursor: pointer; }
button.quiet { background: transparent; color: var(--accent); padding: .15rem .5rem; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
details { margin: .3rem 0; } summary { cursor: pointer; color: var(--accent); }
.flash { padding: .6rem .8rem; border-radius: 6px; background: var(--card); border-left: 4px solid var(--accent); }
.error { padding: .6rem .8rem; border-radius: 6px; background: var(--warnbg); color: var(--warn); border-left: 4px solid var(--warn); }
.signal-received { padding: .8rem 1rem; font-size: 1.4rem; border-radius: 8px; background: var(--warnbg); color: var(--warn); border: 2px solid var(--warn); }
.resolve { border-left: 4px solid var(--warn); }
#signal:not(:empty) { position: sticky; top: 0; z-index: 2; padding: 1rem; font-size: 1.4rem; text-align: center;
  background: var(--warnbg); color: var(--warn); border-bottom: 2px solid var(--warn); }
#notice:not(:empty) { padding: .5rem 1rem; text-align: center; background: var(--card); border-bottom: 1px solid var(--line); }
body.now { --bg: #101214; --fg: #f0ebe3; --card: #181b1e; --line: #2c3035; --accent: #d9b38c; --muted: #b6b0a8; }
body.now main { max-width: 80rem; font-size: 1.3rem; padding-top: .5rem; }
body.now h1 { font-size: 1.5rem; margin: .25rem 0; }
body.now h2 { font-size: 1.1rem; margin-top: 1rem; }
body.now p, body.now ul { margin: .35rem 0; }
body.now ol.sequence { margin: .35rem 0; padding-left: 1.6rem; }
body.now ol.sequence li { margin: .25rem 0; }
.hidden { position: absolute; left: -999px; }
.signals { display: flex; flex-wrap: wrap; gap: .4rem; margin: .75rem 0 .5rem; }
.signals button { font-size: 1.25rem; padding: .8rem 1.1rem; min-width: 9rem; }
.now-grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(17rem, 1fr)); gap: 0 2rem; }
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); }
"#;

/// Live updates: on a change from the other device, the page's main part is
/// fetched again and swapped in, unless the person is typing in a form; a
/// signal is shown at the top. Untrusted text only ever goes in through
/// `textContent`.
pub const SCRIPT: &str = r#"
(() => {
  let dirty = false;
  document.addEventListener('input', (e) => { if (e.target.closest && e.target.closest('form')) dirty = true; });
  const say = (id, text) => { const el = document.getElementById(id); if (el) el.textContent = text; };
  const refresh = async () => {
    const active = document.activeElement;
    if (dirty || (active && active.closest && active.closest('form') && active.tagName !== 'BUTTON')) {
      say('notice', 'The plan changed on another device. Reload the page to see it.');
      return;
    }
    const response = await fetch(location.href, { credentials: 'same-origin' });
    if (!response.ok) return;
    const next = new DOMParser().parseFromString(await response.text(), 'text/html').getElementById('main');
    const main = document.getElementById('main');
    if (next && main) {
      main.replaceWith(next);
      document.body.dataset.updates = String(Number(document.body.dataset.updates || '0') + 1);
    }
  };
  const connect = () => {
    const events = new EventSource('/events');
    events.addEventListener('changed', () => { refresh(); });
    events.addEventListener('signal', (e) => {
      let data = {};
      try { data = JSON.parse(e.data); } catch (_) { return; }
      say('signal', 'Signal from ' + (data.from || 'your partner') + ': ' + (data.text || ''));
    });
    events.onerror = () => { say('notice', 'Connection to Cove lost; retrying.'); };
    events.onopen = () => { const n = document.getElementById('notice'); if (n && n.textContent.startsWith('Connection')) n.textContent = ''; };
  };
  connect();
})();
"#;
