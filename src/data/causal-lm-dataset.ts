import type { Split, TrainBatch } from './batch';
import { SplitKey, StreamId } from './rng';
import { EpochShuffle } from './sample-order';
import type { TokenStore } from './token-store';

export interface CausalLmOptions {
  seqLen: number;
  seed: number;
}

/**
 * Next-token (GPT-style) samples: the split's documents are joined into one stream, each
 * followed by <|endoftext|>, and cut into consecutive windows of seqLen + 1
 * tokens (neighbouring windows share one token, so every stream token is a
 * target exactly once per epoch). Window order is a fresh permutation every
 * epoch, keyed by (seed, split, epoch).
 */
export class CausalLmWindowDataset {
  readonly samplesPerEpoch: number;
  private readonly stream: Int32Array;
  private readonly windows: CausalWindows;

  constructor(
    store: TokenStore,
    documents: readonly number[],
    endOfTextId: number,
    options: CausalLmOptions,
    split: Split,
  ) {
    if (!Number.isInteger(options.seqLen) || options.seqLen < 1) {
      throw new RangeError(`causal-LM seqLen must be a positive integer, got ${options.seqLen}`);
    }
    let streamLength = 0;
    for (const d of documents) streamLength += store.documentTokenEnd(d) - store.documentTokenStart(d) + 1;
    this.stream = new Int32Array(streamLength);
    let offset = 0;
    for (const d of documents) {
      const tokens = store.documentTokens(d);
      this.stream.set(tokens, offset);
      offset += tokens.length;
      this.stream[offset++] = endOfTextId;
    }
    this.windows = new CausalWindows(streamLength, options, split);
    this.samplesPerEpoch = this.windows.samplesPerEpoch;
  }

  batch(firstSample: number, count: number): TrainBatch {
    return this.windows.batch(firstSample, count, (start, out) =>
      out.set(this.stream.subarray(start, start + out.length)),
    );
  }
}

/**
 * The windows over a stream of `tokenCount` tokens, however the stream is stored: consecutive
 * windows of seqLen + 1 tokens (neighbours share one), in a fresh order every epoch keyed by
 * (seed, split, epoch). `read(start, out)` fills `out` with the stream's tokens from `start` on.
 */
export class CausalWindows {
  readonly samplesPerEpoch: number;
  private readonly order: EpochShuffle;

  constructor(
    tokenCount: number,
    private readonly options: CausalLmOptions,
    private readonly split: Split,
  ) {
    this.samplesPerEpoch = Math.max(0, Math.floor((tokenCount - 1) / options.seqLen));
    if (this.samplesPerEpoch === 0) {
      throw new RangeError(
        `this split has ${tokenCount} tokens, fewer than the ${options.seqLen + 1} one window of seqLen + 1 needs`,
      );
    }
    this.order = new EpochShuffle(this.samplesPerEpoch, options.seed, StreamId.causalWindowOrder, SplitKey[split]);
  }

  batch(firstSample: number, count: number, read: (start: number, out: Int32Array) => void): TrainBatch {
    const { seqLen } = this.options;
    const tokens = new Int32Array(count * seqLen);
    const labels = new Int32Array(count * seqLen);
    const window = new Int32Array(seqLen + 1);
    for (let row = 0; row < count; row++) {
      read(this.order.itemForSample(firstSample + row) * seqLen, window);
      tokens.set(window.subarray(0, seqLen), row * seqLen);
      labels.set(window.subarray(1), row * seqLen);
    }
    return {
      batchSize: count,
      seqLen,
      tokens,
      labels,
      segments: null,
      attentionMask: null,
      pairLabels: null,
      firstSample,
      split: this.split,
    };
  }
}
