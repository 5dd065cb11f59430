// best-checkpoint.ts — checkpoint.keep_best: the checkpoint with the best dev value of a task metric,
// kept beside the latest ones as <checkpoints>/best/ (hard links to a committed step's files, so it
// costs no copy and outlives the step's pruning), with best.json saying which step and value.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { atomicWriteFile } from '../files/atomic-write';

/** Metrics where lower is better; every other task metric is better higher. */
const LOWER_IS_BETTER = new Set(['mse']);

export interface BestRecord {
  metric: string;
  value: number;
  step: number;
  /** The step directory the files came from. */
  from: string;
}

export const BEST_DIR = 'best';
const RECORD_FILE = 'best.json';

export class BestCheckpoint {
  private record: BestRecord | null;

  constructor(
    private readonly root: string,
    readonly metric: string,
  ) {
    const file = path.join(root, RECORD_FILE);
    this.record = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, 'utf8')) as BestRecord) : null;
    if (this.record && this.record.metric !== metric) this.record = null; // another metric: start over
  }

  get best(): BestRecord | null {
    return this.record;
  }

  /** Whether these dev metrics beat the best so far (the metric must be among them). */
  improves(metrics: Record<string, number>): boolean {
    const value = metrics[this.metric];
    if (value === undefined)
      throw Object.assign(
        new Error(
          `checkpoint.keep_best: the task reports no metric '${this.metric}'; it reports ` +
            `${Object.keys(metrics).join(', ')}`,
        ),
        { code: 'ERR_CONFIG' },
      );
    if (!Number.isFinite(value)) return false;
    if (this.record === null) return true;
    return LOWER_IS_BETTER.has(this.metric) ? value < this.record.value : value > this.record.value;
  }

  /** Makes the committed step directory `stepDir` the best one (rank 0, after its commit). */
  async keep(stepDir: string, step: number, value: number): Promise<BestRecord> {
    const target = path.join(this.root, BEST_DIR);
    const staging = `${target}.tmp`;
    fs.rmSync(staging, { recursive: true, force: true });
    fs.mkdirSync(staging);
    for (const name of fs.readdirSync(stepDir)) fs.linkSync(path.join(stepDir, name), path.join(staging, name));
    fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(staging, target);
    this.record = { metric: this.metric, value, step, from: stepDir };
    await atomicWriteFile(path.join(this.root, RECORD_FILE), JSON.stringify(this.record, null, 2) + '\n');
    return this.record;
  }
}
