// Blending several preprocessed datasets (`data.path: [0.7, PREFIX_A, 0.3, PREFIX_B]`, Megatron's
// form): what the key may hold, and which source each sample of the blended stream comes from.
import type { Split, TrainBatch } from './batch';
import { DataError } from './errors';

/** `data.path` as written: one prefix, a list alternating weight and prefix, or that list as one string. */
export type DataPath = string | readonly (number | string)[];

/** One source of a blend; the weights of a blend sum to 1. */
export interface WeightedPrefix {
  prefix: string;
  weight: number;
}

/**
 * The blend index covers this many samples and then repeats, each source's sample numbers moving on
 * by what it drew in one block; so the index is built once, whatever the run length, and any sample is
 * found without replaying the ones before it.
 */
export const BLEND_BLOCK = 1 << 18;

/** What is wrong with a `data.path` value, or undefined when it is usable. */
export function dataPathProblem(value: unknown): string | undefined {
  try {
    parseDataPath(value as DataPath);
    return undefined;
  } catch (error) {
    if (error instanceof DataError) return error.message.replace(/^data\.path: /, '');
    throw error;
  }
}

/**
 * The sources of `data.path` with their weights normalised to sum 1. A string with blanks whose first
 * word is a number is the weighted list written out ("0.7 A 0.3 B", as Megatron's --data-path takes it).
 */
export function parseDataPath(value: DataPath): WeightedPrefix[] {
  const refuse = (problem: string): never => {
    throw new DataError('ERR_DATA_CONFIG', `data.path: ${problem}`);
  };
  let items: readonly unknown[];
  if (typeof value === 'string') {
    const words = value.trim().split(/\s+/);
    items = words.length > 1 && isNumberWord(words[0]) ? words.map((w, i) => (i % 2 === 0 ? Number(w) : w)) : [value];
  } else if (Array.isArray(value)) {
    items = value;
  } else {
    return refuse(
      `expected a dataset prefix or a list alternating weight and prefix ([0.7, PREFIX_A, 0.3, PREFIX_B]), ` +
        `got ${JSON.stringify(value)}`,
    );
  }
  if (items.length === 1) {
    if (typeof items[0] !== 'string' || items[0].trim() === '')
      return refuse(`a one-item list holds a dataset prefix (a string), got ${JSON.stringify(items[0])}`);
    return [{ prefix: items[0], weight: 1 }];
  }
  if (items.length === 0) return refuse('the list is empty; give a dataset prefix, or weight, prefix pairs');
  if (items.length % 2 !== 0)
    return refuse(
      `a weighted list alternates weight and prefix ([0.7, PREFIX_A, 0.3, PREFIX_B]), but it has ${items.length} ` +
        `items, an odd count: give every prefix a weight`,
    );
  const sources: WeightedPrefix[] = [];
  for (let i = 0; i < items.length; i += 2) {
    const [weight, prefix] = [items[i], items[i + 1]];
    if (typeof prefix !== 'string' || prefix.trim() === '')
      refuse(
        `item ${i + 2} should be a dataset prefix (a string) after weight ${String(weight)}, got ${JSON.stringify(prefix)}`,
      );
    if (typeof weight !== 'number')
      refuse(`item ${i + 1} should be the weight (a number) of ${String(prefix)}, got ${JSON.stringify(weight)}`);
    if (!(Number.isFinite(weight) && (weight as number) > 0))
      refuse(
        `the weight of ${String(prefix)} is ${String(weight)}; weights must be positive numbers (remove the pair ` +
          `to leave that dataset out)`,
      );
    sources.push({ prefix: prefix as string, weight: weight as number });
  }
  const total = sources.reduce((sum, s) => sum + s.weight, 0);
  return sources.map((s) => ({ prefix: s.prefix, weight: s.weight / total }));
}

function isNumberWord(word: string): boolean {
  return word !== '' && Number.isFinite(Number(word));
}

/**
 * Megatron's blending rule over `size` samples: sample i comes from the source furthest below its
 * share so far, argmax_k (w_k·(i+1) − count_k), ties to the lowest k. Returns each sample's source and
 * its number among that source's samples. (Megatron's helpers.cpp scales by max(i, 1), the share
 * before sample i rather than after it: its order is not this one, but no source's count differs
 * from it by more than one at any point, as far as random weights show.)
 */
export function blendingOrder(weights: readonly number[], size: number): { source: Uint16Array; sample: Uint32Array } {
  if (weights.length < 1 || weights.length > 65535)
    throw new RangeError(`a blend needs 1 to 65535 sources, got ${weights.length}`);
  const source = new Uint16Array(size);
  const sample = new Uint32Array(size);
  const counts = new Float64Array(weights.length);
  for (let i = 0; i < size; i++) {
    let best = 0;
    let bestDeficit = weights[0] * (i + 1) - counts[0];
    for (let k = 1; k < weights.length; k++) {
      const deficit = weights[k] * (i + 1) - counts[k];
      if (deficit > bestDeficit) {
        best = k;
        bestDeficit = deficit;
      }
    }
    source[i] = best;
    sample[i] = counts[best]++;
  }
  return { source, sample };
}

/** One source's sample stream, as the split datasets give it. */
export interface SampleStream {
  readonly samplesPerEpoch: number;
  batch(firstSample: number, count: number): TrainBatch;
}

/**
 * The blended stream of one split: sample i is sample `sample[p] + b·drawn_k` of source k =
 * `source[p]`, where b = floor(i / block), p = i mod block and drawn_k the source's share of a block.
 * Each source keeps its own epochs and order; the blend only says whose turn it is.
 */
export class BlendedStream implements SampleStream {
  readonly samplesPerEpoch: number;
  /** Samples each source gives in one block. */
  readonly drawnPerBlock: Float64Array;

  constructor(
    private readonly sources: readonly SampleStream[],
    private readonly order: { source: Uint16Array; sample: Uint32Array },
    private readonly split: Split,
  ) {
    this.drawnPerBlock = new Float64Array(sources.length);
    for (const k of order.source) this.drawnPerBlock[k]++;
    // Reported only (the stream is infinite): one pass over every source.
    this.samplesPerEpoch = sources.reduce((sum, s) => sum + s.samplesPerEpoch, 0);
  }

  /** The source and its sample number that blended sample i reads. */
  locate(i: number): { source: number; sample: number } {
    const block = this.order.source.length;
    const b = Math.floor(i / block);
    const p = i - b * block;
    const source = this.order.source[p];
    return { source, sample: this.order.sample[p] + b * this.drawnPerBlock[source] };
  }

  batch(firstSample: number, count: number): TrainBatch {
    const rows: TrainBatch[] = [];
    for (let row = 0; row < count; row++) {
      const { source, sample } = this.locate(firstSample + row);
      rows.push(this.sources[source].batch(sample, 1));
    }
    return stackRows(rows, firstSample, this.split);
  }
}

/** One batch of the rows (each a batch of one sequence, all of one shape), in order. */
function stackRows(rows: readonly TrainBatch[], firstSample: number, split: Split): TrainBatch {
  const { seqLen } = rows[0];
  const stack = <T extends Int32Array | Uint8Array>(pick: (row: TrainBatch) => T | null, width: number): T | null => {
    const first = pick(rows[0]);
    if (first === null) return null;
    const out = new (first.constructor as new (length: number) => T)(rows.length * width);
    rows.forEach((row, r) => out.set(pick(row) as T, r * width));
    return out;
  };
  return {
    batchSize: rows.length,
    seqLen,
    tokens: stack((row) => row.tokens, seqLen) as Int32Array,
    labels: stack((row) => row.labels, seqLen) as Int32Array,
    segments: stack((row) => row.segments, seqLen),
    attentionMask: stack((row) => row.attentionMask, seqLen),
    pairLabels: stack((row) => row.pairLabels, 1),
    firstSample,
    split,
  };
}
