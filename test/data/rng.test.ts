import { describe, expect, it } from 'vitest';
import { RandomStream, randomFloat, randomUint32 } from '../../src/data/rng';
import { EpochShuffle } from '../../src/data/sample-order';

describe('counter-based RNG', () => {
  it('is a pure function of its key', () => {
    expect(randomUint32(42, 1, 7)).toBe(randomUint32(42, 1, 7));
    expect(randomUint32(42, 1, 7)).not.toBe(randomUint32(42, 1, 8));
    expect(randomUint32(42, 1, 7)).not.toBe(randomUint32(42, 7, 1));
    expect(randomUint32(42, 1, 7)).not.toBe(randomUint32(43, 1, 7));
    // Counters beyond 2^32 are distinct keys, not wrapped.
    expect(randomUint32(1, 2 ** 32)).not.toBe(randomUint32(1, 0));
  });

  it('streams draw exactly the pure function of (prefix..., draw index)', () => {
    const stream = new RandomStream(9, 3, 1234);
    for (let i = 0; i < 5; i++) expect(stream.nextUint32()).toBe(randomUint32(9, 3, 1234, i));
  });

  it('gives roughly uniform floats and integers', () => {
    const buckets = new Array<number>(10).fill(0);
    const n = 100000;
    let sum = 0;
    let smallest = 1;
    let largest = 0;
    for (let i = 0; i < n; i++) {
      const u = randomFloat(5, i);
      smallest = Math.min(smallest, u);
      largest = Math.max(largest, u);
      sum += u;
      buckets[Math.floor(u * 10)]++;
    }
    expect(smallest).toBeGreaterThanOrEqual(0);
    expect(largest).toBeLessThan(1);
    expect(sum / n).toBeCloseTo(0.5, 2);
    for (const count of buckets) expect(Math.abs(count - n / 10)).toBeLessThan((n / 10) * 0.05);

    const stream = new RandomStream(1);
    const counts = new Array<number>(7).fill(0);
    for (let i = 0; i < 70000; i++) counts[stream.nextInt(7)]++;
    for (const count of counts) expect(Math.abs(count - 10000)).toBeLessThan(500);
  });

  it('rejects keys that are not safe integers', () => {
    expect(() => randomUint32(1.5)).toThrow(RangeError);
  });
});

describe('EpochShuffle', () => {
  it('visits every item once per epoch, in a different order each epoch', () => {
    const shuffle = new EpochShuffle(50, 7, 1, 0);
    const epoch0 = Array.from({ length: 50 }, (_, i) => shuffle.itemForSample(i));
    const epoch1 = Array.from({ length: 50 }, (_, i) => shuffle.itemForSample(50 + i));
    expect([...epoch0].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect([...epoch1].sort((a, b) => a - b)).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(epoch1).not.toEqual(epoch0);
    // Random access agrees with sequential access.
    expect(new EpochShuffle(50, 7, 1, 0).itemForSample(73)).toBe(epoch1[23]);
  });
});
