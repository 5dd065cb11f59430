#!/usr/bin/env node
// plan-megatron.mjs — the planner's cost model against a published result: Megatron-LM (Shoeybi et
// al. 2019, section 5.1) trains GPT-2-style models on DGX-2H servers (16 V100 32GB, NVSwitch,
// 8 × 100 Gb/s InfiniBand per server) in fp16 with activation checkpointing, batch 8 per model
// replica, sequence 1024, vocabulary 51,200. One GPU runs the 1.2B model at 39 TFLOP/s (30% of
// peak); the 8.3B model with 8-way tensor parallelism runs at 77% weak-scaling efficiency on 8 GPUs
// and 76% on 512 (×64 data parallel). This prints what the model predicts for the same setups from
// the public hardware figures, the compute efficiency set so that one GPU does 39 TFLOP/s.
// Usage: node scripts/plan-megatron.mjs (after npm run build:ts).
import { createRequire } from 'node:module';
import process from 'node:process';

const require = createRequire(import.meta.url);
const { validateConfig } = require('../dist/config/load.js');
const { modelSpec } = require('../dist/engine/spec.js');
const { predictStep } = require('../dist/plan/cost.js');
const { DEVICES } = require('../dist/plan/devices.js');

const gpt = (layers, hidden, heads) =>
  validateConfig({
    model: { arch: 'gpt', layers, hidden, heads, ffn: 4 * hidden, vocab_size: 51200, seq_len: 1024 },
    train: { steps: 1, micro_batch: 8, lr: 1e-4 },
  });
const v100 = DEVICES.v100;
const megatron = { '1.2B': gpt(40, 1536, 16), '8.3B': gpt(72, 3072, 32) };
const run = (model, tp, dp, overlapDp, computeEfficiency) =>
  predictStep(modelSpec(megatron[model]), v100, {
    microBatch: 8,
    seqLen: 1024,
    gradAccum: 1,
    maxPredictions: 0,
    tp,
    dp,
    precision: 'fp16',
    recompute: true,
    computeEfficiency,
    overlapDp,
  });

// Hardware FLOP/s of one GPU (recomputation's extra forward included, as Megatron counts it).
const hardwareRate = (p) => (p.modelFlops * 4) / 3 / p.stepSeconds;
// Compute efficiency such that the 1.2B model's whole step on one GPU runs at 39 TFLOP/s.
const probe = run('1.2B', 1, 1, false, 1);
const hardwareFlops = (probe.modelFlops * 4) / 3;
const efficiency = hardwareFlops / (hardwareFlops / 39e12 - probe.optimizerSeconds) / v100.peakFlops.fp16;
const base = run('1.2B', 1, 1, false, efficiency);
const perGpuModelRate = (p) => p.modelFlops / p.stepSeconds;

process.stdout.write(
  `V100 dense fp16 peak ${v100.peakFlops.fp16 / 1e12} TFLOP/s; compute efficiency ${efficiency.toFixed(3)} gives ` +
    `the 1.2B model ${(hardwareRate(base) / 1e12).toFixed(1)} TFLOP/s on one GPU ` +
    `(step ${(base.stepSeconds * 1e3).toFixed(0)} ms, of which the optimizer ${(base.optimizerSeconds * 1e3).toFixed(0)} ms)\n\n` +
    '| setup | GPUs | DP all-reduce | step ms | compute ms | TP ms | DP ms (exposed) | TFLOP/s per GPU | weak-scaling efficiency | paper |\n' +
    '|---|---|---|---|---|---|---|---|---|---|\n',
);
const rows = [
  ['8.3B, TP 8', 8, 1, false, '77%'],
  ['8.3B, TP 8 × DP 64', 8, 64, false, '76%'],
  ['8.3B, TP 8 × DP 64', 8, 64, true, '76%'],
];
for (const [name, tp, dp, overlap, paper] of rows) {
  const p = run('8.3B', tp, dp, overlap, efficiency);
  const eff = perGpuModelRate(p) / perGpuModelRate(base);
  process.stdout.write(
    `| ${name} | ${tp * dp} | ${dp > 1 ? (overlap ? 'overlapped with backward' : 'after backward') : '–'} | ` +
      `${(p.stepSeconds * 1e3).toFixed(0)} | ${(p.computeSeconds * 1e3).toFixed(0)} | ${(p.tpSeconds * 1e3).toFixed(0)} | ` +
      `${(p.dpSeconds * 1e3).toFixed(0)} (${(p.dpExposedSeconds * 1e3).toFixed(0)}) | ` +
      `${(hardwareRate(p) / 1e12).toFixed(1)} | ${(eff * 100).toFixed(1)}% | ${paper} |\n`,
  );
}
