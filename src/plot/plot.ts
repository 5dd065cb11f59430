// plot.ts — `paratrain plot`: reads each source (src/plot/series.ts), picks the metrics, draws the
// figure (src/plot/render.ts) and writes it as .svg or .png. docs/plot.md describes it.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { PlotError } from './plot-error';
import { renderSvg, figureSpec, writePng } from './render';
import { chooseMetrics, readSeries, sourceLabels } from './series';

export interface PlotOptions {
  /** Run directories (each with log.jsonl) or JSON-lines files, one line per source on every panel. */
  sources: string[];
  /** The figure to write: FILE.svg or FILE.png. */
  out: string;
  metrics?: string[];
  labels?: string[];
  title?: string;
}

export interface PlotResult {
  out: string;
  runs: string[];
  metrics: string[];
}

export async function plotRuns(opts: PlotOptions): Promise<PlotResult> {
  const ext = path.extname(opts.out).toLowerCase();
  if (ext !== '.svg' && ext !== '.png')
    throw new PlotError(
      'ERR_PLOT_OUT',
      `--out ${opts.out}: the figure is written as .svg or .png (name the file FILE.svg or FILE.png)`,
    );
  if (opts.sources.length === 0) throw new PlotError('ERR_PLOT_SOURCE', 'name at least one run directory or log file');
  const labels = sourceLabels(opts.sources, opts.labels);
  const runs = [];
  for (let i = 0; i < opts.sources.length; i++) runs.push(await readSeries(opts.sources[i], labels[i]));
  const metrics = chooseMetrics(runs, opts.metrics);
  const svg = await renderSvg(figureSpec(runs, metrics, { title: opts.title }));
  fs.mkdirSync(path.dirname(path.resolve(opts.out)), { recursive: true });
  if (ext === '.svg') fs.writeFileSync(opts.out, svg);
  else await writePng(svg, opts.out);
  return { out: opts.out, runs: labels, metrics };
}
