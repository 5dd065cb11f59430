// shard-plan.ts — which rank writes which piece of a sharded save, and the checks of the rank
// tables it is computed from. Replicas hold identical data, so each element is written once, and
// the pieces are spread so every rank writes about as many bytes: a tensor too big for one rank's
// share is cut into row ranges written by several ranks. Every rank computes the same plan from
// its own table, without talking to the others.
import { CheckpointError } from './errors';
import { numelOf, type ShardTensor } from './types';

function invalidArg(msg: string): CheckpointError {
  return new CheckpointError('ERR_CHECKPOINT_INVALID_ARG', msg);
}

/** A tensor is never cut into pieces of fewer elements than this (1 MiB of F32). */
export const MIN_PIECE_ELEMENTS = 256 * 1024;

export interface ShardWriter {
  /** Global rank = dpRank * tpSize + tpRank. */
  rank: number;
  tpRank: number;
  dpRank: number;
}

/**
 * One piece to write, with its optimizer moments: a range of rows of a write unit (a split
 * tensor's part held by one TP rank, or a replicated tensor). Rows are the leading dimension of
 * the holder's local tensor, padding rows included; a scalar has one row.
 */
export interface ShardWritePiece {
  /** Index of the tensor in the table. */
  index: number;
  name: string;
  /** The TP rank whose part this is; -1 for a replicated tensor (every rank holds it). */
  holderTpRank: number;
  /** The rows of the holder's local tensor in this piece: all of them unless the unit was cut. */
  rows: { start: number; length: number };
  /** Local elements of the piece (padding included), the same on every TP rank: its weight. */
  numel: number;
  writer: ShardWriter;
}

interface WriteUnit {
  index: number;
  name: string;
  holderTpRank: number;
  numel: number;
  rows: number;
}

/** The level L at which sum(max(0, L - load)) = amount over ascending `loads` (water filling). */
function waterLevel(amount: number, loads: readonly number[]): number {
  let sum = 0;
  for (let k = 1; ; k++) {
    sum += loads[k - 1] as number;
    const level = (amount + sum) / k;
    if (k === loads.length || level <= (loads[k] as number)) return level;
  }
}

/**
 * Rows of each piece of `u` for the eligible ranks in `loads` order (ascending: least loaded
 * first). Ranks are filled up to `target` (the mean load), or evenly to a higher level when those
 * that may take a piece have too little room below it. No piece has fewer than
 * MIN_PIECE_ELEMENTS elements, and a rank gets at most one piece; one entry means whole.
 */
function cutRows(u: WriteUnit, loads: readonly number[], target: number): number[] {
  const rowNumel = u.rows > 0 ? u.numel / u.rows : 0;
  const minRows = rowNumel > 0 ? Math.ceil(MIN_PIECE_ELEMENTS / rowNumel) : Infinity;
  const most = Math.min(loads.length, Math.floor(u.rows / minRows));
  if (most < 2) return [u.rows];
  const candidates = loads.slice(0, most);
  const below = candidates.reduce((n, l) => n + Math.max(0, target - l), 0);
  const level = below >= u.numel ? target : waterLevel(u.numel, candidates);
  const room = (i: number) => Math.round((level - (loads[i] as number)) / rowNumel);
  const rows: number[] = [];
  let left = u.rows;
  for (let i = 0; left > 0; i++) {
    let take = i === most - 1 ? left : Math.min(left, Math.max(minRows, room(i)));
    if (left - take > 0 && left - take < minRows) {
      // A tail too small for a piece joins this one, or becomes a minimum piece on the next
      // rank: whichever overshoots its rank's room less.
      const spill = left - minRows >= minRows && minRows - room(i + 1) < left - room(i);
      take = spill ? left - minRows : left;
    }
    rows.push(take);
    left -= take;
  }
  return rows;
}

/**
 * The writer plan. Write units (one per TP rank of a split tensor, one per replicated tensor)
 * are taken by local numel descending (ties: name, then holder TP rank). Each is placed on the
 * least loaded eligible rank (ties: lowest global rank) when it fits below the mean load there or
 * is too small to cut; otherwise it is cut into contiguous row ranges that fill the least loaded
 * eligible ranks up to the mean (see cutRows). A unit of TP rank t may go to any replica (t, d);
 * a replicated unit to any rank. Returns the pieces in plan order.
 */
export function planShardWriters(
  table: ReadonlyArray<Pick<ShardTensor, 'name' | 'splitDim' | 'numel' | 'shape'>>,
  tpSize: number,
  dpSize: number,
): ShardWritePiece[] {
  if (!Number.isSafeInteger(tpSize) || tpSize < 1 || !Number.isSafeInteger(dpSize) || dpSize < 1) {
    throw new RangeError(`planShardWriters: TP ${tpSize} × DP ${dpSize} is not a layout`);
  }
  const units: WriteUnit[] = [];
  table.forEach((t, index) => {
    const rows = t.shape.length === 0 ? 1 : (t.shape[0] as number);
    const unit = { index, name: t.name, numel: t.numel, rows };
    if (t.splitDim < 0) units.push({ ...unit, holderTpRank: -1 });
    else for (let tp = 0; tp < tpSize; tp++) units.push({ ...unit, holderTpRank: tp });
  });
  units.sort(
    (a, b) => b.numel - a.numel || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0) || a.holderTpRank - b.holderTpRank,
  );
  const load = new Array<number>(tpSize * dpSize).fill(0);
  const target = units.reduce((n, u) => n + u.numel, 0) / load.length;
  const pieces: ShardWritePiece[] = [];
  for (const u of units) {
    const eligible =
      u.holderTpRank < 0
        ? load.map((_, rank) => rank)
        : Array.from({ length: dpSize }, (_, dp) => dp * tpSize + u.holderTpRank);
    eligible.sort((a, b) => (load[a] as number) - (load[b] as number) || a - b);
    const rowNumel = u.rows > 0 ? u.numel / u.rows : 0;
    let start = 0;
    cutRows(
      u,
      eligible.map((r) => load[r] as number),
      target,
    ).forEach((length, i) => {
      const rank = eligible[i] as number;
      const numel = length === u.rows ? u.numel : length * rowNumel;
      load[rank] = (load[rank] as number) + numel;
      pieces.push({
        index: u.index,
        name: u.name,
        holderTpRank: u.holderTpRank,
        rows: { start, length },
        numel,
        writer: { rank, tpRank: rank % tpSize, dpRank: Math.floor(rank / tpSize) },
      });
      start += length;
    });
  }
  return pieces;
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
