// shard-plan.ts — which rank writes which piece of a sharded save, and the checks of the rank
// tables it is computed from. Replicas hold identical data, so each piece is written once, and the
// pieces are spread so every rank writes about as many bytes. Every rank computes the same plan
// from its own table, without talking to the others.
import { CheckpointError } from './errors';
import type { ShardTensor } from './sharded';
import { numelOf } from './types';

function invalidArg(msg: string): CheckpointError {
  return new CheckpointError('ERR_CHECKPOINT_INVALID_ARG', msg);
}

export interface ShardWriter {
  /** Global rank = dpRank * tpSize + tpRank. */
  rank: number;
  tpRank: number;
  dpRank: number;
}

/** One piece to write: a split tensor's part held by one TP rank, or a replicated tensor. */
export interface ShardWriteUnit {
  /** Index of the tensor in the table. */
  index: number;
  name: string;
  /** The TP rank whose part this is; -1 for a replicated tensor (every rank holds it). */
  holderTpRank: number;
  /** Local element count (padding included), the same on every TP rank: the weight of the unit. */
  numel: number;
  writer: ShardWriter;
}

/**
 * Assigns every write unit to a rank: units by numel descending (ties: name, then holder TP rank),
 * each to the eligible rank with the fewest elements so far (ties: lowest global rank). A split
 * unit of TP rank t may go to any replica (t, d); a replicated unit to any rank. Returns the
 * units in assignment order.
 */
export function planShardWriters(
  table: ReadonlyArray<Pick<ShardTensor, 'name' | 'splitDim' | 'numel'>>,
  tpSize: number,
  dpSize: number,
): ShardWriteUnit[] {
  if (!Number.isSafeInteger(tpSize) || tpSize < 1 || !Number.isSafeInteger(dpSize) || dpSize < 1) {
    throw new RangeError(`planShardWriters: TP ${tpSize} × DP ${dpSize} is not a layout`);
  }
  const units: Array<Omit<ShardWriteUnit, 'writer'>> = [];
  table.forEach((t, index) => {
    if (t.splitDim < 0) units.push({ index, name: t.name, holderTpRank: -1, numel: t.numel });
    else for (let tp = 0; tp < tpSize; tp++) units.push({ index, name: t.name, holderTpRank: tp, numel: t.numel });
  });
  units.sort(
    (a, b) => b.numel - a.numel || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) || a.holderTpRank - b.holderTpRank,
  );
  const load = new Array<number>(tpSize * dpSize).fill(0);
  return units.map((u) => {
    let best = -1;
    const consider = (rank: number) => {
      if (
        best < 0 ||
        (load[rank] as number) < (load[best] as number) ||
        ((load[rank] as number) === (load[best] as number) && rank < best)
      )
        best = rank;
    };
    if (u.holderTpRank < 0) for (let r = 0; r < load.length; r++) consider(r);
    else for (let dp = 0; dp < dpSize; dp++) consider(dp * tpSize + u.holderTpRank);
    load[best] = (load[best] as number) + u.numel;
    return { ...u, writer: { rank: best, tpRank: best % tpSize, dpRank: Math.floor(best / tpSize) } };
  });
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/**
 * Checks one entry of a rank's table (ShardTensor): shapes, the split dim, the shard range, and
 * that its elements lie inside buffers of `bufferLength` elements.
 */
export function checkTableEntry(t: ShardTensor, bufferLength: number): void {
  const where = `table entry ${JSON.stringify(t.name)}`;
  if (typeof t.name !== 'string' || t.name.length === 0) throw invalidArg('table entry with an empty name');
  const dims = (s: unknown) => Array.isArray(s) && s.every(isCount);
  if (!dims(t.shape) || !dims(t.globalShape) || t.shape.length !== t.globalShape.length) {
    throw invalidArg(
      `${where}: shape ${JSON.stringify(t.shape)} / globalShape ${JSON.stringify(t.globalShape)} are invalid`,
    );
  }
  if (!isCount(t.numel) || numelOf(t.shape) !== t.numel) {
    throw invalidArg(`${where}: numel ${t.numel} is not the product of shape [${t.shape.join(', ')}]`);
  }
  if (!isCount(t.offset) || t.offset + t.numel > bufferLength) {
    throw invalidArg(
      `${where}: elements [${t.offset}, ${t.offset + t.numel}) lie outside the ${bufferLength}-element buffers`,
    );
  }
  const d = t.splitDim;
  if (!Number.isSafeInteger(d) || d < -1 || d >= t.shape.length) {
    throw invalidArg(`${where}: splitDim ${d} is not -1 or a dimension of a rank-${t.shape.length} tensor`);
  }
  t.shape.forEach((n, i) => {
    if (i !== d && n !== t.globalShape[i]) {
      throw invalidArg(
        `${where}: local shape [${t.shape.join(', ')}] differs from the global [${t.globalShape.join(', ')}] off the split dim`,
      );
    }
  });
  if (d >= 0) {
    const fits =
      isCount(t.shardStart) &&
      isCount(t.shardValid) &&
      t.shardValid <= (t.shape[d] as number) &&
      // A rank whose vocabulary shard is all padding starts past the end and holds nothing.
      (t.shardValid === 0 || t.shardStart + t.shardValid <= (t.globalShape[d] as number));
    if (!fits) {
      throw invalidArg(
        `${where}: shard [${t.shardStart}, ${t.shardStart + t.shardValid}) along dim ${d} does not fit local size ${t.shape[d]} and global size ${t.globalShape[d]}`,
      );
    }
  }
}
