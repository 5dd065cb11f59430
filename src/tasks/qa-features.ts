// Question answering inputs and answers, as BERT's run_squad lays them out: each question with
// (a window of) its context as one sequence `[CLS] question [SEP] context [SEP]`, the question cut
// to maxQueryLength tokens, a long context covered by windows whose starts are docStride tokens
// apart; a context token belongs to the window where it has the most context on both sides. A
// window that does not hold the whole answer points both labels at [CLS] (position 0).
import { layOut, specialTokenCount, type OffsetTokenizer, type PairLayout } from './layout';
import type { SquadQuestion } from './readers/squad';

export interface QaWindowOptions {
  seqLen: number;
  /** Question tokens kept (64 in BERT's run_squad). */
  maxQueryLength: number;
  /** Tokens between the starts of consecutive context windows (128 in BERT's run_squad). */
  docStride: number;
}

/** One sequence: a question with one window of its context. */
export interface QaFeature {
  /** Index of the question in the list given to qaFeatures. */
  question: number;
  tokens: Int32Array;
  segments: Int32Array;
  attentionMask: Int32Array;
  /** The first answer's start and end token (inclusive) in this sequence; 0 and 0 when it is not inside. */
  startPosition: number;
  endPosition: number;
  /** For each sequence position: the context's [start, end) characters, or null outside the context. */
  contextSpans: Array<[number, number] | null>;
  /** For each sequence position: whether this window is the one where the token has most context. */
  maxContext: Uint8Array;
}

export async function qaFeatures(
  questions: readonly SquadQuestion[],
  tokenizer: OffsetTokenizer,
  layout: PairLayout,
  options: QaWindowOptions,
): Promise<QaFeature[]> {
  const features: QaFeature[] = [];
  const contexts = new Map<string, { ids: number[]; offsets: Array<[number, number]> }>();
  for (const [index, q] of questions.entries()) {
    const query = (await tokenizer.encodeWithOffsets(q.question)).ids.slice(0, options.maxQueryLength);
    let context = contexts.get(q.context);
    if (!context) contexts.set(q.context, (context = await tokenizer.encodeWithOffsets(q.context)));
    const windowLength = options.seqLen - query.length - specialTokenCount(layout, true);
    if (windowLength < 1) {
      throw new RangeError(
        `seq_len ${options.seqLen} leaves no room for the context after a ${query.length}-token question; ` +
          `raise model.seq_len or lower max_query_length`,
      );
    }
    const answer = q.answers[0] ? answerTokens(context.offsets, q.answers[0]) : null;
    const windows = contextWindows(context.ids.length, windowLength, options.docStride);
    for (const [w, window] of windows.entries()) {
      features.push(layoutFeature(index, query, context, window, windows, w, answer, layout, options.seqLen));
    }
  }
  return features;
}

interface Window {
  start: number;
  length: number;
}

/** Windows over n context tokens: starts docStride apart, the last one reaching the end. */
export function contextWindows(n: number, windowLength: number, docStride: number): Window[] {
  const windows: Window[] = [];
  for (let start = 0; ; start += Math.min(windowLength, docStride)) {
    const length = Math.min(n - start, windowLength);
    windows.push({ start, length: Math.max(length, 0) });
    if (start + length >= n) return windows;
  }
}

/**
 * Whether window w is the best for context token t: the score of a window is the smaller of the
 * tokens to t's left and right within it, plus 0.01 · its length (ties go to the longer window).
 */
export function isMaxContext(windows: readonly Window[], w: number, t: number): boolean {
  let best = -1;
  let bestScore = -Infinity;
  windows.forEach((window, i) => {
    const end = window.start + window.length - 1;
    if (t < window.start || t > end) return;
    const score = Math.min(t - window.start, end - t) + 0.01 * window.length;
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  });
  return best === w;
}

/** The first and last context tokens that overlap the answer's characters. */
function answerTokens(offsets: ReadonlyArray<[number, number]>, answer: { text: string; start: number }) {
  const [charStart, charEnd] = [answer.start, answer.start + answer.text.length];
  let first = -1,
    last = -1;
  offsets.forEach(([a, b], t) => {
    const overlaps = b > charStart && a < charEnd && b > a;
    if (!overlaps) return;
    if (first < 0) first = t;
    last = t;
  });
  return first < 0 ? null : { first, last };
}

function layoutFeature(
  question: number,
  query: readonly number[],
  context: { ids: number[]; offsets: Array<[number, number]> },
  window: Window,
  windows: readonly Window[],
  w: number,
  answer: { first: number; last: number } | null,
  layout: PairLayout,
  seqLen: number,
): QaFeature {
  const windowIds = context.ids.slice(window.start, window.start + window.length);
  const { tokens, segments, attentionMask, bStart } = layOut(query, windowIds, layout, seqLen);
  const contextSpans: Array<[number, number] | null> = new Array(seqLen).fill(null);
  const maxContext = new Uint8Array(seqLen);
  for (let i = 0; i < window.length; i++) {
    contextSpans[bStart + i] = context.offsets[window.start + i];
    maxContext[bStart + i] = isMaxContext(windows, w, window.start + i) ? 1 : 0;
  }
  const windowEnd = window.start + window.length - 1;
  const inside = answer !== null && answer.first >= window.start && answer.last <= windowEnd;
  return {
    question,
    tokens,
    segments,
    attentionMask,
    startPosition: inside ? bStart + answer.first - window.start : 0,
    endPosition: inside ? bStart + answer.last - window.start : 0,
    contextSpans,
    maxContext,
  };
}

export interface QaAnswer {
  /** '' for "no answer". */
  text: string;
  /** Characters in the context, [start, end); null for "no answer". */
  span: [number, number] | null;
  /** start + end logit of the chosen span. */
  score: number;
  /** The best "no answer" ([CLS]) score minus the best span score: above the threshold means no answer. */
  noAnswerScore: number;
}

export interface AnswerOptions {
  /** Longest answer, in tokens (30 in BERT's run_squad). */
  maxAnswerLength: number;
  /** Starts and ends considered per window (20 in BERT's run_squad). */
  nBest: number;
  /** SQuAD v2.0: predict "no answer" when noAnswerScore exceeds this; v1.1: leave undefined (always answer). */
  noAnswerThreshold?: number;
}

/**
 * The answer to one question from its windows' start and end logits: the best span (start ≤ end,
 * at most maxAnswerLength tokens, inside the context, starting where this window has most
 * context) over every window, against the best [CLS] score.
 */
export function bestAnswer(
  context: string,
  windows: ReadonlyArray<{ feature: QaFeature; startLogits: ArrayLike<number>; endLogits: ArrayLike<number> }>,
  options: AnswerOptions,
): QaAnswer {
  let best: { score: number; span: [number, number] } | null = null;
  let nullScore = Infinity;
  for (const { feature, startLogits, endLogits } of windows) {
    nullScore = Math.min(nullScore, startLogits[0] + endLogits[0]);
    const starts = topPositions(startLogits, options.nBest);
    const ends = topPositions(endLogits, options.nBest);
    for (const s of starts) {
      const startSpan = feature.contextSpans[s];
      if (!startSpan || !feature.maxContext[s]) continue;
      for (const e of ends) {
        const endSpan = feature.contextSpans[e];
        if (!endSpan || e < s || e - s + 1 > options.maxAnswerLength) continue;
        const score = startLogits[s] + endLogits[e];
        if (!best || score > best.score) best = { score, span: [startSpan[0], endSpan[1]] };
      }
    }
  }
  if (!best) return { text: '', span: null, score: nullScore, noAnswerScore: Infinity };
  const noAnswerScore = nullScore - best.score;
  if (options.noAnswerThreshold !== undefined && noAnswerScore > options.noAnswerThreshold)
    return { text: '', span: null, score: nullScore, noAnswerScore };
  return { text: context.slice(best.span[0], best.span[1]), span: best.span, score: best.score, noAnswerScore };
}

/** Positions of the n largest values, largest first (ties: the earlier position). */
function topPositions(values: ArrayLike<number>, n: number): number[] {
  return Array.from({ length: values.length }, (_, i) => i)
    .sort((a, b) => values[b] - values[a] || a - b)
    .slice(0, n);
}
