import { RandomStream } from './rng';

/**
 * Maps a global sample index of an infinite stream onto items of a finite
 * epoch: sample i is item perm_e[i mod n] with e = floor(i / n), where perm_e
 * is a Fisher-Yates shuffle keyed by (seed, stream id, split, epoch). Every
 * epoch visits every item once, in a fresh order, and any sample can be
 * located without touching earlier ones.
 */
export class EpochShuffle {
  // A batch touches at most two epochs (when it straddles a boundary), so
  // caching two permutations avoids recomputing them for every sample.
  private readonly cachedPermutations = new Map<number, Int32Array>();

  constructor(
    readonly itemsPerEpoch: number,
    private readonly seed: number,
    private readonly streamId: number,
    private readonly splitTag: number,
  ) {
    if (!Number.isSafeInteger(itemsPerEpoch) || itemsPerEpoch <= 0) {
      throw new RangeError(`an epoch needs at least one item, got ${itemsPerEpoch}`);
    }
  }

  itemForSample(sampleIndex: number): number {
    const epoch = Math.floor(sampleIndex / this.itemsPerEpoch);
    const position = sampleIndex - epoch * this.itemsPerEpoch;
    return this.permutation(epoch)[position];
  }

  private permutation(epoch: number): Int32Array {
    const cached = this.cachedPermutations.get(epoch);
    if (cached) return cached;
    const order = new Int32Array(this.itemsPerEpoch);
    for (let i = 0; i < order.length; i++) order[i] = i;
    const random = new RandomStream(this.seed, this.streamId, this.splitTag, epoch);
    for (let i = order.length - 1; i > 0; i--) {
      const j = random.nextInt(i + 1);
      const swap = order[i];
      order[i] = order[j];
      order[j] = swap;
    }
    if (this.cachedPermutations.size >= 2) {
      const oldest = this.cachedPermutations.keys().next().value as number;
      this.cachedPermutations.delete(oldest);
    }
    this.cachedPermutations.set(epoch, order);
    return order;
  }
}
