// The launcher's merged view of a step and the tail of a worker's output kept for the report.
import { describe, expect, it } from 'vitest';

import type { StepReport } from '../../src/control/messages';
import { StepMerger } from '../../src/launch/progress';
import { LineTail, rankLogName } from '../../src/launch/worker-process';

const report = (step: number, loss: number, extra: Partial<StepReport> = {}): StepReport => ({
  step,
  totalSteps: 10,
  loss,
  losses: [
    { name: 'mlm', value: loss - 1 },
    { name: 'nsp', value: 1 },
  ],
  metrics: [],
  gradNorm: 2,
  lr: 1e-3,
  tokensPerS: 100,
  stepMs: 50,
  skipped: false,
  consumedSamples: step * 16,
  ...extra,
});

describe('merged progress', () => {
  it('merges a step once every DP rank has reported it', () => {
    const m = new StepMerger(2);
    expect(m.add(0, report(1, 4))).toBeUndefined();
    const merged = m.add(1, report(1, 6, { stepMs: 70, skipped: true }))!;
    expect(merged).toMatchObject({
      step: 1,
      loss: 5,
      losses: [
        { name: 'mlm', value: 4 },
        { name: 'nsp', value: 1 },
      ],
      tokensPerS: 200,
      stepMs: 70,
      skipped: true,
      dpRanks: 2,
    });
    expect(merged).not.toHaveProperty('evalLoss');
  });

  it('handles ranks running ahead and averages eval losses', () => {
    const m = new StepMerger(2);
    expect(m.add(0, report(1, 4))).toBeUndefined();
    expect(m.add(0, report(2, 4, { evalLoss: 3 }))).toBeUndefined();
    expect(m.add(1, report(1, 4))?.step).toBe(1);
    expect(m.add(1, report(2, 4, { evalLoss: 5 }))).toMatchObject({ step: 2, evalLoss: 4 });
  });
});

describe('worker output tail', () => {
  it('keeps the last lines across chunk boundaries', () => {
    const t = new LineTail(3);
    t.push('one\ntw');
    t.push('o\nthree\r\nfour\nfi');
    expect(t.last()).toEqual(['three', 'four', 'fi']);
    t.push('ve\n');
    expect(t.last()).toEqual(['three', 'four', 'five']);
  });

  it('caps very long lines', () => {
    const t = new LineTail(2);
    t.push('x'.repeat(10000) + '\n');
    expect(t.last()[0].length).toBeLessThanOrEqual(500);
    t.push('y'.repeat(100000));
    expect(t.last()[1].length).toBeLessThanOrEqual(500);
  });

  it('names per-rank logs with five digits', () => {
    expect(rankLogName(3)).toBe('rank-00003.log');
    expect(rankLogName(12345)).toBe('rank-12345.log');
  });
});
