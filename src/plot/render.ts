// render.ts — the figure of `paratrain plot`: a Vega-Lite spec (one panel per metric, one line per
// run, a shared colour legend), compiled and rendered to SVG by vega in Node (no browser, no
// canvas), and, for a .png, that SVG rasterised by headless chromium through playwright-core.
// vega and vega-lite are ES modules: this CommonJS file loads them with import().
import * as fs from 'node:fs';

import { minMaxIndices } from '../dashboard/page/downsample';
import { PlotError } from './plot-error';
import type { RunSeries } from './series';

/** Points per line at most: far more than a panel's pixels across, and a small SVG for any log. */
export const MAX_POINTS_PER_LINE = 2000;

const CHROMIUM = '/usr/bin/chromium';
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const TITLES: Record<string, string> = {
  loss: 'loss',
  eval_loss: 'eval loss',
  lr: 'learning rate',
  grad_norm: 'gradient norm',
  tokens_per_s: 'throughput (tokens/s)',
  mfu: 'MFU (0..1)',
  step_ms: 'step time (ms)',
  dp_wait_ms: 'data-parallel wait (ms)',
  rss_mb: 'resident memory (MB)',
  loss_scale: 'loss scale',
  skipped_steps: 'skipped updates',
};
// A line this short is drawn with its points too (evals, a log written every few hundred steps).
const SHOW_POINTS_BELOW = 40;

interface Row {
  run: string;
  metric: string;
  step: number;
  value: number;
}

/** The long-format rows the spec draws: each run's points of each metric, thinned past the limit. */
export function figureRows(runs: RunSeries[], metrics: string[], maxPoints = MAX_POINTS_PER_LINE): Row[] {
  const rows: Row[] = [];
  for (const run of runs)
    for (const metric of metrics) {
      const points = run.metrics.get(metric) ?? [];
      const keep = minMaxIndices(
        points.map((p) => p[1]),
        maxPoints,
      );
      for (const i of keep) rows.push({ run: run.label, metric, step: points[i][0], value: points[i][1] });
    }
  return rows;
}

export function figureSpec(runs: RunSeries[], metrics: string[], opts: { title?: string } = {}): object {
  const rows = figureRows(runs, metrics);
  const labels = runs.map((r) => r.label);
  const longest = (m: string) => Math.max(...runs.map((r) => r.metrics.get(m)?.length ?? 0));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...(opts.title ? { title: opts.title } : {}),
    data: { values: rows },
    columns: Math.min(2, metrics.length),
    concat: metrics.map((metric) => ({
      title: TITLES[metric] ?? metric,
      transform: [{ filter: { field: 'metric', equal: metric } }],
      width: 420,
      height: 200,
      mark: { type: 'line', strokeWidth: 1.5, point: longest(metric) < SHOW_POINTS_BELOW },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'step', scale: { nice: false }, axis: { format: '~s' } },
        // A loss scale moves by powers of two: on a log axis its halvings and doublings are steps.
        y: {
          field: 'value',
          type: 'quantitative',
          title: null,
          scale: metric === 'loss_scale' ? { type: 'log', base: 2 } : { zero: false },
          ...(metric === 'loss_scale' ? { axis: { format: '.1e' } } : {}),
        },
        color: {
          field: 'run',
          type: 'nominal',
          title: null,
          scale: { domain: labels, range: COLORS },
          legend: runs.length > 1 ? { orient: 'top' } : null,
        },
      },
    })),
    resolve: { scale: { color: 'shared' }, legend: { color: 'shared' } },
    config: { font: 'sans-serif', view: { stroke: '#ddd' }, title: { fontSize: 13, anchor: 'start' } },
  };
}

export async function renderSvg(spec: object): Promise<string> {
  const vl = await import('vega-lite');
  const vega = await import('vega');
  const compiled = vl.compile(spec as Parameters<typeof vl.compile>[0]).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** The SVG as chromium draws it, at twice its size (sharp in a report), written to `file`. */
export async function writePng(svg: string, file: string): Promise<void> {
  const fix = 'install it (bash scripts/setup.sh: apt-get install chromium), or write an .svg instead';
  if (!fs.existsSync(CHROMIUM)) throw new PlotError('ERR_PLOT_PNG', `a .png is drawn by ${CHROMIUM}, missing: ${fix}`);
  let chromium: typeof import('playwright-core').chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch {
    throw new PlotError(
      'ERR_PLOT_PNG',
      'a .png is drawn through the npm package playwright-core, which is not installed (it is a ' +
        'development dependency): npm install playwright-core, or write an .svg instead',
    );
  }
  // --no-sandbox: chromium's sandbox refuses to start as root (containers, CI).
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ deviceScaleFactor: 2 });
    await page.setContent(`<!doctype html><html><body style="margin:0;background:white">${svg}</body></html>`);
    await page.locator('svg').first().screenshot({ path: file });
  } finally {
    await browser.close();
  }
}
