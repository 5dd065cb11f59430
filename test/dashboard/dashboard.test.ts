// The dashboard in a real browser: Debian's chromium, headless, driven by playwright-core. The page
// loads, its charts hold the run's numbers, each rank's log gives its own step-time and memory
// series, a step logged after it opened appears on it (the server-sent-event stream), and a long
// log is drawn thinned with its latest step exact. scripts/setup.sh installs chromium; without it
// this file is skipped.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = path.join(__dirname, '..', '..');
const CHROMIUM = '/usr/bin/chromium';
const hasChromium = fs.existsSync(CHROMIUM);
if (!hasChromium) console.warn(`dashboard.test.ts: skipped: no ${CHROMIUM}; run scripts/setup.sh to install chromium`);

const step = (n: number) => ({
  level: 30,
  time: `2026-01-01T00:00:0${n}.000Z`,
  step: n,
  loss: 10 - n / 10,
  losses: { mlm: 9.3 - n / 10, nsp: 0.7 },
  lr: 0.001 * n,
  grad_norm: 3 - n / 10,
  tokens_per_s: 3000 + n,
  mfu: 0.25,
  step_ms: 700 + n,
  msg: `step ${n}`,
});

// A launched job's rank log: the launcher's banner, the worker's JSON lines, other output.
const rankLog = (rank: number, steps: number[]) =>
  [
    `=== paratrain worker rank ${rank} (local rank ${rank}) started 2026-01-01T00:00:00.000Z`,
    ...steps.map((n) =>
      JSON.stringify({
        ...step(n),
        step_ms: 700 + 10 * rank + n,
        dp_wait_ms: rank + n / 10,
        rss_mb: 400 + 100 * rank + n,
      }),
    ),
    'a warning the worker printed',
  ].join('\n') + '\n';

const lines = [
  { level: 30, time: '2026-01-01T00:00:00.000Z', event: 'start', msg: 'training bert for 9 steps' },
  step(1),
  step(2),
  step(3),
  { level: 30, event: 'eval', step: 3, eval_loss: 9.8, eval_losses: { mlm: 9.1, nsp: 0.7 }, msg: 'eval at step 3' },
  { level: 30, time: '2026-01-01T00:00:04.000Z', event: 'checkpoint', step: 3, msg: 'saved step-0000003' },
];

describe.skipIf(!hasChromium)('the dashboard page in chromium', () => {
  let run: string;
  let server: ChildProcess;
  let url: string;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    run = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-dashboard-page-'));
    fs.writeFileSync(path.join(run, 'log.jsonl'), lines.map((l) => JSON.stringify(l) + '\n').join(''));
    fs.mkdirSync(path.join(run, 'logs'));
    fs.writeFileSync(path.join(run, 'logs', 'rank-00000.log'), rankLog(0, [1, 2, 3]));
    fs.writeFileSync(path.join(run, 'logs', 'rank-00001.log'), rankLog(1, [1, 2, 3]));
    // The command as a user runs it, on any free port; it prints its URL.
    server = spawn(process.execPath, [path.join(root, 'bin', 'paratrain.js'), 'dashboard', run, '--port', '0'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    url = await new Promise<string>((resolve, reject) => {
      let out = '';
      server.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /(http:\/\/127\.0\.0\.1:\d+\/)/.exec(out);
        if (m) resolve(m[1]);
      });
      server.on('exit', (code) => reject(new Error(`paratrain dashboard exited ${code}: ${out}`)));
    });
    // --no-sandbox: the suite may run as root (CI containers), where chromium's sandbox refuses to start.
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    // A script error or a refused resource (the Content-Security-Policy) fails the test.
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (msg) => {
      if (msg.type() === 'error') pageErrors.push(msg.text());
    });
    await page.goto(url);
  });

  afterAll(async () => {
    await browser?.close();
    server?.kill('SIGTERM');
    if (run) fs.rmSync(run, { recursive: true, force: true });
  });

  const metric = (name: string) => page.locator(`#latest dd[data-metric="${name}"]`);

  it("shows the last step's numbers and draws every curve", async () => {
    await expect.poll(() => page.locator('#status').getAttribute('data-state')).toBe('live');
    await expect.poll(() => page.locator('#latest').getAttribute('data-step')).toBe('3');
    expect(Number(await metric('loss').getAttribute('data-value'))).toBeCloseTo(9.7);
    expect(Number(await metric('mlm').getAttribute('data-value'))).toBeCloseTo(9.0);
    expect(await metric('tokens_per_s').textContent()).toBe('3003');
    const loss = page.locator('#chart-loss');
    expect(await loss.getAttribute('data-series')).toBe('train loss,train mlm,train nsp,eval loss,eval mlm,eval nsp');
    expect(await loss.getAttribute('data-points')).toBe('3');
    for (const id of ['loss', 'lr', 'grad-norm', 'tokens-per-s', 'mfu', 'step-time']) {
      const chart = page.locator(`#chart-${id}`);
      expect(await chart.getAttribute('data-points'), id).toBe('3');
      expect(await chart.locator('canvas').count(), id).toBe(1);
    }
    // uPlot's legend shows each series by name.
    expect(await page.locator('#chart-loss .u-legend').textContent()).toContain('eval mlm');
  });

  it("draws each rank's step time and memory from its own log", async () => {
    const chart = (id: string) => page.locator(`#chart-${id}`);
    await expect.poll(() => chart('rank-step-time').getAttribute('data-series')).toBe('rank 0,rank 1');
    expect(await chart('rank-step-time').getAttribute('data-points')).toBe('3');
    // Step 3: rank 0 took 703 ms and held 403 MB, rank 1 713 ms and 503 MB.
    expect(await chart('rank-step-time').getAttribute('data-last')).toBe('703,713');
    expect(await chart('rank-memory').getAttribute('data-series')).toBe('rank 0,rank 1');
    expect(await chart('rank-memory').getAttribute('data-last')).toBe('403,503');
    expect(await chart('rank-dp-wait').getAttribute('data-last')).toBe('0.3,1.3');
    expect(await chart('rank-memory').locator('canvas').count()).toBe(1);
    expect(await page.locator('#chart-rank-memory .u-legend').textContent()).toContain('rank 1');
    // A rank that joins later (a restart with more ranks) gets its series.
    fs.writeFileSync(path.join(run, 'logs', 'rank-00002.log'), rankLog(2, [3]));
    await expect
      .poll(() => chart('rank-memory').getAttribute('data-series'), { timeout: 10000 })
      .toBe('rank 0,rank 1,rank 2');
    expect(await chart('rank-memory').getAttribute('data-last')).toBe('403,503,603');
  });

  it('lists the events (not the evals, which are on the loss chart)', async () => {
    const rows = page.locator('#events tbody tr');
    expect(await rows.evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-event')))).toEqual([
      'start',
      'checkpoint',
    ]);
    expect(await rows.nth(1).textContent()).toContain('saved step-0000003');
  });

  it('shows a step logged after the page opened', async () => {
    fs.appendFileSync(path.join(run, 'log.jsonl'), JSON.stringify(step(4)) + '\n');
    await expect.poll(() => page.locator('#latest').getAttribute('data-step'), { timeout: 10000 }).toBe('4');
    expect(await page.locator('#chart-loss').getAttribute('data-points')).toBe('4');
    expect(await metric('step_ms').textContent()).toBe('704');
    fs.appendFileSync(
      path.join(run, 'log.jsonl'),
      JSON.stringify({ level: 50, time: '2026-01-01T00:00:05.000Z', msg: 'worker 1 exited with code 9' }) + '\n',
    );
    await expect.poll(() => page.locator('#events tbody tr').count(), { timeout: 10000 }).toBe(3);
    expect(await page.locator('#events tbody tr').nth(2).getAttribute('data-level')).toBe('error');
  });

  it('draws a long log thinned to at most 4000 points a chart, its latest step exact', async () => {
    const more = [];
    for (let n = 5; n <= 20000; n++) more.push(JSON.stringify({ ...step(n), time: undefined }));
    fs.appendFileSync(path.join(run, 'log.jsonl'), more.join('\n') + '\n');
    await expect.poll(() => page.locator('#latest').getAttribute('data-step'), { timeout: 20000 }).toBe('20000');
    const chart = page.locator('#chart-step-time');
    await expect.poll(() => chart.getAttribute('data-steps'), { timeout: 10000 }).toBe('20000');
    const points = Number(await chart.getAttribute('data-points'));
    expect(points).toBeLessThanOrEqual(4000);
    expect(points).toBeGreaterThan(1000);
    expect(await chart.getAttribute('data-last')).toBe('20700');
    expect(Number(await page.locator('#chart-loss').getAttribute('data-points'))).toBeLessThanOrEqual(4000);
  });

  it('ran without a script error or a refused resource', () => {
    expect(pageErrors).toEqual([]);
  });
});
