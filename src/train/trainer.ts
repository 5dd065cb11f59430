// trainer.ts — the training loop: data → engine → optimizer schedule → logs → checkpoints. It runs
// alone (`paratrain train`) or as one rank of a distributed job (src/worker/), where the engine
// holds this rank's tensor-parallel shard and the data-parallel rank picks its slice of each batch.
// The loop prepares the next step's batches while the native step runs on another thread.
import * as fs from 'node:fs';
import * as path from 'node:path';
import YAML from 'yaml';

import { loadCheckpoint, OPTIMIZER_STATE_PREFIX, saveCheckpoint, type NamedTensor } from '../checkpoint';
import { maxPredictionsPerSequence } from '../config/load';
import type { Config } from '../config/schema';
import type { TrainBatch } from '../data/batch';
import { openDataset, type Dataset } from '../data/dataset';
import type { TextTokenizer } from '../data/tokenizer';
import { createEngine, joinFlat, splitFlat } from '../engine/engine';
import type { NativeEngine, StepMetrics } from '../engine/native';
import { createRunLogger, type RunLogger } from './log';
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
  /** A checkpoint step directory, a checkpoints root, or 'auto' (this run's newest, if any). */
  resume?: string;
  quiet?: boolean;
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
}

export interface StepRecord {
  step: number;
  loss: number;
  lmLoss: number;
  nspLoss: number;
  gradNorm: number;
  lr: number;
}

export interface TrainResult {
  steps: StepRecord[];
  evals: Array<{ step: number; loss: number }>;
  checkpoints: string[];
  finalStep: number;
}

export function checkpointRoot(c: Config): string {
  return path.join(c.run.dir, 'checkpoints');
}

export async function openRunData(c: Config): Promise<{ dataset: Dataset; tokenizer: TextTokenizer }> {
  return openDataset({
    arch: c.model.arch,
    corpus: c.data.corpus,
    tokenizerPath: c.data.tokenizer === 'auto' ? undefined : c.data.tokenizer,
    cacheDir: c.data.cache_dir,
    vocabSize: c.model.vocab_size,
    seqLen: c.model.seq_len,
    seed: c.train.seed,
    heldoutFraction: c.data.heldout_fraction,
    maskProb: c.data.mask_prob,
    pairTask: c.data.pair_task,
    maxDocuments: c.data.max_documents || undefined,
    maxPredictionsPerSeq: maxPredictionsPerSequence(c),
  });
}

/**
 * The shape keys that must agree between a checkpoint and the run that resumes it. seq_len and
 * dropout may change (NVIDIA's BERT phase 2 continues phase 1 at seq 512).
 */
function modelIdentity(c: Config): string {
  const m = c.model;
  return JSON.stringify([m.arch, m.layers, m.hidden, m.heads, m.ffn, m.vocab_size, m.max_positions ?? m.seq_len]);
}

export function optimizerTensors(table: ReturnType<NativeEngine['paramTable']>, m: Float32Array, v: Float32Array) {
  return [...splitFlat(table, m, OPTIMIZER_STATE_PREFIX.m), ...splitFlat(table, v, OPTIMIZER_STATE_PREFIX.v)];
}

function byName(tensors: NamedTensor[]) {
  return new Map(tensors.map((t) => [t.name, t]));
}

export async function train(c: Config, opts: TrainOptions = {}, rank?: RankContext): Promise<TrainResult> {
  if (c.parallel.tensor !== 1 && !rank)
    throw new TrainingError(
      'ERR_CONFIG',
      `parallel.tensor = ${c.parallel.tensor} needs several worker processes: start it with ` +
        `\`paratrain launch --nproc-per-node N\` (N a multiple of ${c.parallel.tensor}), or set parallel.tensor: 1.`,
    );
  const leader = !rank || rank.rank === 0;
  fs.mkdirSync(c.run.dir, { recursive: true });
  if (leader) fs.writeFileSync(path.join(c.run.dir, 'config.yaml'), YAML.stringify(c));
  const logger = createRunLogger(c.run.dir, c.train.steps, { quiet: opts.quiet, file: leader });
  try {
    return await runTraining(c, opts, logger, rank);
  } finally {
    await logger.close();
  }
}

async function runTraining(c: Config, opts: TrainOptions, logger: RunLogger, rank?: RankContext): Promise<TrainResult> {
  const { log } = logger;
  const { dataset, tokenizer } = await openRunData(c);
  const engine = rank?.engine ?? createEngine(c);
  // Checkpoints always hold the whole model (the TP = 1 layout); a tensor-parallel rank gathers
  // its group's shards to save and takes its own shard when it loads.
  const table = engine.fullParamTable();
  const dpRank = rank?.dpRank ?? 0,
    dpSize = rank?.dpSize ?? 1;
  const leader = !rank || rank.rank === 0;
  const microBatch = c.train.micro_batch;
  const replicaBatch = microBatch * c.train.grad_accum;
  const globalBatch = replicaBatch * dpSize;
  let step = 0;

  const resumeFrom = resolveResume(c, opts.resume);
  if (resumeFrom) {
    const ckpt = await loadCheckpoint(resumeFrom);
    const saved = ckpt.config as Config;
    if (ckpt.arch !== c.model.arch || modelIdentity(saved) !== modelIdentity(c))
      throw new TrainingError(
        'ERR_CHECKPOINT_MISMATCH',
        `checkpoint ${ckpt.dir} holds a different model (${JSON.stringify(saved.model)}); this run's model is ` +
          `${JSON.stringify(c.model)}`,
      );
    if (ckpt.tokenizerJson !== undefined && ckpt.tokenizerJson !== tokenizer.toJSON())
      throw new TrainingError(
        'ERR_TOKENIZER_MISMATCH',
        `checkpoint ${ckpt.dir} was trained with another tokenizer than this run's (data.tokenizer / data.corpus ` +
          `changed); resume with the same data settings or point data.tokenizer at ${path.join(ckpt.dir, 'tokenizer.json')}`,
      );
    engine.setFullParams(joinFlat(table, byName(ckpt.params), '', ckpt.dir));
    const state = byName(ckpt.optimizer.state);
    engine.setFullOptimizerState({
      step: ckpt.optimizer.step,
      m: joinFlat(table, state, OPTIMIZER_STATE_PREFIX.m, ckpt.dir),
      v: joinFlat(table, state, OPTIMIZER_STATE_PREFIX.v, ckpt.dir),
    });
    step = ckpt.step;
    log.info({ event: 'resume', checkpoint: ckpt.dir, step }, `resumed from ${ckpt.dir} at step ${step}`);
  } else {
    if (opts.resume === 'auto')
      log.info({ event: 'resume', checkpoint: null }, 'no checkpoint to resume; starting at step 0');
    engine.initParams(c.train.seed);
  }

  const params = engine.numParams();
  log.info(
    {
      event: 'start',
      arch: c.model.arch,
      params,
      tokenizer_vocab: tokenizer.vocabSize,
      train_samples_per_epoch: dataset.samplesPerEpoch('train'),
      global_batch: globalBatch,
      steps: c.train.steps,
      ...(rank ? { tensor_parallel: rank.tpSize, data_parallel: rank.dpSize } : {}),
    },
    `training ${c.model.arch} (${(params / 1e6).toFixed(2)}M parameters) for ${c.train.steps} steps`,
  );

  const schedule = scheduleFromConfig(c);
  // Data-parallel replica r reads samples [r·replicaBatch, (r+1)·replicaBatch) of each global batch:
  // its micro-batch i is the single-process run's micro-batch r·grad_accum + i.
  const batchesFor = (s: number): TrainBatch[] =>
    Array.from({ length: c.train.grad_accum }, (_, i) =>
      dataset.batch('train', s * globalBatch + dpRank * replicaBatch + i * microBatch, microBatch),
    );
  const result: TrainResult = { steps: [], evals: [], checkpoints: [], finalStep: step };
  const started = Date.now();
  let next = step < c.train.steps ? batchesFor(step) : [];

  const saveAt = async (done: number) => {
    // Replicas hold identical weights: the first one's tensor-parallel group gathers, rank 0 writes.
    if (dpRank !== 0) return;
    rank?.setPhase?.('save');
    const t0 = Date.now();
    const state = await engine.gatherOptimizerState();
    const params = await engine.gatherParams();
    if (!leader) {
      rank?.setPhase?.('train');
      return;
    }
    const saved = await saveCheckpoint(
      checkpointRoot(c),
      {
        step: done,
        consumedSamples: done * globalBatch,
        config: c,
        arch: c.model.arch,
        optimizer: { name: c.optimizer.name, step: state.step, state: optimizerTensors(table, state.m, state.v) },
        params: splitFlat(table, params),
        tokenizerJson: tokenizer.toJSON(),
      },
      { keep: c.checkpoint.keep },
    );
    rank?.setPhase?.('train');
    result.checkpoints.push(saved.dir);
    log.info({ event: 'checkpoint', step: done, dir: saved.dir, ms: Date.now() - t0 }, `saved ${saved.dir}`);
  };

  while (step < c.train.steps) {
    const lr = learningRate(schedule, step);
    const t0 = Date.now();
    const running = engine.trainStep(next, { step, lr });
    next = step + 1 < c.train.steps ? batchesFor(step + 1) : []; // overlaps the native step
    const m: StepMetrics = await running;
    const ms = Date.now() - t0;
    if (m.skipped || !Number.isFinite(m.loss)) {
      const what = `loss ${m.loss}, grad norm ${m.gradNorm} at step ${step + 1}`;
      if (c.train.on_nan === 'error')
        throw new TrainingError(
          'ERR_NAN_LOSS',
          `training diverged: ${what}; the update was not applied and no checkpoint was written. ` +
            `Lower train.lr, raise train.warmup, or resume from the last checkpoint.`,
        );
      log.warn({ event: 'skipped', step: step + 1, loss: m.loss, grad_norm: m.gradNorm }, `skipped update: ${what}`);
    }
    step += 1;
    const record: StepRecord = { step, loss: m.loss, lmLoss: m.lmLoss, nspLoss: m.nspLoss, gradNorm: m.gradNorm, lr };
    result.steps.push(record);
    const tokensPerS = Math.round((m.tokens / Math.max(ms, 1)) * 1000);
    rank?.onStep?.(record, { tokensPerS, stepMs: ms, skipped: m.skipped, consumedSamples: step * globalBatch });
    if (step % c.train.log_every === 0 || step === c.train.steps) {
      const losses = c.model.arch === 'bert' ? { mlm_loss: m.lmLoss, nsp_loss: m.nspLoss } : { lm_loss: m.lmLoss };
      log.info(
        {
          step,
          loss: m.loss,
          ...losses,
          lr,
          grad_norm: m.gradNorm,
          tokens_per_s: tokensPerS,
          step_ms: ms,
          elapsed_ms: Date.now() - started,
          consumed_samples: step * globalBatch,
          ...(dpSize > 1 ? { dp_wait_ms: Number(m.dpWaitMs.toFixed(1)) } : {}),
        },
        `step ${step}/${c.train.steps} loss ${m.loss.toFixed(4)}` +
          (c.model.arch === 'bert' ? ` (mlm ${m.lmLoss.toFixed(4)}, nsp ${m.nspLoss.toFixed(4)})` : '') +
          ` lr ${lr.toExponential(2)} grad_norm ${m.gradNorm.toFixed(3)} ${tokensPerS} tokens/s`,
      );
    }
    logger.progress(step, m.loss);
    const evalDue = (c.train.eval_every > 0 && step % c.train.eval_every === 0) || step === c.train.steps;
    if (evalDue) {
      rank?.setPhase?.('eval');
      const loss = await evaluate(engine, dataset, c, logger, step, dpRank, dpSize);
      rank?.setPhase?.('train');
      rank?.onEval?.(step, loss);
      result.evals.push({ step, loss });
    }
    if ((c.checkpoint.every > 0 && step % c.checkpoint.every === 0) || step === c.train.steps) await saveAt(step);
  }
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
    lm = 0,
    nsp = 0,
    n = 0;
  for (let k = 0; k < calls; k++) {
    const group = mine.slice(k * c.train.grad_accum, (k + 1) * c.train.grad_accum);
    const m = await engine.evaluate(group);
    loss += m.loss * m.batches;
    lm += m.lmLoss * m.batches;
    nsp += m.nspLoss * m.batches;
    n += m.batches;
  }
  n = Math.max(n, 1);
  const parts = c.model.arch === 'bert' ? { eval_mlm_loss: lm / n, eval_nsp_loss: nsp / n } : { eval_lm_loss: lm / n };
  logger.log.info(
    { event: 'eval', step, eval_loss: loss / n, ...parts },
    `eval at step ${step}: ${(loss / n).toFixed(4)}`,
  );
  return loss / n;
}

function resolveResume(c: Config, resume: string | undefined): string | undefined {
  if (!resume) return undefined;
  if (resume === 'auto') {
    // torchrun-style: resume when this run has a committed checkpoint, else start fresh.
    const root = checkpointRoot(c);
    return fs.existsSync(path.join(root, 'latest')) ? root : undefined;
  }
  if (!fs.existsSync(resume))
    throw new TrainingError('ERR_CHECKPOINT_NOT_FOUND', `--resume ${resume}: no such checkpoint directory`);
  return resume;
}
