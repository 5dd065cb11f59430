import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../../src/config/load';
import { IGNORE_INDEX, type TrainBatch } from '../../src/data/batch';
import { openDataset, type DatasetOptions } from '../../src/data/dataset';
import type { TextTokenizer } from '../../src/data/tokenizer';

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-wwm-'));
afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

const MASK_PROB = 0.15;
const base: DatasetOptions = {
  objective: 'masked-lm',
  packing: 'sentence-pairs',
  pairTask: 'nsp',
  tokenizerKind: 'wordpiece',
  corpus: 'bundled',
  cacheDir,
  // A small vocabulary, so that many words are cut into "##" pieces.
  vocabSize: 400,
  seqLen: 64,
  seed: 7,
  heldoutFraction: 0.1,
  maskProb: MASK_PROB,
  maxDocuments: 30,
  wholeWordMask: true,
};

interface Position {
  original: number;
  selected: boolean;
  /** Replaced by the mask token. */
  masked: boolean;
}

/** Each row's real positions: the original id (the label where one was set), whether selected, whether [MASK]ed. */
function rowsOf(batch: TrainBatch, maskId: number): Position[][] {
  const rows: Position[][] = [];
  for (let row = 0; row < batch.batchSize; row++) {
    const positions: Position[] = [];
    for (let i = row * batch.seqLen; i < (row + 1) * batch.seqLen && batch.attentionMask![i] === 1; i++) {
      const selected = batch.labels[i] !== IGNORE_INDEX;
      positions.push({
        original: selected ? batch.labels[i] : batch.tokens[i],
        selected,
        masked: selected && batch.tokens[i] === maskId,
      });
    }
    rows.push(positions);
  }
  return rows;
}

/** The row's words as runs of positions (the rule under test, restated from the token strings). */
function wordsOf(row: Position[], tokenizer: TextTokenizer): number[][] {
  const words: number[][] = [];
  row.forEach(({ original }, i) => {
    if (tokenizer.isSpecialId(original)) return;
    const token = tokenizer.idToToken(original) ?? '';
    const continues =
      i > 0 &&
      !tokenizer.isSpecialId(row[i - 1].original) &&
      (tokenizer.kind === 'wordpiece' ? token.startsWith('##') : !token.startsWith('\u0120'));
    if (continues) words[words.length - 1].push(i);
    else words.push([i]);
  });
  return words;
}

async function epochOf(overrides: Partial<DatasetOptions>) {
  const { dataset, tokenizer } = await openDataset({ ...base, ...overrides });
  const batch = dataset.batch('train', 0, Math.min(400, dataset.samplesPerEpoch('train')));
  return { batch, tokenizer, rows: rowsOf(batch, tokenizer.maskedLmSpecialIds().mask) };
}

const cases: Array<[string, Partial<DatasetOptions>]> = [
  ['WordPiece sentence pairs', {}],
  ['WordPiece full sentences', { packing: 'full-sentences', pairTask: undefined }],
  ['RoBERTa BPE full sentences', { packing: 'full-sentences', pairTask: undefined, tokenizerKind: 'roberta-bpe' }],
];

describe.each(cases)('whole-word masking, %s', (_name, overrides) => {
  it('selects every sub-token of a selected word and no word in part; ~mask_prob of tokens; per-token 80/10/10', async () => {
    const { rows, tokenizer } = await epochOf(overrides);
    let eligible = 0;
    let selected = 0;
    let masked = 0;
    let multiPieceWordsSelected = 0;
    let wordsMixingActions = 0;
    for (const row of rows) {
      for (const word of wordsOf(row, tokenizer)) {
        const picks = word.map((i) => row[i].selected);
        // All or nothing, for every word of every row.
        expect(new Set(picks).size, `word at positions ${word.join(',')}`).toBe(1);
        eligible += word.length;
        if (!picks[0]) continue;
        selected += word.length;
        const maskedHere = word.filter((i) => row[i].masked).length;
        masked += maskedHere;
        if (word.length > 1) multiPieceWordsSelected++;
        if (maskedHere > 0 && maskedHere < word.length) wordsMixingActions++;
      }
    }
    // The check above would pass vacuously without words of several pieces.
    expect(multiPieceWordsSelected).toBeGreaterThan(50);
    // Each word is drawn with mask_prob, so each token is too (plus the at-least-one rule's few extra).
    expect(selected / eligible).toBeGreaterThan(MASK_PROB - 0.02);
    expect(selected / eligible).toBeLessThan(MASK_PROB + 0.03);
    // 80% of the selected tokens become the mask token, decided per token: some words mix actions.
    expect(masked / selected).toBeGreaterThan(0.75);
    expect(masked / selected).toBeLessThan(0.85);
    expect(wordsMixingActions).toBeGreaterThan(0);
  }, 120_000);
});

describe('whole-word masking', () => {
  it('is deterministic and differs from token-level masking only in which positions are selected', async () => {
    const first = await epochOf({});
    const again = await epochOf({});
    expect(Buffer.from(again.batch.tokens.buffer)).toEqual(Buffer.from(first.batch.tokens.buffer));
    expect(Buffer.from(again.batch.labels.buffer)).toEqual(Buffer.from(first.batch.labels.buffer));

    const tokenLevel = await epochOf({ wholeWordMask: false });
    // Same samples (the pairing streams are untouched), other masks.
    const originals = (rows: Position[][]) => rows.map((row) => row.map((p) => p.original));
    expect(originals(tokenLevel.rows)).toEqual(originals(first.rows));
    expect(Buffer.from(tokenLevel.batch.labels.buffer)).not.toEqual(Buffer.from(first.batch.labels.buffer));
    // Token-level masking does split words, which is what the option is for.
    const splitWords = tokenLevel.rows.reduce(
      (sum, row) =>
        sum + wordsOf(row, tokenLevel.tokenizer).filter((w) => new Set(w.map((i) => row[i].selected)).size > 1).length,
      0,
    );
    expect(splitWords).toBeGreaterThan(0);
  }, 120_000);

  it('fills the per-sequence cap with whole words and never exceeds it', async () => {
    const cap = 4;
    const { rows, tokenizer } = await epochOf({ maxPredictionsPerSeq: cap });
    let rowsAtCap = 0;
    for (const row of rows) {
      const count = row.filter((p) => p.selected).length;
      expect(count).toBeLessThanOrEqual(cap);
      expect(count).toBeGreaterThan(0);
      if (count === cap) rowsAtCap++;
      const splitWords = wordsOf(row, tokenizer).filter(
        (w) => w.length <= cap && new Set(w.map((i) => row[i].selected)).size > 1,
      );
      expect(splitWords).toEqual([]);
    }
    expect(rowsAtCap).toBeGreaterThan(0);
  }, 120_000);

  it('is refused for gpt, which masks nothing', () => {
    const config = () =>
      validateConfig({
        model: { arch: 'gpt', layers: 1, hidden: 32, heads: 4, ffn: 64, vocab_size: 300, seq_len: 16 },
        train: { steps: 1, micro_batch: 2, lr: 0.01 },
        data: { whole_word_mask: true },
      });
    expect(config).toThrow(ConfigError);
    expect(config).toThrow(/data\.whole_word_mask: gpt/);
  });
});
