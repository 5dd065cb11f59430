// The page's min/max downsampling (src/dashboard/page/downsample.js, also used by `paratrain plot`):
// short series untouched, long ones cut to the budget with the first and latest points exact, a
// spike kept, missing values skipped, and uPlot's columns kept aligned on one x.
import { describe, expect, it } from 'vitest';

import { downsampleColumns, minMaxIndices } from '../../src/dashboard/page/downsample';

describe('minMaxIndices', () => {
  it('keeps every finite value of a short series, and skips the missing ones', () => {
    expect(minMaxIndices([3, null, 1, undefined, NaN, 2], 10)).toEqual([0, 2, 5]);
  });

  it('cuts a long series to the budget, keeping the ends and each bucket’s extremes', () => {
    const ys = Array.from({ length: 1_000_000 }, (_, i) => Math.sin(i / 1000));
    ys[777_777] = 42; // a spike
    ys[333_333] = -42; // a dip
    const idx = minMaxIndices(ys, 1000);
    expect(idx.length).toBeLessThanOrEqual(1000);
    expect(idx.length).toBeGreaterThan(990);
    expect(idx[0]).toBe(0);
    expect(idx[idx.length - 1]).toBe(999_999);
    expect(idx).toContain(777_777);
    expect(idx).toContain(333_333);
    for (let i = 1; i < idx.length; i++) expect(idx[i]).toBeGreaterThan(idx[i - 1]);
  });

  it('picks exactly min and max of each bucket', () => {
    // 2 + 10 points, budget 6: first, last, and two buckets of five inner points each.
    const ys = [5, 1, 9, 3, 4, 2, 8, 0, 7, 6, 5, 5];
    expect(minMaxIndices(ys, 6)).toEqual([0, 1, 2, 6, 7, 11]);
  });
});

describe('downsampleColumns', () => {
  it('returns short data as it is', () => {
    const data = [
      [1, 2, 3],
      [4, 5, 6],
    ];
    expect(downsampleColumns(data, 10)).toBe(data);
  });

  it('thins all columns on the same x values, to at most the budget, the latest x exact', () => {
    const n = 100_000;
    const xs = Array.from({ length: n }, (_, i) => i + 1);
    const a = xs.map((x) => (x === 50_000 ? 1e6 : x));
    const b = xs.map((x) => (x % 1000 === 0 ? -x : null)); // sparse, like evals
    const [dx, da, db] = downsampleColumns([xs, a, b], 2000);
    expect(dx.length).toBeLessThanOrEqual(2000);
    expect(da.length).toBe(dx.length);
    expect(db.length).toBe(dx.length);
    expect(dx[dx.length - 1]).toBe(n);
    expect(da[da.length - 1]).toBe(n);
    expect(db[db.length - 1]).toBe(-n);
    expect(da).toContain(1e6);
    // Each kept x carries its own values: the columns did not shift.
    for (let i = 0; i < dx.length; i++) expect(da[i]).toBe(dx[i] === 50_000 ? 1e6 : dx[i]);
    // The sparse series (100 values) fits its share of the budget: every one of them is kept.
    expect(db.filter((v) => v !== null).length).toBe(100);
  });
});
