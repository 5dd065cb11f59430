// Parallel state: which ranks form each tensor- and data-parallel group, and the layouts refused.
import { describe, expect, it } from 'vitest';

import {
  dataParallelGroup,
  globalRank,
  layoutProblems,
  placeRank,
  tensorParallelGroup,
  validateLayout,
} from '../../src/coordinator/groups';

describe('groups', () => {
  it('TP2 × DP2 on 4 ranks: TP groups are consecutive ranks, DP groups share the TP rank', () => {
    const layout = { worldSize: 4, nprocPerNode: 4, tpSize: 2 };
    const placed = [0, 1, 2, 3].map((r) => placeRank(r, layout));
    expect(placed.map((p) => [p.tpRank, p.dpRank])).toEqual([
      [0, 0],
      [1, 0],
      [0, 1],
      [1, 1],
    ]);
    expect(placed.map((p) => p.tpGroup)).toEqual([
      [0, 1],
      [0, 1],
      [2, 3],
      [2, 3],
    ]);
    expect(placed.map((p) => p.dpGroup)).toEqual([
      [0, 2],
      [1, 3],
      [0, 2],
      [1, 3],
    ]);
    for (const p of placed) {
      expect(p.tpGroup[p.tpRank]).toBe(p.rank);
      expect(p.dpGroup[p.dpRank]).toBe(p.rank);
      expect([p.tpSize, p.dpSize]).toEqual([2, 2]);
    }
  });

  it('two nodes of four with TP 4: each node is one TP group, DP pairs the nodes', () => {
    const layout = { worldSize: 8, nprocPerNode: 4, tpSize: 4 };
    expect(globalRank(1, 2, 4)).toBe(6);
    expect(placeRank(6, layout)).toMatchObject({ tpRank: 2, dpRank: 1, tpGroup: [4, 5, 6, 7], dpGroup: [2, 6] });
    // Every TP group stays inside one node.
    for (let r = 0; r < 8; r++) {
      const nodes = new Set(tensorParallelGroup(r, 4).map((x) => Math.floor(x / 4)));
      expect(nodes.size).toBe(1);
    }
  });

  it('TP 1 is pure data parallelism; TP = world is pure tensor parallelism', () => {
    expect(dataParallelGroup(2, 1, 4)).toEqual([0, 1, 2, 3]);
    expect(tensorParallelGroup(2, 1)).toEqual([2]);
    expect(placeRank(3, { worldSize: 4, nprocPerNode: 4, tpSize: 4 })).toMatchObject({
      tpRank: 3,
      dpRank: 0,
      dpGroup: [3],
    });
  });

  it('refuses a TP group that would cross nodes, naming what to change', () => {
    const problems = layoutProblems({ worldSize: 4, nprocPerNode: 1, tpSize: 2 });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/parallel\.tensor = 2 does not divide --nproc-per-node 1/);
    expect(problems[0]).toMatch(/stay inside one node/);
    expect(() => validateLayout({ worldSize: 4, nprocPerNode: 1, tpSize: 2 })).toThrow(
      expect.objectContaining({ code: 'ERR_PARALLEL_LAYOUT' }),
    );
  });

  it('refuses a TP size that does not divide the world, and ranks outside it', () => {
    const problems = layoutProblems({ worldSize: 6, nprocPerNode: 6, tpSize: 4 });
    expect(problems.join('\n')).toMatch(/does not divide the world size 6/);
    expect(problems.join('\n')).toMatch(/does not divide --nproc-per-node 6/);
    expect(layoutProblems({ worldSize: 4, nprocPerNode: 4, tpSize: 0 })[0]).toMatch(/positive integer/);
    expect(() => placeRank(4, { worldSize: 4, nprocPerNode: 4, tpSize: 2 })).toThrow(/outside the world of 4/);
  });
});
