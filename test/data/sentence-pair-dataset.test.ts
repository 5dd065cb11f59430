import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IGNORE_INDEX, type TrainBatch } from '../../src/data/batch';
import { loadCorpus } from '../../src/data/corpus';
import { openDataset, type Dataset, type DatasetOptions } from '../../src/data/dataset';
import type { MaskedLmSpecialIds, TextTokenizer } from '../../src/data/tokenizer';

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-bert-'));
afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

const SEQ_LEN = 64;
const options: DatasetOptions = {
  objective: 'masked-lm',
  packing: 'sentence-pairs',
  pairTask: 'nsp',
  tokenizerKind: 'wordpiece',
  corpus: 'bundled',
  cacheDir,
  vocabSize: 512,
  seqLen: SEQ_LEN,
  seed: 1234,
  heldoutFraction: 0.1,
  maskProb: 0.15,
  maxDocuments: 20,
};

let dataset: Dataset;
let tokenizer: TextTokenizer;
let special: MaskedLmSpecialIds;
let big: TrainBatch;
beforeAll(async () => {
  ({ dataset, tokenizer } = await openDataset(options));
  special = tokenizer.maskedLmSpecialIds();
  big = dataset.batch('train', 0, 2000);
});

interface Row {
  tokens: Int32Array;
  labels: Int32Array;
  segments: Int32Array;
  attentionMask: Uint8Array;
  /** The NSP/SOP label, or null without a pair task. */
  pairLabel: number | null;
}

function row(batch: TrainBatch, index: number): Row {
  const span = (array: Int32Array | Uint8Array) => array.subarray(index * batch.seqLen, (index + 1) * batch.seqLen);
  return {
    tokens: span(batch.tokens) as Int32Array,
    labels: span(batch.labels) as Int32Array,
    segments: span(batch.segments!) as Int32Array,
    attentionMask: span(batch.attentionMask!) as Uint8Array,
    pairLabel: batch.pairLabels ? batch.pairLabels[index] : null,
  };
}

/** The row's segments A and B with masked positions restored to their original ids. */
function originalSegments({ tokens, labels }: Row): { a: number[]; b: number[] } {
  const original = Array.from(tokens, (id, i) => (labels[i] === IGNORE_INDEX ? id : labels[i]));
  const seps = original.flatMap((id, i) => (id === special.sep && labels[i] === IGNORE_INDEX ? [i] : []));
  return { a: original.slice(1, seps[0]), b: original.slice(seps[0] + 1, seps[1]) };
}

describe('BERT sentence-pair batches', () => {
  it('have the TrainBatch shape, and say where they come from', () => {
    expect(big.firstSample).toBe(0);
    expect(big.split).toBe('train');
    expect(dataset.batch('eval', 7, 3)).toMatchObject({ firstSample: 7, split: 'eval', batchSize: 3 });
    expect(dataset.objective).toBe('masked-lm');
    expect(big.batchSize).toBe(2000);
    expect(big.seqLen).toBe(SEQ_LEN);
    expect(big.tokens.length).toBe(2000 * SEQ_LEN);
    expect(big.labels.length).toBe(2000 * SEQ_LEN);
    expect(big.segments?.length).toBe(2000 * SEQ_LEN);
    expect(big.attentionMask?.length).toBe(2000 * SEQ_LEN);
    expect(big.pairLabels?.length).toBe(2000);
  });

  it('lay out [CLS] A [SEP] B [SEP] [PAD]... with matching segments and attention mask', () => {
    for (let i = 0; i < big.batchSize; i++) {
      const r = row(big, i);
      const realLength = r.attentionMask.reduce((sum, bit) => sum + bit, 0);
      expect(realLength).toBeLessThanOrEqual(SEQ_LEN);
      expect(Array.from(r.attentionMask.subarray(0, realLength)).every((bit) => bit === 1)).toBe(true);
      expect(r.tokens[0]).toBe(special.cls);
      expect(r.labels[0]).toBe(IGNORE_INDEX);
      const seps = Array.from(r.tokens.subarray(0, realLength)).flatMap((id, p) => (id === special.sep ? [p] : []));
      expect(seps).toHaveLength(2);
      expect(seps[1]).toBe(realLength - 1);
      expect(seps[0]).toBeGreaterThanOrEqual(2); // A is non-empty
      expect(seps[1] - seps[0]).toBeGreaterThanOrEqual(2); // B is non-empty
      const expectedSegments = Array.from({ length: SEQ_LEN }, (_, p) => (p > seps[0] && p < realLength ? 1 : 0));
      expect(Array.from(r.segments)).toEqual(expectedSegments);
      expect(Array.from(r.tokens.subarray(realLength)).every((id) => id === special.pad)).toBe(true);
      expect(Array.from(r.labels.subarray(realLength)).every((label) => label === IGNORE_INDEX)).toBe(true);
      expect(r.labels[seps[0]]).toBe(IGNORE_INDEX);
      expect(r.labels[seps[1]]).toBe(IGNORE_INDEX);
      expect([0, 1]).toContain(r.pairLabel);
    }
  });

  it('fill most sequences close to the length budget', () => {
    let real = 0;
    for (const bit of big.attentionMask!) real += bit;
    expect(real / (big.batchSize * SEQ_LEN)).toBeGreaterThan(0.8);
  });

  it('mask ~15% of real tokens, split 80% [MASK] / 10% random / 10% kept', () => {
    let eligible = 0;
    let predicted = 0;
    let masked = 0;
    let kept = 0;
    let replaced = 0;
    for (let i = 0; i < big.batchSize; i++) {
      const r = row(big, i);
      let rowPredictions = 0;
      for (let p = 0; p < SEQ_LEN; p++) {
        const label = r.labels[p];
        const original = label === IGNORE_INDEX ? r.tokens[p] : label;
        if (r.attentionMask[p] === 1 && !tokenizer.isSpecialId(original)) eligible++;
        if (label === IGNORE_INDEX) continue;
        rowPredictions++;
        predicted++;
        expect(tokenizer.isSpecialId(label)).toBe(false);
        if (r.tokens[p] === special.mask) masked++;
        else if (r.tokens[p] === label) kept++;
        else {
          replaced++;
          expect(tokenizer.isSpecialId(r.tokens[p])).toBe(false);
          expect(r.tokens[p]).toBeLessThan(tokenizer.vocabSize);
        }
      }
      expect(rowPredictions).toBeGreaterThanOrEqual(1);
    }
    expect(predicted / eligible).toBeGreaterThan(0.14);
    expect(predicted / eligible).toBeLessThan(0.16);
    expect(masked / predicted).toBeCloseTo(0.8, 1);
    expect(Math.abs(masked / predicted - 0.8)).toBeLessThan(0.02);
    expect(Math.abs(kept / predicted - 0.1)).toBeLessThan(0.015);
    expect(Math.abs(replaced / predicted - 0.1)).toBeLessThan(0.015);
  });

  it('label about half of the pairs as random next (NSP)', () => {
    const positives = big.pairLabels!.reduce((sum, label) => sum + (label === 0 ? 1 : 0), 0);
    expect(Math.abs(positives / big.batchSize - 0.5)).toBeLessThan(0.04);
  });

  it('draw A and B from the split’s own documents: B continues A for label 0', async () => {
    const documentTokens = async (split: 'train' | 'eval') => {
      const ids = new Set(dataset.documentIds(split));
      const texts = loadCorpus('bundled', { maxDocuments: 20 }).filter((doc) => ids.has(doc.id));
      return Promise.all(texts.map((doc) => tokenizer.encode(doc.text)));
    };
    for (const split of ['train', 'eval'] as const) {
      const documents = await documentTokens(split);
      const batch = split === 'train' ? big : dataset.batch('eval', 0, 100);
      for (let i = 0; i < Math.min(batch.batchSize, 100); i++) {
        const r = row(batch, i);
        const { a, b } = originalSegments(r);
        const homeOfA = documents.findIndex((tokens) => indexOfSubarray(tokens, a) >= 0);
        const homeOfB = documents.findIndex((tokens) => indexOfSubarray(tokens, b) >= 0);
        expect(homeOfA).toBeGreaterThanOrEqual(0);
        expect(homeOfB).toBeGreaterThanOrEqual(0);
        if (r.pairLabel === 0) {
          // Truncation may trim A's end and B's start, so B need not follow A immediately.
          const endOfA = indexOfSubarray(documents[homeOfA], a) + a.length;
          expect(indexOfSubarray(documents[homeOfA], b, endOfA)).toBeGreaterThanOrEqual(endOfA);
        }
      }
    }
  });

  it('hold out the last documents for eval, disjoint from training', () => {
    const train = dataset.documentIds('train');
    const evaluation = dataset.documentIds('eval');
    expect(evaluation).toEqual(['moby-dick/chapter_19', 'moby-dick/chapter_20']);
    expect(train).toHaveLength(18);
    expect(train.filter((id) => evaluation.includes(id))).toEqual([]);
    expect(dataset.samplesPerEpoch('eval')).toBeGreaterThan(0);
    expect(dataset.samplesPerEpoch('train')).toBeGreaterThan(dataset.samplesPerEpoch('eval'));
  });
});

describe('BERT determinism', () => {
  it('gives identical batches from a separate openDataset (fresh cache: retrained tokenizer, retokenized corpus)', async () => {
    const otherCache = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-bert-again-'));
    try {
      const again = await openDataset({ ...options, cacheDir: otherCache });
      expect(again.dataset.summary.tokenStoreOrigin).toBe('tokenized');
      expect(again.dataset.batch('train', 0, 2000)).toEqual(big);
      expect(again.dataset.batch('eval', 5, 7)).toEqual(dataset.batch('eval', 5, 7));
      const cached = await openDataset({ ...options, cacheDir: otherCache });
      expect(cached.dataset.summary.tokenStoreOrigin).toBe('cache');
      expect(cached.dataset.batch('train', 1990, 10)).toEqual(dataset.batch('train', 1990, 10));
    } finally {
      fs.rmSync(otherCache, { recursive: true, force: true });
    }
  });

  it('lets any slice of a global batch be read on its own', () => {
    const whole = dataset.batch('train', 300, 8);
    const firstHalf = dataset.batch('train', 300, 4);
    const secondHalf = dataset.batch('train', 304, 4);
    expect(Array.from(whole.tokens)).toEqual([...firstHalf.tokens, ...secondHalf.tokens]);
    expect(Array.from(whole.labels)).toEqual([...firstHalf.labels, ...secondHalf.labels]);
    expect(Array.from(whole.pairLabels!)).toEqual([...firstHalf.pairLabels!, ...secondHalf.pairLabels!]);
  });

  it('caps predictions per sequence when maxPredictionsPerSeq is set', async () => {
    const capped = await openDataset({ ...options, maxPredictionsPerSeq: 3 });
    const batch = capped.dataset.batch('train', 0, 200);
    for (let i = 0; i < batch.batchSize; i++) {
      const predictions = row(batch, i).labels.filter((label) => label !== IGNORE_INDEX).length;
      expect(predictions).toBeGreaterThanOrEqual(1);
      expect(predictions).toBeLessThanOrEqual(3);
    }
  });

  it('depends on the seed', async () => {
    const other = await openDataset({ ...options, seed: 99 });
    expect(other.dataset.batch('train', 0, 4).tokens).not.toEqual(dataset.batch('train', 0, 4).tokens);
  });
});

describe('dynamic masking and SOP', () => {
  it('re-masks and re-pairs the same text every time it is revisited', async () => {
    // One short document per split: every sample of the train stream is the same chunk.
    const corpusDir = path.join(cacheDir, 'tiny-corpus');
    fs.mkdirSync(corpusDir, { recursive: true });
    const story =
      'The whale rose from the sea. The ship turned to meet it. The crew stood at the rail. ' +
      'The captain gave the order. The boats went down to the water.';
    fs.writeFileSync(path.join(corpusDir, 'a.txt'), story);
    fs.writeFileSync(path.join(corpusDir, 'b.txt'), 'The sea was calm. The sky was clear.');
    const tiny = await openDataset({
      ...options,
      corpus: corpusDir,
      heldoutFraction: 0.5,
      pairTask: 'sop',
      maxDocuments: undefined,
    });
    expect(tiny.dataset.samplesPerEpoch('train')).toBe(1);

    const batch = tiny.dataset.batch('train', 0, 200);
    const text = await tiny.tokenizer.encode(story);
    const maskSignatures = new Set<string>();
    let swapped = 0;
    for (let i = 0; i < batch.batchSize; i++) {
      const r = row(batch, i);
      const { a, b } = originalSegments(r);
      // SOP: label 0 = A then B as in the text; label 1 = the same two segments swapped.
      expect(r.pairLabel === 0 ? [...a, ...b] : [...b, ...a]).toEqual(text);
      swapped += r.pairLabel!;
      maskSignatures.add(Array.from(r.labels, (label) => (label === IGNORE_INDEX ? '.' : 'x')).join(''));
    }
    expect(maskSignatures.size).toBeGreaterThan(190);
    expect(swapped).toBeGreaterThan(70);
    expect(swapped).toBeLessThan(130);
  });
});

describe('pair task none (ELECTRA)', () => {
  it('lays out [CLS] A [SEP] B [SEP] with B always the true continuation, and no pair labels', async () => {
    const none = await openDataset({ ...options, pairTask: 'none' });
    expect(none.dataset.samplesPerEpoch('train')).toBe(dataset.samplesPerEpoch('train'));
    const batch = none.dataset.batch('train', 0, 300);
    expect(batch.pairLabels).toBeNull();
    expect(batch).toMatchObject({ firstSample: 0, split: 'train', batchSize: 300 });
    const ids = new Set(none.dataset.documentIds('train'));
    const texts = loadCorpus('bundled', { maxDocuments: 20 }).filter((doc) => ids.has(doc.id));
    const documents = await Promise.all(texts.map((doc) => none.tokenizer.encode(doc.text)));
    let predicted = 0;
    for (let i = 0; i < batch.batchSize; i++) {
      const r = row(batch, i);
      expect(r.tokens[0]).toBe(special.cls);
      const realLength = r.attentionMask.reduce((sum, bit) => sum + bit, 0);
      expect(r.tokens[realLength - 1]).toBe(special.sep);
      const { a, b } = originalSegments(r);
      expect(a.length).toBeGreaterThan(0);
      expect(b.length).toBeGreaterThan(0);
      expect(Array.from(r.segments.subarray(a.length + 2, realLength)).every((segment) => segment === 1)).toBe(true);
      const home = documents.findIndex((tokens) => indexOfSubarray(tokens, a) >= 0);
      expect(home).toBeGreaterThanOrEqual(0);
      const endOfA = indexOfSubarray(documents[home], a) + a.length;
      expect(indexOfSubarray(documents[home], b, endOfA)).toBeGreaterThanOrEqual(endOfA);
      predicted += r.labels.filter((label) => label !== IGNORE_INDEX).length;
    }
    expect(predicted).toBeGreaterThan(batch.batchSize);
  });

  it('re-cuts and re-masks a revisited chunk, A then B always in text order', async () => {
    const corpusDir = path.join(cacheDir, 'tiny-corpus-none');
    fs.mkdirSync(corpusDir, { recursive: true });
    const story = 'The whale rose from the sea. The ship turned to meet it. The crew stood at the rail.';
    fs.writeFileSync(path.join(corpusDir, 'a.txt'), story);
    fs.writeFileSync(path.join(corpusDir, 'b.txt'), 'The sea was calm. The sky was clear.');
    const tiny = await openDataset({
      ...options,
      corpus: corpusDir,
      heldoutFraction: 0.5,
      pairTask: 'none',
      maxDocuments: undefined,
    });
    const batch = tiny.dataset.batch('train', 0, 100);
    const text = await tiny.tokenizer.encode(story);
    const cuts = new Set<number>();
    for (let i = 0; i < batch.batchSize; i++) {
      const { a, b } = originalSegments(row(batch, i));
      expect([...a, ...b]).toEqual(text);
      cuts.add(a.length);
    }
    expect(cuts.size).toBeGreaterThan(1);
    const again = tiny.dataset.batch('train', 40, 10);
    expect(Array.from(again.tokens)).toEqual(Array.from(batch.tokens.subarray(40 * SEQ_LEN, 50 * SEQ_LEN)));
  });
});

/** Index of `needle` inside `haystack` at or after `fromIndex`, or -1. */
function indexOfSubarray(haystack: ArrayLike<number>, needle: ArrayLike<number>, fromIndex = 0): number {
  outer: for (let start = fromIndex; start + needle.length <= haystack.length; start++) {
    for (let i = 0; i < needle.length; i++) if (haystack[start + i] !== needle[i]) continue outer;
    return start;
  }
  return -1;
}
