// GPT training straight from a Megatron indexed dataset (`data.path`): windows are read from
// PREFIX.bin with positional reads when a batch asks for them, so memory grows with the number of
// sequences (the index, plus 8 bytes a sequence here), never with the number of tokens.
import type { Split, TrainBatch } from './batch';
import { DataError } from './errors';
import type { IndexedDataset } from './indexed-dataset';
import { CausalWindows } from './causal-lm-dataset';

/**
 * `data.split` ("969,30,1": train, validation, test weights, Megatron's form) as document ranges:
 * split k is documents [round(D·w₀..ₖ₋₁/W), round(D·w₀..ₖ/W)), W the weights' sum. Training reads
 * the first range and evaluation the second; the third (test) is left for the user.
 */
export function splitDocuments(split: string, documentCount: number): Record<Split, [number, number]> {
  const parts = split.split(',').map((part) => part.trim());
  const weights = parts.map(Number);
  if (parts.length < 1 || parts.length > 3 || weights.some((w) => parts[0] === '' || !(w >= 0) || !isFinite(w)))
    throw new DataError(
      'ERR_DATA_CONFIG',
      `data.split must be one to three non-negative numbers separated by commas (train,valid,test ` +
        `weights, e.g. "969,30,1"), got ${JSON.stringify(split)}`,
    );
  const total = weights.reduce((sum, w) => sum + w, 0);
  if (!(total > 0) || weights[0] === 0)
    throw new DataError(
      'ERR_DATA_CONFIG',
      `data.split ${JSON.stringify(split)} gives the training split no share; give its first weight a positive value`,
    );
  const boundary = (k: number): number =>
    Math.round((documentCount * weights.slice(0, k).reduce((sum, w) => sum + w, 0)) / total);
  return { train: [0, boundary(1)], eval: [boundary(1), boundary(2)] };
}

/**
 * Next-token samples over documents [firstDocument, endDocument) of an indexed dataset, laid out
 * as CausalLmWindowDataset lays out a text corpus: the documents joined into one stream, each
 * ending with <|endoftext|> (added where the data does not already end the document with it,
 * i.e. when preprocess ran without --append-eod), cut into windows of seqLen + 1 tokens that share
 * one token with the next; a fresh window order every epoch, keyed by (seed, split, epoch).
 */
/**
 * Where each sequence of documents [firstDocument, endDocument) starts in the split's stream, and
 * whether an <|endoftext|> follows it: the index a GPT split builds once (it reads one token per
 * document), and what sample-index-cache keeps beside the data.
 */
export interface StreamLayout {
  /** Stream offset of piece p (sequence firstSequence + p, plus its added <|endoftext|>); one more at the end. */
  pieceStart: Float64Array;
  /** 1 where an <|endoftext|> follows piece p's tokens in the stream. */
  addedEndOfText: Uint8Array;
}

export function buildStreamLayout(
  data: IndexedDataset,
  [firstDocument, endDocument]: [number, number],
  endOfTextId: number,
): StreamLayout {
  const firstSequence = data.documentSequences(firstDocument)[0];
  const endSequence = data.documentSequences(endDocument - 1)[1];
  const pieces = Math.max(0, endSequence - firstSequence);
  const pieceStart = new Float64Array(pieces + 1);
  const addedEndOfText = new Uint8Array(pieces);
  let offset = 0;
  for (let d = firstDocument; d < endDocument; d++) {
    const [first, end] = data.documentSequences(d);
    let last = -1; // the document's last non-empty sequence
    for (let s = first; s < end; s++) if (data.sequenceLength(s) > 0) last = s;
    if (last >= 0) {
      const lastToken = data.sequence(last, data.sequenceLength(last) - 1, 1)[0];
      if (lastToken !== endOfTextId) addedEndOfText[last - firstSequence] = 1;
    }
    for (let s = first; s < end; s++) {
      const p = s - firstSequence;
      pieceStart[p] = offset;
      offset += data.sequenceLength(s) + addedEndOfText[p];
    }
  }
  pieceStart[pieces] = offset;
  return { pieceStart, addedEndOfText };
}

/**
 * Next-token samples over documents [firstDocument, endDocument) of an indexed dataset, laid out
 * as CausalLmWindowDataset lays out a text corpus: the documents joined into one stream, each
 * ending with <|endoftext|> (added where the data does not already end the document with it,
 * i.e. when preprocess ran without --append-eod), cut into windows of seqLen + 1 tokens that share
 * one token with the next; a fresh window order every epoch, keyed by (seed, split, epoch).
 */
export class IndexedCausalLmDataset {
  readonly samplesPerEpoch: number;
  readonly tokenCount: number;
  private readonly firstSequence: number;
  private readonly pieceStart: Float64Array;
  private readonly addedEndOfText: Uint8Array;
  private readonly windows: CausalWindows;

  /** `layout` is buildStreamLayout(data, documents, endOfTextId), perhaps read back from its cache. */
  constructor(
    private readonly data: IndexedDataset,
    [firstDocument, endDocument]: [number, number],
    private readonly endOfTextId: number,
    private readonly vocabSize: number,
    options: { seqLen: number; seed: number },
    split: Split,
    layout: StreamLayout = buildStreamLayout(data, [firstDocument, endDocument], endOfTextId),
  ) {
    this.firstSequence = data.documentSequences(firstDocument)[0];
    const endSequence = data.documentSequences(endDocument - 1)[1];
    if (layout.addedEndOfText.length !== Math.max(0, endSequence - this.firstSequence))
      throw new Error(
        `a stream layout of ${layout.addedEndOfText.length} pieces for documents [${firstDocument}, ${endDocument})`,
      );
    this.pieceStart = layout.pieceStart;
    this.addedEndOfText = layout.addedEndOfText;
    this.tokenCount = layout.pieceStart[layout.pieceStart.length - 1];
    this.windows = new CausalWindows(this.tokenCount, options, split);
    this.samplesPerEpoch = this.windows.samplesPerEpoch;
  }

  batch(firstSample: number, count: number): TrainBatch {
    return this.windows.batch(firstSample, count, (start, out) => this.readStream(start, out));
  }

  /** Fills `out` with the stream's tokens from `start` on. */
  private readStream(start: number, out: Int32Array): void {
    let piece = this.pieceAt(start);
    let within = start - this.pieceStart[piece];
    let filled = 0;
    while (filled < out.length) {
      const sequence = this.firstSequence + piece;
      const length = this.data.sequenceLength(sequence);
      if (within < length) {
        const n = Math.min(length - within, out.length - filled);
        const ids = this.data.sequence(sequence, within, n);
        for (let i = 0; i < n; i++) {
          if (ids[i] >= this.vocabSize || ids[i] < 0) this.refuseId(ids[i], sequence);
        }
        out.set(ids, filled);
        filled += n;
        within += n;
      } else if (this.addedEndOfText[piece] === 1 && within === length) {
        out[filled++] = this.endOfTextId;
        within++;
      } else {
        piece++;
        within = 0;
      }
    }
  }

  /** The piece whose stream range holds `position` (binary search over pieceStart). */
  private pieceAt(position: number): number {
    let low = 0;
    let high = this.pieceStart.length - 2;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.pieceStart[middle] <= position) low = middle;
      else high = middle - 1;
    }
    return low;
  }

  private refuseId(id: number, sequence: number): never {
    throw new DataError(
      'ERR_TOKENIZER',
      `${this.data.prefix}.bin holds token id ${id} in sequence ${sequence}, but the tokenizer has ` +
        `${this.vocabSize} tokens: the dataset was tokenized with another vocabulary; point data.tokenizer at ` +
        `the tokenizer.json it was made with, or preprocess it again with this one`,
    );
  }
}
