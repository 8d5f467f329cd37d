// Drives the cockpit of a running `picidae serve` in a real headless Chromium, for
// crates/picidae/tests/cockpit.rs. Usage:
//
//   node driver.js SCENARIO BASE_URL SHOT_DIR
//
// with COCKPIT_CHROMIUM (the browser), COCKPIT_TOKEN (a write token), COCKPIT_TEXT (the
// follow-up or approval text), COCKPIT_SEQ (the attempt whose run to cancel, or to retry) and
// COCKPIT_WORKER, COCKPIT_WORKER_ID, COCKPIT_WORKER_TOKEN (a registered worker) in the
// environment. Prints `SHOT <path>` for every screenshot and `OK ...`
// lines the Rust test checks; exits non-zero (with the page's console) on any failure.
'use strict';

const path = require('path');
const { chromium } = require('playwright-core');

const [scenario, base, shots] = process.argv.slice(2);
const TIMEOUT = 60000;

function fail(msg) {
  throw new Error(msg);
}

async function shot(page, name) {
  const file = path.join(shots, scenario + '-' + name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  console.log('SHOT ' + file);
}

async function text(page, sel) {
  return (await page.locator(sel).first().textContent({ timeout: TIMEOUT })).trim();
}

async function useToken(page) {
  await page.fill('#token-input', process.env.COCKPIT_TOKEN || fail('COCKPIT_TOKEN is not set'));
  await page.click('#token-save');
  await page.waitForFunction(() => document.getElementById('token-state').textContent.includes('token set'));
  const stored = await page.evaluate(() => ({ session: sessionStorage.getItem('picidae.token'), cookie: document.cookie }));
  if (!stored.session) fail('the token is not in sessionStorage');
  if (stored.cookie !== '') fail('the cockpit set a cookie: ' + stored.cookie);
}

// The overview follows runs live: the count changes with no reload, over SSE.
async function live(page) {
  await page.goto(base + '/');
  await page.waitForSelector('[data-testid="runs-a"]', { timeout: TIMEOUT });
  await page.waitForFunction(() => document.getElementById('live').textContent.includes('live'), null, { timeout: TIMEOUT });
  const before = Number(await text(page, '[data-testid="runs-a"]'));
  await page.evaluate(() => { window.__sameDocument = 'yes'; });
  await shot(page, 'overview-before');
  await page.waitForFunction((n) => {
    const el = document.querySelector('[data-testid="runs-a"]');
    return el && Number(el.textContent) > n;
  }, before, { timeout: TIMEOUT });
  const after = Number(await text(page, '[data-testid="runs-a"]'));
  const same = await page.evaluate(() => window.__sameDocument);
  if (same !== 'yes') fail('the page reloaded');
  const slots = await text(page, '[data-testid="slots"]');
  await shot(page, 'overview-after');
  console.log(`OK live runs ${before} -> ${after} slots ${slots}`);

  // The program page: a chart with axes, a legend and a point per attempt; the table.
  await page.click('a[href="#/p/a"]');
  await page.waitForSelector('#progress-chart g.pt', { timeout: TIMEOUT });
  await page.waitForSelector('#attempts-table tbody tr[data-seq]', { timeout: TIMEOUT });
  const chart = await page.evaluate(() => {
    const svg = document.getElementById('progress-chart');
    return {
      points: svg.querySelectorAll('g.pt').length,
      titles: [...svg.querySelectorAll('g.pt title')].map((t) => t.textContent),
      text: [...svg.querySelectorAll('text')].map((t) => t.textContent).join('|'),
      frontier: !!svg.querySelector('#frontier-line'),
      seedBars: svg.querySelectorAll('.seed-bar').length,
      scatters: document.querySelectorAll('#param-scatters svg.scatter').length,
    };
  });
  // Error bars wherever an attempt has two or more seeds with values; a scatter per parameter
  // when attempts have parameters, none otherwise.
  const want = await page.evaluate(async () => {
    const d = await (await fetch('/api/cockpit/programs/a/chart')).json();
    const multi = d.attempts.filter((a) => a.runs.filter((r) => Number.isFinite(r.value)).length >= 2).length;
    const keys = new Set(d.attempts.filter((a) => a.params && Number.isFinite(a.value)).flatMap((a) => Object.keys(a.params)));
    return { multi, params: keys.size };
  });
  if (want.multi > 0 && chart.seedBars === 0) fail('no seed error bars for ' + want.multi + ' multi-seed attempts');
  if (want.multi > 0 && !chart.text.includes('seeds min–max')) fail('the legend does not say what the error bars are: ' + chart.text);
  if (chart.scatters !== want.params) fail(`${chart.scatters} parameter scatters for ${want.params} parameters`);
  if (!chart.text.includes('score (lower is better)')) fail('no metric axis label: ' + chart.text);
  if (!chart.text.includes('attempt #')) fail('no x axis label: ' + chart.text);
  if (!chart.text.includes('frontier') || !chart.text.includes('kept')) fail('no legend: ' + chart.text);
  if (!chart.frontier) fail('no frontier line');
  if (!chart.titles.some((t) => t.includes('HYPOTHESIS') || t.includes('value'))) fail('no hypothesis on hover: ' + chart.titles);
  await shot(page, 'program');
  // This program's agent sets no parameters; draw the scatters of a sweep's chart data with the
  // page's own code: one per parameter, log x when values span decades, categories otherwise.
  // Parameters arrive as the text the sweep wrote, as the store keeps them: numbers in text
  // (an integer batch size too) are numbers.
  const sweep = await page.evaluate(() => paramScatters({
    metric: 'score',
    attempts: [
      { seq: 1, status: 'kept', value: 3, params: { batch: '16', lr: '0.001', opt: 'adam' }, runs: [] },
      { seq: 2, status: 'discarded', value: 2, params: { batch: '32', lr: '0.1', opt: 'sgd' }, runs: [] },
      { seq: 3, status: 'kept', value: 1, params: { batch: '64', lr: '1', opt: 'adam' }, runs: [] },
      { seq: 4, status: 'failed', value: null, params: { batch: '8', lr: '10', opt: 'sgd' }, runs: [] },
    ],
  }, 'a').map((el) => ({
    param: el.getAttribute('data-param'),
    points: el.querySelectorAll('g.pt').length,
    text: [...el.querySelectorAll('text')].map((t) => t.textContent).join('|'),
  })));
  const [batch, lr, opt] = sweep;
  if (sweep.length !== 3 || batch.param !== 'batch' || lr.param !== 'lr' || opt.param !== 'opt') fail('sweep scatters: ' + JSON.stringify(sweep));
  if (batch.points !== 3 || batch.text.includes('(categories)') || batch.text.includes('(log scale)')) fail('batch scatter: ' + JSON.stringify(batch));
  if (lr.points !== 3 || !lr.text.includes('score vs lr') || !lr.text.includes('lr (log scale)')) fail('lr scatter: ' + JSON.stringify(lr));
  if (!opt.text.includes('opt (categories)') || !opt.text.includes('adam')) fail('opt scatter: ' + JSON.stringify(opt));
  console.log(`OK chart points ${chart.points} seed bars ${chart.seedBars} scatters ${chart.scatters} (sweep ${sweep.length})`);

  // The x axis: attempt number, time of day, elapsed time; labelled with units, and in time
  // the points keep the order in which the attempts were decided.
  const axis = async (mode) => {
    await page.click('#chart-x-' + mode);
    await page.waitForSelector(`#progress-chart[data-x="${mode}"] g.pt`, { timeout: TIMEOUT });
    return page.evaluate(() => {
      const svg = document.getElementById('progress-chart');
      return {
        label: svg.querySelector('.x-label').textContent,
        ticks: [...svg.querySelectorAll('.x-ticks text')].map((t) => t.textContent),
        xs: [...svg.querySelectorAll('g.pt')].map((g) => [Number(g.dataset.seq), Number(g.dataset.x), Number(g.dataset.t)]),
      };
    });
  };
  const clock = await axis('clock');
  if (!clock.label.startsWith('time of day (local, ')) fail('no time-of-day axis label: ' + clock.label);
  if (!clock.ticks.length || !clock.ticks.every((t) => /^(\d\d-\d\d )?\d\d:\d\d(:\d\d)?$/.test(t))) fail('clock ticks: ' + clock.ticks);
  // Attempts sit in the order of their times (when decided; not their numbers' order: a
  // candidate's verification can end after later proposals were rejected), and the times are
  // the attempts' own.
  const timed = clock.xs.slice().sort((a, b) => a[2] - b[2]);
  if (timed.length < 2 || !timed.every((p, i) => p[2] > 1.5e12 && (i === 0 || p[1] >= timed[i - 1][1] - 0.01))) {
    fail('attempts out of time order: ' + JSON.stringify(timed));
  }
  const decided = await page.evaluate(async () => {
    const d = await (await fetch('/api/cockpit/programs/a/chart')).json();
    return Object.fromEntries(d.attempts.map((a) => [a.seq, [a.created_at, a.decided_at]]));
  });
  for (const [seq, , t] of clock.xs) {
    const [created, done] = decided[seq];
    if (t !== done && (t < created || (done && t > done))) fail(`attempt ${seq} at ${t}, proposed ${created}, decided ${done}`);
  }
  await shot(page, 'chart-clock');
  const elapsed = await axis('elapsed');
  if (!/^elapsed time since the first attempt \((s|min|h|days)\)$/.test(elapsed.label)) fail('no elapsed axis label: ' + elapsed.label);
  if (!elapsed.ticks.length || !elapsed.ticks.every((t) => Number.isFinite(Number(t)))) fail('elapsed ticks: ' + elapsed.ticks);
  const byAttempt = await axis('attempt');
  if (!byAttempt.label.startsWith('attempt #')) fail('no attempt axis label: ' + byAttempt.label);
  console.log(`OK chart axes clock "${clock.label}" [${clock.ticks.join(' ')}] elapsed "${elapsed.label}"`);

  // Filter the table by status; then open an attempt with its runs, diff and log.
  await page.selectOption('#status-filter', 'kept');
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('#attempts-table tbody tr[data-seq]')];
    return rows.length > 0 && rows.every((r) => r.textContent.includes('kept'));
  }, null, { timeout: TIMEOUT });
  // The newest kept attempt: not the baseline, so it has a diff.
  const seq = await page.locator('#attempts-table tbody tr[data-seq]').first().getAttribute('data-seq');
  await page.click(`#attempts-table tbody tr[data-seq="${seq}"] a`);
  await page.waitForSelector('#hypothesis', { timeout: TIMEOUT });
  await page.waitForSelector('#runs-table', { timeout: TIMEOUT });
  await page.locator('button.log-stdout').first().click();
  await page.waitForSelector('#log-text', { timeout: TIMEOUT });
  const log = await text(page, '#log-text');
  if (!log.includes('score:')) fail('the stdout log does not show the score: ' + log);
  if (Number(seq) > 1 && !(await page.locator('#diff .add').count())) fail('no coloured diff');
  if (!(await page.locator('.evidence').count())) fail('no finding evidence');
  // The environment fingerprint of each run, the agent's transcript, related attempts.
  if (!(await page.locator('#runs-table td.fingerprint').count())) fail('no fingerprint column');
  await page.waitForSelector('#transcript-box #transcript, #transcript-box #transcript-none', { timeout: TIMEOUT });
  if (!(await page.locator('#transcript').count())) fail('no transcript for a command agent\'s attempt');
  const said = await text(page, '#transcript');
  if (!said.includes('HYPOTHESIS')) fail('the transcript does not show what the agent said: ' + said);
  // The run's artifacts, listed and downloaded through the API.
  await page.waitForSelector('#artifacts a.artifact', { timeout: TIMEOUT });
  const artifact = await page.locator('#artifacts a.artifact').first().textContent();
  const [dl] = await Promise.all([
    page.waitForEvent('download', { timeout: TIMEOUT }),
    page.locator('#artifacts a.artifact').first().click(),
  ]);
  const saved = require('fs').readFileSync(await dl.path(), 'utf8');
  if (!/^\d+\n$/.test(saved)) fail(`artifact ${artifact} downloaded as ${JSON.stringify(saved)}`);
  console.log(`OK artifact ${artifact} ${JSON.stringify(saved.trim())}`);
  await page.waitForSelector('#related-box #related, #related-box #related-none', { timeout: TIMEOUT });
  const related = await page.locator('#related tbody tr').count();
  await shot(page, 'attempt');
  console.log(`OK attempt ${seq} log ${JSON.stringify(log.slice(0, 40))} transcript ${said.length} chars related ${related}`);

  await page.click('nav a[data-nav="findings"]');
  await page.waitForSelector('#findings-board .fcard', { timeout: TIMEOUT });
  await shot(page, 'findings');
  console.log('OK findings');
}

// A follow-up typed in the UI goes through the authenticated API; so do weight, concurrency
// and budget.
async function followup(page) {
  await page.goto(base + '/#/p/a');
  await page.waitForSelector('#toggle-pause', { timeout: TIMEOUT });
  // Without a token the UI refuses to steer and says why.
  await page.fill('#followup-text', 'no token yet');
  await page.click('#followup-send');
  await page.waitForFunction(() => document.getElementById('steer-msg').textContent.includes('token'), null, { timeout: TIMEOUT });
  await useToken(page);
  await page.fill('#followup-text', process.env.COCKPIT_TEXT || fail('COCKPIT_TEXT is not set'));
  await page.click('#followup-send');
  await page.waitForFunction(() => document.getElementById('steer-msg').textContent.includes('queued follow-up'), null, { timeout: TIMEOUT });
  console.log('OK ' + (await text(page, '#steer-msg')));
  await shot(page, 'queued');
  // Weight and run budget through the same API.
  await page.fill('#weight-input', '2.5');
  await page.click('#weight-set');
  await page.waitForFunction(() => document.getElementById('steer-msg').textContent.includes('weight set to 2.5'), null, { timeout: TIMEOUT });
  await page.fill('#concurrency-input', '3');
  await page.click('#concurrency-set');
  await page.waitForFunction(() => document.getElementById('steer-msg').textContent.includes('3 attempts in flight'), null, { timeout: TIMEOUT });
  console.log('OK ' + (await text(page, '#steer-msg')));
  await page.fill('#max-runs-input', '500');
  await page.click('#budget-set');
  await page.waitForFunction(() => document.getElementById('steer-msg').textContent.includes('500 runs'), null, { timeout: TIMEOUT });
  await page.waitForFunction(() => document.getElementById('program-runs').textContent.includes('/ 500'), null, { timeout: TIMEOUT });
  console.log('OK ' + (await text(page, '#steer-msg')));
  await shot(page, 'budget');
}

// Pausing from the UI.
async function pause(page) {
  await page.goto(base + '/#/p/a');
  await page.waitForFunction(() => {
    const el = document.getElementById('program-status');
    return el && el.textContent === 'active';
  }, null, { timeout: TIMEOUT });
  await useToken(page);
  await page.click('#toggle-pause');
  await page.waitForFunction(() => document.getElementById('program-status').textContent === 'paused', null, { timeout: TIMEOUT });
  await page.waitForFunction(() => document.getElementById('toggle-pause').textContent === 'Resume');
  console.log('OK paused ' + (await text(page, '#steer-msg')));
  await shot(page, 'paused');
}

// The findings board: approve a validated finding, retract it (a reason is required), queue a
// follow-up naming it, and export the program's report, all through the API with the token.
async function findings(page) {
  await page.goto(base + '/#/findings?program=a');
  const validated = '.column[data-state="validated"] .fcard';
  await page.waitForSelector(validated, { timeout: TIMEOUT });
  await useToken(page);
  const id = await page.locator(validated).first().getAttribute('data-finding');
  const card = `.fcard[data-finding="${id}"]`;
  await page.click(`${card} button.approve`);
  await page.fill(`${card} .action-form input.action-text`, process.env.COCKPIT_TEXT || 'checked');
  await page.click(`${card} .action-form button.action-confirm`);
  await page.waitForSelector(`${card}[data-approved="yes"]`, { timeout: TIMEOUT });
  const approved = await text(page, `${card} .approved`);
  if (!approved.includes('approved by')) fail('the card does not show the approval: ' + approved);
  console.log(`OK approved ${id}: ${approved}`);
  await shot(page, 'approved');

  // Retract: refused without a reason, then done with one.
  await page.click(`${card} button.retract`);
  await page.click(`${card} .action-form button.action-confirm`);
  await page.waitForFunction(() => document.getElementById('findings-msg').textContent.includes('Say why'), null, { timeout: TIMEOUT });
  await page.fill(`${card} .action-form input.action-text`, 'the gain came from a warm cache');
  await page.click(`${card} .action-form button.action-confirm`);
  await page.waitForSelector(`.column[data-state="retracted"] ${card}`, { timeout: TIMEOUT });
  console.log(`OK retracted ${id}: ${await text(page, '#findings-msg')}`);
  await shot(page, 'retracted');

  await page.click(`${card} button.followup`);
  await page.fill(`${card} .action-form textarea.action-text`, 'try the same change without the cache');
  await page.click(`${card} .action-form button.action-confirm`);
  await page.waitForFunction(() => document.getElementById('findings-msg').textContent.includes('queued follow-up'), null, { timeout: TIMEOUT });
  console.log(`OK ${await text(page, '#findings-msg')}`);

  const [dl] = await Promise.all([
    page.waitForEvent('download', { timeout: TIMEOUT }),
    page.click('#export-report'),
  ]);
  const report = require('fs').readFileSync(await dl.path(), 'utf8');
  if (dl.suggestedFilename() !== 'a-report.md') fail('report file name ' + dl.suggestedFilename());
  if (!report.startsWith('# Research report: a\n')) fail('not the report: ' + report.slice(0, 200));
  if (!report.includes('## Retracted') || !report.includes('the gain came from a warm cache')) fail('the report does not list the retraction: ' + report);
  console.log(`OK report ${report.length} chars`);
}

// Cancel the running run of attempt COCKPIT_SEQ from its page.
async function cancel(page) {
  const seq = process.env.COCKPIT_SEQ || fail('COCKPIT_SEQ is not set');
  await page.goto(base + '/#/p/a/a/' + seq);
  await page.waitForSelector('#runs-table button.cancel-run', { timeout: TIMEOUT });
  await useToken(page);
  const run = await page.locator('#runs-table button.cancel-run').first().getAttribute('data-run');
  page.once('dialog', (d) => d.accept());
  await page.click(`#runs-table button.cancel-run[data-run="${run}"]`);
  await page.waitForFunction(() => document.getElementById('attempt-msg').textContent.includes('cancel of run'), null, { timeout: TIMEOUT });
  console.log(`OK requested ${await text(page, '#attempt-msg')}`);
  // Live: the run's row turns cancelled without a reload.
  await page.waitForFunction((r) => {
    const row = document.querySelector(`#runs-table tr[data-run="${r}"]`);
    return row && row.textContent.includes('cancelled by user');
  }, run, { timeout: TIMEOUT });
  if (await page.locator('#runs-table button.cancel-run').count()) fail('a Cancel button is still shown');
  await shot(page, 'cancelled');
  console.log(`OK cancelled run ${run}`);
}

// Send attempt COCKPIT_SEQ (discarded) to be verified again from its page; the kept baseline
// offers no such button.
async function retry(page) {
  const seq = process.env.COCKPIT_SEQ || fail('COCKPIT_SEQ is not set');
  await page.goto(base + '/#/p/a/a/1');
  await page.waitForSelector('#hypothesis', { timeout: TIMEOUT });
  if (await page.locator('#retry-attempt').count()) fail('the kept baseline offers a retry');
  await page.goto(base + '/#/p/a/a/' + seq);
  await page.waitForSelector('#retry-attempt', { timeout: TIMEOUT });
  await useToken(page);
  await page.click('#retry-attempt');
  await page.waitForFunction(() => document.getElementById('attempt-msg').textContent.includes('retry of #'), null, { timeout: TIMEOUT });
  await shot(page, 'requested');
  console.log(`OK ${await text(page, '#attempt-msg')}`);
}

// The overview's workers panel: a registered worker with its capacity and heartbeat; a run it
// claims (as `picidae worker` would, with its token) is listed, linked to its attempt; a
// worker past its lease is marked lost.
async function workers(page) {
  const name = process.env.COCKPIT_WORKER || fail('COCKPIT_WORKER is not set');
  const id = process.env.COCKPIT_WORKER_ID || fail('COCKPIT_WORKER_ID is not set');
  const secret = process.env.COCKPIT_WORKER_TOKEN || fail('COCKPIT_WORKER_TOKEN is not set');
  await page.goto(base + '/');
  const row = `#workers tr[data-worker="${name}"]`;
  await page.waitForSelector(row, { timeout: TIMEOUT });
  const cells = async () => page.evaluate((sel) => [...document.querySelector(sel).cells].map((c) => c.textContent.trim()), row);
  const [wname, pool, fp, gpus, cpus, memory, , beat] = await cells();
  if (wname !== name) fail('worker cell: ' + wname);
  if (pool !== 'default') fail('pool: ' + pool);
  if (fp !== 'abcd1234') fail('fingerprint: ' + fp);
  if (gpus !== '2' || cpus !== '8') fail(`capacity: ${gpus} GPUs, ${cpus} CPUs`);
  if (!/GiB$/.test(memory)) fail('memory: ' + memory);
  if (!/^\d+ s ago$/.test(beat)) fail('heartbeat: ' + beat);
  if ((await page.getAttribute(row, 'data-lost')) !== 'no') fail('a fresh worker is marked lost');
  await shot(page, 'overview');
  console.log(`OK worker ${name} gpus ${gpus} cpus ${cpus} memory ${memory} heartbeat ${beat}`);

  const run = await page.evaluate(async ({ id, secret }) => {
    for (let i = 0; i < 300; i++) {
      const r = await fetch('/api/workers/' + id + '/claim', { method: 'POST', headers: { Authorization: 'Bearer ' + secret } });
      if (r.status === 200) return (await r.json()).run_id;
      if (r.status !== 204) throw new Error('claim: ' + r.status + ' ' + (await r.text()));
      await new Promise((res) => setTimeout(res, 200));
    }
    throw new Error('nothing to claim in a minute');
  }, { id, secret });
  const link = `${row} a.run-link[data-run="${run}"]`;
  await page.waitForSelector(link, { timeout: TIMEOUT });
  const held = (await cells())[6];
  if (!held.startsWith('1: run ' + run)) fail('runs in flight: ' + held);
  const href = await page.getAttribute(link, 'href');
  if (!/^#\/p\/a\/a\/\d+$/.test(href)) fail('run link: ' + href);
  await shot(page, 'overview-run');
  await page.click(link);
  await page.waitForSelector(`#runs-table tr[data-run="${run}"]`, { timeout: TIMEOUT });
  console.log(`OK worker run ${run} -> ${href}`);

  // Drawn by the page's own code: one fresh worker, one 95 s past a 30 s lease.
  const drawn = await page.evaluate(() => {
    const now = Date.now();
    const w = (name, beat, extra) => Object.assign({ id: 1, name, pool: '', fingerprint: '', capacity: {},
      registered_at: now - 1e6, heartbeat_at: now - beat, runs: [], lease_secs: 30 }, extra);
    const t = workersTable([w('fresh', 5000, { capacity: { gpus: [], cpus: 4 } }),
      w('gone', 95000, { pool: 'big', capacity: { gpus: [0, 1, 2, 3] }, runs: [7] })], now);
    return [...t.querySelectorAll('tbody tr')].map((r) => [r.dataset.worker, r.dataset.lost, r.textContent]);
  });
  const [fresh, gone] = drawn;
  if (fresh[1] !== 'no' || fresh[2].includes('lost')) fail('fresh worker: ' + JSON.stringify(fresh));
  if (gone[1] !== 'yes' || !gone[2].includes('lost') || !gone[2].includes('95 s ago') || !gone[2].includes('run 7')) {
    fail('lost worker: ' + JSON.stringify(gone));
  }
  console.log('OK lost worker marked');
}

// A program's leaderboard: contributors by verified gain, read with a read token.
async function leaderboard(page) {
  await page.goto(base + '/');
  await useToken(page);
  await page.goto(base + '/#/p/p');
  const row = '#leaderboard tr[data-contributor="honest"]';
  await page.waitForSelector(row, { timeout: TIMEOUT });
  const board = await page.evaluate(() => [...document.querySelectorAll('#leaderboard tbody tr')].map(
    (r) => [...r.cells].map((c) => c.textContent.trim())));
  for (const cells of board) console.log('OK leader ' + cells.join(' | '));
  if (board[0][0] !== 'honest') fail('first on the board: ' + board[0][0]);
  await shot(page, 'program');
}

// The arena page: the list links to it; one line per program (entry and trial), overlaid, in
// one colour per entry; the ranking only with a write token, in the order the store has it;
// the x axis switches between runs and GPU-hours.
async function arena(page) {
  const name = process.env.COCKPIT_ARENA || fail('COCKPIT_ARENA is not set');
  await page.goto(base + '/#/arenas');
  await page.waitForSelector(`#arenas-table tr[data-arena="${name}"] a`, { timeout: TIMEOUT });
  await page.click(`#arenas-table tr[data-arena="${name}"] a`);
  await page.waitForSelector('#arena-chart path.arena-line', { timeout: TIMEOUT });
  const chart = await page.evaluate(() => {
    const lines = [...document.querySelectorAll('#arena-chart path.arena-line')];
    return {
      lines: lines.map((l) => l.dataset.label + ':' + l.dataset.trial + ':' + l.getAttribute('stroke')),
      axis: [...document.querySelectorAll('#arena-chart text.label')].map((t) => t.textContent).join('|'),
      legend: [...document.querySelectorAll('#arena-legend .legend-item')].map((e) => e.dataset.label),
      swatches: [...document.querySelectorAll('#arena-legend .swatch')].map((e) => getComputedStyle(e).backgroundColor),
      texts: [...document.querySelectorAll('#arena-texts details')].map((d) => d.dataset.label),
    };
  });
  console.log('OK arena lines ' + chart.lines.join(' '));
  console.log('OK arena axis ' + chart.axis);
  console.log('OK arena legend ' + chart.legend.join(',') + ' ' + chart.swatches.join(','));
  console.log('OK arena texts ' + chart.texts.join(','));
  const note = await text(page, '#arena-ranking-note');
  if (await page.locator('#arena-ranking').count()) fail('the ranking was shown without a token');
  console.log('OK arena without token: ' + note);
  await shot(page, 'arena-open');
  await useToken(page);
  await page.waitForSelector('#arena-ranking tbody tr[data-label]', { timeout: TIMEOUT });
  const ranking = await page.evaluate(() => [...document.querySelectorAll('#arena-ranking tbody tr')].map(
    (r) => r.dataset.label + '=' + r.querySelector('td.rate').textContent));
  console.log('OK arena ranking ' + ranking.join(' '));
  if (await page.locator('button[data-x="gpu"]').isDisabled()) {
    console.log('OK arena gpu disabled: ' + await page.getAttribute('button[data-x="gpu"]', 'title'));
  } else {
    await page.click('button[data-x="gpu"]');
    await page.waitForSelector('#arena-chart[data-x="gpu"]', { timeout: TIMEOUT });
    console.log('OK arena gpu axis ' + await text(page, '#arena-chart text.label'));
  }
  const xTicks = await page.evaluate(() => [...document.querySelectorAll('#arena-chart text')]
    .filter((t) => t.getAttribute('text-anchor') === 'middle' && !t.classList.contains('label')).map((t) => t.textContent));
  console.log('OK arena x ticks ' + xTicks.join(','));
  await shot(page, 'arena');
}

const SCENARIOS = { live, followup, pause, findings, cancel, retry, workers, leaderboard, arena };

(async () => {
  const run = SCENARIOS[scenario] || fail('unknown scenario ' + scenario);
  const browser = await chromium.launch({
    executablePath: process.env.COCKPIT_CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  const consoleLines = [];
  page.on('console', (m) => consoleLines.push(m.type() + ': ' + m.text()));
  page.on('pageerror', (e) => consoleLines.push('pageerror: ' + e.message));
  try {
    await run(page);
  } catch (e) {
    try { await shot(page, 'failure'); } catch (_) { /* ignore */ }
    console.error('FAIL ' + (e && e.stack ? e.stack : e));
    console.error('--- page console\n' + consoleLines.join('\n'));
    await browser.close();
    process.exit(1);
  }
  const errors = consoleLines.filter((l) => l.startsWith('pageerror'));
  await browser.close();
  if (errors.length) {
    console.error('FAIL page errors:\n' + errors.join('\n'));
    process.exit(1);
  }
})();
