import { IGNORE_INDEX, type TrainBatch } from './batch';
import { RandomStream, StreamId } from './rng';
import { EpochShuffle } from './sample-order';
import type { TokenStore } from './token-store';
import type { WordPieceSpecialIds } from './tokenizer';

export type PairTask = 'nsp' | 'sop';

export interface BertSampleOptions {
  seqLen: number;
  seed: number;
  /** Probability that a real, non-special token is selected for prediction (BERT: 0.15). */
  maskProb: number;
  /** 'nsp': B is the true continuation or a random document's text; 'sop': A and B in order or swapped. */
  pairTask: PairTask;
  /** Optional cap on predicted positions per sequence (Google's max_predictions_per_seq). */
  maxPredictionsPerSeq?: number;
}

export interface BertVocabulary {
  /** Ids are drawn from [0, size) when a selected token is replaced by a random one. */
  size: number;
  special: WordPieceSpecialIds;
  isSpecialId(id: number): boolean;
}

/** The per-token and per-sequence arrays of a BERT batch, all present. */
interface BertBatchArrays {
  tokens: Int32Array;
  labels: Int32Array;
  segments: Int32Array;
  attentionMask: Uint8Array;
  nspLabels: Int32Array;
}

/** Consecutive sentences [firstSentence, endSentence) of one document: the raw material of one sample. */
interface Chunk {
  document: number;
  firstSentence: number;
  endSentence: number;
}

/** A token range [start, end) of the token store. */
interface Span {
  start: number;
  end: number;
}

/**
 * Sentence-pair samples in the manner of Google's create_pretraining_data.py.
 *
 * The split's documents are cut once into "chunks": runs of consecutive
 * sentences that together reach the pair's token budget (seqLen - 3). One
 * epoch visits every chunk once, in a shuffled order. For global sample i
 * everything random — where A ends, whether B is replaced/swapped, which
 * random text B gets, truncation and masking — is keyed by (seed, split, i),
 * so revisiting a chunk in a later epoch gives a fresh pair and mask
 * (dynamic masking), and any rank can build any sample on its own.
 */
export class BertPairDataset {
  readonly samplesPerEpoch: number;
  private readonly chunkFirstSentence: Uint32Array;
  private readonly chunkEndSentence: Uint32Array;
  private readonly chunkDocument: Uint32Array;
  /** Documents with at least one token: candidates for NSP's random B. */
  private readonly randomSourceDocuments: Uint32Array;
  private readonly order: EpochShuffle;
  private readonly pairBudget: number;

  constructor(
    private readonly store: TokenStore,
    documents: readonly number[],
    private readonly vocabulary: BertVocabulary,
    private readonly options: BertSampleOptions,
    private readonly splitTag: number,
  ) {
    if (!Number.isInteger(options.seqLen) || options.seqLen < 5) {
      throw new RangeError(`BERT seqLen must be at least 5 ([CLS] A [SEP] B [SEP]), got ${options.seqLen}`);
    }
    if (!(options.maskProb > 0 && options.maskProb < 1)) {
      throw new RangeError(`maskProb must be in (0, 1), got ${options.maskProb}`);
    }
    this.pairBudget = options.seqLen - 3;
    const chunks = this.cutChunks(documents);
    this.chunkFirstSentence = Uint32Array.from(chunks.map((chunk) => chunk.firstSentence));
    this.chunkEndSentence = Uint32Array.from(chunks.map((chunk) => chunk.endSentence));
    this.chunkDocument = Uint32Array.from(chunks.map((chunk) => chunk.document));
    this.randomSourceDocuments = Uint32Array.from(
      documents.filter((d) => store.documentTokenEnd(d) > store.documentTokenStart(d)),
    );
    this.samplesPerEpoch = chunks.length;
    if (this.samplesPerEpoch === 0) {
      throw new RangeError('no document in this split has the two tokens a sentence pair needs');
    }
    this.order = new EpochShuffle(this.samplesPerEpoch, options.seed, StreamId.bertSampleOrder, splitTag);
  }

  batch(firstSample: number, count: number): TrainBatch {
    const { seqLen } = this.options;
    const arrays: BertBatchArrays = {
      tokens: new Int32Array(count * seqLen).fill(this.vocabulary.special.pad),
      labels: new Int32Array(count * seqLen).fill(IGNORE_INDEX),
      segments: new Int32Array(count * seqLen),
      attentionMask: new Uint8Array(count * seqLen),
      nspLabels: new Int32Array(count),
    };
    for (let row = 0; row < count; row++) this.writeSample(arrays, row, firstSample + row);
    return { arch: 'bert', batchSize: count, seqLen, ...arrays };
  }

  /**
   * Google's chunking: add sentences until the budget is reached or the
   * document ends. A chunk needs two tokens to yield two non-empty segments.
   */
  private cutChunks(documents: readonly number[]): Chunk[] {
    const { store } = this;
    const chunks: Chunk[] = [];
    for (const document of documents) {
      const documentEnd = store.documentSentenceStarts[document + 1];
      let firstSentence = store.documentSentenceStarts[document];
      for (let sentence = firstSentence; sentence < documentEnd; sentence++) {
        const chunkTokens = store.sentenceStarts[sentence + 1] - store.sentenceStarts[firstSentence];
        if (chunkTokens >= this.pairBudget || sentence === documentEnd - 1) {
          if (chunkTokens >= 2) chunks.push({ document, firstSentence, endSentence: sentence + 1 });
          firstSentence = sentence + 1;
        }
      }
    }
    return chunks;
  }

  private writeSample(arrays: BertBatchArrays, row: number, sampleIndex: number): void {
    const { seed, seqLen } = this.options;
    const chunk = this.order.itemForSample(sampleIndex);
    const pairing = new RandomStream(seed, StreamId.bertPairing, this.splitTag, sampleIndex);
    const { segmentA, segmentB, isNotNext } = this.choosePair(chunk, pairing);
    this.truncatePair(segmentA, segmentB, pairing);

    const { tokens, segments, attentionMask, nspLabels } = arrays;
    const { cls, sep } = this.vocabulary.special;
    const rowStart = row * seqLen;
    const lengthA = segmentA.end - segmentA.start;
    const lengthB = segmentB.end - segmentB.start;
    // [CLS] A [SEP] B [SEP] [PAD]...
    tokens[rowStart] = cls;
    tokens.set(this.store.tokens.subarray(segmentA.start, segmentA.end), rowStart + 1);
    tokens[rowStart + 1 + lengthA] = sep;
    tokens.set(this.store.tokens.subarray(segmentB.start, segmentB.end), rowStart + 2 + lengthA);
    const realLength = lengthA + lengthB + 3;
    tokens[rowStart + realLength - 1] = sep;
    segments.fill(1, rowStart + lengthA + 2, rowStart + realLength);
    attentionMask.fill(1, rowStart, rowStart + realLength);
    nspLabels[row] = isNotNext ? 1 : 0;

    const masking = new RandomStream(seed, StreamId.bertMasking, this.splitTag, sampleIndex);
    this.maskTokens(arrays, rowStart, lengthA, lengthB, masking);
  }

  private choosePair(chunk: number, random: RandomStream): { segmentA: Span; segmentB: Span; isNotNext: boolean } {
    const { store } = this;
    const firstSentence = this.chunkFirstSentence[chunk];
    const endSentence = this.chunkEndSentence[chunk];
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
      segmentB: this.randomContinuation(this.chunkDocument[chunk], budgetForB, random),
      isNotNext: true,
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

  /**
   * Selects each real, non-special token with probability maskProb (at least
   * one per sequence, at most maxPredictionsPerSeq), then replaces 80% of the
   * selected by [MASK], 10% by a random non-special id, and keeps 10%.
   */
  private maskTokens(
    { tokens, labels }: BertBatchArrays,
    rowStart: number,
    lengthA: number,
    lengthB: number,
    random: RandomStream,
  ): void {
    const { maskProb, maxPredictionsPerSeq } = this.options;
    const { vocabulary } = this;
    const candidates: number[] = [];
    for (let i = 1; i <= lengthA; i++) candidates.push(rowStart + i);
    for (let i = lengthA + 2; i <= lengthA + 1 + lengthB; i++) candidates.push(rowStart + i);

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
        tokens[position] = this.randomRegularToken(random);
      }
    }
  }

  private randomRegularToken(random: RandomStream): number {
    for (;;) {
      const id = random.nextInt(this.vocabulary.size);
      if (!this.vocabulary.isSpecialId(id)) return id;
    }
  }
}
