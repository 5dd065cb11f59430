// Question answering windows and answers: the layout, the sliding window, max-context ownership,
// answer labels, and the span chosen back from logits; plus the tokenizer's character offsets.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fingerprintDocuments, loadCorpus } from '../../src/data/corpus';
import { loadOrTrainTokenizer } from '../../src/data/tokenizer';
import { bestAnswer, contextWindows, isMaxContext, qaFeatures } from '../../src/tasks/qa-features';
import type { OffsetTokenizer, PairLayout } from '../../src/tasks/layout';
import type { SquadQuestion } from '../../src/tasks/readers/squad';

/** Words as tokens (ids from 10 up, in order of first sight), with their character spans. */
function wordTokenizer(): OffsetTokenizer {
  const vocabulary = new Map<string, number>();
  return {
    async encodeWithOffsets(text) {
      const ids: number[] = [];
      const offsets: Array<[number, number]> = [];
      for (const match of text.matchAll(/\S+/g)) {
        if (!vocabulary.has(match[0])) vocabulary.set(match[0], 10 + vocabulary.size);
        ids.push(vocabulary.get(match[0])!);
        offsets.push([match.index, match.index + match[0].length]);
      }
      return { ids, offsets };
    },
  };
}

const BERT: PairLayout = { cls: 2, sep: 3, pad: 0, doubleSeparator: false };

function question(context: string, answer: string | null, id = 'q'): SquadQuestion {
  const start = answer === null ? -1 : context.indexOf(answer);
  return {
    id,
    question: 'where is it',
    context,
    answers: answer === null ? [] : [{ text: answer, start }],
    isImpossible: answer === null,
    where: 'test',
  };
}

describe('windows', () => {
  it('start docStride tokens apart and the last reaches the end', () => {
    expect(contextWindows(10, 4, 2)).toEqual([
      { start: 0, length: 4 },
      { start: 2, length: 4 },
      { start: 4, length: 4 },
      { start: 6, length: 4 },
    ]);
    expect(contextWindows(300, 100, 128).map((w) => w.start)).toEqual([0, 100, 200]); // stride capped by the length
    expect(contextWindows(3, 100, 128)).toEqual([{ start: 0, length: 3 }]);
  });

  it('give each token to the window where it has most context', () => {
    const windows = contextWindows(10, 4, 2);
    // token 3: window 0 has min(3, 0) = 0 tokens on its short side, window 1 min(1, 2) = 1.
    expect(windows.map((_, w) => isMaxContext(windows, w, 3))).toEqual([false, true, false, false]);
    // token 4: window 1 min(2, 1) = 1, window 2 min(0, 3) = 0.
    expect(windows.map((_, w) => isMaxContext(windows, w, 4))).toEqual([false, true, false, false]);
  });
});

describe('qaFeatures', () => {
  const words = Array.from({ length: 40 }, (_, i) => `w${i}`);
  const context = words.join(' ');

  it('lays out [CLS] question [SEP] window [SEP], labels the window holding the answer, [CLS] elsewhere', async () => {
    // seqLen 16 with a 3-token question leaves 10 context tokens a window; starts 0, 4, 8, ...
    const features = await qaFeatures([question(context, 'w12 w13')], wordTokenizer(), BERT, {
      seqLen: 16,
      maxQueryLength: 64,
      docStride: 4,
    });
    expect(features.map((f) => f.contextSpans.find((s) => s !== null)![0])).toEqual(
      [0, 4, 8, 12, 16, 20, 24, 28, 32].map((w) => context.indexOf(`w${w} `)),
    );
    const f0 = features[0];
    expect(Array.from(f0.tokens.subarray(0, 5))).toEqual([2, 10, 11, 12, 3]); // [CLS] where is it [SEP]
    expect(Array.from(f0.segments)).toEqual([0, 0, 0, 0, 0, ...new Array(10).fill(1), 1]);
    expect(f0.tokens[15]).toBe(3); // the closing [SEP]
    for (const f of features) {
      const holds =
        f.contextSpans.some((s) => s?.[0] === context.indexOf('w12')) &&
        f.contextSpans.some((s) => s?.[1] === context.indexOf('w13') + 3);
      if (holds) {
        const [start, end] = [f.contextSpans[f.startPosition]!, f.contextSpans[f.endPosition]!];
        expect(context.slice(start[0], end[1])).toBe('w12 w13');
      } else expect([f.startPosition, f.endPosition]).toEqual([0, 0]);
    }
    // Every context token is owned by exactly one window.
    const owners = new Map<number, number>();
    for (const f of features)
      f.contextSpans.forEach((span, p) => {
        if (span && f.maxContext[p]) owners.set(span[0], (owners.get(span[0]) ?? 0) + 1);
      });
    expect(owners.size).toBe(40);
    expect([...owners.values()].every((n) => n === 1)).toBe(true);
  });

  it('cuts the question to maxQueryLength; RoBERTa puts two separators between the texts, segments all 0', async () => {
    const [f] = await qaFeatures(
      [question('a b c', 'b')],
      wordTokenizer(),
      { ...BERT, doubleSeparator: true },
      {
        seqLen: 12,
        maxQueryLength: 2,
        docStride: 128,
      },
    );
    expect(Array.from(f.tokens)).toEqual([2, 10, 11, 3, 3, 13, 14, 15, 3, 0, 0, 0]); // 'it' (12) cut
    expect(Array.from(f.attentionMask)).toEqual([1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
    expect(f.segments.every((s) => s === 0)).toBe(true);
    expect([f.startPosition, f.endPosition]).toEqual([6, 6]);
  });
});

describe('bestAnswer', () => {
  it('takes the best valid span over windows, or no answer above the threshold', async () => {
    const context = 'the whale swam far into the deep sea';
    const [feature] = await qaFeatures([question(context, 'deep sea')], wordTokenizer(), BERT, {
      seqLen: 20,
      maxQueryLength: 64,
      docStride: 128,
    });
    const start = new Float64Array(20);
    const end = new Float64Array(20);
    start[feature.startPosition] = 5;
    end[feature.endPosition] = 4;
    end[feature.startPosition - 1] = 6; // an end before the start is never taken
    start[0] = end[0] = 1; // [CLS]: 2 against 9
    const answer = bestAnswer(context, [{ feature, startLogits: start, endLogits: end }], {
      maxAnswerLength: 30,
      nBest: 20,
      noAnswerThreshold: 0,
    });
    expect(answer).toEqual({ text: 'deep sea', span: [28, 36], score: 9, noAnswerScore: -7 });
    start[0] = end[0] = 6; // [CLS] 12 > 9
    const none = bestAnswer(context, [{ feature, startLogits: start, endLogits: end }], {
      maxAnswerLength: 30,
      nBest: 20,
      noAnswerThreshold: 0,
    });
    expect(none).toMatchObject({ text: '', span: null, noAnswerScore: 3 });
    // v1.1 (no threshold) answers anyway; a length cap of 1 token rules "deep sea" out.
    const capped = bestAnswer(context, [{ feature, startLogits: start, endLogits: end }], {
      maxAnswerLength: 1,
      nBest: 20,
    });
    expect(capped.text).not.toBe('deep sea');
  });
});

describe('TextTokenizer.encodeWithOffsets', () => {
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-qa-tokenizer-'));
  afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

  it('gives JavaScript string offsets, also after characters outside the BMP', async () => {
    const corpus = loadCorpus('bundled', { maxDocuments: 5 });
    const tokenizer = await loadOrTrainTokenizer({
      kind: 'wordpiece',
      vocabSize: 300,
      corpus,
      corpusKey: fingerprintDocuments(corpus),
      cacheDir,
    });
    const text = 'Whale 😀 the sea';
    const { ids, offsets } = await tokenizer.encodeWithOffsets(text);
    expect(ids.length).toBe(offsets.length);
    // 'Whale ' is 6 code units, the emoji 2 (one code point): 'the' starts at 9, the text ends at 16.
    expect(offsets[offsets.length - 1][1]).toBe(text.length);
    expect(offsets.some(([start]) => start === 9)).toBe(true);
    expect(offsets.some(([start, end]) => text.slice(start, end) === '😀')).toBe(true);
  });
});
