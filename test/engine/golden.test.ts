// Golden tests: a tiny model of every family with fixed weights against an independent float64
// PyTorch implementation (scripts/torch_models.py, scripts/make_golden.py). Logits, losses and every
// parameter gradient must match within 1e-4 relative. ELECTRA's generator samples are fixed by the
// fixture, so the reference needs no randomness.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import type { AnyTensor } from '../../src/checkpoint';
import type { ModelFamily } from '../../src/config/schema';
import type { TrainBatch } from '../../src/data/batch';
import { splitFlat } from '../../src/engine/engine';
import { toHuggingFace } from '../../src/interop';
import { expectGradients, loadGoldenDir, relativeError } from './compare';

const fixtures = path.join(__dirname, '..', 'fixtures', 'golden');

/** What each fixture names its pair labels, pair logits and prediction logits. */
const NAMES: Record<ModelFamily, { pairLabels?: string; pairLogits?: string; logits: string; losses: string[] }> = {
  bert: { pairLabels: 'next_sentence_label', pairLogits: 'nsp_logits', logits: 'logits', losses: ['mlm', 'nsp'] },
  gpt: { logits: 'logits', losses: [] },
  roberta: { logits: 'logits', losses: ['mlm'] },
  albert: { pairLabels: 'sentence_order_label', pairLogits: 'sop_logits', logits: 'logits', losses: ['mlm', 'sop'] },
  electra: { logits: 'generator_logits', losses: ['mlm', 'rtd'] },
};

async function loadFixture(family: ModelFamily) {
  const dir = path.join(fixtures, family === 'gpt' ? 'gpt' : family);
  const { config, engine, table, inputs, expected, B, T, int } = await loadGoldenDir(dir);
  const names = NAMES[family];
  const masked = family !== 'gpt';
  const batch: TrainBatch = {
    batchSize: B,
    seqLen: T,
    tokens: int('input_ids'),
    labels: int('labels'),
    segments: inputs.has('token_type_ids') ? int('token_type_ids') : null,
    attentionMask: masked ? Uint8Array.from(inputs.get('attention_mask')!.data) : null,
    pairLabels: names.pairLabels ? int(names.pairLabels) : null,
    ...(inputs.has('generator_samples') ? { sampledTokens: int('generator_samples') } : {}),
  };
  return { config, engine, table, batch, expected, B, T, V: config.model.vocab_size, names };
}

describe.each(['bert', 'gpt', 'roberta', 'albert', 'electra'] as const)('%s matches PyTorch', (family) => {
  it('loss, named losses and every parameter gradient', async () => {
    const { config, engine, table, batch, expected, names } = await loadFixture(family);
    const metrics = await engine.forwardBackward([batch], { step: 0 });
    const scalar = (name: string) => expected.get(name)!.data[0];
    expect(Math.abs(metrics.loss - scalar('loss')) / scalar('loss')).toBeLessThan(1e-5);
    expect(Object.keys(metrics.losses)).toEqual(family === 'gpt' ? ['lm'] : names.losses);
    for (const loss of names.losses) {
      const want = scalar(`${loss}_loss`);
      expect(Math.abs(metrics.losses[loss] - want) / want, loss).toBeLessThan(1e-5);
    }
    // Gradients in HF layout: the main model's under grad.<name>, a generator's own under
    // grad.generator.<name> (the embeddings it shares with the main model are counted there).
    const models = toHuggingFace(config, splitFlat(table, engine.getGrads()));
    const got = new Map<string, AnyTensor>();
    for (const m of models)
      for (const t of m.tensors) {
        const key = m.subdir === '' ? `grad.${t.name}` : `grad.${m.subdir}.${t.name}`;
        if (m.subdir !== '' && t.name.startsWith('electra.embeddings.')) continue;
        got.set(key, t);
      }
    expectGradients(got, expected);
  });

  it('logits at every real position', async () => {
    const { engine, batch, expected, B, T, V, names } = await loadFixture(family);
    // Every position labelled, so a masked-LM head predicts all of them.
    const all = { ...batch, labels: new Int32Array(B * T).fill(0) };
    const out = await engine.logits(all);
    expect(Array.from(out.rows)).toEqual(Array.from({ length: B * T }, (_, i) => i));
    expect(out.logits.length).toBe(B * T * V);
    // Padding positions are compared too, except RoBERTa's: HF numbers their positions
    // padding_idx, which no real token uses.
    const real = (n: number) => family !== 'roberta' || batch.attentionMask![n] === 1;
    const pick = (a: ArrayLike<number>, width: number) =>
      Array.from({ length: B * T }, (_, n) => n)
        .filter(real)
        .flatMap((n) => Array.from({ length: width }, (_, v) => a[n * width + v]));
    expect(relativeError(pick(out.logits, V), pick(expected.get(names.logits)!.data, V))).toBeLessThan(1e-4);
    if (names.pairLogits)
      expect(relativeError(out.classLogits, expected.get(names.pairLogits)!.data)).toBeLessThan(1e-4);
    if (family === 'electra') {
      // The discriminator reads the (fixed) samples of the labelled batch, not of `all`.
      const labelled = await engine.logits(batch);
      expect(relativeError(labelled.positionLogits, expected.get('rtd_logits')!.data)).toBeLessThan(1e-4);
    }
  });
});
