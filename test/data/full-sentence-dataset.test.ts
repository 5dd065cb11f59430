import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IGNORE_INDEX, type Split, type TrainBatch } from '../../src/data/batch';
import { loadCorpus } from '../../src/data/corpus';
import { openDataset, type Dataset, type DatasetOptions } from '../../src/data/dataset';
import { splitSentences } from '../../src/data/sentences';
import type { MaskedLmSpecialIds, TextTokenizer } from '../../src/data/tokenizer';

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-full-sentences-'));
afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

const SEQ_LEN = 64;
const options: DatasetOptions = {
  objective: 'masked-lm',
  packing: 'full-sentences',
  tokenizerKind: 'wordpiece',
  corpus: 'bundled',
  cacheDir,
  vocabSize: 512,
  seqLen: SEQ_LEN,
  seed: 99,
  heldoutFraction: 0.1,
  maskProb: 0.15,
  maxDocuments: 20,
};

interface Opened {
  dataset: Dataset;
  tokenizer: TextTokenizer;
  special: MaskedLmSpecialIds;
  epoch: TrainBatch;
}
async function open(overrides: Partial<DatasetOptions> = {}): Promise<Opened> {
  const { dataset, tokenizer } = await openDataset({ ...options, ...overrides });
  const epoch = dataset.batch('train', 0, dataset.samplesPerEpoch('train'));
  return { dataset, tokenizer, special: tokenizer.maskedLmSpecialIds(), epoch };
}

/** A row's real tokens with masked positions restored to their original ids. */
function unmaskedRow(batch: TrainBatch, row: number): number[] {
  const start = row * batch.seqLen;
  const real = batch.attentionMask!.subarray(start, start + batch.seqLen).reduce((sum, bit) => sum + bit, 0);
  return Array.from(batch.tokens.subarray(start, start + real), (id, i) => {
    const label = batch.labels[start + i];
    return label === IGNORE_INDEX ? id : label;
  });
}

/** The split's documents tokenized independently: one token list per sentence (empty ones dropped). */
async function sentencesOf(opened: Opened, split: Split, corpus: string, maxDocuments?: number): Promise<number[][][]> {
  const ids = new Set(opened.dataset.documentIds(split));
  const documents = loadCorpus(corpus, { maxDocuments }).filter((doc) => ids.has(doc.id));
  return Promise.all(
    documents.map(async (doc) =>
      (await opened.tokenizer.encodeBatch(splitSentences(doc.text))).filter((s) => s.length),
    ),
  );
}

/**
 * Checks the packing of one whole epoch against the independently tokenized documents: the
 * samples, in some order, tile the split's token stream exactly once; the separators inside a
 * sample sit exactly at the document boundaries it crosses; a sample starts at a sentence start
 * unless it continues an over-long sentence, whose earlier pieces then fill a whole sample.
 * Returns counts for the caller's own expectations.
 */
function checkEpochPacking(opened: Opened, documents: number[][][]): { crossings: number; pieces: number } {
  const { epoch, special } = opened;
  const budget = epoch.seqLen - 2;
  const stream: number[] = [];
  const documentStarts = new Set<number>();
  const sentenceStarts = new Set<number>();
  for (const sentences of documents) {
    if (sentences.length > 0 && stream.length > 0) documentStarts.add(stream.length);
    for (const sentence of sentences) {
      sentenceStarts.add(stream.length);
      stream.push(...sentence);
    }
  }

  // Each sample: its content with the inner separators taken out, and where they were.
  const samples = Array.from({ length: epoch.batchSize }, (_, row) => {
    const tokens = unmaskedRow(epoch, row);
    expect(tokens.length).toBeLessThanOrEqual(epoch.seqLen);
    expect(tokens[0]).toBe(special.cls);
    expect(tokens[tokens.length - 1]).toBe(special.sep);
    const content: number[] = [];
    const separatorsAt: number[] = [];
    for (const id of tokens.slice(1, -1)) {
      if (id === special.sep) separatorsAt.push(content.length);
      else content.push(id);
    }
    return { content, separatorsAt, used: tokens.length - 2 };
  });

  // Walk the stream: at each offset some unused sample must continue it. The longest such sample
  // is taken, so that a short one (the tail of a cut sentence) cannot stand in for a longer one.
  const byFirstToken = new Map<number, number[]>();
  samples.forEach((sample, index) => {
    const list = byFirstToken.get(sample.content[0]) ?? [];
    list.push(index);
    byFirstToken.set(sample.content[0], list);
  });
  const used = new Set<number>();
  let crossings = 0;
  let pieces = 0;
  let previousUsed = 0;
  for (let offset = 0; offset < stream.length;) {
    const match = (byFirstToken.get(stream[offset]) ?? [])
      .filter((index) => !used.has(index) && samples[index].content.every((id, i) => stream[offset + i] === id))
      .sort((a, b) => samples[b].content.length - samples[a].content.length)[0];
    expect(match, `no sample continues the stream at offset ${offset}`).toBeDefined();
    const sample = samples[match!];
    used.add(match!);
    const inside = [...documentStarts].filter((b) => b > offset && b < offset + sample.content.length);
    expect(sample.separatorsAt.map((at) => offset + at)).toEqual(inside.sort((x, y) => x - y));
    crossings += inside.length;
    if (!sentenceStarts.has(offset)) {
      expect(previousUsed).toBe(budget); // the piece before was a whole budget of one long sentence
      pieces++;
    }
    previousUsed = sample.used;
    offset += sample.content.length;
  }
  expect(used.size).toBe(samples.length);
  return { crossings, pieces };
}

let wordpiece: Opened;
beforeAll(async () => {
  wordpiece = await open();
});

describe('FULL-SENTENCES packing', () => {
  it('has the TrainBatch shape: segments all 0, no pair labels, padding masked out', () => {
    const { epoch, special, dataset } = wordpiece;
    expect(dataset.objective).toBe('masked-lm');
    expect(epoch).toMatchObject({ firstSample: 0, split: 'train', pairLabels: null, seqLen: SEQ_LEN });
    expect(dataset.batch('eval', 2, 3)).toMatchObject({ firstSample: 2, split: 'eval', batchSize: 3 });
    expect(epoch.segments!.every((segment) => segment === 0)).toBe(true);
    for (let row = 0; row < epoch.batchSize; row++) {
      const start = row * SEQ_LEN;
      const mask = epoch.attentionMask!.subarray(start, start + SEQ_LEN);
      const real = mask.reduce((sum, bit) => sum + bit, 0);
      expect(Array.from(mask.subarray(0, real)).every((bit) => bit === 1)).toBe(true);
      expect(Array.from(epoch.tokens.subarray(start + real, start + SEQ_LEN)).every((id) => id === special.pad)).toBe(
        true,
      );
      expect(Array.from(epoch.labels.subarray(start + real, start + SEQ_LEN)).every((l) => l === IGNORE_INDEX)).toBe(
        true,
      );
      expect(epoch.labels[start]).toBe(IGNORE_INDEX);
      expect(epoch.labels[start + real - 1]).toBe(IGNORE_INDEX);
    }
  });

  it('packs every token of the split exactly once per epoch, marking document boundaries with an extra [SEP]', async () => {
    const documents = await sentencesOf(wordpiece, 'train', 'bundled', 20);
    const { crossings } = checkEpochPacking(wordpiece, documents);
    expect(crossings).toBeGreaterThan(5); // 18 chapters: most boundaries fall inside a sample
    const evalEpoch: Opened = {
      ...wordpiece,
      epoch: wordpiece.dataset.batch('eval', 0, wordpiece.dataset.samplesPerEpoch('eval')),
    };
    checkEpochPacking(evalEpoch, await sentencesOf(wordpiece, 'eval', 'bundled', 20));
  });

  it('fills most of each sequence', () => {
    // Whole sentences only, ~30 tokens each here against a budget of 62: some room stays empty.
    let real = 0;
    for (const bit of wordpiece.epoch.attentionMask!) real += bit;
    expect(real / wordpiece.epoch.tokens.length).toBeGreaterThan(0.75);
  });

  it('masks ~maskProb of the real non-special tokens, 80% [MASK] / 10% random / 10% kept, at least one each', () => {
    const { epoch, tokenizer, special } = wordpiece;
    let eligible = 0;
    let predicted = 0;
    let masked = 0;
    let kept = 0;
    for (let row = 0; row < epoch.batchSize; row++) {
      let rowPredictions = 0;
      for (let p = row * SEQ_LEN; p < (row + 1) * SEQ_LEN; p++) {
        const label = epoch.labels[p];
        const original = label === IGNORE_INDEX ? epoch.tokens[p] : label;
        if (epoch.attentionMask![p] === 1 && !tokenizer.isSpecialId(original)) eligible++;
        if (label === IGNORE_INDEX) continue;
        rowPredictions++;
        predicted++;
        expect(tokenizer.isSpecialId(label)).toBe(false);
        if (epoch.tokens[p] === special.mask) masked++;
        else if (epoch.tokens[p] === label) kept++;
        else expect(tokenizer.isSpecialId(epoch.tokens[p])).toBe(false);
      }
      expect(rowPredictions).toBeGreaterThanOrEqual(1);
    }
    expect(Math.abs(predicted / eligible - 0.15)).toBeLessThan(0.01);
    expect(Math.abs(masked / predicted - 0.8)).toBeLessThan(0.03);
    expect(Math.abs(kept / predicted - 0.1)).toBeLessThan(0.02);
  });

  it('caps predictions per sequence with maxPredictionsPerSeq', async () => {
    const capped = await openDataset({ ...options, maxPredictionsPerSeq: 2 });
    const batch = capped.dataset.batch('train', 0, 100);
    for (let row = 0; row < 100; row++) {
      const count = batch.labels.subarray(row * SEQ_LEN, (row + 1) * SEQ_LEN).filter((l) => l !== IGNORE_INDEX).length;
      expect(count).toBeGreaterThanOrEqual(1);
      expect(count).toBeLessThanOrEqual(2);
    }
  });

  it('is deterministic across openDataset calls and across (firstSample, count) splits of a range', async () => {
    const otherCache = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-full-sentences-again-'));
    try {
      const again = await openDataset({ ...options, cacheDir: otherCache });
      expect(again.dataset.batch('train', 0, wordpiece.epoch.batchSize)).toEqual(wordpiece.epoch);
      expect(again.dataset.batch('eval', 3, 5)).toEqual(wordpiece.dataset.batch('eval', 3, 5));
    } finally {
      fs.rmSync(otherCache, { recursive: true, force: true });
    }
    const { dataset } = wordpiece;
    const n = dataset.samplesPerEpoch('train');
    // A range that straddles the epoch boundary, read whole and in uneven slices.
    const whole = dataset.batch('train', n - 5, 12);
    const parts = [
      dataset.batch('train', n - 5, 1),
      dataset.batch('train', n - 4, 7),
      dataset.batch('train', n + 3, 4),
    ];
    for (const field of ['tokens', 'labels', 'segments', 'attentionMask'] as const) {
      expect(Array.from(whole[field]!)).toEqual(parts.flatMap((part) => Array.from(part[field]!)));
    }
  });

  it('shuffles anew and re-masks each epoch (dynamic masking)', () => {
    const { dataset } = wordpiece;
    const n = dataset.samplesPerEpoch('train');
    const first = wordpiece.epoch;
    const second = dataset.batch('train', n, n);
    const key = (batch: TrainBatch, row: number) => unmaskedRow(batch, row).join(',');
    const rowOf = new Map<string, number>();
    for (let row = 0; row < n; row++) rowOf.set(key(first, row), row);
    let sameOrder = 0;
    let sameMask = 0;
    for (let row = 0; row < n; row++) {
      const earlier = rowOf.get(key(second, row));
      expect(earlier).toBeDefined(); // the same samples...
      if (earlier === row) sameOrder++;
      const labelsOf = (batch: TrainBatch, r: number) => batch.labels.subarray(r * SEQ_LEN, (r + 1) * SEQ_LEN).join();
      if (labelsOf(first, earlier!) === labelsOf(second, row)) sameMask++;
    }
    expect(sameOrder).toBeLessThan(n / 10); // ...in another order...
    expect(sameMask).toBeLessThan(n / 10); // ...with other masks
  });

  it('cuts a sentence longer than the budget into budget-sized pieces', async () => {
    const corpusDir = path.join(cacheDir, 'long-sentence-corpus');
    fs.mkdirSync(corpusDir, { recursive: true });
    const words = ['whale', 'sea', 'ship', 'crew', 'sail', 'wind', 'storm', 'harpoon'];
    const longSentence = Array.from({ length: 60 }, (_, i) => words[i % words.length]).join(' ') + '.';
    fs.writeFileSync(
      path.join(corpusDir, 'a.txt'),
      `The ship sailed. ${longSentence} The crew cheered. Then it ended.`,
    );
    fs.writeFileSync(path.join(corpusDir, 'b.txt'), 'A second document. It is short.');
    fs.writeFileSync(path.join(corpusDir, 'c.txt'), 'A third one follows. The sea was calm.');
    const opened = await open({ corpus: corpusDir, maxDocuments: undefined, heldoutFraction: 0, seqLen: 16 });
    const { crossings, pieces } = checkEpochPacking(opened, await sentencesOf(opened, 'train', corpusDir));
    expect(pieces).toBeGreaterThanOrEqual(3);
    expect(crossings).toBeGreaterThanOrEqual(1);
  });
});

describe('FULL-SENTENCES with a RoBERTa tokenizer', () => {
  it('lays out <s> ... </s> </s> ... </s> <pad>... and packs every token once', async () => {
    const roberta = await open({ tokenizerKind: 'roberta-bpe', vocabSize: 600 });
    expect(roberta.special).toEqual({ cls: 0, pad: 1, sep: 2, unk: 3, mask: 4 });
    const { epoch } = roberta;
    expect(epoch.tokens[0]).toBe(0);
    expect(epoch.tokens).toContain(1);
    const { crossings } = checkEpochPacking(roberta, await sentencesOf(roberta, 'train', 'bundled', 20));
    expect(crossings).toBeGreaterThan(5);
    let predicted = 0;
    for (const label of epoch.labels) if (label !== IGNORE_INDEX) predicted++;
    let real = 0;
    for (const bit of epoch.attentionMask!) real += bit;
    expect(predicted / real).toBeGreaterThan(0.13);
    expect(predicted / real).toBeLessThan(0.16);
  });
});
