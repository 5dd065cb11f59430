// groups.ts — parallel state (Megatron's parallel_state) and nothing else: from the world size and
// the tensor-parallel size, each rank's TP rank, DP rank and the members of its groups.
//
// rank = nodeRank · nprocPerNode + localRank. TP groups are runs of consecutive ranks, so with TP
// dividing nprocPerNode a TP group never leaves its node (TP all-reduces twice per layer; DP once
// per step). DP groups are the ranks with the same TP rank.

export class ParallelLayoutError extends Error {
  readonly code = 'ERR_PARALLEL_LAYOUT';
}

export interface ParallelLayout {
  worldSize: number;
  nprocPerNode: number;
  tpSize: number;
}

export interface RankPlacement {
  rank: number;
  tpRank: number;
  dpRank: number;
  tpSize: number;
  dpSize: number;
  /** The TP group in group order: tpGroup[tpRank] === rank. */
  tpGroup: number[];
  /** The DP group in group order: dpGroup[dpRank] === rank. */
  dpGroup: number[];
}

/** Every reason the layout cannot work, each saying what to change; empty when it can. */
export function layoutProblems({ worldSize, nprocPerNode, tpSize }: ParallelLayout): string[] {
  const problems: string[] = [];
  if (!Number.isInteger(tpSize) || tpSize < 1) return [`parallel.tensor must be a positive integer, got ${tpSize}`];
  if (worldSize % tpSize !== 0)
    problems.push(
      `parallel.tensor = ${tpSize} does not divide the world size ${worldSize} (nnodes × nproc-per-node); ` +
        `pick a tensor-parallel size that divides ${worldSize}, or change --nnodes/--nproc-per-node`,
    );
  if (nprocPerNode % tpSize !== 0)
    problems.push(
      `parallel.tensor = ${tpSize} does not divide --nproc-per-node ${nprocPerNode}: a tensor-parallel group ` +
        `must stay inside one node; use --nproc-per-node a multiple of ${tpSize} or a smaller parallel.tensor`,
    );
  return problems;
}

export function validateLayout(layout: ParallelLayout): void {
  const problems = layoutProblems(layout);
  if (problems.length) throw new ParallelLayoutError(problems.join('\n'));
}

export function globalRank(nodeRank: number, localRank: number, nprocPerNode: number): number {
  return nodeRank * nprocPerNode + localRank;
}

export function tensorParallelRank(rank: number, tpSize: number): number {
  return rank % tpSize;
}

export function dataParallelRank(rank: number, tpSize: number): number {
  return Math.floor(rank / tpSize);
}

/** The consecutive ranks sharing `rank`'s layers. */
export function tensorParallelGroup(rank: number, tpSize: number): number[] {
  const first = rank - tensorParallelRank(rank, tpSize);
  return Array.from({ length: tpSize }, (_, i) => first + i);
}

/** The ranks holding the same shard as `rank`, one per data-parallel replica. */
export function dataParallelGroup(rank: number, tpSize: number, worldSize: number): number[] {
  const tpRank = tensorParallelRank(rank, tpSize);
  return Array.from({ length: worldSize / tpSize }, (_, i) => i * tpSize + tpRank);
}

export function placeRank(rank: number, layout: ParallelLayout): RankPlacement {
  validateLayout(layout);
  const { worldSize, tpSize } = layout;
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize)
    throw new ParallelLayoutError(`rank ${rank} is outside the world of ${worldSize} ranks`);
  return {
    rank,
    tpRank: tensorParallelRank(rank, tpSize),
    dpRank: dataParallelRank(rank, tpSize),
    tpSize,
    dpSize: worldSize / tpSize,
    tpGroup: tensorParallelGroup(rank, tpSize),
    dpGroup: dataParallelGroup(rank, tpSize, worldSize),
  };
}
