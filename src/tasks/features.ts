// Sequences for text and token classification, from the readers' examples.
// - Text classification: `[CLS] a [SEP] (b [SEP])`, the pair cut longest-first to fit seq_len,
//   one label (a class id, or a value for regression) per sequence.
// - Token classification: a sentence's words, each tokenized; the label of a word sits on its
//   first sub-word, every other position is ignored (-100), as BertForTokenClassification trains.
import { IGNORE_INDEX } from '../data/batch';
import { named } from '../text/quoted';
import { layOut, specialTokenCount, truncateLongestFirst, type OffsetTokenizer, type PairLayout } from './layout';
import type { TaggedSentence } from './readers/token-classification';
import type { TextClassificationExample } from './readers/text-classification';

export interface SequenceFeature {
  tokens: Int32Array;
  segments: Int32Array;
  attentionMask: Int32Array;
}

export interface TextClassificationFeature extends SequenceFeature {
  /** Tokens cut from the pair to fit seq_len (0 when it fit). */
  truncated: number;
}

export async function textClassificationFeatures(
  examples: readonly TextClassificationExample[],
  tokenizer: OffsetTokenizer,
  layout: PairLayout,
  seqLen: number,
): Promise<TextClassificationFeature[]> {
  const features: TextClassificationFeature[] = [];
  for (const e of examples) {
    const a = (await tokenizer.encodeWithOffsets(e.textA)).ids;
    const b = e.textB === undefined ? null : (await tokenizer.encodeWithOffsets(e.textB)).ids;
    const budget = seqLen - specialTokenCount(layout, b !== null);
    const [keptA, keptB] = truncateLongestFirst(a, b, budget);
    const { tokens, segments, attentionMask } = layOut(keptA, keptB, layout, seqLen);
    features.push({
      tokens,
      segments,
      attentionMask,
      truncated: a.length + (b?.length ?? 0) - keptA.length - (keptB?.length ?? 0),
    });
  }
  return features;
}

export interface TokenClassificationFeature extends SequenceFeature {
  /** The word's label id at its first sub-word, IGNORE_INDEX elsewhere. */
  labels: Int32Array;
  /** The word index at each word's first sub-word, -1 elsewhere: maps predictions back to words. */
  wordAt: Int32Array;
  /** Words that did not fit seq_len (predicted as the first label, usually O). */
  droppedWords: number;
  /** Words whose tag is not in the label list (with `unknown: 'ignore'`): no loss, always a miss. */
  unknownTags: number;
}

/**
 * `labelIds` maps each tag to its class id. Words are joined by single spaces and tokenized
 * once; a token belongs to the word its first character falls in.
 */
export async function tokenClassificationFeatures(
  sentences: readonly TaggedSentence[],
  tokenizer: OffsetTokenizer,
  layout: PairLayout,
  seqLen: number,
  labelIds: ReadonlyMap<string, number>,
  /** A tag outside the list: 'error' (training data), or 'ignore' (evaluation: no loss there). */
  unknown: 'error' | 'ignore' = 'error',
): Promise<TokenClassificationFeature[]> {
  const features: TokenClassificationFeature[] = [];
  for (const sentence of sentences) {
    const wordStarts: number[] = [];
    let text = '';
    for (const word of sentence.words) {
      if (text !== '') text += ' ';
      wordStarts.push(text.length);
      text += word;
    }
    const { ids, offsets } = await tokenizer.encodeWithOffsets(text);
    const kept = Math.min(ids.length, seqLen - specialTokenCount(layout, false));
    const { tokens, segments, attentionMask, aStart } = layOut(ids.slice(0, kept), null, layout, seqLen);
    const labels = new Int32Array(seqLen).fill(IGNORE_INDEX);
    const wordAt = new Int32Array(seqLen).fill(-1);
    let word = -1;
    let labelledWords = 0,
      unknownTags = 0;
    for (let t = 0; t < kept; t++) {
      const [start, end] = offsets[t];
      if (end <= start) continue; // a token that covers no character
      let w = word;
      while (w + 1 < wordStarts.length && wordStarts[w + 1] <= start) w++;
      if (w === word) continue; // a later sub-word of the same word
      word = w;
      const tag = sentence.labels[w];
      const id = labelIds.get(tag);
      if (id === undefined && unknown === 'error')
        throw new RangeError(`${sentence.where}: label ${named(tag)} is not in the label list`);
      if (id === undefined) unknownTags++;
      labels[aStart + t] = id ?? IGNORE_INDEX;
      wordAt[aStart + t] = w;
      labelledWords++;
    }
    features.push({
      tokens,
      segments,
      attentionMask,
      labels,
      wordAt,
      droppedWords: sentence.words.length - labelledWords,
      unknownTags,
    });
  }
  return features;
}
