// Golden tests: tiny BERT and GPT-2 with fixed weights against PyTorch (scripts/make_golden.py,
// computed in float64). Logits, losses and every parameter gradient must match within 1e-4.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { readSafetensors, type AnyTensor } from '../../src/checkpoint';
import { validateConfig } from '../../src/config/load';
import type { TrainBatch } from '../../src/data/batch';
import { createEngine, joinFlat, splitFlat } from '../../src/engine/engine';
import { importHuggingFaceDir, toHuggingFace } from '../../src/interop';

const fixtures = path.join(__dirname, '..', 'fixtures', 'golden');

function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let diff = 0,
    ref = 0;
  for (let i = 0; i < expected.length; i++) {
    diff += (actual[i] - expected[i]) ** 2;
    ref += expected[i] ** 2;
  }
  return Math.sqrt(diff) / Math.max(Math.sqrt(ref), 1e-30);
}

async function loadFixture(arch: 'bert' | 'gpt') {
  const dir = path.join(fixtures, arch);
  const hf = await importHuggingFaceDir(dir);
  const byName = (ts: AnyTensor[]) => new Map(ts.map((t) => [t.name, t]));
  const inputs = byName((await readSafetensors(path.join(dir, 'inputs.safetensors'))).tensors);
  const expected = byName((await readSafetensors(path.join(dir, 'expected.safetensors'))).tensors);
  const ids = inputs.get('input_ids')!;
  const [B, T] = ids.shape;
  const m = hf.modelConfig;
  const config = validateConfig({
    model: {
      arch,
      layers: m.layers,
      hidden: m.hidden,
      heads: m.heads,
      ffn: m.ffn,
      vocab_size: m.vocab_size,
      seq_len: T,
      max_positions: m.max_positions,
      dropout: 0,
    },
    train: { steps: 1, micro_batch: B, lr: 1 },
  });
  const engine = createEngine(config, { allPositions: true });
  const table = engine.paramTable();
  engine.setParams(joinFlat(table, new Map(hf.params.map((p) => [p.name, p]))));
  const int = (name: string) => Int32Array.from(inputs.get(name)!.data);
  const batch: TrainBatch = {
    arch,
    batchSize: B,
    seqLen: T,
    tokens: int('input_ids'),
    labels: int('labels'),
    segments: arch === 'bert' ? int('token_type_ids') : null,
    attentionMask: arch === 'bert' ? Uint8Array.from(inputs.get('attention_mask')!.data) : null,
    nspLabels: arch === 'bert' ? int('next_sentence_label') : null,
  };
  return { hf, engine, table, batch, expected, B, T, V: m.vocab_size };
}

describe.each(['bert', 'gpt'] as const)('%s matches PyTorch', (arch) => {
  it('loss and every parameter gradient', async () => {
    const { hf, engine, table, batch, expected } = await loadFixture(arch);
    const metrics = await engine.forwardBackward([batch], { step: 0 });
    const scalar = (name: string) => expected.get(name)!.data[0];
    expect(Math.abs(metrics.loss - scalar('loss')) / scalar('loss')).toBeLessThan(1e-5);
    if (arch === 'bert') {
      expect(Math.abs(metrics.lmLoss - scalar('mlm_loss')) / scalar('mlm_loss')).toBeLessThan(1e-5);
      expect(Math.abs(metrics.nspLoss - scalar('nsp_loss')) / scalar('nsp_loss')).toBeLessThan(1e-5);
    }
    const grads = toHuggingFace(arch, splitFlat(table, engine.getGrads()), hf.modelConfig).tensors;
    const gradNames = [...expected.keys()].filter((k) => k.startsWith('grad.'));
    expect(grads.map((g) => `grad.${g.name}`).sort()).toEqual(gradNames.sort());
    for (const g of grads) {
      const want = expected.get(`grad.${g.name}`)!;
      expect(g.shape, g.name).toEqual(want.shape);
      // The key bias adds the same q·b to every score of a row, which softmax cancels: its gradient
      // is exactly 0 in theory, ~1e-17 in PyTorch's float64 and ~1e-9 in our float32. Compare it
      // absolutely; every other gradient relatively.
      const norm = Math.hypot(...want.data);
      if (norm < 1e-6) expect(Math.hypot(...g.data), g.name).toBeLessThan(1e-6);
      else expect(relativeError(g.data, want.data), g.name).toBeLessThan(1e-4);
    }
  });

  it('logits at every position', async () => {
    const { engine, batch, expected, B, T, V } = await loadFixture(arch);
    // Every position labelled, so the BERT head predicts all of them.
    const all = { ...batch, labels: new Int32Array(B * T).fill(0) };
    const out = await engine.logits(all);
    expect(Array.from(out.rows)).toEqual(Array.from({ length: B * T }, (_, i) => i));
    expect(out.logits.length).toBe(B * T * V);
    expect(relativeError(out.logits, expected.get('logits')!.data)).toBeLessThan(1e-4);
    if (arch === 'bert') expect(relativeError(out.nspLogits, expected.get('nsp_logits')!.data)).toBeLessThan(1e-4);
  });
});
