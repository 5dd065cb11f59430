// bench.ts — `paratrain bench`: full training steps (forward, backward, optimizer) on random
// tokens after a warm-up; reports the median step time, tokens/s and model FLOP rate.
import type { Config } from '../config/schema';
import type { TrainBatch } from '../data/batch';
import { maxPredictionsPerSequence } from '../config/load';
import { createEngine, resolveThreads } from '../engine/engine';
import { loadNative } from '../engine/native';

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
  if (c.model.arch === 'gpt') {
    const labels = Int32Array.from({ length: N }, () => Math.floor(next() * V));
    return {
      arch: 'gpt',
      batchSize: B,
      seqLen: T,
      tokens,
      labels,
      segments: null,
      attentionMask: null,
      nspLabels: null,
    };
  }
  const labels = new Int32Array(N).fill(-100);
  const perSeq = maxPredictionsPerSequence(c);
  for (let b = 0; b < B; b++)
    for (let k = 0; k < perSeq; k++) labels[b * T + 1 + Math.floor(next() * (T - 1))] = Math.floor(next() * V);
  return {
    arch: 'bert',
    batchSize: B,
    seqLen: T,
    tokens,
    labels,
    segments: Int32Array.from({ length: N }, (_, i) => (i % T < T / 2 ? 0 : 1)),
    attentionMask: new Uint8Array(N).fill(1),
    nspLabels: Int32Array.from({ length: B }, () => (next() < 0.5 ? 0 : 1)),
  };
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
  const flopsPerToken = 6 * params + 12 * c.model.layers * c.model.seq_len * c.model.hidden;
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
