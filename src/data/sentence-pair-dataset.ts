import { IGNORE_INDEX, type Split, type TrainBatch } from './batch';
import { maskTokens, type MaskedLmVocabulary, type MaskingOptions } from './masking';
import { RandomStream, SplitKey, StreamId } from './rng';
import { EpochShuffle } from './sample-order';
import type { IndexColumn } from './sample-index-cache';
import type { SentenceSource } from './sentence-source';

/**
 * The sentence-pair task: 'nsp' (BERT): B is the true continuation or a random
 * document's text; 'sop' (ALBERT): A and B in order or swapped; 'none'
 * (ELECTRA): B is always the true continuation and there is no pair label.
 */
export type PairTask = 'nsp' | 'sop' | 'none';

export interface SentencePairOptions extends MaskingOptions {
  seqLen: number;
  seed: number;
  pairTask: PairTask;
}

/** The per-token and per-sequence arrays of a sentence-pair batch. */
interface SentencePairArrays {
  tokens: Int32Array;
  labels: Int32Array;
  segments: Int32Array;
  attentionMask: Uint8Array;
  /** null for pair task 'none'. */
  pairLabels: Int32Array | null;
}

/** Chunk c is sentences [firstSentence[c], endSentence[c]) of document[c]: the raw material of one sample. */
export interface PairChunks {
  firstSentence: Uint32Array;
  endSentence: Uint32Array;
  document: Uint32Array;
}

/** The same chunks read an element at a time (from the cached index file, see openOrBuildSampleIndexColumns). */
export type PairChunkColumns = Record<keyof PairChunks, IndexColumn>;

/** A token range [start, end) of the sentence source. */
interface Span {
  start: number;
  end: number;
}

/**
 * Sentence-pair samples ([CLS] A [SEP] B [SEP], or <s> A </s> B </s> with a
 * RoBERTa-style vocabulary) in the manner of Google's create_pretraining_data.py.
 *
 * The split's documents are cut once into "chunks": runs of consecutive
 * sentences that together reach the pair's token budget (seqLen - 3). One
 * epoch visits every chunk once, in a shuffled order. For global sample i
 * everything random — where A ends, whether B is replaced/swapped, which
 * random text B gets, truncation and masking — is keyed by (seed, split, i),
 * so revisiting a chunk in a later epoch gives a fresh pair and mask
 * (dynamic masking), and any rank can build any sample on its own.
 */
export class SentencePairDataset {
  readonly samplesPerEpoch: number;
  private readonly chunks: PairChunks | PairChunkColumns;
  /** Documents with at least one token: candidates for NSP's random B. */
  private readonly randomSourceDocuments: Uint32Array;
  private readonly order: EpochShuffle;
  private readonly pairBudget: number;
  private readonly splitKey: number;

  constructor(
    private readonly store: SentenceSource,
    documents: readonly number[],
    private readonly vocabulary: MaskedLmVocabulary,
    private readonly options: SentencePairOptions,
    private readonly split: Split,
    /** cutPairChunks(store, documents, options.seqLen), perhaps read from its cache file as it is needed. */
    chunks: PairChunks | PairChunkColumns = cutPairChunks(store, documents, options.seqLen),
  ) {
    if (!Number.isInteger(options.seqLen) || options.seqLen < 5) {
      throw new RangeError(`sentence-pair seqLen must be at least 5 ([CLS] A [SEP] B [SEP]), got ${options.seqLen}`);
    }
    if (!(options.maskProb > 0 && options.maskProb < 1)) {
      throw new RangeError(`maskProb must be in (0, 1), got ${options.maskProb}`);
    }
    this.pairBudget = options.seqLen - 3;
    this.chunks = chunks;
    this.randomSourceDocuments = Uint32Array.from(
      documents.filter((d) => store.documentTokenEnd(d) > store.documentTokenStart(d)),
    );
    this.samplesPerEpoch = chunks.document.length;
    if (this.samplesPerEpoch === 0) {
      throw new RangeError('no document in this split has the two tokens a sentence pair needs');
    }
    this.splitKey = SplitKey[split];
    this.order = new EpochShuffle(this.samplesPerEpoch, options.seed, StreamId.sentencePairOrder, this.splitKey);
  }

  batch(firstSample: number, count: number): TrainBatch {
    const { seqLen } = this.options;
    const arrays: SentencePairArrays = {
      tokens: new Int32Array(count * seqLen).fill(this.vocabulary.special.pad),
      labels: new Int32Array(count * seqLen).fill(IGNORE_INDEX),
      segments: new Int32Array(count * seqLen),
      attentionMask: new Uint8Array(count * seqLen),
      pairLabels: this.options.pairTask === 'none' ? null : new Int32Array(count),
    };
    for (let row = 0; row < count; row++) this.writeSample(arrays, row, firstSample + row);
    return { batchSize: count, seqLen, ...arrays, firstSample, split: this.split };
  }

  private writeSample(arrays: SentencePairArrays, row: number, sampleIndex: number): void {
    const { seed, seqLen } = this.options;
    const chunk = this.order.itemForSample(sampleIndex);
    const pairing = new RandomStream(seed, StreamId.sentencePairing, this.splitKey, sampleIndex);
    const { segmentA, segmentB, isNotNext } = this.choosePair(chunk, pairing);
    this.truncatePair(segmentA, segmentB, pairing);

    const { tokens, labels, segments, attentionMask, pairLabels } = arrays;
    const { cls, sep } = this.vocabulary.special;
    const rowStart = row * seqLen;
    const lengthA = segmentA.end - segmentA.start;
    const lengthB = segmentB.end - segmentB.start;
    // [CLS] A [SEP] B [SEP] [PAD]...
    tokens[rowStart] = cls;
    tokens.set(this.store.readTokens(segmentA.start, segmentA.end), rowStart + 1);
    tokens[rowStart + 1 + lengthA] = sep;
    tokens.set(this.store.readTokens(segmentB.start, segmentB.end), rowStart + 2 + lengthA);
    const realLength = lengthA + lengthB + 3;
    tokens[rowStart + realLength - 1] = sep;
    segments.fill(1, rowStart + lengthA + 2, rowStart + realLength);
    attentionMask.fill(1, rowStart, rowStart + realLength);
    if (pairLabels) pairLabels[row] = isNotNext ? 1 : 0;

    // Candidates: A's and B's positions, in order (the draw order depends on it).
    const candidates: number[] = [];
    for (let i = 1; i <= lengthA; i++) candidates.push(rowStart + i);
    for (let i = lengthA + 2; i <= lengthA + 1 + lengthB; i++) candidates.push(rowStart + i);
    const masking = new RandomStream(seed, StreamId.sentencePairMasking, this.splitKey, sampleIndex);
    maskTokens(tokens, labels, candidates, this.vocabulary, this.options, masking);
  }

  private choosePair(chunk: number, random: RandomStream): { segmentA: Span; segmentB: Span; isNotNext: boolean } {
    const { store } = this;
    const { firstSentence, endSentence, document } = this.chunkAt(chunk);
    const chunkStart = store.sentenceStarts[firstSentence];
    const chunkEnd = store.sentenceStarts[endSentence];
    const sentenceCount = endSentence - firstSentence;
    // A = the first 1..k-1 sentences; a one-sentence chunk is cut inside the sentence instead.
    const cut =
      sentenceCount >= 2
        ? store.sentenceStarts[firstSentence + 1 + random.nextInt(sentenceCount - 1)]
        : chunkStart + 1 + random.nextInt(chunkEnd - chunkStart - 1);
    const segmentA: Span = { start: chunkStart, end: cut };
    const actualNext: Span = { start: cut, end: chunkEnd };
    // No pair task: nothing to flip, so no draw either.
    if (this.options.pairTask === 'none') return { segmentA, segmentB: actualNext, isNotNext: false };
    const flip = random.nextFloat() < 0.5;

    if (this.options.pairTask === 'sop') {
      // SOP negatives are the same two segments in the wrong order.
      return flip
        ? { segmentA: actualNext, segmentB: segmentA, isNotNext: true }
        : { segmentA, segmentB: actualNext, isNotNext: false };
    }
    if (!flip) return { segmentA, segmentB: actualNext, isNotNext: false };
    const budgetForB = Math.max(1, this.pairBudget - (segmentA.end - segmentA.start));
    return {
      segmentA,
      segmentB: this.randomContinuation(document, budgetForB, random),
      isNotNext: true,
    };
  }

  private chunkAt(chunk: number): { firstSentence: number; endSentence: number; document: number } {
    const { firstSentence, endSentence, document } = this.chunks;
    if (firstSentence instanceof Uint32Array)
      return {
        firstSentence: firstSentence[chunk],
        endSentence: (endSentence as Uint32Array)[chunk],
        document: (document as Uint32Array)[chunk],
      };
    const columns = this.chunks as PairChunkColumns;
    return {
      firstSentence: columns.firstSentence.get(chunk),
      endSentence: columns.endSentence.get(chunk),
      document: columns.document.get(chunk),
    };
  }

  /**
   * B for an NSP negative: consecutive sentences of another document of the
   * split, from a random sentence on, up to the remaining budget. As in
   * Google's code the same document is used only when the split has no other.
   */
  private randomContinuation(currentDocument: number, budget: number, random: RandomStream): Span {
    const { store } = this;
    const candidates = this.randomSourceDocuments;
    let document = candidates[random.nextInt(candidates.length)];
    if (document === currentDocument && candidates.length > 1) {
      // Redraw among the others, uniformly, with a single draw.
      const position = candidates.indexOf(currentDocument);
      const other = random.nextInt(candidates.length - 1);
      document = candidates[other >= position ? other + 1 : other];
    }
    const firstSentence = store.documentSentenceStarts[document];
    const endSentence = store.documentSentenceStarts[document + 1];
    const startSentence = firstSentence + random.nextInt(endSentence - firstSentence);
    const start = store.sentenceStarts[startSentence];
    let sentence = startSentence;
    while (sentence < endSentence && store.sentenceStarts[sentence] - start < budget) sentence++;
    return { start, end: store.sentenceStarts[sentence] };
  }

  /** Google's truncate_seq_pair: shorten the longer segment, from a random end, until the pair fits. */
  private truncatePair(segmentA: Span, segmentB: Span, random: RandomStream): void {
    while (segmentA.end - segmentA.start + (segmentB.end - segmentB.start) > this.pairBudget) {
      const longer = segmentA.end - segmentA.start > segmentB.end - segmentB.start ? segmentA : segmentB;
      if (random.nextFloat() < 0.5) longer.start++;
      else longer.end--;
    }
  }
}

/**
 * Google's chunking of a split into the raw material of its samples: add sentences until the pair's
 * budget (seqLen − 3) is reached or the document ends. A chunk needs two tokens to yield two
 * non-empty segments. The index a sentence-pair split builds once (cached beside preprocessed data).
 */
export function cutPairChunks(store: SentenceSource, documents: readonly number[], seqLen: number): PairChunks {
  const pairBudget = seqLen - 3;
  // Two passes over the same cuts, the first counting them, so the arrays are made once at their size.
  const cut = (visit: (document: number, firstSentence: number, endSentence: number) => void) => {
    for (const document of documents) {
      const documentEnd = store.documentSentenceStarts[document + 1];
      let firstSentence = store.documentSentenceStarts[document];
      for (let sentence = firstSentence; sentence < documentEnd; sentence++) {
        const chunkTokens = store.sentenceStarts[sentence + 1] - store.sentenceStarts[firstSentence];
        if (chunkTokens >= pairBudget || sentence === documentEnd - 1) {
          if (chunkTokens >= 2) visit(document, firstSentence, sentence + 1);
          firstSentence = sentence + 1;
        }
      }
    }
  };
  let count = 0;
  cut(() => count++);
  const chunks = {
    firstSentence: new Uint32Array(count),
    endSentence: new Uint32Array(count),
    document: new Uint32Array(count),
  };
  let c = 0;
  cut((document, firstSentence, endSentence) => {
    chunks.firstSentence[c] = firstSentence;
    chunks.endSentence[c] = endSentence;
    chunks.document[c++] = document;
  });
  return chunks;
}
