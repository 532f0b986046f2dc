//! The page's only assets, served by `cove ui` itself: no request ever
//! leaves the machine.

/// Where the stylesheet is served.
pub const STYLE_PATH: &str = "/assets/cove.css";
/// Where the script is served.
pub const SCRIPT_PATH: &str = "/assets/cove.js";

/// Calm, readable, high contrast; a dark scheme for low light.
pub const STYLE: &str = r#"
:root { --bg: #f6f5f2; --fg: #1d1f21; --muted: #555b61; --line: #d5d2cc; --accent: #2f5d62;
  --card: #ffffff; --warn: #7a3e00; --warnbg: #fff3e0; --sig: #123f73; --sigbg: #e6f0fb; font-size: 18px; }
@media (prefers-color-scheme: dark) {
  :root { --bg: #15171a; --fg: #e8e6e3; --muted: #a8adb3; --line: #3a3e44; --accent: #8fc1c6;
    --card: #1d2024; --warn: #ffcc80; --warnbg: #3a2a12; --sig: #b9d7ff; --sigbg: #13263d; } }
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
input[type=text], input[type=password], input[type=number], input[type=date], textarea, select { display: block; width: 100%; max-width: 36rem; padding: .45rem; font: inherit;
  color: var(--fg); background: var(--bg); border: 1px solid var(--line); border-radius: 6px; }
button { font: inherit; padding: .45rem .9rem; border-radius: 6px; border: 1px solid var(--accent); background: var(--accent); color: var(--bg); cursor: pointer; }
button.quiet { background: transparent; color: var(--accent); padding: .15rem .5rem; }
:focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
details { margin: .3rem 0; } summary { cursor: pointer; color: var(--accent); }
.flash { padding: .6rem .8rem; border-radius: 6px; background: var(--card); border-left: 4px solid var(--accent); }
.error { padding: .6rem .8rem; border-radius: 6px; background: var(--warnbg); color: var(--warn); border-left: 4px solid var(--warn); }
#signal:not(:empty) { position: sticky; top: 0; z-index: 2; padding: .5rem 1rem; background: var(--sigbg); color: var(--sig); border-bottom: 2px solid var(--sig); }
#signal .incoming { max-width: 52rem; margin: .3rem auto; font-size: 1.2rem; }
#signal .incoming p { margin: .2rem 0; } #signal .headline { font-size: 1.4rem; font-weight: 600; }
#signal button { border-color: var(--sig); background: var(--sig); color: var(--sigbg); }
#signal button.quiet { background: transparent; color: var(--sig); }
#stop:not([hidden]) { position: fixed; inset: 0; z-index: 10; overflow: auto; display: flex; flex-direction: column;
  justify-content: center; align-items: center; text-align: center; padding: 2rem; background: #0c1b2e; color: #ffffff; font-size: 1.5rem; }
#stop h2 { font-size: 4rem; letter-spacing: .08em; margin: 0 0 1rem; border: 0; }
#stop .headline { font-size: 1.8rem; font-weight: 600; max-width: 40rem; } #stop .muted { color: #c9d3df; }
#stop button { font-size: 1.5rem; padding: 1rem 2rem; background: #ffffff; color: #0c1b2e; border-color: #ffffff; }
form.stop button { background: #8b1e1e; border-color: #8b1e1e; color: #ffffff; font-weight: 700; }
.all-clear { padding: .6rem 1rem; border-radius: 8px; border: 2px solid var(--accent); margin: .75rem 0; }
ul.sent-signals { padding-left: 1.2rem; } .progress-waiting, .progress-unconfirmed { color: var(--warn); }
#notice:not(:empty) { padding: .5rem 1rem; text-align: center; background: var(--card); border-bottom: 1px solid var(--line); }
body.now { --bg: #101214; --fg: #f0ebe3; --card: #181b1e; --line: #2c3035; --accent: #d9b38c; --muted: #b6b0a8;
  --warn: #ffcc80; --warnbg: #3a2a12; }
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
@media (max-width: 40rem) {
  header nav { flex-wrap: nowrap; overflow-x: auto; white-space: nowrap; gap: 1rem; padding: .5rem .75rem; scrollbar-width: none; }
  main { padding: .75rem .9rem 3rem; }
  h1 { font-size: 1.35rem; margin: .4rem 0; }
}
table { border-collapse: collapse; width: 100%; } th, td { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid var(--line); }
"#;

/// Live updates: on a change from the other device, the page's main part is
/// fetched again and swapped in, unless the person is typing in a form. The
/// partner's signals are drawn at the top of every page from
/// `/signals.json`, and their stop over the whole page until it is
/// acknowledged. Untrusted text only ever goes in through `textContent`.
/// The lock (see `crate::lock`): Escape twice blanks the page and locks it
/// at once, and so does the time without use running out.
pub const SCRIPT: &str = r#"
(() => {
  // Requests this script makes by itself: they do not keep the page open.
  const live = { 'X-Cove-Live': '1' };
  // The page's anti-forgery value, from its own forms until the signal
  // board says it.
  const field = document.querySelector('input[name=csrf]');
  let csrf = field ? field.value : '';
  let lockAfter = null;
  let lastUsed = Date.now();
  let lastTold = Date.now();
  const post = (path) => fetch(path, { method: 'POST', credentials: 'same-origin',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ csrf }) });
  const blank = () => { document.title = 'Cove'; document.body.replaceChildren(); };
  // Locked elsewhere (by time, or on another tab): blank, then the lock page.
  const locked = () => { blank(); location.replace('/unlock'); };
  const lockNow = async () => {
    blank();
    let done = false;
    try { done = (await post('/lock')).ok; } catch (_) {}
    // If the server could not be told, leave nothing on the screen at all.
    location.replace(done ? '/unlock' : 'about:blank');
  };
  const used = () => {
    lastUsed = Date.now();
    const every = lockAfter === null ? 60000 : Math.min(60000, lockAfter / 3);
    if (csrf && lastUsed - lastTold > every) {
      lastTold = lastUsed;
      post('/alive').then((r) => { if (r.status === 423) locked(); }).catch(() => {});
    }
  };
  for (const kind of ['keydown', 'pointerdown', 'input', 'wheel', 'touchstart']) {
    document.addEventListener(kind, used, { passive: true });
  }
  let escapedAt = 0;
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape') return;
    const now = Date.now();
    if (now - escapedAt < 1500) { lockNow(); }
    escapedAt = now;
  });
  // Unused here for the whole time: ask the server, which counts every tab.
  setInterval(async () => {
    if (lockAfter === null || Date.now() - lastUsed < lockAfter) return;
    try {
      const r = await fetch('/signals.json', { credentials: 'same-origin', headers: live });
      if (r.status === 423) locked();
    } catch (_) {}
  }, 5000);
  // Kept in the back-forward cache: blank first, ask again when shown.
  window.addEventListener('pagehide', (e) => { if (e.persisted) blank(); });
  window.addEventListener('pageshow', (e) => { if (e.persisted) location.reload(); });
  let dirty = false;
  document.addEventListener('input', (e) => { if (e.target.closest && e.target.closest('form')) dirty = true; });
  const say = (id, text) => { const el = document.getElementById(id); if (el) el.textContent = text; };
  const refresh = async () => {
    const active = document.activeElement;
    if (dirty || (active && active.closest && active.closest('form') && active.tagName !== 'BUTTON')) {
      say('notice', 'The plan changed on another device. Reload the page to see it.');
      return;
    }
    const response = await fetch(location.href, { credentials: 'same-origin', headers: live });
    if (response.status === 423) { location.replace('/unlock'); return; }
    if (!response.ok) return;
    const next = new DOMParser().parseFromString(await response.text(), 'text/html').getElementById('main');
    const main = document.getElementById('main');
    if (next && main) {
      main.replaceWith(next);
      document.body.dataset.updates = String(Number(document.body.dataset.updates || '0') + 1);
    }
  };
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  };
  const answerForm = (csrf, s, answer, label) => {
    const f = el('form', 'inline');
    f.method = 'post';
    f.action = '/signal/answer';
    for (const [name, value] of [['csrf', csrf], ['from', s.from], ['sent_at', String(s.sent_at)], ['answer', answer], ['back', location.pathname]]) {
      const i = el('input');
      i.type = 'hidden'; i.name = name; i.value = value;
      f.append(i);
    }
    const b = el('button', answer === 'acknowledge' ? '' : 'quiet', label);
    b.type = 'submit';
    f.append(b);
    return f;
  };
  const drawSignals = async () => {
    let board;
    try {
      const response = await fetch('/signals.json', { credentials: 'same-origin', headers: live });
      if (response.status === 423) { location.replace('/unlock'); return; }
      if (!response.ok) return;
      board = await response.json();
    } catch (_) { return; }
    csrf = board.csrf || csrf;
    if (typeof board.lock_after_ms === 'number') lockAfter = board.lock_after_ms;
    const stop = document.getElementById('stop');
    if (stop) {
      stop.replaceChildren();
      stop.hidden = !board.stop;
      if (board.stop) {
        const s = board.stop;
        stop.append(el('h2', '', 'Stop'), el('p', 'headline', s.headline));
        if (s.response) stop.append(el('p', '', 'What you agreed to do: ' + s.response));
        stop.append(el('p', 'muted', 'Sent at ' + s.when + '.'));
        stop.append(answerForm(board.csrf, s, 'acknowledge', 'I have stopped: acknowledge'));
      }
    }
    const banner = document.getElementById('signal');
    if (banner) {
      banner.replaceChildren();
      for (const s of board.banner || []) {
        const item = el('div', s.stop ? 'incoming stop' : 'incoming');
        item.append(el('p', 'headline', s.headline));
        if (s.response) item.append(el('p', '', 'What you agreed to do: ' + s.response));
        item.append(el('p', 'muted', 'Sent at ' + s.when + '.'));
        if (!s.acknowledged) item.append(answerForm(board.csrf, s, 'acknowledge', 'Acknowledge'));
        item.append(answerForm(board.csrf, s, 'dismiss', 'Dismiss'));
        banner.append(item);
      }
    }
  };
  const connect = () => {
    const events = new EventSource('/events');
    events.addEventListener('changed', () => { refresh(); drawSignals(); });
    events.addEventListener('signal', () => { drawSignals(); });
    events.addEventListener('locked', () => { events.close(); locked(); });
    events.addEventListener('reminder', (e) => {
      let data = {};
      try { data = JSON.parse(e.data); } catch (_) { return; }
      say('notice', data.text || '');
    });
    events.onerror = () => { say('notice', 'Connection to Cove lost; retrying.'); };
    events.onopen = () => { const n = document.getElementById('notice'); if (n && n.textContent.startsWith('Connection')) n.textContent = ''; };
  };
  // On a narrow screen the sections scroll sideways in one line: keep the
  // current one in view.
  const current = document.querySelector('header nav a[aria-current]');
  if (current) current.scrollIntoView({ block: 'nearest', inline: 'center' });
  drawSignals();
  connect();
})();
"#;
