// series.ts — what `paratrain plot` draws, read from its sources: a run directory's log.jsonl, read
// as the dashboard reads it (src/dashboard/records.ts), or any JSON-lines file whose lines carry a
// numeric `step` (a PyTorch or other trainer's log). Each source becomes one run: per metric, the
// (step, value) points in step order, the latest line of a step winning (a resumed run logs some
// steps again). Metrics are named by the log's own fields: loss, lr, grad_norm, …, eval_loss, and
// a named loss as losses.mlm.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';

import { parseLogLine } from '../dashboard/records';
import { PlotError } from './plot-error';

export type Points = Array<[step: number, value: number]>;

export interface RunSeries {
  label: string;
  source: string;
  /** Metric name -> its points, ascending by step. */
  metrics: Map<string, Points>;
}

/** Drawn when --metrics is not given, those of them that the logs have, in this order. */
export const DEFAULT_METRICS = ['loss', 'eval_loss', 'lr', 'grad_norm', 'tokens_per_s', 'mfu', 'step_ms'];

const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** Collects (metric, step, value), the latest value of a step winning. */
class MetricTable {
  private readonly byMetric = new Map<string, Map<number, number>>();

  set(metric: string, step: number, value: number): void {
    let steps = this.byMetric.get(metric);
    if (!steps) this.byMetric.set(metric, (steps = new Map()));
    steps.set(step, value);
  }

  points(): Map<string, Points> {
    const out = new Map<string, Points>();
    for (const [metric, steps] of this.byMetric)
      out.set(
        metric,
        [...steps].sort((a, b) => a[0] - b[0]),
      );
    return out;
  }
}

async function eachLine(file: string, onLine: (line: string) => void): Promise<void> {
  const lines = readline.createInterface({ input: fs.createReadStream(file, 'utf8'), crlfDelay: Infinity });
  for await (const line of lines) if (line.trim()) onLine(line);
}

/** A run's log.jsonl: its step records' numbers and its evals' losses. */
async function readRunLog(file: string, table: MetricTable): Promise<void> {
  await eachLine(file, (line) => {
    const r = parseLogLine(line);
    if (!r) return;
    if (r.kind === 'eval') {
      table.set('eval_loss', r.step, r.loss);
      for (const [name, v] of Object.entries(r.losses)) table.set(`eval_losses.${name}`, r.step, v);
    } else if (r.kind === 'step') {
      for (const [name, v] of Object.entries(r)) if (name !== 'step' && isNumber(v)) table.set(name, r.step, v);
      for (const [name, v] of Object.entries(r.losses)) table.set(`losses.${name}`, r.step, v);
    }
  });
}

/** Any JSON-lines log: every numeric field of a line with a numeric `step`, one level of nesting. */
async function readJsonLines(file: string, table: MetricTable): Promise<void> {
  await eachLine(file, (line) => {
    let o: unknown;
    try {
      o = JSON.parse(line);
    } catch {
      return; // not JSON: a banner, a warning printed between the records
    }
    if (!o || typeof o !== 'object' || Array.isArray(o)) return;
    const r = o as Record<string, unknown>;
    if (!isNumber(r.step)) return;
    for (const [k, v] of Object.entries(r)) {
      if (k === 'step') continue;
      if (isNumber(v)) table.set(k, r.step, v);
      else if (v && typeof v === 'object' && !Array.isArray(v))
        for (const [sub, x] of Object.entries(v as Record<string, unknown>))
          if (isNumber(x)) table.set(`${k}.${sub}`, r.step, x);
    }
  });
}

/** One source: a run directory (its log.jsonl) or a JSON-lines file. */
export async function readSeries(source: string, label: string): Promise<RunSeries> {
  if (!fs.existsSync(source))
    throw new PlotError(
      'ERR_PLOT_SOURCE',
      `${source} does not exist: pass a run directory (run.dir, holding log.jsonl) or a JSON-lines log file`,
    );
  const table = new MetricTable();
  if (fs.statSync(source).isDirectory()) {
    const log = path.join(source, 'log.jsonl');
    if (!fs.existsSync(log))
      throw new PlotError(
        'ERR_PLOT_NO_LOG',
        `${source} has no log.jsonl: is it a run directory (run.dir)? A run writes it when it starts; ` +
          'a log of another trainer can be passed as the file itself',
      );
    await readRunLog(log, table);
  } else await readJsonLines(source, table);
  const metrics = table.points();
  if (metrics.size === 0)
    throw new PlotError(
      'ERR_PLOT_NO_STEPS',
      `${source} has no step to draw: plot reads JSON lines with a numeric "step" and numeric fields ` +
        '(paratrain writes them as log.jsonl in run.dir)',
    );
  return { label, source, metrics };
}

/** The sources' labels: --labels when given (one per source), else each source's name. */
export function sourceLabels(sources: string[], labels?: string[]): string[] {
  if (labels) {
    if (labels.length !== sources.length)
      throw new PlotError(
        'ERR_PLOT_LABELS',
        `--labels has ${labels.length} name(s) for ${sources.length} run(s): give one per run, in order, comma-separated`,
      );
    return labels;
  }
  const names = sources.map((s) => path.basename(path.resolve(s)));
  // Two runs of the same name (a/run, b/run) are told apart by their paths.
  return names.map((n, i) => (names.indexOf(n) !== names.lastIndexOf(n) ? sources[i] : n));
}

/** The metrics to draw: those asked for (each must be in some run), else the defaults the runs have. */
export function chooseMetrics(runs: RunSeries[], asked?: string[]): string[] {
  const known = new Set(runs.flatMap((r) => [...r.metrics.keys()]));
  const ordered = [
    ...DEFAULT_METRICS.filter((m) => known.has(m)),
    ...[...known].filter((m) => !DEFAULT_METRICS.includes(m)).sort(),
  ];
  if (asked) {
    const unknown = asked.filter((m) => !known.has(m));
    if (unknown.length)
      throw new PlotError(
        'ERR_PLOT_METRIC',
        `unknown metric${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}: the logs have ${ordered.join(', ')}`,
      );
    return asked;
  }
  const defaults = DEFAULT_METRICS.filter((m) => known.has(m));
  return defaults.length ? defaults : ordered;
}
