import type { ManifestSliceDim, ManifestTensorEntry } from './types';
// coverage.ts — boxes (one half-open range per dimension) of global tensors: intersections, and
// whether a set of stored pieces tiles a region exactly (no gap, no overlap).

export interface Box {
  start: number[];
  length: number[];
}

export function boxOfSlice(slice: readonly ManifestSliceDim[]): Box {
  return { start: slice.map((s) => s.start), length: slice.map((s) => s.length) };
}

export function wholeBox(shape: readonly number[]): Box {
  return { start: shape.map(() => 0), length: [...shape] };
}

export function boxVolume(b: Box): number {
  return b.length.reduce((n, l) => n * l, 1);
}

/** The common part of two boxes of the same rank, or undefined when it holds no element. */
export function intersectBoxes(a: Box, b: Box): Box | undefined {
  const start: number[] = [];
  const length: number[] = [];
  for (let d = 0; d < a.start.length; d++) {
    const lo = Math.max(a.start[d] as number, b.start[d] as number);
    const hi = Math.min(
      (a.start[d] as number) + (a.length[d] as number),
      (b.start[d] as number) + (b.length[d] as number),
    );
    if (hi <= lo) return undefined;
    start.push(lo);
    length.push(hi - lo);
  }
  return { start, length };
}

/** `[0:4, 8:16]` — start:end per dimension, as in Python slicing. */
export function formatBox(b: Box): string {
  return `[${b.start.map((s, d) => `${s}:${s + (b.length[d] as number)}`).join(', ')}]`;
}

/**
 * The first cell of `target` that no box in `pieces` covers, or undefined when they cover it all.
 * Cells come from cutting every dimension at every piece boundary, so a reported gap is a whole
 * missing block (e.g. one tensor-parallel rank's rows), not a single element.
 */
export function findUncovered(target: Box, pieces: readonly Box[]): Box | undefined {
  if (boxVolume(target) === 0) return undefined;
  const clipped = pieces.map((p) => intersectBoxes(p, target)).filter((p): p is Box => p !== undefined);
  const rank = target.start.length;
  const cuts: number[][] = [];
  for (let d = 0; d < rank; d++) {
    const lo = target.start[d] as number;
    const hi = lo + (target.length[d] as number);
    const points = new Set<number>([lo, hi]);
    for (const p of clipped) {
      points.add(p.start[d] as number);
      points.add((p.start[d] as number) + (p.length[d] as number));
    }
    cuts.push([...points].sort((a, b) => a - b));
  }
  // Odometer over the grid cells; a cell lies entirely inside or entirely outside each piece.
  const idx = new Array<number>(rank).fill(0);
  for (;;) {
    const cell: Box = { start: [], length: [] };
    for (let d = 0; d < rank; d++) {
      const c = cuts[d] as number[];
      cell.start.push(c[idx[d] as number] as number);
      cell.length.push((c[(idx[d] as number) + 1] as number) - (c[idx[d] as number] as number));
    }
    const covered = clipped.some((p) =>
      cell.start.every((s, d) => s >= (p.start[d] as number) && s < (p.start[d] as number) + (p.length[d] as number)),
    );
    if (!covered) return cell;
    let d = rank - 1;
    while (d >= 0) {
      idx[d] = (idx[d] as number) + 1;
      if ((idx[d] as number) < (cuts[d] as number[]).length - 1) break;
      idx[d] = 0;
      d--;
    }
    if (d < 0) return undefined;
  }
}

/** "tp1/dp0 in model-tp01-dp00.safetensors" — who wrote a piece, for error messages. */
export function describePiece(t: Pick<ManifestTensorEntry, 'tpRank' | 'dpRank' | 'file'>): string {
  return `tp${t.tpRank}/dp${t.dpRank} in ${t.file}`;
}

/**
 * Checks that the pieces of each tensor agree on dtype, global shape and role, and tile the global
 * shape exactly. Returns the first problem as a sentence naming the tensor and the ranks, or
 * undefined when every tensor is whole.
 */
export function findTilingProblem(tensors: readonly ManifestTensorEntry[]): string | undefined {
  const byName = new Map<string, ManifestTensorEntry[]>();
  for (const t of tensors) {
    const list = byName.get(t.name);
    if (list === undefined) byName.set(t.name, [t]);
    else list.push(t);
  }
  for (const [name, pieces] of byName) {
    const first = pieces[0] as ManifestTensorEntry;
    const shape = first.globalShape;
    for (const p of pieces) {
      if (p.globalShape.length !== shape.length || p.globalShape.some((d, i) => d !== shape[i])) {
        return (
          `tensor "${name}": pieces disagree on the global shape: [${shape.join(', ')}] (${describePiece(first)}) ` +
          `vs [${p.globalShape.join(', ')}] (${describePiece(p)})`
        );
      }
      if (p.dtype !== first.dtype || p.role !== first.role) {
        return `tensor "${name}": pieces disagree on dtype or role (${describePiece(first)} vs ${describePiece(p)})`;
      }
      if (p.slice.length !== shape.length) {
        return `tensor "${name}": ${describePiece(p)} has ${p.slice.length} slice dims for a rank-${shape.length} tensor`;
      }
      if (p.slice.some((s, d) => s.start + s.length > (shape[d] as number))) {
        return `tensor "${name}": ${describePiece(p)} holds ${formatBox(boxOfSlice(p.slice))}, outside the global shape [${shape.join(', ')}]`;
      }
    }
    for (let i = 0; i < pieces.length; i++) {
      for (let j = i + 1; j < pieces.length; j++) {
        const a = pieces[i] as ManifestTensorEntry;
        const b = pieces[j] as ManifestTensorEntry;
        const both = intersectBoxes(boxOfSlice(a.slice), boxOfSlice(b.slice));
        if (both !== undefined) {
          return `tensor "${name}": pieces overlap at ${formatBox(both)}: ${describePiece(a)} and ${describePiece(b)}`;
        }
      }
    }
    const gap = findUncovered(
      wholeBox(shape),
      pieces.map((p) => boxOfSlice(p.slice)),
    );
    if (gap !== undefined) {
      return (
        `tensor "${name}" [${shape.join(', ')}]: no piece covers ${formatBox(gap)} ` +
        `(pieces: ${pieces.map((p) => `${describePiece(p)} ${formatBox(boxOfSlice(p.slice))}`).join('; ')})`
      );
    }
  }
  return undefined;
}
