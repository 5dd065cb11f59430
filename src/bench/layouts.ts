// layouts.ts — `paratrain bench --layouts 1,dp2,tp2,tp2dp2`: the same training job launched once per
// parallel layout (real worker processes, the real data pipeline), timed from rank 0's step log,
// reported side by side as tokens/s and the ratio to the first layout.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

import type { Config } from '../config/schema';
import { PACKAGE_ROOT } from '../package-root';

export interface Layout {
  name: string;
  tp: number;
  dp: number;
}

export interface LayoutResult extends Layout {
  processes: number;
  threads_per_process: number;
  step_ms: number;
  tokens_per_s: number;
  /** tokens/s relative to the first layout of the run. */
  ratio: number;
}

/** "1", "dp2", "tp2", "tp2dp2" (TP × DP processes). */
export function parseLayouts(spec: string): Layout[] {
  return spec.split(',').map((raw) => {
    const name = raw.trim();
    const m = /^(?:tp(\d+))?(?:dp(\d+))?$/.exec(name);
    if (name === '1') return { name, tp: 1, dp: 1 };
    if (!m || (!m[1] && !m[2]))
      throw Object.assign(new Error(`--layouts: '${name}' is not a layout; use e.g. 1,dp2,tp2,tp2dp2`), {
        code: 'ERR_ARGUMENT',
      });
    return { name, tp: Number(m[1] ?? 1), dp: Number(m[2] ?? 1) };
  });
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export function benchLayouts(
  c: Config,
  configArg: string,
  sets: string[],
  layouts: Layout[],
  opts: { steps: number; warmup: number; masterPort: number },
): LayoutResult[] {
  const bin = path.join(PACKAGE_ROOT, 'bin', 'paratrain.js');
  const results: LayoutResult[] = [];
  layouts.forEach((layout, i) => {
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), `paratrain-bench-${layout.name}-`));
    const procs = layout.tp * layout.dp;
    const args = [
      bin,
      'launch',
      '--nproc-per-node',
      String(procs),
      '--master-port',
      String(opts.masterPort + i),
      '--config',
      configArg,
      ...sets.flatMap((s) => ['--set', s]),
      ...[
        `parallel.tensor=${layout.tp}`,
        `train.steps=${opts.warmup + opts.steps}`,
        'train.log_every=1',
        'train.eval_every=0',
        'checkpoint.every=0',
        `run.dir=${runDir}`,
      ].flatMap((s) => ['--set', s]),
    ];
    const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
    if (r.status !== 0)
      throw Object.assign(
        new Error(`layout ${layout.name} failed:\n${r.stderr.trim().split('\n').slice(-15).join('\n')}`),
        {
          code: 'ERR_BENCH',
        },
      );
    const steps = fs
      .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"step_ms"'))
      .map((l) => JSON.parse(l) as { step: number; step_ms: number })
      .filter((s) => s.step > opts.warmup);
    const stepMs = median(steps.map((s) => s.step_ms));
    const tokens = c.train.micro_batch * c.train.grad_accum * layout.dp * c.model.seq_len;
    const tokensPerS = (tokens / stepMs) * 1000;
    results.push({
      ...layout,
      processes: procs,
      threads_per_process: Math.max(1, Math.floor(os.availableParallelism() / procs)),
      step_ms: stepMs,
      tokens_per_s: Math.round(tokensPerS),
      ratio: results.length ? Number((tokensPerS / results[0].tokens_per_s).toFixed(2)) : 1,
    });
    fs.rmSync(runDir, { recursive: true, force: true });
  });
  return results;
}
