// The planner's arithmetic on hand-worked cases: published parameter counts, the seed's 16 bytes per
// parameter, Korthikanti's activation formula, ring all-reduce volumes and which links a group
// uses; and the parameter count against the engine's own numParams() for every family.
import { describe, expect, it } from 'vitest';

import { loadConfig, validateConfig } from '../../src/config/load';
import type { ModelFamily } from '../../src/config/schema';
import { createEngine, paramTableFor } from '../../src/engine/engine';
import { modelSpec } from '../../src/engine/spec';
import { commVolume, predictStep, ringLink } from '../../src/plan/cost';
import { DEVICES } from '../../src/plan/devices';
import {
  engineLayerFloats,
  engineMemory,
  korthikantiLayerBytes,
  mixedPrecisionMemory,
  type RunShape,
} from '../../src/plan/memory';
import { countParams, vocabRowsPerRank } from '../../src/plan/params';
import { planRun } from '../../src/plan/plan';

const preset = (name: string, set: string[] = []) => loadConfig({ config: name, set });
const shape = (b: number, s: number, tp = 1, extra: Partial<RunShape> = {}): RunShape => ({
  microBatch: b,
  seqLen: s,
  gradAccum: 1,
  maxPredictions: 0,
  threads: 1,
  tp,
  ...extra,
});

describe('parameter counts', () => {
  it('match the published sizes of GPT-2 and BERT (Hugging Face GPT2Model / BertModel)', () => {
    expect(countParams(modelSpec(preset('gpt2-124m'))).perRank).toBe(124_439_808);
    expect(countParams(modelSpec(preset('gpt2-1558m'))).perRank).toBe(1_557_611_200);
    // BertModel (embeddings, layers, pooler); the pretraining heads come on top.
    const base = countParams(modelSpec(preset('bert-base')));
    expect(base.embeddings + base.stacks).toBe(109_482_240);
    const large = countParams(modelSpec(preset('bert-large')));
    expect(large.embeddings + large.stacks).toBe(335_141_888);
    // MLM head (transform 1024² + 1024, LayerNorm 2·1024, decoder bias 30522) + NSP (2·1024 + 2).
    expect(large.heads).toBe(1024 * 1024 + 1024 + 2048 + 30522 + 2050);
  });

  const tinyPresets = ['bert-mini', 'gpt-mini', 'roberta-mini', 'albert-mini', 'electra-mini'];
  it.each(tinyPresets)("%s: equals the engine's numParams(), and at TP=2 its shard's length", (name) => {
    const c = preset(name, ['train.micro_batch=2', 'model.seq_len=16']);
    const engine = createEngine(c);
    expect(countParams(modelSpec(c), 1).perRank).toBe(engine.numParams());
    const tp2 = validateConfig({ ...c, parallel: { ...c.parallel, tensor: 2 } });
    const shard = paramTableFor(tp2, 1, 2).reduce((n, p) => n + p.numel, 0);
    expect(countParams(modelSpec(tp2), 2).perRank).toBe(shard);
  });

  it('pads the vocabulary to a multiple of 128·t under tensor parallelism', () => {
    expect(vocabRowsPerRank(50257, 1)).toBe(50257);
    expect(vocabRowsPerRank(50257, 2)).toBe(25216); // 50432 / 2
    expect(vocabRowsPerRank(30522, 8)).toBe(3840); // 30720 / 8
  });

  it('ALBERT counts its shared block once in memory and once per layer in FLOPs', () => {
    const p = countParams(modelSpec(preset('albert-mini')));
    const c = preset('albert-mini');
    const block = 4 * 256 + 4 * 256 * 256 + 4 * 256 + 2 * 1024 * 256 + 1024 + 256;
    expect(c.model.layers).toBe(4);
    expect(p.perUse - p.perRank).toBe(3 * block);
  });
});

describe('16 bytes per parameter (mixed precision with Adam or LAMB)', () => {
  it.each([
    ['gpt2-1558m', 1_557_611_200],
    ['bert-large', 336_226_108],
  ])('%s: 2 + 2 + 12 bytes per parameter', (name, params) => {
    const spec = modelSpec(preset(name));
    expect(countParams(spec).perRank).toBe(params);
    const m = mixedPrecisionMemory(spec, shape(1, 128), 0);
    expect(m.params).toBe(2 * params);
    expect(m.grads).toBe(2 * params);
    expect(m.optimizer).toBe(12 * params);
    expect(m.params + m.grads + m.optimizer).toBe(16 * params);
  });

  it('GPT-2 1.5B: 24.92 GB of weights, gradients and optimizer state before activations', () => {
    const m = mixedPrecisionMemory(modelSpec(preset('gpt2-1558m')), shape(1, 1024), 0);
    expect((m.params + m.grads + m.optimizer) / 1e9).toBeCloseTo(24.92, 2);
  });
});

describe('activations (Korthikanti et al. 2022)', () => {
  it("one layer at t = 1 is the seed's s·b·h·(34 + 5·a·s/h) bytes", () => {
    const s = modelSpec(preset('bert-large')).stacks[0]; // h 1024, a 16, f 4h
    const [b, t, h, a] = [8, 512, 1024, 16];
    expect(korthikantiLayerBytes(s, 1, b, t)).toBe(t * b * h * (34 + (5 * a * t) / h));
  });

  it('with t-way tensor parallelism it is s·b·h·(10 + 24/t + 5·a·s/(h·t))', () => {
    const s = modelSpec(preset('bert-large')).stacks[0];
    const [b, t, h, a, tp] = [4, 128, 1024, 16, 8];
    expect(korthikantiLayerBytes(s, tp, b, t)).toBe(t * b * h * (10 + 24 / tp + (5 * a * t) / (h * tp)));
  });

  it('recomputation keeps 2·s·b·h per layer plus one layer being rebuilt', () => {
    const spec = modelSpec(preset('gpt2-124m'));
    const m = mixedPrecisionMemory(spec, shape(2, 1024), 0);
    const layer = korthikantiLayerBytes(spec.stacks[0], 1, 2, 1024);
    expect(m.activations - m.activationsRecompute).toBe(12 * layer - (12 * 2 * 2 * 1024 * 768 + layer));
  });

  it("the fp32 engine's layer: the buffers block.cpp allocates", () => {
    const s = modelSpec(preset('bert-mini')).stacks[0]; // H 256, F 1024, 4 heads
    const [b, t] = [16, 128];
    const N = b * t;
    // qkv 3H, ctx H, five H-wide buffers, up and gelu F, two LayerNorm (mean, rstd), probs b·a·t².
    expect(engineLayerFloats(s, 1, b, t)).toBe(N * (3 * 256 + 256 + 5 * 256 + 2 * 1024 + 4) + b * 4 * t * t);
    // TP = 2 halves the column-parallel parts and the heads, not the replicated H-wide buffers.
    expect(engineLayerFloats(s, 2, b, t)).toBe(N * (2 * 256 + 5 * 256 + 1024 + 4) + b * 2 * t * t);
  });

  it('the fp32 engine holds 4 bytes each of weights, gradients, m and v', () => {
    const spec = modelSpec(preset('gpt-mini'));
    const P = countParams(spec).perRank;
    const m = engineMemory(spec, shape(8, 256), 0);
    expect([m.params, m.grads, m.optimizer]).toEqual([4 * P, 4 * P, 8 * P]);
    // The causal-LM logits are the largest activation: b·s·V floats.
    expect(m.activations).toBeGreaterThan(8 * 256 * 50257 * 4);
  });
});

describe('communication', () => {
  it('per step: 4 TP all-reduces per layer (6 with recomputation) plus the embedding and the output layer', () => {
    const spec = modelSpec(preset('gpt-mini')); // L4 H256, gpt: embedding forward + head backward
    const o = {
      microBatch: 8,
      seqLen: 256,
      gradAccum: 2,
      maxPredictions: 0,
      tp: 2,
      dp: 4,
      precision: 'fp32' as const,
      recompute: false,
      computeEfficiency: 1,
      overlapDp: true,
    };
    const v = commVolume(spec, o);
    const N = 8 * 256;
    expect(v.tpAllReduces).toBe(2 * (4 * 4 + 2));
    // Each rank sends 2(t−1)/t of every all-reduce: here half of it.
    expect(v.tpBytes).toBe((2 * (4 * 4 + 2) * N * 256 * 4 * (2 * 1)) / 2);
    expect(v.dpBytes).toBe(((2 * 3) / 4) * countParams(spec, 2).perRank * 4);
    expect(commVolume(spec, { ...o, recompute: true }).tpAllReduces).toBe(2 * (6 * 4 + 2));
    expect(commVolume(spec, { ...o, tp: 1 }).tpBytes).toBe(0);
  });

  it('a TP group inside a DGX node uses NVLink; DP rings crossing nodes share the node network', () => {
    const v100 = DEVICES.v100; // 16 per node, 150 GB/s NVSwitch, 100 GB/s InfiniBand per node
    expect(ringLink(v100, 8, 1).bandwidth).toBe(150e9);
    expect(ringLink(v100, 2, 8).bandwidth).toBe(150e9); // DP 2 × TP 8 = one node
    expect(ringLink(v100, 64, 8).bandwidth).toBe(100e9 / 8); // 8 DP rings leave each node
    expect(ringLink(DEVICES.h100, 16, 1).bandwidth).toBe(400e9); // TP across two 8-GPU nodes
  });

  it('a step without communication is compute plus the optimizer, its MFU the efficiency less that', () => {
    const spec = modelSpec(preset('gpt2-124m'));
    const p = predictStep(spec, DEVICES.h100, {
      microBatch: 8,
      seqLen: 1024,
      gradAccum: 1,
      maxPredictions: 0,
      tp: 1,
      dp: 1,
      precision: 'bf16',
      recompute: false,
      computeEfficiency: 0.5,
      overlapDp: true,
    });
    expect(p.tpSeconds + p.dpSeconds).toBe(0);
    expect(p.stepSeconds).toBeCloseTo(p.computeSeconds + p.optimizerSeconds, 12);
    expect(p.mfu).toBeCloseTo((0.5 * p.computeSeconds) / p.stepSeconds, 12);
    expect(p.mfu).toBeLessThan(0.5);
  });
});

describe('layouts', () => {
  const families: ModelFamily[] = ['bert', 'gpt', 'roberta', 'albert', 'electra'];
  it.each(families)('%s-mini: every TP size that divides heads, hidden and ffn, with DP filling the rest', (arch) => {
    const plan = planRun(preset(`${arch}-mini`), {
      devices: 4,
      device: DEVICES.a100,
      precision: 'bf16',
      threads: 1,
      computeEfficiency: 0.5,
    });
    // ELECTRA-mini's generator has 2 heads: TP 4 cannot split it.
    expect(plan.layouts.map((l) => `${l.tp}x${l.dp}`)).toEqual(
      arch === 'electra' ? ['1x4', '2x2'] : ['1x4', '2x2', '4x1'],
    );
    for (const l of plan.layouts) expect(l.fits).toBe('yes');
  });

  it('GPT-2 1.5B at micro-batch 8 on 80 GB: fits only with recomputation at TP 1, as it is at TP 5', () => {
    const plan = planRun(preset('gpt2-1558m'), {
      devices: 5,
      device: DEVICES.h100,
      precision: 'bf16',
      threads: 1,
      computeEfficiency: 0.5,
    });
    expect(plan.layouts.map((l) => [l.tp, l.fits])).toEqual([
      [1, 'recompute'],
      [5, 'yes'],
    ]);
    expect(plan.layouts[0].step.recompute).toBe(true);
    expect(plan.layouts[1].totalBytes).toBeLessThan(plan.layouts[0].totalBytes);
  });
});
