// Picidae cockpit: the arena pages (loaded after app.js, whose helpers it uses).
//
// #/arenas lists the project's arenas; #/arena/NAME overlays each entry's programs' progress
// over spend (the frontier's visible value against runs or GPU-hours used, one line per
// trial, one colour per entry), shows the stored ranking (sent only with a write token: it is
// scored on the hidden evaluator) and each entry's program.md. Text written by people or
// agents (program.md files, labels) is only ever set as textContent.
'use strict';

const ARENA_COLORS = ['#0969da', '#cf222e', '#1a7f37', '#8250df', '#bf8700', '#1b7c83', '#e16f24', '#6e7781'];

function arenasView(root) {
  const list = h('div', { id: 'arenas' });
  append(root, [h('h1', { text: 'Arenas' }), list]);

  async function update() {
    try {
      const arenas = await getJSON('/api/cockpit/arenas');
      if (!arenas.length) {
        replace(list, h('p', { class: 'muted', text: 'No arena yet: picidae arena create NAME --benchmark DIR --entry A=a.md --entry B=b.md --budget-runs R' }));
        return;
      }
      const rows = arenas.map((a) => h('tr', { 'data-arena': a.name },
        h('td', {}, h('a', { href: '#/arena/' + enc(a.name), text: a.name })),
        h('td', { text: a.entries.join(', ') }),
        h('td', { class: 'num', text: fmt(a.budget) + ' ' + (a.budget_kind === 'gpu_hours' ? 'GPU-h' : 'runs') }),
        h('td', { class: 'num', text: a.trials }),
        h('td', { text: a.scored_at ? when(a.scored_at) : 'not scored' }),
        h('td', { class: 'mono', text: a.benchmark_dir })));
      replace(list, h('table', { id: 'arenas-table' },
        h('thead', {}, h('tr', {}, ['arena', 'entries', 'budget per program', 'trials', 'ranked', 'benchmark'].map((t) => h('th', { text: t })))),
        h('tbody', {}, rows)));
    } catch (e) {
      replace(list, errorBox(e));
    }
  }
  return { update };
}

// x of a point: runs or GPU-hours used.
function arenaX(mode) {
  return mode === 'gpu' ? (p) => p.gpu_hours : (p) => p.runs;
}

function arenaChart(view, colors, mode) {
  const W = 900, H = 360;
  const m = { l: 72, r: 16, t: 20, b: 46 };
  const pw = W - m.l - m.r, ph = H - m.t - m.b;
  const xOf = arenaX(mode);
  const lines = view.lines.filter((l) => l.points.length);
  const xs = lines.flatMap((l) => l.points.map(xOf));
  const ys = lines.flatMap((l) => l.points.map((p) => p.value));
  const what = 'Progress over spend of arena ' + view.arena.name + ': ' + view.metric;
  const root = svg('svg', { class: 'chart', id: 'arena-chart', viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': what, 'data-x': mode });
  append(root, svg('title', {}, what));
  if (!lines.length) {
    append(root, svg('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle' }, 'no baseline yet: picidae arena run ' + view.arena.name));
    return root;
  }
  let xhi = Math.max(...xs, 1e-9);
  let lo = Math.min(...ys), hi = Math.max(...ys);
  if (hi === lo) { const d = Math.abs(hi) * 0.1 || 1; lo -= d; hi += d; }
  const pad = (hi - lo) * 0.06;
  lo -= pad; hi += pad;
  const x = (v) => m.l + (v / xhi) * pw;
  const y = (v) => m.t + ((hi - v) / (hi - lo)) * ph;
  const g = svg('g', {});
  for (const v of ticks(lo, hi, 6)) {
    append(g, svg('line', { class: 'grid', x1: m.l, x2: m.l + pw, y1: y(v), y2: y(v) }),
      svg('text', { x: m.l - 8, y: y(v) + 4, 'text-anchor': 'end' }, fmt(v)));
  }
  // Runs are whole: no tick between two of them.
  for (const v of ticks(0, xhi, 8).filter((t) => mode === 'gpu' || Number.isInteger(t))) {
    append(g, svg('line', { class: 'axis', x1: x(v), x2: x(v), y1: m.t + ph, y2: m.t + ph + 5 }),
      svg('text', { x: x(v), y: m.t + ph + 18, 'text-anchor': 'middle' }, fmt(v)));
  }
  append(g,
    svg('line', { class: 'axis', x1: m.l, x2: m.l, y1: m.t, y2: m.t + ph }),
    svg('line', { class: 'axis', x1: m.l, x2: m.l + pw, y1: m.t + ph, y2: m.t + ph }),
    svg('text', { class: 'label', x: m.l + pw / 2, y: H - 8, 'text-anchor': 'middle' }, mode === 'gpu' ? 'GPU-hours used' : 'runs used'),
    svg('text', {
      class: 'label', x: 16, y: m.t + ph / 2, 'text-anchor': 'middle', transform: `rotate(-90 16 ${m.t + ph / 2})`,
    }, 'frontier ' + view.metric + (view.goal === 'minimize' ? ' (lower is better)' : view.goal === 'maximize' ? ' (higher is better)' : '')));
  append(root, g);
  // Each program a step line: the frontier holds its value until the next move.
  for (const l of lines) {
    const pts = l.points;
    let d = `M${x(xOf(pts[0]))},${y(pts[0].value)}`;
    for (const p of pts.slice(1)) d += `H${x(xOf(p))}V${y(p.value)}`;
    const last = pts[pts.length - 1];
    append(root, svg('path', {
      class: 'arena-line', 'data-label': l.label, 'data-trial': l.trial, d, fill: 'none',
      stroke: colors.get(l.label), 'stroke-width': 2, opacity: 0.85,
    }, svg('title', {}, `${l.label}, trial ${l.trial} (${l.program}): ${view.metric} ${fmt(pts[0].value)} → ${fmt(last.value)} after ${l.runs} runs, ${fmt(l.gpu_hours)} GPU-h`)));
  }
  return root;
}

function arenaRanking(view) {
  const note = view.ranking_note ? h('p', { class: 'muted', id: 'arena-ranking-note', text: view.ranking_note }) : null;
  if (!view.ranking || !view.ranking.length) return [note];
  const r0 = view.ranking[0];
  const rows = view.ranking.map((r) => h('tr', { 'data-label': r.label },
    h('td', { class: 'num', text: r.rank }),
    h('td', { class: 'entry', text: r.label }),
    h('td', { class: 'num rate', text: fmt(r.rate) }),
    h('td', { class: 'num', text: r.rate_low === null || r.rate_high === null ? '–' : `[${fmt(r.rate_low)}, ${fmt(r.rate_high)}]` }),
    h('td', { class: 'num', text: r.false_keeps + '/' + r.keeps }),
    h('td', { class: 'num', text: r.runs }),
    h('td', { class: 'num', text: fmt(r.gpu_hours) })));
  return [
    h('p', { class: 'muted', text: `True gain per ${r0.per} on ${r0.hidden ? 'the hidden evaluator' : 'the visible metric (no hidden evaluator)'} (${r0.truth_metric}, fresh seeds), over ${r0.trials} trial(s); ranked ${when(r0.scored_at)}.` }),
    h('table', { id: 'arena-ranking' },
      h('thead', {}, h('tr', {}, ['rank', 'entry', 'gain per ' + r0.per, '95% interval', 'false keeps', 'runs', 'GPU-h'].map((t) => h('th', { text: t })))),
      h('tbody', {}, rows)),
    note,
  ];
}

function arenaView(root, name) {
  const head = h('div');
  const chartBox = h('div', { id: 'arena-chart-box' });
  const legend = h('div', { id: 'arena-legend', class: 'controls' });
  const ranking = h('div', { id: 'arena-ranking-box' });
  const texts = h('div', { id: 'arena-texts' });
  const seg = h('span', { class: 'seg' });
  let mode = null;
  let last = null;
  append(root, [head, h('h2', { text: 'Progress over spend' }), seg, chartBox, legend,
    h('h2', { text: 'Ranking' }), ranking, h('h2', { text: 'Entries' }), texts]);

  function draw() {
    const view = last;
    const colors = new Map(view.arena.entries.map((l, i) => [l, ARENA_COLORS[i % ARENA_COLORS.length]]));
    // Runs that used no GPU have no GPU-hours to draw against.
    const gpuTime = view.lines.some((l) => l.gpu_hours > 0);
    if (!gpuTime) mode = 'runs';
    replace(seg, ['runs', 'gpu'].map((k) => h('button', {
      type: 'button', 'data-x': k, class: k === mode ? 'active' : null,
      disabled: k === 'gpu' && !gpuTime,
      title: k === 'gpu' && !gpuTime ? 'no GPU time: these runs used no GPU' : null,
      onclick: () => { mode = k; draw(); },
    }, k === 'gpu' ? 'GPU-hours' : 'runs')));
    replace(chartBox, arenaChart(view, colors, mode));
    replace(legend, view.arena.entries.map((l) => {
      const mine = view.lines.filter((x) => x.label === l);
      return h('span', { class: 'legend-item', 'data-label': l },
        h('span', { class: 'swatch', 'data-color': colors.get(l) }),
        ` ${l} (${mine.length} trial(s), ${mine.reduce((s, x) => s + x.runs, 0)} runs)`);
    }));
    // Colours through the DOM (the style-src policy allows no inline style attribute text).
    for (const el of legend.querySelectorAll('.swatch')) el.style.background = el.dataset.color;
    replace(ranking, arenaRanking(view));
    replace(texts, view.texts.map((t) => h('details', { 'data-label': t.label },
      h('summary', { text: t.label }), h('pre', { class: 'wrap', text: t.program_md }))));
  }

  async function update() {
    try {
      last = await getJSON('/api/cockpit/arenas/' + enc(name));
      if (!mode) mode = last.arena.budget_kind === 'gpu_hours' ? 'gpu' : 'runs';
      const a = last.arena;
      replace(head, h('h1', {}, 'Arena ' + a.name),
        h('p', { class: 'muted', text: `${a.entries.length} entries × ${a.trials} trial(s), ${fmt(a.budget)} ${a.budget_kind === 'gpu_hours' ? 'GPU-hours' : 'runs'} per program, on ${a.benchmark_dir}` }));
      draw();
    } catch (e) {
      replace(head, errorBox(e));
    }
  }
  return { update };
}
