// bench.ts — `paratrain bench`: full training steps (forward, backward, optimizer) on random
// tokens after a warm-up; reports the median step time, tokens/s and model FLOP rate.
import type { Config } from '../config/schema';
import type { TrainBatch } from '../data/batch';
import { generatorShape, layerGroups, objective, packing, pairTask } from '../config/family';
import { maxPredictionsPerSequence } from '../config/load';
import { createEngine, resolveThreads } from '../engine/engine';
import { loadNative, type ParamEntry } from '../engine/native';

export interface BenchResult {
  config: string;
  arch: string;
  params: number;
  threads: number;
  micro_batch: number;
  grad_accum: number;
  seq_len: number;
  optimizer: string;
  steps: number;
  step_ms: number;
  tokens_per_s: number;
  /** Model FLOP/s by the PaLM count: (6·N + 12·layers·seq·hidden) per token. */
  gflops: number;
  peak_rss_mb: number;
  /** Which OpenBLAS kernels ran (see docs/threading.md). */
  blas_core: string;
}

/** A random batch with the structure of real ones (deterministic in `seed`). */
export function randomBatch(c: Config, seed: number): TrainBatch {
  const B = c.train.micro_batch,
    T = c.model.seq_len,
    V = c.model.vocab_size,
    N = B * T;
  let state = (seed * 2654435761) >>> 0 || 1;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
  const tokens = Int32Array.from({ length: N }, () => Math.floor(next() * V));
  if (objective(c) === 'causal-lm') {
    const labels = Int32Array.from({ length: N }, () => Math.floor(next() * V));
    return { batchSize: B, seqLen: T, tokens, labels, segments: null, attentionMask: null, pairLabels: null };
  }
  const labels = new Int32Array(N).fill(-100);
  const perSeq = maxPredictionsPerSequence(c);
  for (let b = 0; b < B; b++)
    for (let k = 0; k < perSeq; k++) labels[b * T + 1 + Math.floor(next() * (T - 1))] = Math.floor(next() * V);
  const pairs = packing(c) === 'sentence-pairs';
  return {
    batchSize: B,
    seqLen: T,
    tokens,
    labels,
    segments: Int32Array.from({ length: N }, (_, i) => (pairs && i % T >= T / 2 ? 1 : 0)),
    attentionMask: new Uint8Array(N).fill(1),
    pairLabels: pairTask(c) === 'none' ? null : Int32Array.from({ length: B }, () => (next() < 0.5 ? 0 : 1)),
    firstSample: seed * B,
    split: 'train',
  };
}

/**
 * PaLM's model FLOPs per token, 6·N + 12·layers·seq·hidden, with N counting a shared block once per
 * layer that uses it (ALBERT) and the attention term summed over every stack (ELECTRA's generator).
 */
export function modelFlopsPerToken(c: Config, table: ParamEntry[]): number {
  const uses = c.model.layers / layerGroups(c);
  let n = 0;
  for (const p of table) n += p.name.startsWith('layers.') ? p.numel * uses : p.numel;
  const T = c.model.seq_len;
  let attention = 12 * c.model.layers * T * c.model.hidden;
  if (c.model.arch === 'electra') {
    const g = generatorShape(c);
    attention += 12 * g.layers * T * g.hidden;
  }
  return 6 * n + attention;
}

export async function runBench(c: Config, opts: { steps: number; warmup: number; name: string }): Promise<BenchResult> {
  const engine = createEngine(c);
  engine.initParams(c.train.seed);
  const batches = Array.from({ length: c.train.grad_accum }, (_, i) => randomBatch(c, i + 1));
  const times: number[] = [];
  for (let s = 0; s < opts.warmup + opts.steps; s++) {
    const t0 = process.hrtime.bigint();
    await engine.trainStep(batches, { step: s, lr: 1e-4 });
    if (s >= opts.warmup) times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  const stepMs = times[Math.floor(times.length / 2)];
  const tokens = c.train.micro_batch * c.train.grad_accum * c.model.seq_len;
  const tokensPerS = (tokens / stepMs) * 1000;
  const params = engine.numParams();
  const flopsPerToken = modelFlopsPerToken(c, engine.paramTable());
  return {
    config: opts.name,
    arch: c.model.arch,
    params,
    threads: resolveThreads(c.train.threads),
    micro_batch: c.train.micro_batch,
    grad_accum: c.train.grad_accum,
    seq_len: c.model.seq_len,
    optimizer: c.optimizer.name,
    steps: opts.steps,
    step_ms: Number(stepMs.toFixed(2)),
    tokens_per_s: Number(tokensPerS.toFixed(1)),
    gflops: Number(((tokensPerS * flopsPerToken) / 1e9).toFixed(2)),
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    blas_core: loadNative('cpu').blasCore,
  };
}
