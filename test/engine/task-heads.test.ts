// The fine-tuning heads against an independent float64 PyTorch implementation of Hugging Face's
// *ForSequenceClassification, *ForTokenClassification and *ForQuestionAnswering
// (scripts/make_task_golden.py): logits, the loss and every parameter gradient within 1e-4
// relative, with the fixture imported from its HF directory and the gradients exported to HF names.
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import type { TrainBatch } from '../../src/data/batch';
import { splitFlat } from '../../src/engine/engine';
import { toHuggingFace } from '../../src/interop';
import { expectGradients, loadGoldenDir, relativeError } from './compare';

const fixtures = path.join(__dirname, '..', 'fixtures', 'golden-tasks');

async function loadCase(name: string) {
  const dir = path.join(fixtures, name);
  const { config, engine, table, inputs, expected, B, T, int, warnings } = await loadGoldenDir(dir);
  const task = config.task.name;
  const batch: TrainBatch = {
    batchSize: B,
    seqLen: T,
    tokens: int('input_ids'),
    // Token classification's labels are per position; the other tasks label none.
    labels: task === 'token-classification' ? int('labels') : new Int32Array(B * T).fill(-100),
    segments: config.model.arch === 'roberta' ? null : int('token_type_ids'),
    attentionMask: Uint8Array.from(inputs.get('attention_mask')!.data),
    pairLabels: null,
  };
  if (task === 'text-classification') {
    if (config.task.regression) batch.targets = Float32Array.from(expected.get('targets')!.data);
    else batch.classLabels = int('labels');
  }
  if (task === 'question-answering') {
    batch.startPositions = int('start_positions');
    batch.endPositions = int('end_positions');
  }
  return { config, engine, table, batch, expected, B, T, warnings };
}

const CASES: Array<[string, string, string]> = [
  ['bert-sequence', 'text-classification', 'class'],
  ['bert-regression', 'text-classification', 'mse'],
  ['albert-sequence', 'text-classification', 'class'],
  ['roberta-sequence', 'text-classification', 'class'],
  ['electra-sequence', 'text-classification', 'class'],
  ['bert-token', 'token-classification', 'tag'],
  ['roberta-token', 'token-classification', 'tag'],
  ['bert-qa', 'question-answering', 'span'],
];

describe.each(CASES)('%s matches PyTorch', (name, task, loss) => {
  it('imports as the task with its labels', async () => {
    const { config, warnings } = await loadCase(name);
    expect(config.task.name).toBe(task);
    expect(warnings).toEqual([]);
    if (name.endsWith('-sequence')) expect(config.task.labels).toEqual(['negative', 'neutral', 'positive']);
    if (name.endsWith('-token')) expect(config.task.labels).toEqual(['O', 'B-PER', 'I-PER', 'B-LOC', 'I-LOC']);
    expect(config.task.regression).toBe(name === 'bert-regression');
  });

  it('loss and every parameter gradient', async () => {
    const { config, engine, table, batch, expected } = await loadCase(name);
    const metrics = await engine.forwardBackward([batch], { step: 0 });
    const want = expected.get('loss')!.data[0];
    expect(Object.keys(metrics.losses)).toEqual([loss]);
    expect(Math.abs(metrics.loss - want) / want).toBeLessThan(1e-5);
    expect(Math.abs(metrics.losses[loss] - want) / want).toBeLessThan(1e-5);
    const [model] = toHuggingFace(config, splitFlat(table, engine.getGrads()));
    const got = new Map(model.tensors.map((t) => [`grad.${t.name}`, t]));
    expectGradients(got, expected);
  });

  it('logits', async () => {
    const { config, engine, batch, expected, B, T } = await loadCase(name);
    const out = await engine.logits(batch);
    const want = expected.get('logits')!;
    if (task === 'text-classification') {
      expect(out.classLogits.length).toBe(want.data.length);
      expect(relativeError(out.classLogits, want.data)).toBeLessThan(1e-4);
      return;
    }
    expect(out.positionLogits.length).toBe(want.data.length);
    // Every position, except RoBERTa's padding: HF numbers its positions padding_idx, which no real token uses.
    const width = want.data.length / (B * T);
    const real = (n: number) => config.model.arch !== 'roberta' || batch.attentionMask![n] === 1;
    const pick = (a: ArrayLike<number>) =>
      Array.from({ length: B * T }, (_, n) => n)
        .filter(real)
        .flatMap((n) => Array.from({ length: width }, (_, k) => a[n * width + k]));
    expect(relativeError(pick(out.positionLogits), pick(want.data))).toBeLessThan(1e-4);
  });
});

describe('task batches the engine refuses', () => {
  it('a class id outside the label list, a span outside the sequence, a NaN target', async () => {
    const seq = await loadCase('bert-sequence');
    expect(() =>
      seq.engine.forwardBackward([{ ...seq.batch, classLabels: Int32Array.from([2, 3, 0]) }], { step: 0 }),
    ).toThrow(/class label 3 is outside \[0, 3\)/);
    const reg = await loadCase('bert-regression');
    expect(() =>
      reg.engine.forwardBackward([{ ...reg.batch, targets: Float32Array.from([0, NaN, 1]) }], { step: 0 }),
    ).toThrow(/target/);
    const qa = await loadCase('bert-qa');
    expect(() =>
      qa.engine.forwardBackward([{ ...qa.batch, endPositions: Int32Array.from([8, 0, 12]) }], { step: 0 }),
    ).toThrow(/span|position/);
    expect(() =>
      qa.engine.forwardBackward([{ ...qa.batch, startPositions: Int32Array.from([9, 0, 8]) }], { step: 0 }),
    ).toThrow(/span|position/);
    const tok = await loadCase('bert-token');
    const labels = Int32Array.from(tok.batch.labels);
    labels[1] = 5;
    expect(() => tok.engine.forwardBackward([{ ...tok.batch, labels }], { step: 0 })).toThrow(/label/);
  });
});
