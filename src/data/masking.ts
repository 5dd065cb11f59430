import type { RandomStream } from './rng';
import type { MaskedLmSpecialIds, TextTokenizer } from './tokenizer';

/** What masking needs to know about the tokenizer. */
export interface MaskedLmVocabulary {
  /** Ids are drawn from [0, size) when a selected token is replaced by a random one. */
  size: number;
  special: MaskedLmSpecialIds;
  isSpecialId(id: number): boolean;
  /**
   * Whole-word masking only: entry id is 1 when that token continues the word
   * of the token before it (TextTokenizer.wordContinuationTable).
   */
  wordContinuation?: Uint8Array;
}

/** A tokenizer's masked-LM vocabulary; the continuation table (one idToToken per entry) only for whole-word masking. */
export function maskedLmVocabulary(tokenizer: TextTokenizer, wholeWordMask: boolean): MaskedLmVocabulary {
  return {
    size: tokenizer.vocabSize,
    special: tokenizer.maskedLmSpecialIds(),
    isSpecialId: (id) => tokenizer.isSpecialId(id),
    ...(wholeWordMask ? { wordContinuation: tokenizer.wordContinuationTable() } : {}),
  };
}

export interface MaskingOptions {
  /** Probability that a real, non-special token is selected for prediction (BERT: 0.15). */
  maskProb: number;
  /** Optional cap on predicted positions per sequence (Google's max_predictions_per_seq). */
  maxPredictionsPerSeq?: number;
  /** Select whole words (all their sub-tokens together) instead of single tokens; see maskWholeWords. */
  wholeWordMask?: boolean;
}

/**
 * BERT's masking rule, applied in place to one sequence: selects each
 * candidate position holding a non-special token with probability maskProb
 * (at least one per sequence, at most maxPredictionsPerSeq), writes the
 * original id to `labels` there, then replaces 80% of the selected tokens by
 * the mask token, 10% by a random non-special id, and keeps 10%.
 *
 * The draws, in order: one float per eligible candidate (in the order given);
 * one integer when none was selected; then per selected position one float
 * for the action and, for a random replacement, integers until a non-special
 * id comes up. The sentence-pair path depends on this order bit for bit.
 */
export function maskTokens(
  tokens: Int32Array,
  labels: Int32Array,
  candidates: readonly number[],
  vocabulary: MaskedLmVocabulary,
  { maskProb, maxPredictionsPerSeq, wholeWordMask }: MaskingOptions,
  random: RandomStream,
): void {
  if (wholeWordMask) {
    maskWholeWords(tokens, labels, candidates, vocabulary, { maskProb, maxPredictionsPerSeq }, random);
    return;
  }
  let selected: Array<{ position: number; draw: number }> = [];
  const eligible = candidates.filter((position) => !vocabulary.isSpecialId(tokens[position]));
  for (const position of eligible) {
    const draw = random.nextFloat();
    if (draw < maskProb) selected.push({ position, draw });
  }
  if (selected.length === 0 && eligible.length > 0) {
    selected.push({ position: eligible[random.nextInt(eligible.length)], draw: 0 });
  }
  if (maxPredictionsPerSeq !== undefined && selected.length > maxPredictionsPerSeq) {
    // The smallest draws form a uniformly random subset of the selected ones.
    selected = selected
      .sort((a, b) => a.draw - b.draw)
      .slice(0, maxPredictionsPerSeq)
      .sort((a, b) => a.position - b.position);
  }

  for (const { position } of selected) replaceSelected(tokens, labels, position, vocabulary, random);
}

/**
 * Whole-word masking (BERT's WWM release): the candidates' non-special
 * tokens are grouped into words, a word being a token that does not continue
 * a word plus the continuation tokens right after it (vocabulary.
 * wordContinuation); a special token or a gap in the candidates always ends a
 * word. Each word is selected with probability maskProb, so every token is
 * still selected with that probability. At least one word is selected. The cap
 * counts tokens and is filled by whole words, the smallest draws first, a word
 * that would overrun it being skipped (as Google's create_pretraining_data.py
 * does); only when no selected word fits at all is the first one cut to the
 * cap, since the engine's prediction buffer holds no more.
 *
 * The 80/10/10 replacement is then decided per token of the selected words,
 * as Google's code does: WWM changed which positions are predicted, not how
 * each one is replaced.
 *
 * The draws, in order: one float per word; one integer when none was
 * selected; then per selected position one float for the action and, for a
 * random replacement, integers until a non-special id comes up.
 */
function maskWholeWords(
  tokens: Int32Array,
  labels: Int32Array,
  candidates: readonly number[],
  vocabulary: MaskedLmVocabulary,
  { maskProb, maxPredictionsPerSeq }: MaskingOptions,
  random: RandomStream,
): void {
  const continuation = vocabulary.wordContinuation;
  if (!continuation) throw new Error('whole-word masking needs vocabulary.wordContinuation');
  // words[w] = positions of word w, in order.
  const words: number[][] = [];
  let previous = -2;
  for (const position of candidates) {
    const id = tokens[position];
    if (vocabulary.isSpecialId(id)) continue;
    const continues = position === previous + 1 && continuation[id] === 1;
    if (continues) words[words.length - 1].push(position);
    else words.push([position]);
    previous = position;
  }

  let selected: Array<{ word: number[]; draw: number }> = [];
  for (const word of words) {
    const draw = random.nextFloat();
    if (draw < maskProb) selected.push({ word, draw });
  }
  if (selected.length === 0 && words.length > 0) {
    selected.push({ word: words[random.nextInt(words.length)], draw: 0 });
  }
  let count = 0;
  for (const { word } of selected) count += word.length;
  if (maxPredictionsPerSeq !== undefined && count > maxPredictionsPerSeq) {
    const byDraw = [...selected].sort((a, b) => a.draw - b.draw);
    const kept: Array<{ word: number[]; draw: number }> = [];
    count = 0;
    for (const entry of byDraw) {
      if (count + entry.word.length > maxPredictionsPerSeq) continue;
      kept.push(entry);
      count += entry.word.length;
    }
    if (kept.length === 0) kept.push({ word: byDraw[0].word.slice(0, maxPredictionsPerSeq), draw: 0 });
    selected = kept.sort((a, b) => a.word[0] - b.word[0]);
  }

  for (const { word } of selected) {
    for (const position of word) replaceSelected(tokens, labels, position, vocabulary, random);
  }
}

/** Records the original id as the label, then: 80% the mask token, 10% a random non-special id, 10% kept. */
function replaceSelected(
  tokens: Int32Array,
  labels: Int32Array,
  position: number,
  vocabulary: MaskedLmVocabulary,
  random: RandomStream,
): void {
  labels[position] = tokens[position];
  const action = random.nextFloat();
  if (action < 0.8) {
    tokens[position] = vocabulary.special.mask;
  } else if (action < 0.9) {
    tokens[position] = randomRegularToken(vocabulary, random);
  }
}

function randomRegularToken(vocabulary: MaskedLmVocabulary, random: RandomStream): number {
  for (;;) {
    const id = random.nextInt(vocabulary.size);
    if (!vocabulary.isSpecialId(id)) return id;
  }
}
