// checkpoints.ts — the coordinator's part of checkpointing. Every rank writes its own shard and
// reports it (ShardSaved); the relay collects the reports of a step and, once every rank's is in,
// the coordinator commits the step (writes its manifest) in one place. And the choice of the
// checkpoint a round resumes from, verified once here so that the workers need not re-hash it.
import {
  commitCheckpoint,
  decodeShardReport,
  diskFullError,
  resumeAuto,
  selectResumeCheckpoint,
  type ResumeAutoOptions,
  type ShardReport,
  type UpkeepFailure,
} from '../checkpoint';
import { ControlError } from '../control/errors';

/**
 * A report that cannot be read or does not fit the save in progress (a bug in a worker), or a
 * commit that failed: the job fails with it. The message of a report's problem reads after the
 * rank's name ("rank 3 (host …) " + message).
 */
export class RelayError extends ControlError {}

/**
 * The reports of the save in progress. Workers have at most one save in flight and wait for its
 * commit before the next, so reports of different steps never interleave; one that does is refused.
 */
export class CheckpointRelay {
  private pending: { step: number; reports: Map<number, ShardReport>; committing: boolean } | undefined;
  private lastCommittedStep = -1;

  constructor(private readonly worldSize: number) {}

  /** Decodes rank `rank`'s ShardSaved and adds it (below). */
  receive(rank: number, bytes: Uint8Array): ShardReport[] | undefined {
    let r: ShardReport;
    try {
      r = decodeShardReport(bytes);
    } catch (err) {
      throw new RelayError(
        'ERR_CHECKPOINT_REPORT',
        `sent a checkpoint report that cannot be read (${(err as Error).message}); are all nodes running the same build?`,
      );
    }
    return this.add(rank, r);
  }

  /**
   * Adds rank `rank`'s report; returns every rank's reports (in rank order) once the step is
   * complete. Throws RelayError for a report of another rank, a step already committed, a rank
   * reporting twice, or a step other than the one in progress.
   */
  add(rank: number, r: ShardReport): ShardReport[] | undefined {
    if (r.rank !== rank)
      throw new RelayError('ERR_CHECKPOINT_REPORT', `sent a checkpoint report for rank ${r.rank}, not its own`);
    if (!Number.isSafeInteger(r.step) || r.step <= this.lastCommittedStep)
      throw new RelayError(
        'ERR_CHECKPOINT_REPORT',
        `reported its shard of step ${r.step}, but step ${this.lastCommittedStep} is already committed`,
      );
    const p = (this.pending ??= { step: r.step, reports: new Map(), committing: false });
    if (r.step !== p.step || p.committing) {
      const missing = p.committing ? 'is being committed' : `is incomplete (${this.describeMissing()})`;
      throw new RelayError(
        'ERR_CHECKPOINT_INTERLEAVED',
        `reported its shard of step ${r.step} while the save of step ${p.step} ${missing}; a worker must not ` +
          `start a save before the previous one is committed (a bug in the worker)`,
      );
    }
    if (p.reports.has(rank))
      throw new RelayError('ERR_CHECKPOINT_REPORT', `reported its shard of step ${r.step} twice`);
    p.reports.set(rank, r);
    if (p.reports.size < this.worldSize) return undefined;
    p.committing = true;
    return [...p.reports.values()].sort((a, b) => a.rank - b.rank);
  }

  /** The commit of `step` ended (committed or not): the next save may begin. */
  settle(step: number, committed: boolean): void {
    if (this.pending?.step !== step) return;
    this.pending = undefined;
    if (committed) this.lastCommittedStep = step;
  }

  private describeMissing(): string {
    const have = this.pending?.reports ?? new Map<number, ShardReport>();
    const missing = Array.from({ length: this.worldSize }, (_, r) => r).filter((r) => !have.has(r));
    return `rank(s) ${missing.join(', ')} have not reported it`;
  }
}

/**
 * Writes the manifest of a complete step under `root` (older checkpoints beyond `keep` are pruned)
 * and returns the step directory and the upkeep that failed after the commit (an old checkpoint
 * that could not be pruned: a warning, the step is committed); a failed commit is a RelayError
 * (ERR_CHECKPOINT_COMMIT, or ERR_DISK_FULL when the disk is full).
 */
export async function commitReports(
  root: string,
  reports: ShardReport[],
  keep: number,
): Promise<{ dir: string; upkeepFailures: UpkeepFailure[] }> {
  try {
    const saved = await commitCheckpoint(root, reports, { keep });
    return { dir: saved.dir, upkeepFailures: saved.upkeepFailures };
  } catch (err) {
    const full = diskFullError(err, root);
    throw new RelayError(
      full ? 'ERR_DISK_FULL' : 'ERR_CHECKPOINT_COMMIT',
      `the checkpoint of step ${reports[0].step} could not be committed: ${(full ?? (err as Error)).message}`,
    );
  }
}

/** "checkpoint step 40 committed: runs/x/checkpoints/step-0000040 (52.4 MB from 4 ranks, slowest rank 812 ms: rank 3)" */
export function describeCommit(dir: string, reports: ShardReport[]): string {
  const mb = reports.reduce((s, r) => s + r.bytes, 0) / 1e6;
  const slowest = reports.reduce((a, b) => (b.writeMs > a.writeMs ? b : a));
  return (
    `checkpoint step ${reports[0].step} committed: ${dir} (${mb.toFixed(1)} MB from ${reports.length} ranks, ` +
    `slowest rank ${Math.round(slowest.writeMs)} ms: rank ${slowest.rank})`
  );
}

/** A checkpoint a round resumes from. */
export interface ResumePoint {
  dir: string;
  step: number;
}

/**
 * The checkpoint `spec` (--resume: 'auto', a step directory or a checkpoints root) names, fully
 * verified; undefined when there is none to resume ('auto' in a root without a committed
 * checkpoint). 'auto' skips broken candidates (onSkip) and sets them aside, and fails when
 * checkpoints are present but none verifies unless `startFresh` (resumeAuto); an explicit path that
 * does not hold a good checkpoint throws.
 */
export async function findResumeCheckpoint(
  spec: string | undefined,
  root: string,
  opts: ResumeAutoOptions = {},
): Promise<ResumePoint | undefined> {
  if (!spec) return undefined;
  const found = spec === 'auto' ? await resumeAuto(root, opts) : await selectResumeCheckpoint(spec, root);
  return found && { dir: found.dir, step: found.manifest.step };
}
