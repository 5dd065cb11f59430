// trainer.ts — training in one process: data → engine → optimizer schedule → logs → checkpoints.
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

export async function train(c: Config, opts: TrainOptions = {}): Promise<TrainResult> {
  if (c.parallel.tensor !== 1)
    throw new TrainingError(
      'ERR_CONFIG',
      `parallel.tensor = ${c.parallel.tensor} needs several worker processes; this release trains in one process ` +
        `(parallel.tensor: 1).`,
    );
  fs.mkdirSync(c.run.dir, { recursive: true });
  fs.writeFileSync(path.join(c.run.dir, 'config.yaml'), YAML.stringify(c));
  const logger = createRunLogger(c.run.dir, c.train.steps, { quiet: opts.quiet });
  try {
    return await runTraining(c, opts, logger);
  } finally {
    await logger.close();
  }
}

async function runTraining(c: Config, opts: TrainOptions, logger: RunLogger): Promise<TrainResult> {
  const { log } = logger;
  const { dataset, tokenizer } = await openRunData(c);
  const engine = createEngine(c);
  const table = engine.paramTable();
  const microBatch = c.train.micro_batch;
  const globalBatch = microBatch * c.train.grad_accum;
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
    engine.setParams(joinFlat(table, byName(ckpt.params), '', ckpt.dir));
    const state = byName(ckpt.optimizer.state);
    engine.setOptimizerState({
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
    },
    `training ${c.model.arch} (${(params / 1e6).toFixed(2)}M parameters) for ${c.train.steps} steps`,
  );

  const schedule = scheduleFromConfig(c);
  const batchesFor = (s: number): TrainBatch[] =>
    Array.from({ length: c.train.grad_accum }, (_, i) =>
      dataset.batch('train', s * globalBatch + i * microBatch, microBatch),
    );
  const result: TrainResult = { steps: [], evals: [], checkpoints: [], finalStep: step };
  const started = Date.now();
  let next = step < c.train.steps ? batchesFor(step) : [];

  const saveAt = async (done: number) => {
    const t0 = Date.now();
    const state = engine.getOptimizerState();
    const saved = await saveCheckpoint(
      checkpointRoot(c),
      {
        step: done,
        consumedSamples: done * globalBatch,
        config: c,
        arch: c.model.arch,
        optimizer: { name: c.optimizer.name, step: state.step, state: optimizerTensors(table, state.m, state.v) },
        params: splitFlat(table, engine.getParams()),
        tokenizerJson: tokenizer.toJSON(),
      },
      { keep: c.checkpoint.keep },
    );
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
    if (step % c.train.log_every === 0 || step === c.train.steps) {
      const losses = c.model.arch === 'bert' ? { mlm_loss: m.lmLoss, nsp_loss: m.nspLoss } : { lm_loss: m.lmLoss };
      log.info(
        {
          step,
          loss: m.loss,
          ...losses,
          lr,
          grad_norm: m.gradNorm,
          tokens_per_s: Math.round((m.tokens / ms) * 1000),
          step_ms: ms,
          elapsed_ms: Date.now() - started,
          consumed_samples: step * globalBatch,
        },
        `step ${step}/${c.train.steps} loss ${m.loss.toFixed(4)}` +
          (c.model.arch === 'bert' ? ` (mlm ${m.lmLoss.toFixed(4)}, nsp ${m.nspLoss.toFixed(4)})` : '') +
          ` lr ${lr.toExponential(2)} grad_norm ${m.gradNorm.toFixed(3)} ${Math.round((m.tokens / ms) * 1000)} tokens/s`,
      );
    }
    logger.progress(step, m.loss);
    const evalDue = (c.train.eval_every > 0 && step % c.train.eval_every === 0) || step === c.train.steps;
    if (evalDue) result.evals.push({ step, loss: await evaluate(engine, dataset, c, logger, step) });
    if ((c.checkpoint.every > 0 && step % c.checkpoint.every === 0) || step === c.train.steps) await saveAt(step);
  }
  result.finalStep = step;
  return result;
}

async function evaluate(engine: NativeEngine, dataset: Dataset, c: Config, logger: RunLogger, step: number) {
  const B = c.train.micro_batch;
  const batches = Array.from({ length: c.train.eval_batches }, (_, i) => dataset.batch('eval', i * B, B));
  let loss = 0,
    lm = 0,
    nsp = 0;
  // The engine stages at most grad_accum micro-batches per call.
  for (let i = 0; i < batches.length; i += c.train.grad_accum) {
    const group = batches.slice(i, i + c.train.grad_accum);
    const m = await engine.evaluate(group);
    loss += m.loss * group.length;
    lm += m.lmLoss * group.length;
    nsp += m.nspLoss * group.length;
  }
  const n = batches.length;
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
