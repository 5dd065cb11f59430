// `paratrain plot`: runs' logs read into series (a run directory's log.jsonl as the dashboard reads
// it, a plain JSON-lines log), the figure vega draws from them (each line's first point and vertex
// count read back from the SVG), a long log thinned to the limit with its latest point kept, the
// command's errors, and a .png through chromium (skipped without /usr/bin/chromium).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { plotRuns } from '../../src/plot/plot';
import { MAX_POINTS_PER_LINE } from '../../src/plot/render';
import { chooseMetrics, readSeries } from '../../src/plot/series';

const root = path.join(__dirname, '..', '..');
const CHROMIUM = '/usr/bin/chromium';

const stepLine = (step: number, loss: number, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    level: 30,
    time: '2026-01-01T00:00:00.000Z',
    step,
    loss,
    losses: { mlm: loss - 0.5, nsp: 0.5 },
    lr: 0.001 * step,
    grad_norm: 2,
    tokens_per_s: 3000 + step,
    mfu: 0.25,
    step_ms: 700 + step,
    msg: `step ${step}`,
    ...extra,
  });

/** Each line mark of the SVG: its aria-label (first point) and how many vertices its path has. */
function lines(svg: string): Array<{ label: string; vertices: number; firstX: number; lastX: number }> {
  const out = [];
  for (const m of svg.matchAll(
    /<path aria-label="([^"]*)" role="graphics-symbol" aria-roledescription="line mark" d="([^"]*)"/g,
  )) {
    const xs = [...m[2].matchAll(/[ML]([-\d.]+),/g)].map((v) => Number(v[1]));
    out.push({ label: m[1], vertices: xs.length, firstX: xs[0], lastX: xs[xs.length - 1] });
  }
  return out;
}

function run(args: string[]) {
  return spawnSync(process.execPath, [path.join(root, 'bin', 'paratrain.js'), ...args], { encoding: 'utf8' });
}

describe('paratrain plot', () => {
  let dir: string;
  let tp1: string;
  let tp2: string;
  let torch: string;

  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-plot-'));
    tp1 = path.join(dir, 'tp1');
    tp2 = path.join(dir, 'tp2');
    for (const d of [tp1, tp2]) fs.mkdirSync(d);
    fs.writeFileSync(
      path.join(tp1, 'log.jsonl'),
      [
        JSON.stringify({ level: 30, event: 'start', msg: 'training bert for 3 steps' }),
        stepLine(1, 9),
        stepLine(2, 8),
        stepLine(2, 7.5), // a resumed run logs step 2 again: this one wins
        'not json: a write cut short',
        stepLine(3, 7),
        JSON.stringify({ level: 30, event: 'eval', step: 3, eval_loss: 7.25, eval_losses: { mlm: 6.9 }, msg: 'eval' }),
      ].join('\n') + '\n',
    );
    fs.writeFileSync(
      path.join(tp2, 'log.jsonl'),
      [stepLine(1, 9.5), stepLine(2, 8.5), stepLine(3, 7.5)].join('\n') + '\n',
    );
    torch = path.join(dir, 'torch.jsonl');
    fs.writeFileSync(
      torch,
      [
        'starting',
        ...[1, 2, 3, 4].map((s) => JSON.stringify({ step: s, loss: 10 - s, lr: 1e-4, extra: { tok: s * 10 } })),
      ].join('\n') + '\n',
    );
  });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it("reads a run directory's steps and evals, the latest record of a step winning", async () => {
    const r = await readSeries(tp1, 'tp1');
    expect(r.metrics.get('loss')).toEqual([
      [1, 9],
      [2, 7.5],
      [3, 7],
    ]);
    expect(r.metrics.get('losses.mlm')).toEqual([
      [1, 8.5],
      [2, 7],
      [3, 6.5],
    ]);
    expect(r.metrics.get('eval_loss')).toEqual([[3, 7.25]]);
    expect(r.metrics.get('eval_losses.mlm')).toEqual([[3, 6.9]]);
    expect(r.metrics.get('step_ms')).toEqual([
      [1, 701],
      [2, 702],
      [3, 703],
    ]);
    expect(chooseMetrics([r])).toEqual(['loss', 'eval_loss', 'lr', 'grad_norm', 'tokens_per_s', 'mfu', 'step_ms']);
  });

  it('reads a plain JSON-lines log: every numeric field of a line with a step', async () => {
    const r = await readSeries(torch, 'torch');
    expect([...r.metrics.keys()].sort()).toEqual(['extra.tok', 'loss', 'lr']);
    expect(r.metrics.get('loss')).toEqual([
      [1, 9],
      [2, 8],
      [3, 7],
      [4, 6],
    ]);
  });

  it('draws two runs and a PyTorch log on the same axes, one panel per metric', async () => {
    const out = path.join(dir, 'cmp.svg');
    const r = run(['plot', tp1, tp2, torch, '--metrics', 'loss,lr', '--labels', 'TP=1,TP=2,torch', '--out', out]);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`wrote ${out} (TP=1, TP=2, torch: loss, lr)`);
    const svg = fs.readFileSync(out, 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    const drawn = lines(svg);
    expect(drawn.map((l) => l.label)).toEqual([
      'step: 1; value: 9; run: TP=1',
      'step: 1; value: 9.5; run: TP=2',
      'step: 1; value: 9; run: torch',
      'step: 1; value: 0.001; run: TP=1',
      'step: 1; value: 0.001; run: TP=2',
      'step: 1; value: 0.0001; run: torch',
    ]);
    expect(drawn.map((l) => l.vertices)).toEqual([3, 3, 4, 3, 3, 4]);
    // The legend names each run once.
    for (const name of ['TP=1', 'TP=2', 'torch']) expect(svg.split(`>${name}</text>`).length - 1).toBe(1);
  });

  it('thins a long log to the limit per line, keeping its first and latest points', async () => {
    const long = path.join(dir, 'long.jsonl');
    const n = 20000;
    const rows = [];
    for (let s = 1; s <= n; s++) rows.push(JSON.stringify({ step: s, loss: s === 12345 ? 50 : 5 + Math.sin(s / 100) }));
    fs.writeFileSync(long, rows.join('\n') + '\n');
    const out = path.join(dir, 'long.svg');
    await plotRuns({ sources: [long], out });
    const [line] = lines(fs.readFileSync(out, 'utf8'));
    expect(line.vertices).toBeLessThanOrEqual(MAX_POINTS_PER_LINE);
    expect(line.vertices).toBeGreaterThan(MAX_POINTS_PER_LINE / 2);
    expect(line.firstX).toBe(0); // step 1, the left edge of the panel (420 wide)
    expect(line.lastX).toBe(420); // step 20000, the right edge
    // The spike at step 12345 is some bucket's maximum: the y axis reaches 50.
    expect(fs.readFileSync(out, 'utf8')).toMatch(/>50<\/text>/);
  });

  it.each([
    [['plot', '/nonexistent/run'], 'ERR_PLOT_SOURCE', '/nonexistent/run does not exist'],
    [['plot', '.'], 'ERR_PLOT_NO_LOG', 'has no log.jsonl'],
    [['plot', '<tp1>', '--out', 'x.pdf'], 'ERR_PLOT_OUT', '.svg or .png'],
    [
      ['plot', '<tp1>', '--metrics', 'loss,bogus'],
      'ERR_PLOT_METRIC',
      'unknown metric bogus: the logs have loss, eval_loss, lr',
    ],
    [['plot', '<tp1>', '<tp2>', '--labels', 'A'], 'ERR_PLOT_LABELS', '--labels has 1 name(s) for 2 run(s)'],
  ])('%j fails with %s', (args, code, message) => {
    const r = run(args.map((a) => (a === '<tp1>' ? tp1 : a === '<tp2>' ? tp2 : a)));
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`[${code}]`);
    expect(r.stderr).toContain(message);
  });

  it.skipIf(!fs.existsSync(CHROMIUM))('writes a .png through chromium, at twice the SVG size', async () => {
    const png = path.join(dir, 'one.png');
    await plotRuns({ sources: [tp1], out: png, metrics: ['loss'] });
    const svgFile = path.join(dir, 'one.svg');
    await plotRuns({ sources: [tp1], out: svgFile, metrics: ['loss'] });
    const buf = fs.readFileSync(png);
    expect(buf.subarray(1, 4).toString()).toBe('PNG');
    const width = Number(/<svg[^>]* width="(\d+)"/.exec(fs.readFileSync(svgFile, 'utf8'))![1]);
    expect(buf.readUInt32BE(16)).toBe(2 * width); // IHDR: width, then height
  });
});
