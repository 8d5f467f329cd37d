// Picidae cockpit: a single-page app over the JSON API of `picidae serve`.
//
// Pages (hash routes): #/ overview (and the remote workers: capacity, runs held, heartbeat),
// #/p/NAME program (progress chart with seed error bars, its x
// axis by attempt, time of day or elapsed time; metric-vs-parameter scatters for sweeps),
// #/p/NAME/a/SEQ attempt (runs with fingerprints, logs, a Cancel button while a run is queued or
// running, artifacts to download, the agent's transcript, related attempts from memory),
// #/findings (approve, retract, follow up; export a program's report), and the arena pages
// #/arenas and #/arena/NAME (arena.js).
// Live updates come from Server-Sent Events at /api/events (polling when a stream cannot be
// had). Everything shown is built with DOM calls and textContent: text written by agents
// (hypotheses, notes, diffs, logs) is never parsed as HTML.
//
// Auth and CSRF: the token is kept in sessionStorage (this tab only) and sent as
// `Authorization: Bearer ...` on each request. The server sets and reads no cookie, so a page
// on another origin cannot make the browser send the person's credentials: there is nothing
// ambient to forge a request with, which is what makes steering CSRF-safe.
'use strict';

const TOKEN_KEY = 'picidae.token';
const CHART_X_KEY = 'picidae.chart-x';
const SVG_NS = 'http://www.w3.org/2000/svg';
const PAGE = 25;

// ------------------------------------------------------------------ helpers

function token() {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}

function authHeaders(extra) {
  const h = Object.assign({}, extra || {});
  const t = token();
  if (t) h['Authorization'] = 'Bearer ' + t;
  return h;
}

async function errorOf(r) {
  let msg = r.status + ' ' + r.statusText;
  try {
    const body = await r.json();
    if (body && body.error) msg = r.status + ': ' + body.error;
  } catch (_) { /* not JSON */ }
  return new Error(msg);
}

async function getJSON(path) {
  const r = await fetch(path, { headers: authHeaders(), cache: 'no-store' });
  if (!r.ok) throw await errorOf(r);
  return r.json();
}

async function getText(path) {
  const r = await fetch(path, { headers: authHeaders(), cache: 'no-store' });
  if (!r.ok) throw await errorOf(r);
  return r.text();
}

async function postJSON(path, body) {
  const r = await fetch(path, {
    method: 'POST',
    headers: authHeaders({ 'Content-Type': 'application/json' }),
    body: JSON.stringify(body || {}),
  });
  if (!r.ok) throw await errorOf(r);
  return r.json();
}

const enc = encodeURIComponent;

// Fetch `path` with the token and save the answer as a file named `name` (a link would not
// carry the Authorization header when the server requires a token for reads).
async function download(path, name) {
  const r = await fetch(path, { headers: authHeaders(), cache: 'no-store' });
  if (!r.ok) throw await errorOf(r);
  const url = URL.createObjectURL(await r.blob());
  const a = h('a', { href: url, download: name, hidden: true });
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// A steering action from a page: says what it does in `msg`, refuses without a token, shows
// the answer (or the error) and calls `after` when it succeeded.
async function steerAction(msg, what, f, after) {
  if (!token()) {
    replace(msg, h('span', { class: 'error', text: 'Enter a write token above (picidae token create NAME) to ' + what + '.' }));
    return;
  }
  replace(msg, h('span', { class: 'muted', text: what + '…' }));
  try {
    const done = await f();
    replace(msg, h('span', { class: 'ok', text: done }));
    if (after) after();
  } catch (e) {
    replace(msg, errorBox(e));
  }
}

function bytes(n) {
  if (n < 1024) return n + ' B';
  if (n < 1024 * 1024) return fmt(n / 1024) + ' KiB';
  if (n < 1024 * 1024 * 1024) return fmt(n / 1024 / 1024) + ' MiB';
  return fmt(n / 1024 / 1024 / 1024) + ' GiB';
}

// h('div', {class: 'x', onclick: f}, child, 'text', ...)
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'text') el.textContent = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function fmt(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (typeof v !== 'number') return String(v);
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(3);
  return String(Number(v.toPrecision(5)));
}

function fmtSigned(v) {
  if (v === null || v === undefined) return '–';
  return (v > 0 ? '+' : '') + fmt(v);
}

function when(ms) {
  if (!ms) return '–';
  const d = new Date(ms);
  return d.toLocaleString();
}

function badge(text) {
  return h('span', { class: 'badge ' + text, text });
}

function bar(used, max) {
  if (max === null || max === undefined) return null;
  const frac = max > 0 ? used / max : 1;
  const b = h('div', { class: 'bar' + (frac >= 1 ? ' over' : ''), title: fmt(frac * 100) + '%' },
    h('span', {}));
  b.firstChild.style.width = Math.min(100, Math.max(0, frac * 100)) + '%';
  return b;
}

function usedOf(used, max, digits) {
  const u = digits === undefined ? String(used) : Number(used).toFixed(digits);
  return max === null || max === undefined ? u + ' / –' : u + ' / ' + max;
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

function replace(el, ...children) {
  clear(el);
  append(el, children);
}

function errorBox(e) {
  return h('p', { class: 'error', text: String(e && e.message ? e.message : e) });
}

// ------------------------------------------------------------------ token

function showTokenState() {
  const st = document.getElementById('token-state');
  st.textContent = token() ? 'token set (this tab)' : 'no token: read-only';
  st.className = token() ? 'ok' : 'muted';
}

function setupToken() {
  const form = document.getElementById('token-form');
  const input = document.getElementById('token-input');
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const t = input.value.trim();
    if (t) sessionStorage.setItem(TOKEN_KEY, t);
    input.value = '';
    showTokenState();
    if (current) current.update();
  });
  document.getElementById('token-forget').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    showTokenState();
  });
  showTokenState();
}

// ------------------------------------------------------------------ live updates

let current = null; // the mounted view: {update()}
let pending = null;
let pollTimer = null;
let events = null;

function setLive(on, text) {
  const el = document.getElementById('live');
  el.className = 'live ' + (on ? 'on' : 'off');
  el.textContent = text;
}

function refreshSoon() {
  if (pending) return;
  pending = setTimeout(() => {
    pending = null;
    if (current) current.update();
  }, 250);
}

function connectEvents() {
  if (!window.EventSource) return startPolling();
  events = new EventSource('/api/events');
  events.onopen = () => {
    setLive(true, '● live');
    stopPolling();
  };
  const onEvent = (ev) => {
    let data = null;
    try { data = JSON.parse(ev.data); } catch (_) { /* ignore */ }
    if (current && current.onEvent) current.onEvent(ev.type, data);
    refreshSoon();
  };
  events.addEventListener('run', onEvent);
  events.addEventListener('attempt', onEvent);
  events.onerror = () => {
    // The browser reconnects by itself unless the server refused the stream (then: poll).
    if (events.readyState === EventSource.CLOSED) startPolling();
    else setLive(false, '○ reconnecting');
  };
}

function startPolling() {
  setLive(false, '○ polling');
  if (!pollTimer) pollTimer = setInterval(() => current && current.update(), 5000);
}

function stopPolling() {
  if (pollTimer) clearInterval(pollTimer);
  pollTimer = null;
}

// ------------------------------------------------------------------ overview

// Where each run belongs (program, attempt number): fixed once known, so asked once a run.
const runPlace = new Map();

async function placeRuns(ids) {
  await Promise.all(ids.filter((id) => !runPlace.has(id)).map(async (id) => {
    try {
      const r = await getJSON('/api/runs/' + id);
      runPlace.set(id, { program: r.program, seq: r.attempt_seq });
    } catch (_) { /* shown without a link */ }
  }));
}

function ago(ms, now) {
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 120) return s + ' s ago';
  if (s < 7200) return Math.round(s / 60) + ' min ago';
  if (s < 172800) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' days ago';
}

// The table of remote workers (`GET /api/workers`) as of `now` (ms): a worker whose last
// heartbeat is older than its lease is marked lost.
function workersTable(list, now) {
  const head = h('tr', {}, ['Worker', 'Pool', 'Fingerprint', 'GPUs', 'CPUs', 'Memory', 'Runs in flight', 'Heartbeat'].map(
    (t, i) => h('th', { class: i >= 3 && i !== 6 ? 'num' : '', text: t })));
  const rows = list.map((w) => {
    const cap = w.capacity || {};
    const gpus = Array.isArray(cap.gpus) ? cap.gpus : [];
    const runs = w.runs || [];
    const lost = now - w.heartbeat_at > w.lease_secs * 1000;
    const runLink = (id) => {
      const at = runPlace.get(id);
      return at
        ? h('a', { class: 'run-link', 'data-run': id, href: '#/p/' + enc(at.program) + '/a/' + at.seq,
          title: at.program + ' #' + at.seq, text: 'run ' + id })
        : h('span', { class: 'run-link', 'data-run': id, text: 'run ' + id });
    };
    return h('tr', { 'data-worker': w.name, 'data-lost': lost ? 'yes' : 'no', class: lost ? 'lost' : null },
      h('td', {}, h('span', { class: 'worker-name', text: w.name }), lost
        ? [' ', h('span', { class: 'badge lost', text: 'lost',
          title: 'no heartbeat for longer than its lease (' + fmt(w.lease_secs) + ' s): its runs go back to the pool' })]
        : null),
      h('td', { class: w.pool ? '' : 'muted', text: w.pool || 'default' }),
      h('td', { class: 'mono', title: w.fingerprint || 'not recorded', text: w.fingerprint ? w.fingerprint.slice(0, 12) : '–' }),
      h('td', { class: 'num', 'data-testid': 'worker-gpus', title: gpus.length ? 'GPUs ' + gpus.join(', ') : 'no GPU', text: String(gpus.length) }),
      h('td', { class: 'num', text: cap.cpus ? String(cap.cpus) : '–' }),
      h('td', { class: 'num', text: cap.memory_mb ? bytes(cap.memory_mb * 1024 * 1024) : '–' }),
      h('td', { 'data-testid': 'worker-runs' }, String(runs.length),
        runs.length ? [': ', runs.map((id, i) => [i ? ', ' : null, runLink(id)])] : null),
      h('td', { class: 'num', title: 'last heartbeat ' + when(w.heartbeat_at) + ', lease ' + fmt(w.lease_secs) + ' s',
        text: ago(w.heartbeat_at, now) }));
  });
  return h('table', { id: 'workers-table' }, h('thead', {}, head), h('tbody', {}, rows));
}

// A program's leaderboard (`GET /api/programs/{name}/leaderboard`): contributors by verified
// gain, with what they claimed, what was verified, refuted or refused, and the runs spent.
function leaderboardTable(list) {
  const head = h('tr', {}, ['Contributor', 'Claims', 'Verified', 'Refuted', 'Refused', 'Verified / decided', 'Verified gain', 'Runs'].map(
    (t, i) => h('th', { class: i ? 'num' : '', text: t })));
  const rows = list.map((s) => h('tr', { 'data-contributor': s.contributor },
    h('td', { text: s.contributor }),
    h('td', { class: 'num', text: String(s.claims) }),
    h('td', { class: 'num', 'data-testid': 'verified', text: String(s.verified) }),
    h('td', { class: 'num', text: String(s.refuted) }),
    h('td', { class: 'num', text: String(s.refused) }),
    h('td', { class: 'num', text: s.verified_ratio === null ? '–' : Math.round(s.verified_ratio * 100) + '%' }),
    h('td', { class: 'num mono', 'data-testid': 'verified-gain', text: fmt(s.verified_gain) }),
    h('td', { class: 'num', text: String(s.runs) })));
  return h('table', { id: 'leaderboard' }, h('thead', {}, head), h('tbody', {}, rows));
}

function overviewView(root) {
  const cards = h('div', { class: 'cards', id: 'status-cards' });
  const table = h('div', { id: 'programs' });
  const err = h('div');
  // Empty while no worker registered.
  const workers = h('div', { id: 'workers' });
  append(root, [h('h1', { text: 'Programs' }), cards, err, table, workers]);

  async function showWorkers() {
    const list = await getJSON('/api/workers').catch(() => null);
    if (!list || !list.length) {
      clear(workers);
      return;
    }
    await placeRuns(list.flatMap((w) => w.runs || []));
    const lost = list.filter((w) => Date.now() - w.heartbeat_at > w.lease_secs * 1000).length;
    replace(workers, h('h2', {}, 'Workers ', h('span', { class: 'muted', text: list.length + ' registered' + (lost ? ', ' + lost + ' lost' : '') })),
      workersTable(list, Date.now()));
  }
  // Workers register and heartbeat without events: ask again every few seconds while shown.
  const timer = setInterval(() => {
    if (!workers.isConnected) clearInterval(timer);
    else showWorkers();
  }, 5000);

  async function update() {
    showWorkers();
    let list, st, findings;
    try {
      [list, st, findings] = await Promise.all([
        getJSON('/api/programs'),
        getJSON('/api/cockpit/status').catch(() => null),
        getJSON('/api/findings').catch(() => ({ findings: [] })),
      ]);
    } catch (e) {
      replace(err, errorBox(e));
      return;
    }
    clear(err);
    const details = await Promise.all(list.programs.map(
      (p) => getJSON('/api/programs/' + enc(p.name)).catch(() => null)));
    const nFindings = {};
    for (const f of findings.findings) nFindings[f.program] = (nFindings[f.program] || 0) + 1;

    const active = list.programs.filter((p) => p.status === 'active').length;
    const slotCard = h('div', { class: 'card' }, h('div', { class: 'muted', text: 'Slots in use' }));
    if (st && st.slots_capacity !== null) {
      append(slotCard, [
        h('div', { class: 'big', 'data-testid': 'slots', text: fmt(st.slots_in_use) + ' / ' + fmt(st.slots_capacity) }),
        bar(st.slots_in_use, st.slots_capacity),
        h('div', { class: 'muted', text: 'utilisation ' + fmt(100 * (st.slot_utilisation || 0)) + '%' }),
      ]);
    } else {
      append(slotCard, h('div', { class: 'big', text: '–' }), h('div', { class: 'muted', text: 'no coordinator metrics' }));
    }
    const gpuCard = h('div', { class: 'card' }, h('div', { class: 'muted', text: 'GPUs in use' }),
      h('div', { class: 'big', text: st && st.gpus_capacity !== null ? fmt(st.gpus_in_use) + ' / ' + fmt(st.gpus_capacity) : '–' }));
    const progCard = h('div', { class: 'card' }, h('div', { class: 'muted', text: 'Programs' }),
      h('div', { class: 'big', text: active + ' active' }),
      h('div', { class: 'muted', text: (list.programs.length - active) + ' paused' }));
    const runs = list.programs.reduce((n, p) => n + p.runs, 0);
    const runCard = h('div', { class: 'card' }, h('div', { class: 'muted', text: 'Runs, all programs' }),
      h('div', { class: 'big', 'data-testid': 'total-runs', text: String(runs) }));
    replace(cards, slotCard, gpuCard, progCard, runCard);

    if (!list.programs.length) {
      replace(table, h('p', { class: 'muted', text: 'No programs yet: create one with `picidae program create`.' }));
      return;
    }
    const head = h('tr', {}, ['Program', 'Status', 'Weight', 'Runs / budget', 'GPU-hours / budget',
      'USD / budget', 'Best vs baseline', 'Attempts', 'Findings', 'Slots'].map(
      (t, i) => h('th', { class: i >= 2 && i !== 6 ? 'num' : '', text: t })));
    const rows = list.programs.map((p, i) => {
      const d = details[i];
      const base = d && d.frontier.baseline ? d.frontier.baseline.value : null;
      const best = h('td', {},
        h('span', { class: 'mono', text: fmt(p.frontier_value) }),
        base !== null && p.frontier_value !== null
          ? h('span', { class: 'muted', text: ' (baseline ' + fmt(base) + ', Δ ' + fmtSigned(p.frontier_value - base) + ')' })
          : null);
      return h('tr', { 'data-program': p.name },
        h('td', {}, h('a', { href: '#/p/' + enc(p.name), text: p.name })),
        h('td', {}, h('span', { class: 'badge ' + p.status, 'data-testid': 'status-' + p.name, text: p.status,
          title: p.paused_reason || '' })),
        h('td', { class: 'num', text: fmt(p.weight) }),
        h('td', { class: 'num' },
          h('span', { 'data-testid': 'runs-' + p.name, text: String(p.runs) }),
          ' / ' + (p.max_runs === null ? '–' : p.max_runs), bar(p.runs, p.max_runs)),
        h('td', { class: 'num' }, usedOf(p.gpu_hours, p.max_gpu_hours, 3), bar(p.gpu_hours, p.max_gpu_hours)),
        h('td', { class: 'num' }, usedOf(p.usd, p.max_usd, 2), bar(p.usd, p.max_usd)),
        best,
        h('td', { class: 'num', text: String(p.attempts) }),
        h('td', { class: 'num' }, h('a', { href: '#/findings?program=' + enc(p.name), text: String(nFindings[p.name] || 0) })),
        h('td', { class: 'num', text: st && st.program_slots ? fmt(st.program_slots[p.name] || 0) : '–' }));
    });
    replace(table, h('table', { id: 'programs-table' }, h('thead', {}, head), h('tbody', {}, rows)));
  }
  return { update };
}

// ------------------------------------------------------------------ the progress chart

function niceStep(span, n) {
  const raw = span / Math.max(1, n);
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const f = raw / mag;
  return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * mag;
}

function ticks(lo, hi, n) {
  const step = niceStep(hi - lo, n);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

const MARK = {
  kept: { color: '#1a7f37', label: 'kept attempt (mean of seeds)' },
  discarded: { color: '#8c959f', label: 'discarded attempt' },
  running: { color: '#0969da', label: 'running / proposed' },
  failed: { color: '#cf222e', label: 'failed / crashed (no value)' },
  invalid: { color: '#bc4c00', label: 'invalid run' },
  rejected: { color: '#57606a', label: 'rejected / duplicate (not run)' },
};

function markerFor(kind, x, y, size) {
  const s = size || 5;
  const c = (MARK[kind] || MARK.discarded).color;
  switch (kind) {
    case 'kept':
    case 'discarded':
      return svg('circle', { cx: x, cy: y, r: s, fill: c, stroke: '#fff', 'stroke-width': 1 });
    case 'running':
      return svg('circle', { cx: x, cy: y, r: s, fill: 'none', stroke: c, 'stroke-width': 2 });
    case 'failed':
      return svg('path', { d: `M${x - s},${y - s}L${x + s},${y + s}M${x - s},${y + s}L${x + s},${y - s}`, stroke: c, 'stroke-width': 2 });
    case 'invalid':
      return svg('path', { d: `M${x},${y - s}L${x + s},${y + s}L${x - s},${y + s}Z`, fill: 'none', stroke: c, 'stroke-width': 1.5 });
    default:
      return svg('rect', { x: x - s + 1, y: y - s + 1, width: 2 * s - 2, height: 2 * s - 2, fill: 'none', stroke: c, 'stroke-width': 1.5 });
  }
}

function attemptMark(status) {
  if (status === 'kept') return 'kept';
  if (status === 'discarded') return 'discarded';
  if (status === 'failed') return 'failed';
  if (status === 'rejected' || status === 'duplicate') return 'rejected';
  return 'running';
}

function runMark(status) {
  if (status === 'invalid') return 'invalid';
  if (status === 'failed' || status === 'crashed' || status === 'timed-out') return 'failed';
  if (status === 'succeeded') return 'run';
  return 'running';
}

// The x axis of the progress chart, in one of three modes: `attempt` (x = attempt number),
// `clock` (x = wall-clock time, ticks in local time of day) or `elapsed` (x = time since the
// program's first attempt, in s, min, h or days). An attempt sits where it was decided (while
// undecided: where it was proposed), a run where it finished (or started), a frontier move
// where it was made.
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800,
  21600, 43200, 86400, 172800, 604800].map((s) => s * 1000);

function pad2(n) {
  return String(n).padStart(2, '0');
}

function attemptTime(a) {
  if (a.decided_at) return a.decided_at;
  const ends = a.runs.map((r) => r.finished_at || r.started_at).filter(Boolean);
  return ends.length ? Math.max(...ends) : a.created_at;
}

function chartX(mode, data, frontier, left, width) {
  const at = data.attempts;
  if (mode !== 'clock' && mode !== 'elapsed') {
    const maxSeq = Math.max(1, ...at.map((a) => a.seq));
    const x = (seq) => left + ((seq - 0.5) / maxSeq) * width;
    const tv = ticks(0.5, maxSeq + 0.5, Math.min(10, maxSeq)).filter((v) => Number.isInteger(v) && v >= 1);
    return {
      mode: 'attempt',
      attempt: (a) => x(a.seq),
      run: (a, r, i) => x(a.seq) + (i - (a.runs.length - 1) / 2) * 3,
      frontier: (p) => x(p.seq),
      end: x(maxSeq + 0.5),
      ticks: tv.map((v) => ({ at: x(v), label: String(v) })),
      label: 'attempt # (1 = first proposed; unit: one attempt)',
      title: 'by attempt',
    };
  }
  const times = [];
  for (const a of at) {
    times.push(a.created_at, attemptTime(a));
    for (const r of a.runs) if (r.finished_at || r.started_at) times.push(r.finished_at || r.started_at);
  }
  for (const p of frontier.history) times.push(p.at);
  const known = times.filter(Number.isFinite);
  let t0 = known.length ? Math.min(...known) : Date.now();
  let t1 = known.length ? Math.max(...known) : t0;
  if (t1 - t0 < 10000) { t1 = t0 + 10000; }
  const span = t1 - t0;
  const lo = t0 - span * 0.02, hi = t1 + span * 0.02;
  const x = (t) => left + ((t - lo) / (hi - lo)) * width;
  const runTime = (a, r) => r.finished_at || r.started_at || attemptTime(a);
  const base = {
    attempt: (a) => x(attemptTime(a)),
    run: (a, r) => x(runTime(a, r)),
    frontier: (p) => x(p.at),
    end: x(hi),
  };
  if (mode === 'elapsed') {
    const [unit, name] = span < 120e3 ? [1e3, 's'] : span < 2 * 3600e3 ? [60e3, 'min']
      : span < 48 * 3600e3 ? [3600e3, 'h'] : [86400e3, 'days'];
    const tv = ticks(Math.max(0, (lo - t0) / unit), (hi - t0) / unit, 8).filter((v) => v >= 0);
    return Object.assign(base, {
      mode: 'elapsed',
      ticks: tv.map((v) => ({ at: x(t0 + v * unit), label: fmt(v) })),
      label: 'elapsed time since the first attempt (' + name + ')',
      title: 'over elapsed time',
    });
  }
  const step = TIME_STEPS.find((s) => span / s <= 8) || 604800e3;
  const offset = new Date(t0).getTimezoneOffset() * 60e3;
  const tv = [];
  for (let t = Math.ceil((lo - offset) / step) * step + offset; t <= hi; t += step) tv.push(t);
  const days = new Date(t0).toDateString() !== new Date(t1).toDateString();
  const label = (t) => {
    const d = new Date(t);
    let s = pad2(d.getHours()) + ':' + pad2(d.getMinutes());
    if (step < 60e3) s += ':' + pad2(d.getSeconds());
    if (days) s = pad2(d.getMonth() + 1) + '-' + pad2(d.getDate()) + ' ' + s;
    return s;
  };
  const first = new Date(t0);
  return Object.assign(base, {
    mode: 'clock',
    ticks: tv.map((t) => ({ at: x(t), label: label(t) })),
    label: 'time of day (local, ' + (days ? 'MM-DD ' : '') + 'HH:MM' + (step < 60e3 ? ':SS' : '') +
      '), from ' + first.getFullYear() + '-' + pad2(first.getMonth() + 1) + '-' + pad2(first.getDate()),
    title: 'over wall-clock time',
  });
}

// The progress chart: x = attempt number or time (see chartX), y = the primary metric. Every
// run is a small dot, every attempt its mean; the kept frontier is a step line; attempts and
// runs without a value sit in a band under the plot.
function chartSvg(data, frontier, program, xMode) {
  const W = 900, H = 380;
  const m = { l: 72, r: 16, t: 40, b: 46 };
  const band = 26;
  const pw = W - m.l - m.r, ph = H - m.t - m.b - band;
  const at = data.attempts;
  const X = chartX(xMode, data, frontier, m.l, pw);
  const values = [];
  for (const a of at) {
    if (Number.isFinite(a.value)) values.push(a.value);
    for (const r of a.runs) if (Number.isFinite(r.value)) values.push(r.value);
  }
  for (const p of frontier.history) values.push(p.value);
  const what = 'Progress of ' + program + ': ' + data.metric + ' ' + X.title;
  const root = svg('svg', {
    class: 'chart', id: 'progress-chart', viewBox: `0 0 ${W} ${H}`, role: 'img',
    'aria-label': what, 'data-x': X.mode,
  });
  append(root, svg('title', {}, what));
  let lo = values.length ? Math.min(...values) : 0;
  let hi = values.length ? Math.max(...values) : 1;
  if (hi === lo) { const d = Math.abs(hi) * 0.1 || 1; lo -= d; hi += d; }
  const padY = (hi - lo) * 0.06;
  lo -= padY; hi += padY;
  const yt = ticks(lo, hi, 6);
  const y = (v) => m.t + ((hi - v) / (hi - lo)) * ph;
  const bandY = m.t + ph + band / 2 + 2;

  // Grid and axes.
  const g = svg('g', {});
  for (const v of yt) {
    append(g, svg('line', { class: 'grid', x1: m.l, x2: m.l + pw, y1: y(v), y2: y(v) }),
      svg('line', { class: 'axis', x1: m.l - 5, x2: m.l, y1: y(v), y2: y(v) }),
      svg('text', { x: m.l - 8, y: y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
  }
  const xTicks = svg('g', { class: 'x-ticks' });
  for (const t of X.ticks) {
    append(xTicks, svg('line', { class: 'axis', x1: t.at, x2: t.at, y1: m.t + ph + band, y2: m.t + ph + band + 5 }),
      svg('text', { x: t.at, y: m.t + ph + band + 18, 'text-anchor': 'middle' }, t.label));
  }
  append(g, xTicks,
    svg('line', { class: 'axis', x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph + band }),
    svg('line', { class: 'axis', x1: m.l, x2: m.l + pw, y1: m.t + ph + band, y2: m.t + ph + band }),
    svg('line', { class: 'grid', x1: m.l, x2: m.l + pw, y1: m.t + ph + 2, y2: m.t + ph + 2, 'stroke-dasharray': '3 3' }),
    svg('text', { x: m.l - 8, y: bandY + 4, 'text-anchor': 'end' }, 'no value'),
    svg('text', { class: 'label x-label', x: m.l + pw / 2, y: H - 8, 'text-anchor': 'middle' }, X.label),
    svg('text', {
      class: 'label', x: 16, y: m.t + ph / 2, 'text-anchor': 'middle',
      transform: `rotate(-90 16 ${m.t + ph / 2})`,
    }, data.metric + (data.goal === 'minimize' ? ' (lower is better)' : data.goal === 'maximize' ? ' (higher is better)' : '')));
  append(root, g);

  // Baseline and the kept frontier as a step line.
  const hist = frontier.history.slice().sort((a, b) => X.frontier(a) - X.frontier(b));
  if (frontier.baseline) {
    const by = y(frontier.baseline.value);
    append(root, svg('line', { x1: m.l, x2: m.l + pw, y1: by, y2: by, stroke: '#57606a', 'stroke-dasharray': '6 4', 'stroke-width': 1 },
      svg('title', {}, 'baseline ' + data.metric + ' = ' + fmt(frontier.baseline.value))));
  }
  if (hist.length) {
    let d = `M${X.frontier(hist[0])},${y(hist[0].value)}`;
    for (const p of hist.slice(1)) d += `H${X.frontier(p)}V${y(p.value)}`;
    d += `H${X.end}`;
    append(root, svg('path', { id: 'frontier-line', d, fill: 'none', stroke: '#8250df', 'stroke-width': 2 },
      svg('title', {}, 'kept frontier: best ' + data.metric + ' so far')));
  }

  // Runs (small) under attempts (large).
  const runs = svg('g', {});
  const pts = svg('g', {});
  const bars = svg('g', { class: 'seed-bars' });
  for (const a of at) {
    const ax = X.attempt(a);
    const vals = a.runs.map((r) => r.value).filter(Number.isFinite);
    if (vals.length >= 2) {
      // Verification seeds: a bar from the lowest to the highest seed's value, with caps.
      const vlo = Math.min(...vals), vhi = Math.max(...vals);
      const mean = vals.reduce((s, v) => s + v, 0) / vals.length;
      const sd = Math.sqrt(vals.reduce((s, v) => s + (v - mean) * (v - mean), 0) / (vals.length - 1));
      const cap = 4;
      append(bars, svg('path', {
        class: 'seed-bar', 'data-seq': a.seq,
        d: `M${ax},${y(vhi)}V${y(vlo)}M${ax - cap},${y(vhi)}H${ax + cap}M${ax - cap},${y(vlo)}H${ax + cap}`,
        stroke: '#6e7781', 'stroke-width': 1.2, fill: 'none',
      }, svg('title', {}, `#${a.seq}: ${vals.length} seeds, ${data.metric} from ${fmt(vlo)} to ${fmt(vhi)} (mean ${fmt(mean)} ± ${fmt(sd)} sd)`)));
    }
    a.runs.forEach((r, i) => {
      const kind = runMark(r.status);
      const rx = X.run(a, r, i);
      const ry = Number.isFinite(r.value) ? y(r.value) : bandY;
      const el = kind === 'run'
        ? svg('circle', { cx: rx, cy: ry, r: 2.2, fill: '#6e7781', opacity: 0.6 })
        : markerFor(kind === 'running' ? 'running' : kind, rx, ry, 3);
      append(el, svg('title', {}, `#${a.seq} run ${r.id} seed ${r.seed}: ${r.status}, ${data.metric} = ${fmt(r.value)}` +
        (r.finished_at ? ', finished ' + when(r.finished_at) : '')));
      append(runs, el);
    });
    const kind = attemptMark(a.status);
    const ay = Number.isFinite(a.value) ? y(a.value) : bandY;
    const gpt = svg('g', {
      class: 'pt', 'data-seq': a.seq, 'data-status': a.status, 'data-x': ax.toFixed(1),
      'data-t': X.mode === 'attempt' ? null : attemptTime(a),
    },
      markerFor(kind, ax, ay, 5),
      svg('title', {}, `#${a.seq} ${a.status} (${a.kind}) — ${data.metric} = ${fmt(a.value)}, ` +
        (a.decided_at ? 'decided ' + when(a.decided_at) : 'proposed ' + when(a.created_at)) + `\n${a.hypothesis}`));
    gpt.addEventListener('click', () => { location.hash = '#/p/' + enc(program) + '/a/' + a.seq; });
    append(pts, gpt);
  }
  append(root, bars, runs, pts);

  // Legend, above the plot.
  const legend = svg('g', { class: 'legend' });
  let lx = m.l;
  const item = (el, label) => {
    append(legend, el, svg('text', { x: lx + 10, y: 18 }, label));
    lx += 22 + label.length * 6.1;
  };
  item(markerFor('kept', lx + 2, 14, 5), 'kept');
  item(markerFor('discarded', lx + 2, 14, 5), 'discarded');
  item(markerFor('running', lx + 2, 14, 5), 'running');
  item(markerFor('failed', lx + 2, 14, 4), 'failed/crashed');
  item(markerFor('invalid', lx + 2, 14, 4), 'invalid run');
  item(markerFor('rejected', lx + 2, 14, 5), 'rejected/duplicate');
  item(svg('circle', { cx: lx + 2, cy: 14, r: 2.2, fill: '#6e7781' }), 'one seed');
  item(svg('path', { d: `M${lx + 2},8V20M${lx - 2},8H${lx + 6}M${lx - 2},20H${lx + 6}`, stroke: '#6e7781', 'stroke-width': 1.2, fill: 'none' }), 'seeds min–max');
  item(svg('line', { x1: lx - 6, x2: lx + 6, y1: 14, y2: 14, stroke: '#8250df', 'stroke-width': 2 }), 'frontier');
  item(svg('line', { x1: lx - 6, x2: lx + 6, y1: 14, y2: 14, stroke: '#57606a', 'stroke-dasharray': '4 3' }), 'baseline');
  append(root, legend);
  if (!at.length) {
    append(root, svg('text', { class: 'label', x: m.l + pw / 2, y: m.t + ph / 2, 'text-anchor': 'middle' }, 'no attempts yet'));
  }
  return root;
}

// ------------------------------------------------------------------ metric vs parameter

// For a sweep: one small scatter per parameter, x = the parameter's value (log scale when all
// values are positive and span more than two decades; categories in sorted order when not
// numbers), y = the attempt's primary value. Empty when no attempt has parameters.
function paramScatters(data, program) {
  const withParams = data.attempts.filter((a) => a.params && typeof a.params === 'object' &&
    !Array.isArray(a.params) && Number.isFinite(a.value));
  const keys = [...new Set(withParams.flatMap((a) => Object.keys(a.params)))].sort();
  return keys.map((key) => {
    const pts = withParams.filter((a) => a.params[key] !== undefined && a.params[key] !== null)
      .map((a) => ({ a, v: a.params[key] }));
    // Values are stored as the text the sweep wrote (`"16"`, `"0.003"`): a number is a number
    // whichever way it arrives.
    const asNumber = (v) => (typeof v === 'number' ? v
      : typeof v === 'string' && /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/.test(v) ? Number(v) : NaN);
    const numeric = pts.length > 0 && pts.every((p) => Number.isFinite(asNumber(p.v)));
    const cats = numeric ? [] : [...new Set(pts.map((p) => JSON.stringify(p.v)))].sort();
    const xs = numeric ? pts.map((p) => asNumber(p.v)) : pts.map((p) => cats.indexOf(JSON.stringify(p.v)));
    const ys = pts.map((p) => p.a.value);
    const W = 320, H = 230;
    const m = { l: 58, r: 12, t: 26, b: 40 };
    const pw = W - m.l - m.r, ph = H - m.t - m.b;
    const pos = xs.filter((v) => v > 0);
    const log = numeric && pos.length === xs.length && xs.length > 0 &&
      Math.max(...xs) / Math.min(...xs) > 100;
    const tx = (v) => (log ? Math.log10(v) : v);
    let xlo = xs.length ? Math.min(...xs.map(tx)) : 0, xhi = xs.length ? Math.max(...xs.map(tx)) : 1;
    if (!numeric) { xlo = -0.5; xhi = Math.max(0.5, cats.length - 0.5); }
    if (xhi === xlo) { const d = Math.abs(xhi) * 0.1 || 1; xlo -= d; xhi += d; }
    let ylo = ys.length ? Math.min(...ys) : 0, yhi = ys.length ? Math.max(...ys) : 1;
    if (yhi === ylo) { const d = Math.abs(yhi) * 0.1 || 1; ylo -= d; yhi += d; }
    const padX = numeric ? (xhi - xlo) * 0.05 : 0, padY = (yhi - ylo) * 0.08;
    xlo -= padX; xhi += padX; ylo -= padY; yhi += padY;
    const X = (v) => m.l + ((tx(v) - xlo) / (xhi - xlo)) * pw;
    const Xi = (i) => m.l + ((i - xlo) / (xhi - xlo)) * pw;
    const Y = (v) => m.t + ((yhi - v) / (yhi - ylo)) * ph;
    const title = data.metric + ' vs ' + key;
    const root = svg('svg', {
      class: 'chart scatter', 'data-param': key, viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title,
    }, svg('title', {}, title));
    const g = svg('g', {});
    for (const v of ticks(ylo, yhi, 4)) {
      append(g, svg('line', { class: 'grid', x1: m.l, x2: m.l + pw, y1: Y(v), y2: Y(v) }),
        svg('text', { x: m.l - 6, y: Y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
    }
    let xticks;
    if (!numeric) xticks = cats.map((c, i) => ({ at: Xi(i), label: c.replace(/^"|"$/g, '') }));
    else if (log) {
      xticks = [];
      for (let e = Math.ceil(xlo); e <= Math.floor(xhi); e++) xticks.push({ at: X(Math.pow(10, e)), label: '1e' + e });
    } else xticks = ticks(xlo, xhi, 4).map((v) => ({ at: X(v), label: fmt(v) }));
    for (const t of xticks) {
      append(g, svg('line', { class: 'axis', x1: t.at, x2: t.at, y1: m.t + ph, y2: m.t + ph + 4 }),
        svg('text', { x: t.at, y: m.t + ph + 15, 'text-anchor': 'middle' }, t.label.slice(0, 12)));
    }
    append(g,
      svg('line', { class: 'axis', x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph }),
      svg('line', { class: 'axis', x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph }),
      svg('text', { class: 'label', x: W / 2, y: 16, 'text-anchor': 'middle' }, title),
      svg('text', { class: 'label', x: m.l + pw / 2, y: H - 6, 'text-anchor': 'middle' },
        key + (log ? ' (log scale)' : numeric ? '' : ' (categories)')),
      svg('text', { class: 'label', x: 12, y: m.t + ph / 2, 'text-anchor': 'middle', transform: `rotate(-90 12 ${m.t + ph / 2})` }, data.metric));
    append(root, g);
    pts.forEach((p, i) => {
      const px = numeric ? X(xs[i]) : Xi(xs[i]);
      const el = svg('g', { class: 'pt', 'data-seq': p.a.seq }, markerFor(attemptMark(p.a.status), px, Y(p.a.value), 4),
        svg('title', {}, `#${p.a.seq} ${p.a.status}: ${key} = ${JSON.stringify(p.v)}, ${data.metric} = ${fmt(p.a.value)}`));
      el.addEventListener('click', () => { location.hash = '#/p/' + enc(program) + '/a/' + p.a.seq; });
      append(root, el);
    });
    return root;
  });
}

// ------------------------------------------------------------------ program page

function programView(root, name) {
  const head = h('div');
  const msg = h('div', { class: 'msg', id: 'steer-msg' });
  const pauseBtn = h('button', { id: 'toggle-pause', type: 'button', class: 'primary', text: 'Pause' });
  const weight = h('input', { id: 'weight-input', type: 'number', step: 'any', min: '0', class: 'narrow' });
  const concurrency = h('input', { id: 'concurrency-input', type: 'number', step: '1', min: '1', placeholder: 'contract', class: 'narrow' });
  const maxRuns = h('input', { id: 'max-runs-input', type: 'number', step: '1', min: '0', placeholder: 'none', class: 'narrow' });
  const maxGpu = h('input', { id: 'max-gpu-input', type: 'number', step: 'any', min: '0', placeholder: 'none', class: 'narrow' });
  const maxUsd = h('input', { id: 'max-usd-input', type: 'number', step: 'any', min: '0', placeholder: 'none', class: 'narrow' });
  const followText = h('textarea', { id: 'followup-text', placeholder: 'An idea for the next agent turn, e.g. “try a cosine schedule”' });
  const followups = h('div', { id: 'followups' });
  let status = null;

  async function act(what, f) {
    if (!token()) {
      replace(msg, h('span', { class: 'error', text: 'Enter a write token above (picidae token create NAME) to steer.' }));
      return;
    }
    replace(msg, h('span', { class: 'muted', text: what + '…' }));
    try {
      const done = await f();
      replace(msg, h('span', { class: 'ok', text: done }));
      update();
    } catch (e) {
      replace(msg, errorBox(e));
    }
  }
  const base = '/api/programs/' + enc(name);
  pauseBtn.addEventListener('click', () => {
    const verb = status === 'paused' ? 'resume' : 'pause';
    act(verb, async () => {
      const p = await postJSON(base + '/' + verb);
      return p.status === 'paused' ? 'paused: no new attempt starts (the one in flight finishes)' : 'resumed';
    });
  });
  const numOrNull = (el) => (el.value.trim() === '' ? null : Number(el.value));
  const steer = h('div', { class: 'panel' },
    h('div', { class: 'steer' },
      h('form', { onsubmit: (ev) => ev.preventDefault() }, h('label', { text: 'Dispatch' }), pauseBtn),
      h('form', {
        onsubmit: (ev) => {
          ev.preventDefault();
          act('weight', async () => 'weight set to ' + (await postJSON(base + '/weight', { weight: Number(weight.value) })).weight);
        },
      }, h('label', { for: 'weight-input', text: 'Fair-share weight' }), weight, h('button', { id: 'weight-set', type: 'submit', text: 'Set' })),
      h('form', {
        onsubmit: (ev) => {
          ev.preventDefault();
          act('concurrency', async () => {
            const p = await postJSON(base + '/concurrency', { concurrency: numOrNull(concurrency) });
            return 'concurrency: ' + (p.concurrency == null ? "the contract's" : p.concurrency + ' attempts in flight');
          });
        },
      }, h('label', { for: 'concurrency-input', text: 'Attempts in flight (empty = contract)' }), concurrency,
      h('button', { id: 'concurrency-set', type: 'submit', text: 'Set' })),
      h('form', {
        onsubmit: (ev) => {
          ev.preventDefault();
          act('budget', async () => {
            const p = await postJSON(base + '/budget', {
              max_runs: numOrNull(maxRuns), max_gpu_hours: numOrNull(maxGpu), max_usd: numOrNull(maxUsd),
            });
            return 'budgets: ' + (p.max_runs ?? 'no') + ' runs, ' + (p.max_gpu_hours ?? 'no') + ' GPU-hours, ' + (p.max_usd ?? 'no') + ' USD';
          });
        },
      }, h('label', { text: 'Budgets (empty = none)' }), 'runs', maxRuns, 'GPU-h', maxGpu, 'USD', maxUsd,
      h('button', { id: 'budget-set', type: 'submit', text: 'Set' })),
      h('form', {
        onsubmit: (ev) => {
          ev.preventDefault();
          act('follow-up', async () => {
            const f = await postJSON(base + '/followups', { text: followText.value });
            followText.value = '';
            return 'queued follow-up ' + f.id + ' for the next agent turn';
          });
        },
      }, h('label', { for: 'followup-text', text: 'Follow-up for the agent' }), followText,
      h('button', { id: 'followup-send', type: 'submit', text: 'Queue follow-up' }))),
    msg, followups);

  // The attempts table, paginated by the server.
  const tq = { status: '', q: '', offset: 0, order: 'desc' };
  const statusSel = h('select', { id: 'status-filter' },
    ['', 'kept', 'discarded', 'failed', 'running', 'proposed', 'rejected', 'duplicate'].map(
      (s) => h('option', { value: s, text: s || 'any status' })));
  const orderSel = h('select', { id: 'order' }, h('option', { value: 'desc', text: 'newest first' }), h('option', { value: 'asc', text: 'oldest first' }));
  const search = h('input', { id: 'attempt-search', type: 'search', placeholder: 'hypothesis contains…' });
  const pager = h('span', { class: 'muted', id: 'pager' });
  const prev = h('button', { type: 'button', text: '‹ Prev' });
  const next = h('button', { type: 'button', text: 'Next ›' });
  const tableBox = h('div', { id: 'attempts' });
  statusSel.addEventListener('change', () => { tq.status = statusSel.value; tq.offset = 0; updateTable(); });
  orderSel.addEventListener('change', () => { tq.order = orderSel.value; tq.offset = 0; updateTable(); });
  let searchTimer = null;
  search.addEventListener('input', () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { tq.q = search.value.trim(); tq.offset = 0; updateTable(); }, 300);
  });
  prev.addEventListener('click', () => { tq.offset = Math.max(0, tq.offset - PAGE); updateTable(); });
  next.addEventListener('click', () => { tq.offset += PAGE; updateTable(); });
  const chartBox = h('div', { id: 'chart-box' });
  const paramBox = h('div', { id: 'param-box' });
  // Empty while no contributor submitted anything.
  const boardBox = h('div', { id: 'leaderboard-box' });
  // The chart's x axis: attempt number, time of day or elapsed time (kept for this tab).
  let xMode = sessionStorage.getItem(CHART_X_KEY) || 'attempt';
  let lastChart = null;
  const xButtons = [['attempt', 'attempt #'], ['clock', 'time of day'], ['elapsed', 'elapsed time']].map(
    ([mode, text]) => h('button', { type: 'button', id: 'chart-x-' + mode, 'data-x': mode, text }));
  const showChart = () => {
    for (const b of xButtons) b.classList.toggle('active', b.dataset.x === xMode);
    if (!lastChart) return;
    const [chart, frontier] = lastChart;
    replace(chartBox, h('div', {}, chartSvg(chart, frontier, name, xMode),
      chart.total_attempts > chart.attempts.length
        ? h('div', { class: 'muted', id: 'chart-thinned', text: 'Showing ' + chart.attempts.length + ' of ' + chart.total_attempts +
          ' attempts: the most recent, every kept one, and each stretch\'s best, worst and first failure.' })
        : null));
  };
  for (const b of xButtons) {
    b.addEventListener('click', () => {
      xMode = b.dataset.x;
      sessionStorage.setItem(CHART_X_KEY, xMode);
      showChart();
    });
  }

  append(root, [
    h('p', {}, h('a', { href: '#/', text: 'Programs' }), ' › ' + name),
    head, steer,
    h('h2', { text: 'Progress' }),
    h('div', { class: 'controls seg', id: 'chart-x' }, h('span', { class: 'muted', text: 'x axis:' }), xButtons),
    chartBox, paramBox, boardBox,
    h('h2', { text: 'Attempts' }),
    h('div', { class: 'controls' }, statusSel, orderSel, search, prev, next, pager),
    tableBox,
  ]);

  async function updateTable() {
    const qs = new URLSearchParams({ limit: PAGE, offset: tq.offset, order: tq.order });
    if (tq.status) qs.set('status', tq.status);
    if (tq.q) qs.set('q', tq.q);
    let page;
    try {
      page = await getJSON(base + '/attempts?' + qs);
    } catch (e) {
      replace(tableBox, errorBox(e));
      return;
    }
    const from = page.total ? page.offset + 1 : 0;
    const to = page.offset + page.attempts.length;
    pager.textContent = from + '–' + to + ' of ' + page.total;
    prev.disabled = page.offset <= 0;
    next.disabled = to >= page.total;
    const rows = page.attempts.map((a) => h('tr', { 'data-seq': a.seq },
      h('td', { class: 'num' }, h('a', { href: '#/p/' + enc(name) + '/a/' + a.seq, text: '#' + a.seq })),
      h('td', {}, badge(a.status)),
      h('td', { text: a.kind }),
      h('td', { class: 'num mono', text: fmt(a.primary_value) }),
      h('td', {}, h('a', { href: '#/p/' + enc(name) + '/a/' + a.seq, text: a.hypothesis || '(no hypothesis)' }),
        a.note ? h('div', { class: 'muted', text: a.note }) : null),
      h('td', { class: 'muted', text: a.proposer }),
      h('td', { class: 'muted', text: when(a.decided_at || a.created_at) })));
    replace(tableBox, h('table', { id: 'attempts-table' },
      h('thead', {}, h('tr', {}, ['#', 'Status', 'Kind', 'Value', 'Hypothesis', 'Proposer', 'When'].map((t) => h('th', { text: t })))),
      h('tbody', {}, rows.length ? rows : h('tr', {}, h('td', { colspan: 7, class: 'muted', text: 'No attempts match.' })))));
  }

  let filled = false;
  async function update() {
    let d, chart;
    try {
      [d, chart] = await Promise.all([getJSON(base), getJSON('/api/cockpit/programs/' + enc(name) + '/chart')]);
    } catch (e) {
      replace(head, errorBox(e));
      return;
    }
    const p = d.program;
    status = p.status;
    pauseBtn.textContent = p.status === 'paused' ? 'Resume' : 'Pause';
    if (!filled) {
      weight.value = p.weight;
      concurrency.value = p.concurrency ?? '';
      maxRuns.value = p.max_runs ?? '';
      maxGpu.value = p.max_gpu_hours ?? '';
      maxUsd.value = p.max_usd ?? '';
      filled = true;
    }
    const base0 = d.frontier.baseline;
    replace(head,
      h('h1', {}, name + ' ', h('span', { class: 'badge ' + p.status, id: 'program-status', 'data-testid': 'program-status', text: p.status })),
      p.paused_reason ? h('p', { class: 'error', id: 'paused-reason', text: p.paused_reason }) : null,
      h('div', { class: 'cards' },
        h('div', { class: 'card' }, h('div', { class: 'muted', text: 'Best ' + chart.metric }),
          h('div', { class: 'big', id: 'best-value', text: fmt(p.frontier_value) }),
          h('div', { class: 'muted', text: base0 ? 'baseline ' + fmt(base0.value) + ' (Δ ' + fmtSigned(p.frontier_value - base0.value) + ')' : 'no baseline yet' })),
        h('div', { class: 'card' }, h('div', { class: 'muted', text: 'Runs / budget' }),
          h('div', { class: 'big', id: 'program-runs', text: p.runs + ' / ' + (p.max_runs ?? '–') }), bar(p.runs, p.max_runs)),
        h('div', { class: 'card' }, h('div', { class: 'muted', text: 'GPU-hours / budget' }),
          h('div', { class: 'big', text: usedOf(p.gpu_hours, p.max_gpu_hours, 3) }), bar(p.gpu_hours, p.max_gpu_hours)),
        h('div', { class: 'card' }, h('div', { class: 'muted', text: 'USD / budget' }),
          h('div', { class: 'big', text: usedOf(p.usd, p.max_usd, 2) }), bar(p.usd, p.max_usd)),
        h('div', { class: 'card' }, h('div', { class: 'muted', text: 'Attempts' }),
          h('div', { class: 'big', text: String(p.attempts) }),
          h('div', { class: 'muted', text: Object.entries(d.attempts_by_status).map(([s, n]) => n + ' ' + s).join(', ') })),
        h('div', { class: 'card' }, h('div', { class: 'muted', text: 'Weight' }), h('div', { class: 'big', text: fmt(p.weight) })),
        d.power
          ? h('div', { class: 'card', id: 'power', 'data-testid': 'power' },
            h('div', { class: 'muted', text: 'Detects reliably (' + d.power.seeds + ' seeds)' }),
            h('div', { class: 'big', text: '≥ ' + fmt(d.power.min_effect) }),
            h('div', { class: 'muted', text: 'run spread ' + fmt(d.power.run_sd) + (d.power.worth !== null ? ', worth having ' + fmt(d.power.worth) : '') }))
          : null),
      d.power && d.power.warning ? h('p', { class: 'error', id: 'power-warning', text: d.power.warning }) : null);
    replace(followups, d.followups.length
      ? h('div', {}, h('strong', { text: 'Queued follow-ups (not yet given to an agent):' }),
        h('ul', { id: 'followup-list' }, d.followups.map((f) => h('li', {}, f.text, h('span', { class: 'muted', text: ' — ' + f.author })))))
      : h('div', { class: 'muted', text: 'No follow-ups queued.' }));
    lastChart = [chart, d.frontier];
    showChart();
    const scatters = paramScatters(chart, name);
    if (scatters.length) {
      replace(paramBox, h('h2', { text: 'Metric vs parameter' }),
        h('div', { class: 'scatters', id: 'param-scatters' }, scatters));
    } else {
      clear(paramBox);
    }
    const board = await getJSON(base + '/leaderboard').catch(() => []);
    if (board.length) {
      replace(boardBox, h('h2', {}, 'Contributors ',
        h('span', { class: 'muted', text: 'claims count once this hub verified them' })), leaderboardTable(board));
    } else {
      clear(boardBox);
    }
    await updateTable();
  }
  return { update };
}

// ------------------------------------------------------------------ attempt page

function diffView(text) {
  const pre = h('pre', { class: 'diff', id: 'diff' });
  for (const line of text.split('\n')) {
    let cls = null;
    if (line.startsWith('+++') || line.startsWith('---') || line.startsWith('diff ')) cls = 'file';
    else if (line.startsWith('@@')) cls = 'hunk';
    else if (line.startsWith('+')) cls = 'add';
    else if (line.startsWith('-')) cls = 'del';
    if (cls) pre.appendChild(h('span', { class: cls, text: line }));
    else pre.appendChild(document.createTextNode(line + '\n'));
  }
  return pre;
}

function evidenceView(f) {
  const e = f.evidence;
  const has = (v) => v !== null && v !== undefined;
  const ci = has(e.ci_low) && has(e.ci_high)
    ? fmtSigned(e.effect) + ' ± ' + fmt((e.ci_high - e.ci_low) / 2) + ' [' + fmt(e.ci_low) + ', ' + fmt(e.ci_high) + ']'
    : fmtSigned(e.effect);
  const row = (k, v, cls) => [h('dt', { text: k }), h('dd', { class: cls || null }, v)];
  return h('dl', { class: 'kv evidence' },
    row('state', badge(f.state)),
    row('metric', f.metric),
    has(e.effect) ? row('effect ± CI', ci + (has(e.confidence) ? ' (' + fmt(100 * e.confidence) + '% CI, + = better)' : ''), 'mono') : null,
    has(e.n_seeds) ? row('seeds', e.n_seeds + ' vs ' + (e.n_incumbent ?? '–') + ' of #' + f.incumbent_seq) : row('compared with', '#' + f.incumbent_seq),
    has(e.p_value) || has(e.q_value) ? row('p / q', fmt(e.p_value) + ' / ' + fmt(e.q_value), 'mono') : null,
    has(e.noise_floor) ? row('noise floor', fmt(e.noise_floor), 'mono') : null,
    e.flags.length ? row('flags', e.flags.join(', ')) : null,
    f.note ? row('note', f.note) : null);
}

function attemptView(root, name, seq) {
  const body = h('div');
  const logBox = h('div', { id: 'log-box' });
  const transcriptBox = h('section', { id: 'transcript-box' }, h('h2', { text: 'Agent transcript' }),
    h('p', { class: 'muted', text: 'loading…' }));
  const relatedBox = h('section', { id: 'related-box' }, h('h2', { text: 'Related attempts (memory)' }),
    h('p', { class: 'muted', text: 'loading…' }));
  const msg = h('div', { class: 'msg', id: 'attempt-msg' });
  const artifactsBox = h('section', { id: 'artifacts-box' }, h('h2', { text: 'Artifacts' }),
    h('p', { class: 'muted', text: 'loading…' }));
  append(root, [
    h('p', {}, h('a', { href: '#/', text: 'Programs' }), ' › ', h('a', { href: '#/p/' + enc(name), text: name }), ' › #' + seq),
    msg, body, artifactsBox, logBox, transcriptBox, relatedBox,
  ]);
  function cancelRun(r) {
    if (!token()) {
      steerAction(msg, 'cancel a run', async () => '');
      return;
    }
    if (!window.confirm('Cancel run ' + r.id + ' (seed ' + r.seed + ')? It is stopped, recorded as cancelled, and its attempt is decided without it.')) return;
    steerAction(msg, 'cancel run ' + r.id, async () => {
      const c = await postJSON('/api/runs/' + r.id + '/cancel');
      return 'cancel of run ' + c.run_id + ' requested; its coordinator stops it within a second or so';
    }, () => { lastKey = null; update(); });
  }
  // Ask for the attempt's change to be verified again by the program's next proposal; the
  // server says why when it may not be (a contradicted or overfit idea, a kept attempt).
  function retryAttempt() {
    if (!token()) {
      steerAction(msg, 'verify an attempt again', async () => '');
      return;
    }
    steerAction(msg, 'retry #' + seq, async () => {
      const r = await postJSON('/api/programs/' + enc(name) + '/attempts/' + seq + '/retry');
      return r.new
        ? 'retry of #' + seq + ' requested: the program\'s next proposal verifies it again on every seed'
        : 'retry of #' + seq + ' was already requested; it is still waiting';
    });
  }
  // The files each run wrote under $PICIDAE_ARTIFACTS, with download links.
  async function showArtifacts(runs) {
    const head = h('h2', { text: 'Artifacts' });
    if (!runs.length) {
      replace(artifactsBox, head, h('p', { class: 'muted', text: 'No runs, so no artifacts.' }));
      return;
    }
    try {
      const lists = await Promise.all(runs.map((r) => getJSON('/api/runs/' + r.id + '/artifacts')));
      const declared = lists.length ? lists[0].declared : [];
      const rows = [];
      lists.forEach((l, i) => {
        for (const f of l.artifacts) {
          const url = '/api/runs/' + l.run_id + '/artifacts/' + enc(f.name);
          const base = f.name.split('/').pop();
          rows.push(h('tr', { 'data-run': l.run_id, 'data-artifact': f.name },
            h('td', { class: 'num', text: String(l.run_id) }),
            h('td', { class: 'num', text: String(runs[i].seed) }),
            h('td', {}, h('a', {
              href: url, class: 'artifact', download: base, text: f.name,
              onclick: (ev) => {
                ev.preventDefault();
                download(url, base).catch((e) => replace(msg, errorBox(e)));
              },
            })),
            h('td', { class: 'num', text: bytes(f.size) })));
        }
        if (l.truncated) {
          rows.push(h('tr', {}, h('td', { colspan: 4, class: 'muted', text: 'run ' + l.run_id + ': more files than listed' })));
        }
      });
      replace(artifactsBox, head,
        declared.length ? h('p', { class: 'muted', text: 'The contract declares: ' + declared.join(', ') }) : null,
        rows.length
          ? h('table', { id: 'artifacts' },
            h('thead', {}, h('tr', {}, ['Run', 'Seed', 'File', 'Size'].map((t) => h('th', { text: t })))),
            h('tbody', {}, rows))
          : h('p', { class: 'muted', id: 'artifacts-none', text: 'The runs wrote no artifacts.' }));
    } catch (e) {
      replace(artifactsBox, head, errorBox(e));
    }
  }
  async function showTranscript() {
    const head = h('h2', { text: 'Agent transcript' });
    try {
      const r = await fetch('/api/programs/' + enc(name) + '/attempts/' + seq + '/transcript?tail=65536',
        { headers: authHeaders(), cache: 'no-store' });
      if (r.status === 404) {
        replace(transcriptBox, head, h('p', { class: 'muted', id: 'transcript-none', text: 'No transcript for this attempt (the agent kept none, or it is not written yet).' }));
        return;
      }
      if (!r.ok) throw await errorOf(r);
      const cut = r.headers.get('x-log-truncated') === 'true';
      replace(transcriptBox, h('h2', { text: 'Agent transcript' + (cut ? ', last 64 KiB' : '') }),
        h('pre', { class: 'wrap', id: 'transcript', text: (await r.text()) || '(empty)' }));
    } catch (e) {
      replace(transcriptBox, head, errorBox(e));
    }
  }
  async function showRelated(a) {
    const head = h('h2', { text: 'Related attempts (memory)' });
    if (!a.hypothesis || !a.hypothesis.trim()) {
      replace(relatedBox, head, h('p', { class: 'muted', text: 'No hypothesis to search with.' }));
      return;
    }
    try {
      const res = await getJSON('/api/memory/search?q=' + enc(a.hypothesis) + '&program=' + enc(name) + '&limit=6');
      const hits = res.hits.filter((x) => !(x.program === name && x.seq === seq)).slice(0, 5);
      replace(relatedBox, head, hits.length
        ? h('table', { id: 'related' },
          h('thead', {}, h('tr', {}, ['#', 'Status', 'Value', 'Hypothesis'].map((t) => h('th', { text: t })))),
          h('tbody', {}, hits.map((x) => h('tr', { 'data-seq': x.seq },
            h('td', { class: 'num' }, h('a', { href: '#/p/' + enc(x.program) + '/a/' + x.seq, text: '#' + x.seq })),
            h('td', {}, badge(String(x.status))),
            h('td', { class: 'num mono', text: fmt(x.value) }),
            h('td', {}, h('a', { href: '#/p/' + enc(x.program) + '/a/' + x.seq, text: x.hypothesis || '(no hypothesis)' }))))))
        : h('p', { class: 'muted', id: 'related-none', text: 'No other attempt like this one.' }));
    } catch (e) {
      replace(relatedBox, head, errorBox(e));
    }
  }
  let extrasShown = false;
  async function showLog(run, stream) {
    replace(logBox, h('h2', { text: 'Run ' + run.id + ' (seed ' + run.seed + ') ' + stream }), h('p', { class: 'muted', text: 'loading…' }));
    try {
      const text = await getText('/api/runs/' + run.id + '/log?stream=' + stream + '&tail=65536');
      replace(logBox, h('h2', { text: 'Run ' + run.id + ' (seed ' + run.seed + ') ' + stream + ', last 64 KiB' }),
        h('pre', { id: 'log-text', text: text || '(empty)' }));
    } catch (e) {
      replace(logBox, h('h2', { text: 'Run ' + run.id + ' ' + stream }), errorBox(e));
    }
  }
  let lastKey = null;
  async function update() {
    let a;
    try {
      a = await getJSON('/api/programs/' + enc(name) + '/attempts/' + seq);
    } catch (e) {
      replace(body, errorBox(e));
      return;
    }
    const key = JSON.stringify([a.status, a.runs.map((r) => [r.id, r.status, r.primary_value, r.cancel_requested]), a.finding && a.finding.state]);
    if (!extrasShown) {
      extrasShown = true;
      showTranscript();
      showRelated(a);
    }
    if (key === lastKey) return;
    lastKey = key;
    showArtifacts(a.runs);
    const metricNames = [...new Set(a.runs.flatMap((r) => Object.keys(r.metrics)))].sort();
    const runs = a.runs.map((r) => h('tr', { 'data-run': r.id },
      h('td', { class: 'num', text: String(r.id) }),
      h('td', { class: 'num', text: String(r.seed) }),
      h('td', {}, badge(r.status)),
      h('td', { class: 'num mono', text: fmt(r.primary_value) }),
      metricNames.map((k) => h('td', { class: 'num mono', text: fmt(r.metrics[k]) })),
      h('td', { class: 'num', text: r.wall_secs === null ? '–' : fmt(r.wall_secs) + ' s' }),
      h('td', { class: 'num', text: r.peak_rss_kb === null ? '–' : fmt(r.peak_rss_kb / 1024) + ' MB' }),
      h('td', { class: 'num', text: r.peak_gpu_mb === null || r.peak_gpu_mb === undefined ? '–' : fmt(r.peak_gpu_mb) + ' MiB' }),
      h('td', { class: 'mono fingerprint', title: r.fingerprint || 'not recorded', text: r.fingerprint ? r.fingerprint.slice(0, 12) : '–' }),
      h('td', {},
        h('button', { type: 'button', class: 'log-stdout', onclick: () => showLog(r, 'stdout'), text: 'stdout' }), ' ',
        h('button', { type: 'button', class: 'log-stderr', onclick: () => showLog(r, 'stderr'), text: 'stderr' })),
      h('td', {}, r.status === 'queued' || r.status === 'running'
        ? (r.cancel_requested
          ? h('span', { class: 'muted cancel-requested', text: 'cancel requested' })
          : h('button', { type: 'button', class: 'cancel-run danger', 'data-run': r.id, onclick: () => cancelRun(r), text: 'Cancel' }))
        : (r.status === 'cancelled' && r.cancel_requested ? h('span', { class: 'muted', text: 'cancelled by user' }) : null))));
    replace(body,
      h('h1', {}, '#' + a.seq + ' ', badge(a.status), ' ', h('span', { class: 'muted', text: a.kind })),
      h('h2', { text: 'Hypothesis' }),
      h('pre', { class: 'wrap', id: 'hypothesis', text: a.hypothesis || '(none)' }),
      h('dl', { class: 'kv' },
        h('dt', { text: 'value (mean of seeds)' }), h('dd', { class: 'mono', text: fmt(a.primary_value) }),
        h('dt', { text: 'proposer' }), h('dd', { text: a.proposer }),
        h('dt', { text: 'commit' }), h('dd', { class: 'mono', text: (a.commit || '–') + '  (parent ' + a.parent_commit.slice(0, 12) + ')' }),
        h('dt', { text: 'proposed' }), h('dd', { text: when(a.created_at) }),
        h('dt', { text: 'decided' }), h('dd', { text: when(a.decided_at) }),
        a.note ? [h('dt', { text: 'note' }), h('dd', { text: a.note })] : null,
        a.touched.length ? [h('dt', { text: 'files' }), h('dd', { class: 'mono', text: a.touched.join(', ') })] : null,
        a.params ? [h('dt', { text: 'parameters' }), h('dd', { class: 'mono', text: JSON.stringify(a.params) })] : null,
        a.rejection ? [h('dt', { text: 'rejection' }), h('dd', { class: 'mono', text: JSON.stringify(a.rejection) })] : null),
      h('h2', { text: 'Runs' }),
      a.runs.length
        ? h('table', { id: 'runs-table' },
          h('thead', {}, h('tr', {}, ['Run', 'Seed', 'Status', 'Value', ...metricNames, 'Wall', 'Peak RSS', 'Peak GPU', 'Environment', 'Logs', ''].map((t) => h('th', { text: t })))),
          h('tbody', {}, runs))
        : h('p', { class: 'muted', text: 'No runs.' }),
      h('h2', { text: 'Finding' }),
      a.finding ? evidenceView(a.finding) : h('p', { class: 'muted', text: 'No finding for this attempt.' }),
      a.kind === 'explore' && (a.status === 'discarded' || a.status === 'failed') && a.commit
        ? h('p', {}, h('button', { type: 'button', id: 'retry-attempt', onclick: retryAttempt, text: 'Verify again' }),
          h('span', { class: 'muted', text: ' Decided on too little evidence? The next proposal replays this change onto the frontier and verifies it on every seed.' }))
        : null,
      h('h2', { text: 'Diff' + (a.diff_truncated ? ' (truncated)' : '') }),
      a.diff ? diffView(a.diff) : h('p', { class: 'muted', text: a.diff_error || 'No diff.' }));
  }
  return {
    update,
    onEvent: (_, d) => { if (d && d.program === name && d.seq === seq) lastKey = null; },
  };
}

// ------------------------------------------------------------------ findings board

const STATES = ['candidate', 'verifying', 'validated', 'refuted', 'retracted'];

function findingsView(root, program) {
  const sel = h('select', { id: 'findings-program' }, h('option', { value: '', text: 'all programs' }));
  const board = h('div', { class: 'board', id: 'findings-board' });
  const msg = h('div', { class: 'msg', id: 'findings-msg' });
  const exportBtn = h('button', { type: 'button', id: 'export-report', text: 'Export report' });
  let programs = [];
  // While an action's form is open, live updates wait (they would redraw it away).
  let editing = false;
  sel.addEventListener('change', () => {
    location.hash = '#/findings' + (sel.value ? '?program=' + enc(sel.value) : '');
  });
  exportBtn.addEventListener('click', async () => {
    const p = program || (programs.length === 1 ? programs[0] : '');
    if (!p) {
      replace(msg, h('span', { class: 'error', text: 'Choose a program to export its report.' }));
      return;
    }
    try {
      await download('/api/programs/' + enc(p) + '/report', p + '-report.md');
      replace(msg, h('span', { class: 'ok', text: 'report of ' + p + ' downloaded (' + p + '-report.md)' }));
    } catch (e) {
      replace(msg, errorBox(e));
    }
  });
  append(root, [h('h1', { text: 'Findings' }), h('div', { class: 'controls' }, sel, exportBtn), msg, board]);

  const done = () => { editing = false; update(); };
  // An inline form under a card: a text (required for a retraction) and a confirm button.
  function openForm(card, f, kind) {
    // One form at a time.
    for (const other of board.querySelectorAll('.action-slot')) clear(other);
    const slot = card.querySelector('.action-slot');
    const spec = {
      approve: { placeholder: 'note (optional): why it holds, what to do with it', button: 'Approve' },
      retract: { placeholder: 'reason (required): why it no longer stands', button: 'Retract' },
      followup: { placeholder: 'idea for the agent (optional; the finding is named either way)', button: 'Queue follow-up' },
    }[kind];
    const text = kind === 'followup'
      ? h('textarea', { class: 'action-text', placeholder: spec.placeholder })
      : h('input', { class: 'action-text', type: 'text', placeholder: spec.placeholder });
    const cancel = h('button', { type: 'button', class: 'action-cancel', text: 'Cancel' });
    cancel.addEventListener('click', () => { clear(slot); editing = false; });
    const form = h('form', { class: 'action-form', 'data-action': kind },
      text, h('button', { type: 'submit', class: 'primary action-confirm', text: spec.button }), cancel);
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const value = text.value.trim();
      const base = '/api/findings/' + f.id;
      if (kind === 'retract' && !value) {
        replace(msg, h('span', { class: 'error', text: 'Say why finding ' + f.id + ' no longer stands.' }));
        return;
      }
      steerAction(msg, kind + ' finding ' + f.id, async () => {
        if (kind === 'approve') {
          await postJSON(base + '/approve', value ? { note: value } : {});
          return 'finding ' + f.id + ' approved';
        }
        if (kind === 'retract') {
          const r = await postJSON(base + '/retract', { reason: value });
          return 'finding ' + f.id + ' retracted' +
            (r.frontier_moved_to ? '; the frontier moved back to ' + r.frontier_moved_to.slice(0, 12) : '') +
            (r.warning ? ' (' + r.warning + ')' : '');
        }
        const q = await postJSON(base + '/followup', value ? { text: value } : {});
        return 'queued follow-up ' + q.id + ' in ' + q.program + ' for the next agent turn';
      }, done);
    });
    editing = true;
    replace(slot, form);
    text.focus();
  }

  function card(f) {
    const el = h('div', { class: 'fcard', 'data-finding': f.id, 'data-state': f.state, 'data-approved': f.approvals.length ? 'yes' : 'no' });
    const button = (kind, text) => h('button', { type: 'button', class: kind, text, onclick: () => openForm(el, f, kind) });
    append(el,
      h('div', {}, h('a', { href: '#/p/' + enc(f.program) + '/a/' + f.attempt_seq, text: f.program + ' #' + f.attempt_seq }),
        h('span', { class: 'muted', text: ' vs #' + f.incumbent_seq })),
      h('div', { class: 'hyp', text: f.hypothesis }),
      f.approvals.length
        ? h('div', { class: 'approved ok' }, f.approvals.map((a) => h('div', { text: '✔ ' + a.reason + ' (' + when(a.at) + ')' })))
        : null,
      evidenceView(f),
      h('div', { class: 'actions' },
        f.state === 'validated' ? button('approve', 'Approve') : null,
        f.state === 'validated' ? button('retract', 'Retract') : null,
        button('followup', 'Follow-up')),
      h('div', { class: 'action-slot' }));
    return el;
  }

  async function update() {
    if (editing) return;
    let list, progs;
    try {
      [list, progs] = await Promise.all([
        getJSON('/api/findings' + (program ? '?program=' + enc(program) : '')),
        getJSON('/api/programs'),
      ]);
    } catch (e) {
      replace(board, errorBox(e));
      return;
    }
    if (editing) return;
    programs = progs.programs.map((p) => p.name);
    exportBtn.disabled = !program && programs.length !== 1;
    exportBtn.title = exportBtn.disabled ? 'choose a program first' : 'download the Markdown report of ' + (program || programs[0]);
    replace(sel, h('option', { value: '', text: 'all programs' }),
      progs.programs.map((p) => h('option', { value: p.name, text: p.name, selected: p.name === program })));
    replace(board, STATES.map((s) => {
      const fs = list.findings.filter((f) => f.state === s);
      return h('div', { class: 'column', 'data-state': s },
        h('h2', {}, badge(s), ' ' + fs.length),
        fs.map(card));
    }));
  }
  return { update };
}

// ------------------------------------------------------------------ routing

function route() {
  const hash = location.hash.replace(/^#/, '') || '/';
  const [path, query] = hash.split('?');
  const params = new URLSearchParams(query || '');
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const root = document.getElementById('view');
  clear(root);
  let nav = 'overview';
  if (parts[0] === 'p' && parts.length === 2) {
    current = programView(root, parts[1]);
  } else if (parts[0] === 'p' && parts[2] === 'a' && parts.length === 4) {
    current = attemptView(root, parts[1], Number(parts[3]));
  } else if (parts[0] === 'arenas') {
    nav = 'arenas';
    current = arenasView(root);
  } else if (parts[0] === 'arena' && parts.length === 2) {
    nav = 'arenas';
    current = arenaView(root, parts[1]);
  } else if (parts[0] === 'findings') {
    nav = 'findings';
    current = findingsView(root, params.get('program') || '');
  } else {
    current = overviewView(root);
  }
  for (const a of document.querySelectorAll('nav a')) {
    a.classList.toggle('active', a.dataset.nav === nav);
  }
  current.update();
}

window.addEventListener('hashchange', route);
document.addEventListener('DOMContentLoaded', () => {
  setupToken();
  route();
  connectEvents();
});
