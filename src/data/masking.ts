import type { RandomStream } from './rng';
import type { MaskedLmSpecialIds } from './tokenizer';

/** What masking needs to know about the tokenizer. */
export interface MaskedLmVocabulary {
  /** Ids are drawn from [0, size) when a selected token is replaced by a random one. */
  size: number;
  special: MaskedLmSpecialIds;
  isSpecialId(id: number): boolean;
}

export interface MaskingOptions {
  /** Probability that a real, non-special token is selected for prediction (BERT: 0.15). */
  maskProb: number;
  /** Optional cap on predicted positions per sequence (Google's max_predictions_per_seq). */
  maxPredictionsPerSeq?: number;
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
  { maskProb, maxPredictionsPerSeq }: MaskingOptions,
  random: RandomStream,
): void {
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

  for (const { position } of selected) {
    labels[position] = tokens[position];
    const action = random.nextFloat();
    if (action < 0.8) {
      tokens[position] = vocabulary.special.mask;
    } else if (action < 0.9) {
      tokens[position] = randomRegularToken(vocabulary, random);
    }
  }
}

function randomRegularToken(vocabulary: MaskedLmVocabulary, random: RandomStream): number {
  for (;;) {
    const id = random.nextInt(vocabulary.size);
    if (!vocabulary.isSpecialId(id)) return id;
  }
}
