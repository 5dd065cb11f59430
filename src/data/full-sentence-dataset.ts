import { IGNORE_INDEX, type Split, type TrainBatch } from './batch';
import { maskTokens, type MaskedLmVocabulary, type MaskingOptions } from './masking';
import { RandomStream, SplitKey, StreamId } from './rng';
import { EpochShuffle } from './sample-order';
import type { SentenceSource } from './sentence-source';

export interface FullSentenceOptions extends MaskingOptions {
  seqLen: number;
  seed: number;
}

/** The packed samples: sample s is spans [sampleFirstSpan[s], sampleFirstSpan[s + 1]), one per document it touches. */
export interface FullSentencePacking {
  sampleFirstSpan: Uint32Array;
  /** Span i is the token range [spanStart[i], spanEnd[i]) of the source (past 2^32 in a large .bin). */
  spanStart: Float64Array;
  spanEnd: Float64Array;
}

/**
 * RoBERTa's FULL-SENTENCES inputs (Liu et al. 2019, §4.2): the split's
 * sentences, in document order, are cut once into samples of at most seqLen
 * tokens, [CLS] sentences... [SEP] (<s> ... </s> with a RoBERTa vocabulary).
 * A sample may cross document boundaries, with an extra [SEP] between two
 * documents; a sentence longer than the budget is cut into budget-sized
 * pieces; the rest of the row is padding. Segments are all 0 and there is no
 * pair label.
 *
 * One epoch visits every sample once, in a shuffled order, so every token of
 * the split is seen exactly once per epoch. The mask of global sample i is
 * keyed by (seed, split, i): a fresh mask each time a sequence comes round
 * (dynamic masking), and any rank can build any sample on its own.
 */
export class FullSentenceDataset {
  readonly samplesPerEpoch: number;
  private readonly packing: FullSentencePacking;
  private readonly order: EpochShuffle;
  private readonly splitKey: number;

  constructor(
    private readonly store: SentenceSource,
    documents: readonly number[],
    private readonly vocabulary: MaskedLmVocabulary,
    private readonly options: FullSentenceOptions,
    private readonly split: Split,
    /** packFullSentences(store, documents, options.seqLen - 2), perhaps read back from its cache. */
    packing: FullSentencePacking = packFullSentences(store, documents, options.seqLen - 2),
  ) {
    if (!Number.isInteger(options.seqLen) || options.seqLen < 3) {
      throw new RangeError(`full-sentences seqLen must be at least 3 ([CLS] x [SEP]), got ${options.seqLen}`);
    }
    if (!(options.maskProb > 0 && options.maskProb < 1)) {
      throw new RangeError(`maskProb must be in (0, 1), got ${options.maskProb}`);
    }
    this.packing = packing;
    this.samplesPerEpoch = this.packing.sampleFirstSpan.length - 1;
    if (this.samplesPerEpoch === 0) throw new RangeError('no document in this split has a token to pack');
    this.splitKey = SplitKey[split];
    this.order = new EpochShuffle(this.samplesPerEpoch, options.seed, StreamId.fullSentenceOrder, this.splitKey);
  }

  batch(firstSample: number, count: number): TrainBatch {
    const { seqLen } = this.options;
    const tokens = new Int32Array(count * seqLen).fill(this.vocabulary.special.pad);
    const labels = new Int32Array(count * seqLen).fill(IGNORE_INDEX);
    const attentionMask = new Uint8Array(count * seqLen);
    for (let row = 0; row < count; row++) {
      this.writeSample(tokens, labels, attentionMask, row, firstSample + row);
    }
    return {
      batchSize: count,
      seqLen,
      tokens,
      labels,
      segments: new Int32Array(count * seqLen),
      attentionMask,
      pairLabels: null,
      firstSample,
      split: this.split,
    };
  }

  private writeSample(
    tokens: Int32Array,
    labels: Int32Array,
    attentionMask: Uint8Array,
    row: number,
    sampleIndex: number,
  ): void {
    const { sampleFirstSpan, spanStart, spanEnd } = this.packing;
    const { cls, sep } = this.vocabulary.special;
    const sample = this.order.itemForSample(sampleIndex);
    const rowStart = row * this.options.seqLen;
    // [CLS] doc1 sentences [SEP] doc2 sentences ... [SEP] [PAD]...
    let position = rowStart;
    tokens[position++] = cls;
    for (let span = sampleFirstSpan[sample]; span < sampleFirstSpan[sample + 1]; span++) {
      if (span > sampleFirstSpan[sample]) tokens[position++] = sep;
      tokens.set(this.store.readTokens(spanStart[span], spanEnd[span]), position);
      position += spanEnd[span] - spanStart[span];
    }
    tokens[position++] = sep;
    attentionMask.fill(1, rowStart, position);

    // Every position between the outer cls and sep; masking itself skips the separators (special ids).
    const candidates: number[] = [];
    for (let p = rowStart + 1; p < position - 1; p++) candidates.push(p);
    const masking = new RandomStream(this.options.seed, StreamId.fullSentenceMasking, this.splitKey, sampleIndex);
    maskTokens(tokens, labels, candidates, this.vocabulary, this.options, masking);
  }
}

/**
 * Cuts the documents' sentences, in order, into samples of at most `budget`
 * tokens (separators between documents included). A sentence that does not
 * fit the open sample starts the next one; one longer than the whole budget
 * fills samples of its own, budget-sized pieces, and its remainder stays open
 * for the sentences that follow. The index a full-sentence split builds once
 * (cached beside preprocessed data).
 */
export function packFullSentences(
  store: SentenceSource,
  documents: readonly number[],
  budget: number,
): FullSentencePacking {
  const sampleFirstSpan: number[] = [0];
  const spanStart: number[] = [];
  const spanEnd: number[] = [];
  let used = 0; // tokens of the open sample, separators included
  let lastDocument = -1; // document of the open sample's last span

  const append = (document: number, start: number, end: number): void => {
    if (used > 0 && document === lastDocument) {
      spanEnd[spanEnd.length - 1] = end; // the next sentence of the same document: contiguous in the store
    } else {
      if (used > 0) used++; // the separator between two documents
      spanStart.push(start);
      spanEnd.push(end);
    }
    used += end - start;
    lastDocument = document;
  };
  const close = (): void => {
    if (used === 0) return;
    sampleFirstSpan.push(spanStart.length);
    used = 0;
  };

  for (const document of documents) {
    const endSentence = store.documentSentenceStarts[document + 1];
    for (let sentence = store.documentSentenceStarts[document]; sentence < endSentence; sentence++) {
      let start = store.sentenceStarts[sentence];
      const end = store.sentenceStarts[sentence + 1];
      const separator = used > 0 && document !== lastDocument ? 1 : 0;
      if (used + separator + (end - start) > budget) {
        close();
        for (; end - start > budget; start += budget) {
          append(document, start, start + budget);
          close();
        }
      }
      append(document, start, end);
    }
  }
  close();
  return {
    sampleFirstSpan: Uint32Array.from(sampleFirstSpan),
    spanStart: Float64Array.from(spanStart),
    spanEnd: Float64Array.from(spanEnd),
  };
}
