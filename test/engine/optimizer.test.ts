// LAMB (NVLAMB and apex forms) and AdamW: several native updates on given tensors against an
// independent float64 reference written here from the formulas in docs/optimizers.md.
import { describe, expect, it } from 'vitest';

import { validateConfig } from '../../src/config/load';
import { createEngine } from '../../src/engine/engine';
import type { ParamEntry } from '../../src/engine/native';

interface Hyper {
  name: 'lamb' | 'adamw';
  variant: 'nvlamb' | 'apex';
  beta1: number;
  beta2: number;
  eps: number;
  weight_decay: number;
  max_grad_norm: number;
}

// Weight decay by the usual rule, decided here from the names alone: matrices and embeddings
// decay; biases and LayerNorm parameters do not.
const decays = (name: string) => name.endsWith('.weight') && !/norm\./.test(name);

function referenceStep(
  h: Hyper,
  table: ParamEntry[],
  w: Float64Array,
  g: Float64Array,
  m: Float64Array,
  v: Float64Array,
  t: number,
  lr: number,
) {
  const gnorm = Math.sqrt(g.reduce((s, x) => s + x * x, 0));
  let scale = 1;
  if (h.name === 'lamb' && h.variant === 'nvlamb') scale = gnorm > 0 ? 1 / gnorm : 1;
  else if (h.max_grad_norm > 0 && gnorm > h.max_grad_norm) scale = h.max_grad_norm / gnorm;
  const bc1 = 1 - h.beta1 ** t,
    bc2 = 1 - h.beta2 ** t;
  for (const p of table) {
    const wd = decays(p.name) ? h.weight_decay : 0;
    const idx = Array.from({ length: p.numel }, (_, i) => p.offset + i);
    const u = new Float64Array(p.numel);
    idx.forEach((j, i) => {
      const gj = g[j] * scale;
      m[j] = h.beta1 * m[j] + (1 - h.beta1) * gj;
      v[j] = h.beta2 * v[j] + (1 - h.beta2) * gj * gj;
      const mhat = m[j] / bc1,
        vhat = v[j] / bc2;
      if (h.name === 'adamw') u[i] = mhat / (Math.sqrt(vhat) + h.eps);
      else
        u[i] = (h.variant === 'apex' ? mhat / (Math.sqrt(vhat) + h.eps) : mhat / Math.sqrt(vhat + h.eps)) + wd * w[j];
    });
    if (h.name === 'adamw') {
      idx.forEach((j, i) => (w[j] = w[j] * (1 - lr * wd) - lr * u[i]));
    } else {
      const wn = Math.sqrt(idx.reduce((s, j) => s + w[j] * w[j], 0));
      const un = Math.sqrt(u.reduce((s, x) => s + x * x, 0));
      const r = wn > 0 && un > 0 ? wn / un : 1;
      idx.forEach((j, i) => (w[j] -= lr * r * u[i]));
    }
  }
  return gnorm;
}

function random(n: number, seed: number, scale = 1) {
  let s = seed;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1103515245 + 12345) % 2147483648;
    return ((s / 2147483648) * 2 - 1) * scale;
  });
}

const cases: Hyper[] = [
  { name: 'lamb', variant: 'nvlamb', beta1: 0.9, beta2: 0.999, eps: 1e-6, weight_decay: 0.01, max_grad_norm: 1 },
  { name: 'lamb', variant: 'apex', beta1: 0.9, beta2: 0.999, eps: 1e-6, weight_decay: 0.01, max_grad_norm: 1 },
  { name: 'adamw', variant: 'nvlamb', beta1: 0.9, beta2: 0.95, eps: 1e-8, weight_decay: 0.1, max_grad_norm: 1 },
];

describe.each(cases)('$name ($variant)', (h) => {
  it('matches the reference over 4 steps, including a zero-norm tensor', () => {
    const config = validateConfig({
      model: { arch: 'bert', layers: 1, hidden: 16, heads: 2, ffn: 32, vocab_size: 40, seq_len: 8 },
      train: { steps: 4, micro_batch: 1, lr: 0.01 },
      optimizer: h,
    });
    const engine = createEngine(config);
    const table = engine.paramTable();
    const n = engine.numParams();
    const w32 = random(n, 7, 0.5);
    // A tensor that is all zero exercises LAMB's "ratio 1 when ‖w‖ = 0".
    const zeroed = table.find((p) => p.name === 'pooler.bias')!;
    w32.fill(0, zeroed.offset, zeroed.offset + zeroed.numel);
    engine.setParams(w32);
    const w = Float64Array.from(w32),
      m = new Float64Array(n),
      v = new Float64Array(n);
    for (let t = 1; t <= 4; t++) {
      const g32 = random(n, 100 + t, t === 2 ? 5 : 0.1); // step 2 exceeds max_grad_norm: clipping acts
      const lr = 0.01 * t;
      const native = engine.optimizerStep(g32, lr);
      const gnorm = referenceStep(h, table, w, Float64Array.from(g32), m, v, t, lr);
      expect(native.gradNorm / gnorm).toBeCloseTo(1, 6);
    }
    const got = engine.getParams();
    let diff = 0,
      ref = 0,
      moved = 0;
    for (let i = 0; i < n; i++) {
      diff += (got[i] - w[i]) ** 2;
      ref += w[i] ** 2;
      moved += (w[i] - w32[i]) ** 2;
    }
    expect(Math.sqrt(moved / ref)).toBeGreaterThan(1e-3); // the parameters really changed
    expect(Math.sqrt(diff / ref)).toBeLessThan(1e-5);
    const state = engine.getOptimizerState();
    expect(state.step).toBe(4);
  });
});

it('skips the update when gradients are not finite', () => {
  const config = validateConfig({
    model: { arch: 'gpt', layers: 1, hidden: 16, heads: 2, ffn: 32, vocab_size: 40, seq_len: 8 },
    train: { steps: 1, micro_batch: 1, lr: 0.01 },
  });
  const engine = createEngine(config);
  engine.initParams(3);
  const before = engine.getParams();
  const g = random(engine.numParams(), 5);
  g[10] = NaN;
  const r = engine.optimizerStep(g, 0.1);
  expect(r.skipped).toBe(true);
  expect(engine.getParams()).toEqual(before);
  expect(engine.getOptimizerState().step).toBe(0);
});
