// trainer.ts — the training loop: data → engine → optimizer schedule → logs → checkpoints. It runs
// alone (`paratrain train`) or as one rank of a distributed job (src/worker/), where the engine
// holds this rank's tensor-parallel shard and the data-parallel rank picks its slice of each batch.
// The loop prepares the next step's batches while the native step runs on another thread.
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';

import {
  embeddingSize,
  generatorShape,
  layerGroups,
  objective,
  packing,
  pairTask,
  tokenizerKind,
} from '../config/family';
import { checkpointDirFor } from '../checkpoint';
import { maxPredictionsPerSequence } from '../config/load';
import type { Config } from '../config/schema';
import { refusalLog } from '../control/refusal-log';
import type { TrainBatch } from '../data/batch';
import { openDataset, type Dataset } from '../data/dataset';
import type { TextTokenizer } from '../data/tokenizer';
import { createEngine, resolveThreads, takeRefusedHandshakes } from '../engine/engine';
import { checkEngineMemory } from '../engine/memory';
import { loadNative, REQUEST_SAVE, REQUEST_STOP, type NativeEngine, type StepMetrics } from '../engine/native';
import { cpuPeak, forgetCpuPeak, gpuPeak } from '../engine/peak';
import {
  checkpointRoot,
  CheckpointSaver,
  commitLocally,
  findResumePoint,
  restoreRank,
  type CommitShard,
  type SaveTiming,
} from './checkpointing';
import { describeSetAside } from '../checkpoint';
import { sequenceLogits, scoreTask, taskMetricNames } from '../tasks/evaluate';
import type { TaskSplitData } from '../tasks/task-data';
import {
  isFineTuning,
  loadInitialWeights,
  openTaskData,
  resolveTask,
  taskSettings,
  type TaskRunData,
} from '../tasks/task-run';
import { BEST_DIR, BestCheckpoint } from './best-checkpoint';
import { checkRunDir } from './run-dir';
import { createRunLogger, type RunLogger } from './log';
import { LossScaler } from './loss-scaler';
import { flopsPerToken, stepMfu } from './mfu';
import { learningRate, scheduleFromConfig } from './schedule';

export class TrainingError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface TrainOptions {
  /** A checkpoint step directory, a checkpoints root, or 'auto' (this run's newest good one, if any). */
  resume?: string;
  /** --start-fresh: 'auto' among checkpoints none of which verifies sets them aside and starts at step 0. */
  startFresh?: boolean;
  quiet?: boolean;
  /** Save/stop requests raised from outside the loop (signals, the coordinator). */
  requests?: TrainRequests;
}

/**
 * Pending requests of this rank, polled before every step. The engine ORs them over the whole job
 * during the step, so every rank saves (and stops) after the same step.
 */
export class TrainRequests {
  pending = 0;
  /** What raised the first stop request (a signal's name, the coordinator's reason). */
  stopReason = '';
  raise(bits: number, reason: string): void {
    this.pending |= bits;
    if (bits & REQUEST_STOP && !this.stopReason) this.stopReason = reason;
  }
}

/** What one rank of a distributed job brings to the loop (see src/worker/main.ts). */
export interface RankContext {
  /** Global rank; rank 0 writes the run log and the checkpoints. */
  rank: number;
  tpRank: number;
  tpSize: number;
  dpRank: number;
  dpSize: number;
  /** Created with this rank's connected data plane. */
  engine: NativeEngine;
  /** Every finished step, with the job-wide metrics. */
  onStep?(
    record: StepRecord,
    detail: { tokensPerS: number; stepMs: number; skipped: boolean; consumedSamples: number },
  ): void;
  onEval?(step: number, loss: number): void;
  /** Heartbeat phases: saves and evaluation may stall the step loop. */
  setPhase?(phase: 'train' | 'eval' | 'save'): void;
  /** The checkpoint the coordinator chose and verified ('' or undefined: start fresh). */
  resumeDir?: string;
  /** Gang restarts before this round (launch --max-restarts). */
  restartCount?: number;
  /** Sends this rank's shard report to the coordinator; resolves once the checkpoint is committed. */
  commitShard: CommitShard;
}

export interface StepRecord {
  step: number;
  /** The objective: Σ weight·loss over the model's heads. */
  loss: number;
  /** Each head's loss by name (mlm, nsp, sop, lm, rtd, ...). */
  losses: Record<string, number>;
  /** Other figures the heads report (e.g. rtd_accuracy); empty for most models. */
  metrics: Record<string, number>;
  gradNorm: number;
  lr: number;
}

export interface TrainResult {
  steps: StepRecord[];
  /** Held-out loss; fine-tuning with task.dev also the task's metrics on the whole dev set. */
  evals: Array<{ step: number; loss: number; losses: Record<string, number>; metrics?: Record<string, number> }>;
  checkpoints: string[];
  saves: SaveTiming[];
  finalStep: number;
  /** Set when a stop request ended the run early (after saving). */
  stopped?: { step: number; reason: string };
}

export async function openRunData(
  c: Config,
): Promise<{ dataset: Dataset; tokenizer: TextTokenizer; task?: TaskRunData }> {
  if (isFineTuning(c)) {
    const task = await openTaskData(c);
    return { dataset: task.dataset, tokenizer: task.tokenizer, task };
  }
  const masked = objective(c) === 'masked-lm';
  return openDataset({
    objective: objective(c),
    tokenizerKind: tokenizerKind(c),
    ...(masked ? { packing: packing(c), pairTask: pairTask(c) } : {}),
    corpus: c.data.corpus,
    ...(c.data.path !== undefined ? { path: c.data.path, split: c.data.split } : {}),
    corpusOptions: {
      documentSeparator: c.data.document_separator,
      maxDocumentChars: c.data.max_document_chars,
      jsonKey: c.data.json_key,
    },
    tokenizerPath: c.data.tokenizer === 'auto' ? undefined : c.data.tokenizer,
    lowercase: c.data.lowercase,
    cacheDir: c.data.cache_dir,
    vocabSize: c.model.vocab_size,
    seqLen: c.model.seq_len,
    seed: c.train.seed,
    heldoutFraction: c.data.heldout_fraction,
    maskProb: c.data.mask_prob,
    maxDocuments: c.data.max_documents || undefined,
    maxPredictionsPerSeq: maxPredictionsPerSequence(c),
    wholeWordMask: c.data.whole_word_mask,
  });
}

/**
 * The shape keys that must agree between a checkpoint and the run that resumes it. seq_len and
 * dropout may change (NVIDIA's BERT phase 2 continues phase 1 at seq 512).
 */
function modelIdentity(c: Config): string {
  const m = c.model;
  const generator = m.arch === 'electra' ? generatorShape(c) : null;
  return JSON.stringify([
    m.arch,
    m.layers,
    m.hidden,
    m.heads,
    m.ffn,
    m.vocab_size,
    m.max_positions ?? m.seq_len,
    embeddingSize(c),
    layerGroups(c),
    generator,
    c.task.name,
    c.task.regression ? 1 : (c.task.labels?.length ?? 0),
  ]);
}

export async function train(config: Config, opts: TrainOptions = {}, rank?: RankContext): Promise<TrainResult> {
  // Alone, a fine-tuning run settles its labels and steps here; a job's launcher did it for every rank.
  const c = rank ? config : await resolveTask(config);
  if (c.parallel.tensor !== 1 && !rank)
    throw new TrainingError(
      'ERR_CONFIG',
      `parallel.tensor = ${c.parallel.tensor} needs several worker processes: start it with ` +
        `\`paratrain launch --nproc-per-node N\` (N a multiple of ${c.parallel.tensor}), or set parallel.tensor: 1.`,
    );
  const leader = !rank || rank.rank === 0;
  // A worker's launcher checked these for its whole node already.
  if (!rank) {
    checkRunDir(c.run.dir);
    checkEngineMemory(c);
  }
  fs.mkdirSync(c.run.dir, { recursive: true });
  const logger = createRunLogger(c.run.dir, c.train.steps, { quiet: opts.quiet, file: leader });
  try {
    return await runTraining(c, opts, logger, rank);
  } finally {
    await logger.close();
  }
}

async function runTraining(c: Config, opts: TrainOptions, logger: RunLogger, rank?: RankContext): Promise<TrainResult> {
  const { log } = logger;
  const { dataset, tokenizer, task } = await openRunData(c);
  const engine = rank?.engine ?? createEngine(c);
  const place = rank ?? { rank: 0, tpRank: 0, tpSize: 1, dpRank: 0, dpSize: 1 };
  const { dpRank, dpSize } = place;
  const leader = place.rank === 0;
  const microBatch = c.train.micro_batch;
  const replicaBatch = microBatch * c.train.grad_accum;
  const globalBatch = replicaBatch * dpSize;
  const requests = opts.requests ?? new TrainRequests();
  let step = 0;
  // The data position: samples consumed before `resumedAt` (another global batch size may have
  // consumed them), then globalBatch per step.
  let resumedAt = 0,
    consumedAtResume = 0;

  const scaler = LossScaler.fromConfig(c);
  const resumeFrom = await findResumePoint(c, opts.resume, rank?.resumeDir, {
    onSkip: (dir, reason) =>
      log.warn({ event: 'resume-skip', checkpoint: dir, reason }, `skipping checkpoint ${dir}: ${reason}`),
    onSetAside: (dir, to, reason) =>
      log.warn({ event: 'resume-set-aside', checkpoint: dir, to, reason }, describeSetAside(dir, to, reason)),
    startFresh: opts.startFresh,
  });
  if (resumeFrom) {
    const { dir, manifest } = resumeFrom;
    const saved = JSON.parse(manifest.configJson) as Config;
    if (manifest.arch !== c.model.arch || modelIdentity(saved) !== modelIdentity(c))
      throw new TrainingError(
        'ERR_CHECKPOINT_MISMATCH',
        `checkpoint ${dir} holds a different model (${JSON.stringify(saved.model)}); this run's model is ` +
          `${JSON.stringify(c.model)}`,
      );
    if (manifest.tokenizerFile !== '') {
      const tokenizerJson = fs.readFileSync(path.join(dir, manifest.tokenizerFile), 'utf8');
      if (tokenizerJson !== tokenizer.toJSON())
        throw new TrainingError(
          'ERR_TOKENIZER_MISMATCH',
          `checkpoint ${dir} was trained with another tokenizer than this run's (data.tokenizer / data.corpus ` +
            `changed); resume with the same data settings or point data.tokenizer at ${path.join(dir, manifest.tokenizerFile)}`,
        );
    }
    if (saved.train.seed !== c.train.seed)
      log.warn(
        { event: 'resume-seed', saved: saved.train.seed, now: c.train.seed },
        `train.seed changed from ${saved.train.seed} to ${c.train.seed}: dropout masks will differ from the saved run's`,
      );
    const restored = await restoreRank(engine, resumeFrom);
    if (manifest.training) scaler.restore(manifest.training.lossScale);
    step = resumedAt = manifest.step;
    consumedAtResume = manifest.consumedSamples;
    log.info(
      {
        event: 'resume',
        checkpoint: dir,
        step,
        consumed_samples: consumedAtResume,
        saved_layout: manifest.layout,
        read_bytes: restored.bytesRead,
        read_ms: restored.ms,
      },
      `resumed from ${dir} at step ${step} (saved at TP ${manifest.layout.tensorParallel} × DP ` +
        `${manifest.layout.dataParallel})`,
    );
  } else {
    if (opts.resume === 'auto' || (rank?.restartCount ?? 0) > 0)
      log.info({ event: 'resume', checkpoint: null }, 'no checkpoint to resume; starting at step 0');
    engine.initParams(c.train.seed);
    const init = await loadInitialWeights(engine, c);
    if (init)
      log.info(
        {
          event: 'init',
          checkpoint: init.dir,
          loaded: init.loaded.length,
          fresh: init.fresh,
          dropped: init.dropped,
        },
        `initialised from ${init.dir}: ${init.loaded.length} tensors loaded` +
          (init.fresh.length ? `, ${init.fresh.join(', ')} from train.seed` : '') +
          (init.dropped.length ? `; ${init.dropped.length} unused tensors dropped` : ''),
      );
  }
  const consumedAt = (s: number) => consumedAtResume + (s - resumedAt) * globalBatch;
  // Only a run that has started (its data open, its checkpoint loaded) replaces the run's config.yaml:
  // a start that fails leaves the config of the run already in this directory as it was.
  if (leader) fs.writeFileSync(path.join(c.run.dir, 'config.yaml'), YAML.stringify(c));

  const params = engine.numParams();
  const memory = engine.memoryReport();
  const mb = (bytes: number) => Number((bytes / 2 ** 20).toFixed(1));
  // MFU's denominator: this rank's peak (CPU: measured once per machine and thread count, cached;
  // GPU: the card's datasheet dense peak for the precision; a card the table lacks logs mfu 0).
  const peak =
    c.device === 'cuda'
      ? (gpuPeak(loadNative('cuda').blasCore, c.precision) ?? { flops: 0, source: 'unknown GPU' })
      : await cpuPeak(c.data.cache_dir, resolveThreads(c.train.threads));
  let peakDoubted = false; // warned once that the CPU peak reads low
  const modelFlops = flopsPerToken(c);
  log.info(
    {
      event: 'start',
      arch: c.model.arch,
      params,
      flops_per_token: modelFlops,
      memory_mb: {
        params: mb(memory.params),
        grads: mb(memory.grads),
        optimizer: mb(memory.optimizer),
        activations: mb(memory.activations),
        ...(memory.deviceUsed !== undefined
          ? { device_used: mb(memory.deviceUsed), device_total: mb(memory.deviceTotal ?? 0) }
          : {}),
      },
      peak_gflops: Number((peak.flops / 1e9).toFixed(1)),
      peak_source: peak.source,
      tokenizer_vocab: tokenizer.vocabSize,
      train_samples_per_epoch: dataset.samplesPerEpoch('train'),
      corpus_documents: dataset.summary.corpusDocuments,
      eval_documents: dataset.summary.evalDocuments,
      heldout_by: dataset.summary.heldoutBy,
      ...(dataset.summary.blend ? { blend: dataset.summary.blend } : {}),
      ...(dataset.summary.sampleIndices ? { sample_indices: dataset.summary.sampleIndices } : {}),
      global_batch: globalBatch,
      steps: c.train.steps,
      ...(rank
        ? { tensor_parallel: rank.tpSize, data_parallel: rank.dpSize, restart_count: rank.restartCount ?? 0 }
        : {}),
    },
    `training ${c.model.arch} (${(params / 1e6).toFixed(2)}M parameters) for ${c.train.steps} steps`,
  );

  for (const warning of dataset.summary.warnings ?? []) log.warn({ event: 'data-warning' }, warning);

  const evaluates = dataset.samplesPerEpoch('eval') > 0;
  if (!evaluates && c.data.path !== undefined)
    log.info(
      { event: 'eval-off', split: c.data.split },
      `no validation documents (data.split is ${c.data.split}): evaluation is off`,
    );
  else if (!evaluates)
    log.info(
      { event: 'eval-off', heldout_fraction: c.data.heldout_fraction },
      `no held-out data (data.heldout_fraction is ${c.data.heldout_fraction}): evaluation is off`,
    );
  const schedule = scheduleFromConfig(c);
  // Data-parallel replica r reads samples [r·replicaBatch, (r+1)·replicaBatch) of each global batch:
  // its micro-batch i is the single-process run's micro-batch r·grad_accum + i.
  const batchesFor = (s: number): TrainBatch[] =>
    Array.from({ length: c.train.grad_accum }, (_, i) =>
      dataset.batch('train', consumedAt(s) + dpRank * replicaBatch + i * microBatch, microBatch),
    );
  const result: TrainResult = { steps: [], evals: [], checkpoints: [], saves: [], finalStep: step };
  const started = Date.now();
  let next = step < c.train.steps ? batchesFor(step) : [];

  const saver = new CheckpointSaver(
    c,
    engine,
    place,
    rank?.commitShard ??
      commitLocally(c, (f) => log.warn({ event: 'checkpoint-upkeep', dir: f.dir, reason: f.message }, f.message)),
    (t) => {
      result.checkpoints.push(t.dir);
      result.saves.push(t);
      log.info(
        {
          event: 'checkpoint',
          step: t.step,
          dir: t.dir,
          bytes: t.bytes,
          write_ms: t.writeMs,
          ms: t.totalMs,
          blocked_ms: t.blockedMs,
        },
        `saved ${t.dir}`,
      );
    },
    tokenizer.toJSON(),
  );
  let lastSaved = resumeFrom ? step : -1;
  if (c.checkpoint.keep_best && !task?.dev)
    throw new TrainingError(
      'ERR_CONFIG',
      `checkpoint.keep_best ${c.checkpoint.keep_best} keeps the checkpoint with the best dev score: set task.dev`,
    );
  if (c.checkpoint.keep_best && task) {
    const names = taskMetricNames(taskSettings(c).name, c.task.regression);
    if (!names.includes(c.checkpoint.keep_best))
      throw new TrainingError(
        'ERR_CONFIG',
        `checkpoint.keep_best ${c.checkpoint.keep_best} is not a metric of ${c.task.name}; it reports ${names.join(', ')}`,
      );
  }
  const best = c.checkpoint.keep_best ? new BestCheckpoint(checkpointRoot(c), c.checkpoint.keep_best) : null;
  const saveAt = async (done: number, sync: boolean) => {
    rank?.setPhase?.('save');
    await saver.save(done, consumedAt(done), schedule, sync, scaler.snapshot());
    rank?.setPhase?.('train');
    lastSaved = done;
  };

  // A worker's rings count the connections they refuse (no key, not ZMTP); logged as steps go by.
  const refusedRing = rank ? refusalLog(log) : undefined;
  const logRefusedHandshakes = () => {
    if (!refusedRing) return;
    for (const r of takeRefusedHandshakes(c))
      refusedRing(
        `${r.ring} ${r.address}`,
        `refused connections to the ${r.ring} ring from ${r.address}: their handshake failed ` +
          `(the peer does not hold this job's key, or does not speak the ring's protocol)`,
        r.count,
      );
  };

  while (step < c.train.steps) {
    const lr = learningRate(schedule, step);
    const t0 = Date.now();
    // Save requests count from rank 0 only (the coordinator tells every rank; one raise is enough,
    // and a late copy elsewhere must not cause a second save). Stop requests from anyone.
    let mine = requests.pending & (leader ? REQUEST_SAVE | REQUEST_STOP : REQUEST_STOP);
    if (leader && saver.timeDue()) mine |= REQUEST_SAVE;
    const running = engine.trainStep(next, { step, lr, requests: mine, lossScale: scaler.scale });
    next = step + 1 < c.train.steps ? batchesFor(step + 1) : []; // overlaps the native step
    const m: StepMetrics = await running;
    requests.pending &= ~m.requests;
    const ms = Date.now() - t0;
    const skipped = m.skipped || !Number.isFinite(m.loss);
    const scaled = scaler.update(skipped);
    if (skipped && scaled.absorbed) {
      // Overflow at a scale that can still come down: fp16's routine skip, not divergence.
      log.info(
        {
          event: 'loss-scale',
          step: step + 1,
          loss: m.loss,
          loss_scale: scaled.scale,
          next_loss_scale: scaled.next,
          skipped_steps: scaler.skippedSteps,
        },
        `gradient overflow at step ${step + 1} with loss scale ${scaled.scale}: update skipped, ` +
          `loss scale now ${scaled.next}`,
      );
    } else if (skipped) {
      const what =
        `loss ${m.loss}, grad norm ${m.gradNorm} at step ${step + 1}` +
        (scaler.mode === 'dynamic' ? ` (at the minimum loss scale, ${scaled.scale})` : '');
      if (c.train.on_nan === 'error')
        throw new TrainingError(
          'ERR_NAN_LOSS',
          `training diverged: ${what}; the update was not applied and no checkpoint was written. ` +
            `Lower train.lr, raise train.warmup, or resume from the last checkpoint.`,
        );
      log.warn(
        { event: 'skipped', step: step + 1, loss: m.loss, grad_norm: m.gradNorm, skipped_steps: scaler.skippedSteps },
        `skipped update: ${what}`,
      );
    }
    step += 1;
    const record: StepRecord = { step, loss: m.loss, losses: m.losses, metrics: m.metrics, gradNorm: m.gradNorm, lr };
    result.steps.push(record);
    const tokensPerS = Math.round((m.tokens / Math.max(ms, 1)) * 1000);
    rank?.onStep?.(record, { tokensPerS, stepMs: ms, skipped: m.skipped, consumedSamples: consumedAt(step) });
    logRefusedHandshakes();
    const mfu = Number(
      stepMfu({
        flopsPerToken: modelFlops,
        tokens: m.tokens,
        seconds: ms / 1000,
        world: place.tpSize * place.dpSize,
        peakFlops: peak.flops,
      }).toFixed(4),
    );
    if (mfu > 1 && c.device === 'cpu' && !peakDoubted) {
      // More than the peak is impossible: the cached probe ran on a busy machine. Measure again next start.
      peakDoubted = true;
      log.warn(
        { event: 'cpu-peak-low', peak_gflops: Number((peak.flops / 1e9).toFixed(1)), mfu },
        `step ${step} ran at ${(mfu * 100).toFixed(0)}% of the cached CPU peak (${(peak.flops / 1e9).toFixed(1)} ` +
          'GFLOP/s), which was measured while the machine was busy; it is measured again at the next start',
      );
      await forgetCpuPeak(c.data.cache_dir, resolveThreads(c.train.threads));
    }
    if (step % c.train.log_every === 0 || step === c.train.steps) {
      const hasMetrics = Object.keys(m.metrics).length > 0;
      log.info(
        {
          step,
          loss: m.loss,
          losses: m.losses,
          ...(hasMetrics ? { metrics: m.metrics } : {}),
          lr,
          grad_norm: m.gradNorm,
          tokens_per_s: tokensPerS,
          mfu,
          step_ms: ms,
          elapsed_ms: Date.now() - started,
          consumed_samples: consumedAt(step),
          ...(dpSize > 1 ? { dp_wait_ms: Number(m.dpWaitMs.toFixed(1)) } : {}),
          ...(scaler.enabled ? { loss_scale: scaled.scale } : {}),
          skipped_steps: scaler.skippedSteps,
          // This process's resident memory (host RAM: the engine's buffers on CPU), for the per-rank chart.
          rss_mb: Math.round(process.memoryUsage.rss() / 2 ** 20),
        },
        `step ${step}/${c.train.steps} loss ${m.loss.toFixed(4)}${describeParts(m.losses, m.metrics)}` +
          ` lr ${lr.toExponential(2)} grad_norm ${m.gradNorm.toFixed(3)} ${tokensPerS} tokens/s`,
      );
    }
    logger.progress(step, m.loss);
    const stop = (m.requests & REQUEST_STOP) !== 0;
    const evalDue =
      evaluates && ((c.train.eval_every > 0 && step % c.train.eval_every === 0) || step === c.train.steps);
    let bestDue = false;
    if (evalDue && !stop) {
      rank?.setPhase?.('eval');
      const { loss, losses } = await evaluate(engine, dataset, c, logger, step, dpRank, dpSize);
      const scores = task?.dev ? await evaluateTaskMetrics(engine, c, task.dev, logger, step) : undefined;
      rank?.setPhase?.('train');
      rank?.onEval?.(step, loss);
      result.evals.push({ step, loss, losses, ...(scores ? { metrics: scores } : {}) });
      bestDue = best !== null && scores !== undefined && best.improves(scores);
    }
    const last = step === c.train.steps || stop;
    const due =
      (c.checkpoint.every > 0 && step % c.checkpoint.every === 0) || (m.requests & REQUEST_SAVE) !== 0 || last;
    if ((due || bestDue) && lastSaved !== step) await saveAt(step, last || bestDue);
    if (bestDue && best) {
      await saver.drain(); // the step is committed before its files become the best
      const value = result.evals[result.evals.length - 1].metrics![best.metric];
      if (leader) {
        const kept = await best.keep(checkpointDirFor(checkpointRoot(c), step), step, value);
        log.info(
          { event: 'best', step, metric: kept.metric, value, dir: path.join(checkpointRoot(c), BEST_DIR) },
          `best ${kept.metric} so far (${value.toFixed(4)} at step ${step}): kept as ${path.join(checkpointRoot(c), BEST_DIR)}`,
        );
      }
    }
    if (stop) {
      result.stopped = { step, reason: requests.stopReason || 'a stop request from another rank' };
      log.warn(
        { event: 'stopped', step, reason: result.stopped.reason },
        `stopped at step ${step} (${result.stopped.reason}); continue with --resume auto`,
      );
      break;
    }
  }
  await saver.drain();
  logRefusedHandshakes();
  result.finalStep = step;
  return result;
}

/**
 * The held-out loss over train.eval_batches micro-batches (the same ones in every layout):
 * data-parallel replica r evaluates those with index ≡ r (mod replicas), and the engine averages
 * over replicas, weighting each call by its micro-batch count.
 */
async function evaluate(
  engine: NativeEngine,
  dataset: Dataset,
  c: Config,
  logger: RunLogger,
  step: number,
  dpRank: number,
  dpSize: number,
) {
  const B = c.train.micro_batch;
  const mine: TrainBatch[] = [];
  for (let i = dpRank; i < c.train.eval_batches; i += dpSize) mine.push(dataset.batch('eval', i * B, B));
  // Every replica makes the same number of calls (the engine stages at most grad_accum per call).
  const perReplica = Math.ceil(c.train.eval_batches / dpSize);
  const calls = Math.ceil(perReplica / c.train.grad_accum);
  let loss = 0,
    n = 0;
  const losses: Record<string, number> = {};
  const metrics: Record<string, number> = {};
  const addTo = (into: Record<string, number>, from: Record<string, number>, w: number) => {
    for (const [name, v] of Object.entries(from)) into[name] = (into[name] ?? 0) + v * w;
  };
  for (let k = 0; k < calls; k++) {
    const group = mine.slice(k * c.train.grad_accum, (k + 1) * c.train.grad_accum);
    const m = await engine.evaluate(group);
    loss += m.loss * m.batches;
    addTo(losses, m.losses, m.batches);
    addTo(metrics, m.metrics, m.batches);
    n += m.batches;
  }
  n = Math.max(n, 1);
  for (const into of [losses, metrics]) for (const name of Object.keys(into)) into[name] /= n;
  const hasMetrics = Object.keys(metrics).length > 0;
  logger.log.info(
    { event: 'eval', step, eval_loss: loss / n, eval_losses: losses, ...(hasMetrics ? { eval_metrics: metrics } : {}) },
    `eval at step ${step}: ${(loss / n).toFixed(4)}${describeParts(losses, metrics)}`,
  );
  return { loss: loss / n, losses };
}

/** The task's metric over the whole dev set (every rank computes it; rank 0 logs it). */
async function evaluateTaskMetrics(
  engine: NativeEngine,
  c: Config,
  dev: TaskSplitData,
  logger: RunLogger,
  step: number,
): Promise<Record<string, number>> {
  const task = taskSettings(c);
  const shape = {
    task: task.name,
    regression: task.regression,
    seqLen: c.model.seq_len,
    batchSize: c.train.micro_batch,
  };
  const logits = await sequenceLogits(engine, shape, dev);
  const { metrics } = scoreTask(task.name, dev, logits, {
    labels: c.task.labels ?? [],
    regression: c.task.regression,
    maxAnswerLength: c.task.max_answer_length,
  });
  const shown = Object.entries(metrics)
    .map(([k, v]) => `${k} ${v.toFixed(4)}`)
    .join(', ');
  logger.log.info(
    { event: 'eval-task', step, task: task.name, dev: dev.file, metrics },
    `${task.name} on ${dev.file} at step ${step}: ${shown}`,
  );
  return metrics;
}

/** " (mlm 7.4123, nsp 0.6931; rtd_accuracy 0.8512)" when a model reports more than its total. */
function describeParts(losses: Record<string, number>, metrics: Record<string, number>): string {
  const parts = Object.entries(losses);
  const extra = Object.entries(metrics);
  if (parts.length < 2 && extra.length === 0) return '';
  const fmt = (entries: Array<[string, number]>) => entries.map(([k, v]) => `${k} ${v.toFixed(4)}`).join(', ');
  return ` (${fmt(parts)}${extra.length ? `; ${fmt(extra)}` : ''})`;
}
