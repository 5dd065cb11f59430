// Sequences for text and token classification: layout, truncation, first-sub-word labels.
import { describe, expect, it } from 'vitest';
import { IGNORE_INDEX } from '../../src/data/batch';
import { textClassificationFeatures, tokenClassificationFeatures } from '../../src/tasks/features';
import { truncateLongestFirst, type OffsetTokenizer, type PairLayout } from '../../src/tasks/layout';

const BERT: PairLayout = { cls: 2, sep: 3, pad: 0, doubleSeparator: false };
const ROBERTA: PairLayout = { cls: 0, sep: 2, pad: 1, doubleSeparator: true };

/** Words cut into pieces of at most 3 characters; id = 10 + the piece's length (enough to check layouts). */
const pieceTokenizer: OffsetTokenizer = {
  async encodeWithOffsets(text) {
    const ids: number[] = [];
    const offsets: Array<[number, number]> = [];
    for (const match of text.matchAll(/\S+/g)) {
      for (let i = 0; i < match[0].length; i += 3) {
        const start = match.index + i;
        const end = Math.min(start + 3, match.index + match[0].length);
        ids.push(10 + end - start);
        offsets.push([start, end]);
      }
    }
    return { ids, offsets };
  },
};

describe('text classification sequences', () => {
  it('lays out single texts and pairs for BERT and RoBERTa', async () => {
    const [single, pair] = await textClassificationFeatures(
      [
        { textA: 'ab cdef', label: '1', where: 'x:1' }, // ab | cde f → 12 13 11
        { textA: 'ab', textB: 'c', label: '0', where: 'x:2' },
      ],
      pieceTokenizer,
      BERT,
      8,
    );
    expect(Array.from(single.tokens)).toEqual([2, 12, 13, 11, 3, 0, 0, 0]);
    expect(Array.from(single.attentionMask)).toEqual([1, 1, 1, 1, 1, 0, 0, 0]);
    expect(Array.from(pair.tokens)).toEqual([2, 12, 3, 11, 3, 0, 0, 0]);
    expect(Array.from(pair.segments)).toEqual([0, 0, 0, 1, 1, 0, 0, 0]);
    const [roberta] = await textClassificationFeatures(
      [{ textA: 'ab', textB: 'c', label: '0', where: 'x:2' }],
      pieceTokenizer,
      ROBERTA,
      8,
    );
    expect(Array.from(roberta.tokens)).toEqual([0, 12, 2, 2, 11, 2, 1, 1]);
    expect(roberta.segments.every((s) => s === 0)).toBe(true);
  });

  it('cuts a pair from the longer text (b on ties) to fit seq_len', async () => {
    expect(truncateLongestFirst([1, 2, 3, 4, 5], [6, 7], 4)).toEqual([
      [1, 2],
      [6, 7],
    ]);
    expect(truncateLongestFirst([1, 2], [3, 4], 3)).toEqual([[1, 2], [3]]);
    expect(truncateLongestFirst([1, 2, 3], null, 2)).toEqual([[1, 2], null]);
    const [cut] = await textClassificationFeatures(
      [{ textA: 'aaaaaaaaaaaa', textB: 'bb', label: '0', where: 'x:1' }], // 4 pieces + 1
      pieceTokenizer,
      BERT,
      6,
    );
    expect(Array.from(cut.tokens)).toEqual([2, 13, 13, 3, 12, 3]);
    expect(cut.truncated).toBe(2);
  });
});

describe('token classification sequences', () => {
  const tags = new Map([
    ['O', 0],
    ['B-PER', 1],
    ['I-PER', 2],
  ]);

  it("puts each word's label on its first sub-word and ignores the rest", async () => {
    const [f] = await tokenClassificationFeatures(
      [{ words: ['Johnathan', 'is', 'here'], labels: ['B-PER', 'O', 'O'], where: 'x:1' }],
      pieceTokenizer,
      BERT,
      10,
      tags,
    );
    // [CLS] Joh nat han is her e [SEP] pad pad
    expect(Array.from(f.tokens)).toEqual([2, 13, 13, 13, 12, 13, 11, 3, 0, 0]);
    const I = IGNORE_INDEX;
    expect(Array.from(f.labels)).toEqual([I, 1, I, I, 0, 0, I, I, I, I]);
    expect(Array.from(f.wordAt)).toEqual([-1, 0, -1, -1, 1, 2, -1, -1, -1, -1]);
    expect(f.droppedWords).toBe(0);
  });

  it('counts the words that do not fit, and refuses a label outside the list', async () => {
    const [f] = await tokenClassificationFeatures(
      [{ words: ['Johnathan', 'is', 'here'], labels: ['B-PER', 'O', 'O'], where: 'x:1' }],
      pieceTokenizer,
      BERT,
      6, // 4 tokens: Joh nat han is
      tags,
    );
    expect(Array.from(f.wordAt)).toEqual([-1, 0, -1, -1, 1, -1]);
    expect(f.droppedWords).toBe(1);
    await expect(
      tokenClassificationFeatures([{ words: ['x'], labels: ['B-LOC'], where: 'f:3' }], pieceTokenizer, BERT, 6, tags),
    ).rejects.toThrow("f:3: label 'B-LOC' is not in the label list");
  });
});
