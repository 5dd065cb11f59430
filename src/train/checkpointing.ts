// checkpointing.ts — the trainer's side of checkpoints: when to save, writing this rank's shard
// (in the background when checkpoint.async is on, at most one save in flight), handing the shard's
// report to whoever commits it, and restoring this rank's slices on resume.
import * as path from 'node:path';

import {
  checkpointDirFor,
  commitCheckpoint,
  diskFullError,
  readCheckpointManifest,
  readRankState,
  resumeAuto,
  selectResumeCheckpoint,
  writeShard,
  type CheckpointHeader,
  type CheckpointManifest,
  type ResumeAutoOptions,
  type ShardReport,
  type UpkeepFailure,
} from '../checkpoint';
import type { Config } from '../config/schema';
import type { NativeEngine } from '../engine/native';
import type { LossScaleSnapshot } from './loss-scaler';
import { learningRate, type ScheduleSpec } from './schedule';

/** --start-fresh, for `paratrain train` and `paratrain launch`. */
export const START_FRESH_HELP =
  'with --resume auto: when checkpoints are present but none verifies, set them aside (step-N.unverified) and ' +
  'start at step 0 instead of stopping with an error';

/** --start-fresh means something only with --resume auto: an explicit checkpoint never falls back. */
export function startFreshProblem(resume: string | undefined, startFresh: boolean | undefined): string | undefined {
  if (!startFresh || resume === 'auto') return undefined;
  return (
    `--start-fresh only applies to --resume auto (got ${resume === undefined ? 'no --resume' : `--resume ${resume}`}); ` +
    'an explicit checkpoint never falls back to step 0'
  );
}

export function checkpointRoot(c: Config): string {
  return path.join(c.run.dir, 'checkpoints');
}

/** Where a rank's shard report goes: the coordinator (distributed) or commitCheckpoint here. */
export type CommitShard = (report: ShardReport) => Promise<{ dir: string }>;

/** The rule that derives every dropout stream from the seed (recorded in the manifest). */
export const RNG_SCHEME = 'counter(seed, (step*dp_size + dp_rank)*grad_accum + micro_batch)';

export interface SaveTiming {
  step: number;
  dir: string;
  /** This rank's shard: bytes and time to write them (fsync included). */
  bytes: number;
  writeMs: number;
  /** From the save's start to its commit. */
  totalMs: number;
  /** How long the step loop was held up by this save (copy + waiting for it, or for its predecessor). */
  blockedMs: number;
}

export interface RankPlace {
  rank: number;
  tpRank: number;
  tpSize: number;
  dpRank: number;
  dpSize: number;
}

const NO_LOSS_SCALE: LossScaleSnapshot = { enabled: false, scale: 1, growthTracker: 0, skippedSteps: 0 };

/**
 * Parameters and both moments, paged in; a V8 allocation failure (a RangeError naming nothing) is
 * ERR_OUT_OF_MEMORY naming the copy, as the engine's own buffers are.
 */
function checkpointHostCopy(n: number): { params: Float32Array; m: Float32Array; v: Float32Array } {
  try {
    return { params: new Float32Array(n).fill(0), m: new Float32Array(n).fill(0), v: new Float32Array(n).fill(0) };
  } catch (error) {
    if (!(error instanceof RangeError)) throw error;
    const gib = ((3 * n * 4) / 2 ** 30).toFixed(1);
    throw Object.assign(
      new Error(
        `out of memory allocating the checkpoint's host copy of the parameters and moments (${gib} GiB): ` +
          `${error.message}. Lower the model's size, or split it with parallel.tensor`,
      ),
      { code: 'ERR_OUT_OF_MEMORY' },
    );
  }
}

/** Saves of one rank. `save` returns once the step loop may go on; `drain` waits for the last commit. */
export class CheckpointSaver {
  private inFlight: Promise<SaveTiming> | undefined;
  private failed: Error | undefined;
  private lastSaveMs = Date.now();
  /** The host copy every save writes from, allocated (and paged in) once, up front. */
  private readonly host: { params: Float32Array; m: Float32Array; v: Float32Array };

  constructor(
    private readonly c: Config,
    private readonly engine: NativeEngine,
    private readonly place: RankPlace,
    private readonly commit: CommitShard,
    private readonly onSaved: (t: SaveTiming) => void,
    private readonly tokenizerJson: string,
  ) {
    this.host = checkpointHostCopy(engine.numParams());
  }

  /** Whether checkpoint.every_minutes has elapsed since the last save (rank 0's clock decides). */
  timeDue(now = Date.now()): boolean {
    const minutes = this.c.checkpoint.every_minutes;
    return minutes > 0 && now - this.lastSaveMs >= minutes * 60_000;
  }

  /**
   * Saves the engine's state after `step`. Async mode returns after the host copy; the write and
   * commit go on behind the next steps. `sync` forces waiting for the commit (end of run, stop).
   */
  async save(
    step: number,
    consumedSamples: number,
    schedule: ScheduleSpec,
    sync: boolean,
    lossScale: LossScaleSnapshot = NO_LOSS_SCALE,
  ): Promise<void> {
    const t0 = Date.now();
    this.lastSaveMs = t0;
    await this.waitPrevious();
    // The shard is written from this host copy while the engine goes on training. One set of
    // buffers serves every save: the previous save has finished with it (waitPrevious above).
    const { params } = this.host;
    const state = { step: this.engine.copyStateInto(this.host), m: this.host.m, v: this.host.v };
    const { rank, tpRank, tpSize, dpRank, dpSize } = this.place;
    const header: CheckpointHeader | undefined =
      rank === 0 ? this.header(step, consumedSamples, schedule, state.step, lossScale) : undefined;
    const dir = checkpointDirFor(checkpointRoot(this.c), step);
    const copiedMs = Date.now() - t0;
    const waits = sync || !this.c.checkpoint.async;
    const running = (async (): Promise<SaveTiming> => {
      const report = await writeShard(
        dir,
        {
          step,
          rank,
          tpRank,
          tpSize,
          dpRank,
          dpSize,
          table: this.engine.paramTable(),
          params,
          optimizer: { name: this.c.optimizer.name, step: state.step, m: state.m, v: state.v },
          ...(rank === 0 ? { tokenizerJson: this.tokenizerJson } : {}),
        },
        header,
      );
      // Testing and debugging: hold a written, uncommitted shard (the window a crash may hit).
      const holdMs = Number(process.env.PARATRAIN_DEBUG_SAVE_DELAY_MS ?? 0);
      if (holdMs > 0) await new Promise((r) => setTimeout(r, holdMs));
      const committed = await this.commit(report);
      return {
        step,
        dir: committed.dir,
        bytes: report.bytes,
        writeMs: report.writeMs,
        totalMs: Date.now() - t0,
        blockedMs: waits ? Date.now() - t0 : copiedMs,
      };
    })();
    this.inFlight = running.then(
      (t) => {
        this.onSaved(t);
        return t;
      },
      (err: Error) => {
        this.failed = err;
        throw err;
      },
    );
    // A background save's failure surfaces at the next save or at drain().
    this.inFlight.catch(() => undefined);
    if (waits) await this.waitPrevious();
  }

  /** Waits for the save in flight, if any; rethrows its failure. */
  async drain(): Promise<void> {
    await this.waitPrevious();
  }

  private async waitPrevious(): Promise<void> {
    const previous = this.inFlight;
    this.inFlight = undefined;
    if (previous) await previous;
    if (this.failed) throw this.failed;
  }

  private header(
    step: number,
    consumedSamples: number,
    schedule: ScheduleSpec,
    optimizerStep: number,
    lossScale: LossScaleSnapshot,
  ): CheckpointHeader {
    const c = this.c;
    return {
      step,
      consumedSamples,
      config: c,
      arch: c.model.arch,
      optimizer: { name: c.optimizer.name, step: optimizerStep },
      layout: { tensorParallel: this.place.tpSize, dataParallel: this.place.dpSize },
      training: {
        rng: { seed: c.train.seed, scheme: RNG_SCHEME },
        schedule: {
          kind: schedule.kind,
          lr: schedule.lr,
          minLr: schedule.minLr,
          steps: schedule.steps,
          warmupSteps: schedule.warmupSteps,
          power: schedule.power,
          nextLr: learningRate(schedule, step),
        },
        lossScale: { ...lossScale },
      },
    };
  }
}

/**
 * A single process commits its own shard. Upkeep that failed after the commit (an old checkpoint
 * that could not be pruned) goes to `onUpkeepFailure`, a warning: the step is committed.
 */
export function commitLocally(c: Config, onUpkeepFailure: (f: UpkeepFailure) => void): CommitShard {
  return async (report) => {
    const root = checkpointRoot(c);
    let saved: Awaited<ReturnType<typeof commitCheckpoint>>;
    try {
      saved = await commitCheckpoint(root, [report], { keep: c.checkpoint.keep });
    } catch (err) {
      throw diskFullError(err, root) ?? err;
    }
    for (const f of saved.upkeepFailures) onUpkeepFailure(f);
    return { dir: saved.dir };
  };
}

export interface ResumePoint {
  dir: string;
  manifest: CheckpointManifest;
}

/**
 * The checkpoint to resume from. `verifiedDir` comes from the coordinator, which has verified it
 * already; otherwise `spec` ('auto' or a path) is resolved and verified here ('auto': resumeAuto,
 * which fails when checkpoints are present but none verifies, unless opts.startFresh).
 */
export async function findResumePoint(
  c: Config,
  spec: string | undefined,
  verifiedDir: string | undefined,
  opts: ResumeAutoOptions,
): Promise<ResumePoint | undefined> {
  if (verifiedDir) return { dir: verifiedDir, manifest: await readCheckpointManifest(verifiedDir) };
  if (!spec) return undefined;
  if (spec === 'auto') return resumeAuto(checkpointRoot(c), opts);
  return selectResumeCheckpoint(spec, checkpointRoot(c));
}

/** Loads this rank's slices of every parameter and optimizer moment (any saved layout). */
export async function restoreRank(engine: NativeEngine, at: ResumePoint): Promise<{ bytesRead: number; ms: number }> {
  const t0 = Date.now();
  const state = await readRankState(at.dir, at.manifest, engine.paramTable(), { optimizer: true });
  engine.setParams(state.params);
  engine.setOptimizerState({ step: state.optimizerStep, m: state.m!, v: state.v! });
  return { bytesRead: state.bytesRead, ms: Date.now() - t0 };
}
