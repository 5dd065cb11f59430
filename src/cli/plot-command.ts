// plot-command.ts — `paratrain plot RUN_DIR [RUN_DIR …]`: a figure of one run's log, or of several
// runs on the same axes, one panel per metric, as .svg or .png (src/plot/, docs/plot.md). Its
// errors are PlotErrors (ERR_PLOT_*); main.ts prints them.
import type { Command } from 'commander';

import { plotRuns } from '../plot/plot';

const list = (v: string) =>
  v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);

export function registerPlotCommand(program: Command): void {
  program
    .command('plot')
    .description("draw runs' curves (loss, lr, grad_norm, tokens/s, mfu, step time, …) as one figure, .svg or .png")
    .argument('<runs...>', 'run directories (run.dir, holding log.jsonl) or JSON-lines log files with a "step"')
    .option('--out <file>', 'the figure to write: FILE.svg or FILE.png', 'plot.svg')
    .option(
      '--metrics <list>',
      'comma-separated metrics, one panel each (default: loss, eval_loss, lr, grad_norm, tokens_per_s, mfu, step_ms as logged)',
      list,
    )
    .option('--labels <list>', 'comma-separated names of the runs in the legend (default: their directory names)', list)
    .option('--title <text>', "the figure's title")
    .action(async (runs: string[], o: { out: string; metrics?: string[]; labels?: string[]; title?: string }) => {
      const r = await plotRuns({ sources: runs, out: o.out, metrics: o.metrics, labels: o.labels, title: o.title });
      process.stdout.write(`paratrain: wrote ${r.out} (${r.runs.join(', ')}: ${r.metrics.join(', ')})\n`);
    });
}
