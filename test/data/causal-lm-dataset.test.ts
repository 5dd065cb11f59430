import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCorpus } from '../../src/data/corpus';
import { openDataset, type Dataset, type DatasetOptions } from '../../src/data/dataset';
import type { TextTokenizer } from '../../src/data/tokenizer';

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-gpt-'));
afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

const SEQ_LEN = 32;
const options: DatasetOptions = {
  objective: 'causal-lm',
  tokenizerKind: 'bpe',
  corpus: 'bundled',
  cacheDir,
  vocabSize: 512,
  seqLen: SEQ_LEN,
  seed: 7,
  heldoutFraction: 0.1,
  maxDocuments: 20,
};

let dataset: Dataset;
let tokenizer: TextTokenizer;
/** The train stream built independently: whole documents encoded and joined by <|endoftext|>. */
let expectedStream: number[];
beforeAll(async () => {
  ({ dataset, tokenizer } = await openDataset(options));
  const trainIds = new Set(dataset.documentIds('train'));
  const documents = loadCorpus('bundled', { maxDocuments: 20 }).filter((doc) => trainIds.has(doc.id));
  const encoded = await tokenizer.encodeBatch(documents.map((doc) => doc.text));
  expectedStream = encoded.flatMap((ids) => [...ids, tokenizer.endOfTextId()]);
});

describe('GPT window batches', () => {
  it('have the TrainBatch shape with no masked-LM fields, and say where they come from', () => {
    const batch = dataset.batch('train', 0, 8);
    expect(batch).toMatchObject({
      batchSize: 8,
      seqLen: SEQ_LEN,
      segments: null,
      attentionMask: null,
      pairLabels: null,
      firstSample: 0,
      split: 'train',
    });
    expect(dataset.batch('eval', 3, 2)).toMatchObject({ firstSample: 3, split: 'eval' });
    expect(dataset.objective).toBe('causal-lm');
    expect(batch.tokens.length).toBe(8 * SEQ_LEN);
    expect(batch.labels.length).toBe(8 * SEQ_LEN);
    expect(tokenizer.vocabSize).toBeLessThanOrEqual(512);
  });

  it('label each position with the next token', () => {
    const batch = dataset.batch('train', 0, 16);
    for (let row = 0; row < 16; row++) {
      for (let t = 0; t + 1 < SEQ_LEN; t++) {
        expect(batch.labels[row * SEQ_LEN + t]).toBe(batch.tokens[row * SEQ_LEN + t + 1]);
      }
    }
  });

  it('cover the document stream (documents joined by <|endoftext|>) once per epoch in shuffled order', () => {
    const windows = dataset.samplesPerEpoch('train');
    expect(windows).toBe(Math.floor((expectedStream.length - 1) / SEQ_LEN));
    const epoch = dataset.batch('train', 0, windows);
    const starts = new Set<number>();
    for (let row = 0; row < windows; row++) {
      const tokens = Array.from(epoch.tokens.subarray(row * SEQ_LEN, (row + 1) * SEQ_LEN));
      const lastLabel = epoch.labels[(row + 1) * SEQ_LEN - 1];
      // Find which aligned window this is.
      const start = findAlignedWindow(tokens);
      expect(start).toBeGreaterThanOrEqual(0);
      expect(expectedStream[start + SEQ_LEN]).toBe(lastLabel);
      starts.add(start);
    }
    expect(starts.size).toBe(windows);
    const order = Array.from({ length: windows }, (_, row) =>
      findAlignedWindow(Array.from(epoch.tokens.subarray(row * SEQ_LEN, (row + 1) * SEQ_LEN))),
    );
    expect(order).not.toEqual([...order].sort((a, b) => a - b));
    expect(expectedStream).toContain(tokenizer.endOfTextId());
  });

  it('reshuffle in the next epoch', () => {
    const windows = dataset.samplesPerEpoch('train');
    expect(dataset.batch('train', windows, 8).tokens).not.toEqual(dataset.batch('train', 0, 8).tokens);
  });

  it('are identical across openDataset calls and readable in slices', async () => {
    const again = await openDataset(options);
    expect(again.dataset.batch('train', 100, 12)).toEqual(dataset.batch('train', 100, 12));
    expect(again.dataset.batch('eval', 0, 4)).toEqual(dataset.batch('eval', 0, 4));
    const whole = dataset.batch('train', 40, 6);
    expect(Array.from(whole.tokens)).toEqual([
      ...dataset.batch('train', 40, 3).tokens,
      ...dataset.batch('train', 43, 3).tokens,
    ]);
  });

  it('serve eval windows only from the held-out documents', async () => {
    const evalIds = dataset.documentIds('eval');
    expect(evalIds).toEqual(['moby-dick/chapter_19', 'moby-dick/chapter_20']);
    const documents = loadCorpus('bundled', { maxDocuments: 20 }).filter((doc) => evalIds.includes(doc.id));
    const encoded = await tokenizer.encodeBatch(documents.map((doc) => doc.text));
    const evalStream = encoded.flatMap((ids) => [...ids, tokenizer.endOfTextId()]).join(',');
    const batch = dataset.batch('eval', 0, dataset.samplesPerEpoch('eval'));
    for (let row = 0; row < batch.batchSize; row++) {
      const window = [
        ...batch.tokens.subarray(row * SEQ_LEN, (row + 1) * SEQ_LEN),
        batch.labels[(row + 1) * SEQ_LEN - 1],
      ];
      expect(`,${evalStream},`).toContain(`,${window.join(',')},`);
    }
  });
});

function findAlignedWindow(tokens: number[]): number {
  for (let start = 0; start + SEQ_LEN < expectedStream.length; start += SEQ_LEN) {
    if (tokens.every((id, i) => expectedStream[start + i] === id)) return start;
  }
  return -1;
}
