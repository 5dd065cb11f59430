// status.ts — <run.dir>/status.json, node 0's one-file answer to "how did the job end?", for the
// scripts around a launch (a Slurm batch script requeues a job that stopped, not one that failed).
// Written when the coordinator is up (state running) and again when the job has ended.
import * as fs from 'node:fs';
import * as path from 'node:path';

import type { JobOutcome } from '../coordinator/coordinator';

export interface LaunchStatus {
  state: 'running' | 'finished' | 'stopped' | 'failed';
  jobId: string;
  /** Restarts of the job (failed rounds that were run again). */
  restarts: number;
  /** The last step completed (stopped: the step saved); null before the first. */
  step: number | null;
  /** Where `--resume auto` continues: the newest checkpoint committed, else the one resumed from. */
  checkpoint: string | null;
  /** stopped: the signal that asked for the stop. */
  signal?: string;
  /** failed: the root cause's code and message, and the report. */
  code?: string;
  message?: string;
  failureReport?: string;
  updatedAt: string;
}

export function statusOf(o: JobOutcome): LaunchStatus {
  const common = {
    jobId: o.jobId,
    restarts: o.restarts,
    step: o.lastStep ?? null,
    checkpoint: o.checkpoint ?? null,
    updatedAt: new Date().toISOString(),
  };
  if (!o.ok)
    return {
      state: 'failed',
      ...common,
      code: o.report.rootCause.code,
      message: o.report.rootCause.message,
      ...(o.reportFile ? { failureReport: o.reportFile } : {}),
    };
  if (!o.stopped) return { state: 'finished', ...common };
  return { state: 'stopped', ...common, step: o.stopped.step ?? null, signal: o.stopped.signal };
}

/** Writes the status atomically (a reader never sees half a file). */
export function writeLaunchStatus(file: string, s: LaunchStatus): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(s, null, 2) + '\n');
  fs.renameSync(tmp, file);
}
