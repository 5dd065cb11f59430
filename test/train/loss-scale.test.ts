// Loss scaling: the scaler's rules, and real runs through the CLI. Scaling by a power of two is
// exact, so a run with a scale that never overflows logs exactly the losses and gradient norms of
// an unscaled run. A regression task with targets of a million makes gradients overflow fp32 at
// large scales: the dynamic scaler must skip those updates (the optimizer's step count says how
// many were applied), halve until the gradients fit, double after `window` clean steps, keep its
// state in the checkpoint, and continue from it exactly.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { LossScaler } from '../../src/train/loss-scaler';
import { paratrain, paratrainOk as ok, tiny, tmp } from '../launch/train-harness';

type Line = Record<string, unknown> & { step?: number; event?: string };

function records(runDir: string): Line[] {
  return fs
    .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Line);
}

/** The step lines (not events), last record of each step. */
function steps(runDir: string): Line[] {
  const byStep = new Map<number, Line>();
  for (const r of records(runDir))
    if (r.event === undefined && typeof r.step === 'number' && typeof r.loss === 'number') byStep.set(r.step, r);
  return [...byStep.values()].sort((a, b) => a.step! - b.step!);
}

describe('LossScaler', () => {
  it('dynamic: halves on an overflow, doubles after `window` clean steps, never below min', () => {
    const s = new LossScaler('dynamic', 8, 2, 2);
    expect(s.scale).toBe(8);
    expect(s.update(true)).toEqual({ scale: 8, next: 4, absorbed: true });
    expect(s.update(true)).toEqual({ scale: 4, next: 2, absorbed: true });
    // At the minimum an overflow is not absorbed: the trainer applies train.on_nan.
    expect(s.update(true)).toEqual({ scale: 2, next: 2, absorbed: false });
    expect(s.update(false).next).toBe(2);
    expect(s.update(false).next).toBe(4); // the second clean step in a row
    expect(s.update(false).next).toBe(4);
    expect(s.update(true).next).toBe(2); // an overflow restarts the count
    expect(s.update(false).next).toBe(2);
    expect(s.update(false).next).toBe(4);
    expect(s.snapshot()).toEqual({ enabled: true, scale: 4, growthTracker: 0, skippedSteps: 4 });
  });

  it('static keeps its scale and off is 1; both count skipped updates', () => {
    const st = new LossScaler('static', 1024, 2, 1);
    expect(st.update(true)).toEqual({ scale: 1024, next: 1024, absorbed: false });
    for (let i = 0; i < 5; i++) st.update(false);
    expect(st.scale).toBe(1024);
    const off = new LossScaler('off', 65536, 1000, 1);
    expect(off.scale).toBe(1);
    expect(off.enabled).toBe(false);
    off.update(true);
    expect(off.snapshot()).toEqual({ enabled: false, scale: 1, growthTracker: 0, skippedSteps: 1 });
  });

  it('auto is dynamic for fp16 only; restore continues a saved dynamic state', () => {
    const cfg = (precision: 'fp32' | 'bf16' | 'fp16') => ({
      precision,
      loss_scale: { mode: 'auto' as const, initial: 65536, window: 1000, min: 1 },
    });
    expect(LossScaler.fromConfig(cfg('fp16')).mode).toBe('dynamic');
    expect(LossScaler.fromConfig(cfg('bf16')).mode).toBe('off');
    expect(LossScaler.fromConfig(cfg('fp32')).mode).toBe('off');
    const s = LossScaler.fromConfig(cfg('fp16'));
    s.restore({ enabled: true, scale: 256, growthTracker: 999, skippedSteps: 7 });
    expect(s.update(false).next).toBe(512);
    expect(s.skippedSteps).toBe(7);
    // A run without scaling keeps only the count of a scaled checkpoint.
    const off = LossScaler.fromConfig(cfg('fp32'));
    off.restore({ enabled: true, scale: 256, growthTracker: 3, skippedSteps: 7 });
    expect(off.scale).toBe(1);
    expect(off.skippedSteps).toBe(7);
  });
});

describe('a scale that never overflows changes nothing', () => {
  const runs = { off: tmp(), fixed: tmp(), dynamic: tmp() };
  beforeAll(() => {
    const common = { 'train.steps': 6, 'optimizer.name': 'lamb' };
    ok(['train', ...tiny('gpt', runs.off, common)]);
    ok(['train', ...tiny('gpt', runs.fixed, { ...common, 'loss_scale.mode': 'static', 'loss_scale.initial': 1024 })]);
    ok([
      'train',
      ...tiny('gpt', runs.dynamic, {
        ...common,
        'loss_scale.mode': 'dynamic',
        'loss_scale.initial': 2 ** 20,
        'loss_scale.window': 2,
      }),
    ]);
  }, 240_000);

  it('static 2^10 and dynamic from 2^20 log the unscaled run’s losses and gradient norms bit for bit', () => {
    const base = steps(runs.off);
    expect(base).toHaveLength(6);
    expect(base[0].loss_scale).toBeUndefined();
    for (const run of [runs.fixed, runs.dynamic]) {
      const got = steps(run);
      expect(got.map((r) => [r.loss, r.grad_norm])).toEqual(base.map((r) => [r.loss, r.grad_norm]));
      expect(got.every((r) => r.skipped_steps === 0)).toBe(true);
    }
    expect(steps(runs.fixed).map((r) => r.loss_scale)).toEqual([1024, 1024, 1024, 1024, 1024, 1024]);
    // Doubling after every second clean step.
    expect(steps(runs.dynamic).map((r) => Math.log2(r.loss_scale as number))).toEqual([20, 20, 21, 21, 22, 22]);
  });
});

describe('gradients that overflow', () => {
  const data = tmp();
  const whole = tmp();
  const resumed = tmp();
  const trainFile = path.join(data, 'targets.jsonl');
  const run = (dir: string, extra: Record<string, string | number> = {}) =>
    tiny('bert', dir, {
      'model.seq_len': 16,
      'train.micro_batch': 8,
      'train.steps': 40,
      'task.name': 'text-classification',
      'task.regression': 'true',
      'task.train': trainFile,
      'optimizer.name': 'adamw',
      'train.lr': 0.001,
      'loss_scale.mode': 'dynamic',
      'loss_scale.initial': 2 ** 127,
      'loss_scale.window': 4,
      'checkpoint.every': 20,
      ...extra,
    });

  beforeAll(() => {
    const filler = ['the', 'whale', 'ship', 'sea', 'captain', 'was', 'very', 'and', 'of', 'a', 'day', 'night'];
    const lines = Array.from({ length: 64 }, (_, i) => {
      const text = Array.from({ length: 6 }, (_, j) => filler[(i * 7 + j * 5) % filler.length]).join(' ');
      return JSON.stringify({ text, label: 1e6 * (1 + (i % 3)) }); // MSE gradients of order 1e6
    });
    fs.writeFileSync(trainFile, lines.join('\n') + '\n');
    ok(['train', ...run(whole)]);
    // The same run stopped after its step-20 checkpoint, then resumed.
    ok(['train', ...run(resumed, { 'train.steps': 20 })]);
    ok(['train', ...run(resumed), '--resume', 'auto']);
  }, 240_000);

  it('skips each overflowing update, halving the scale, and doubles it after `window` clean steps', () => {
    const lines = steps(whole);
    expect(lines).toHaveLength(40);
    const events = records(whole).filter((r) => r.event === 'loss-scale');
    expect(events.length).toBeGreaterThan(5);
    expect(events[0]).toMatchObject({ step: 1, loss_scale: 2 ** 127, next_loss_scale: 2 ** 126, skipped_steps: 1 });
    const overflowed = new Set(events.map((e) => e.step));
    let skipped = 0;
    let clean = 0;
    for (let i = 0; i < lines.length; i++) {
      const r = lines[i];
      const scale = r.loss_scale as number;
      if (overflowed.has(r.step)) {
        skipped += 1;
        clean = 0;
        expect(r.grad_norm).toBeNull(); // not finite: JSON writes null
        if (i + 1 < lines.length) expect(lines[i + 1].loss_scale).toBe(scale / 2);
      } else {
        clean += 1;
        expect(Number.isFinite(r.grad_norm)).toBe(true);
        if (i + 1 < lines.length) expect(lines[i + 1].loss_scale).toBe(clean === 4 ? scale * 2 : scale);
        if (clean === 4) clean = 0;
      }
      expect(r.skipped_steps).toBe(skipped);
    }
    // The scale settled where the gradients fit, and it was probed again above that.
    expect(lines.filter((r) => !overflowed.has(r.step)).length).toBeGreaterThan(8);
    expect(events.some((e) => (e.step as number) > events[0].step! + 25)).toBe(true);
  });

  it('keeps the scaler in the checkpoint; the optimizer applied only the clean steps', () => {
    const r = paratrain(['checkpoint', 'inspect', path.join(whole, 'checkpoints', 'step-0000040'), '--json']);
    expect(r.code, r.stderr).toBe(0);
    const m = JSON.parse(r.stdout) as {
      optimizer: { step: number };
      training: { lossScale: { enabled: boolean; scale: number; growthTracker: number; skippedSteps: number } };
    };
    const last = steps(whole).at(-1)!;
    const skipped = last.skipped_steps as number;
    expect(m.optimizer.step).toBe(40 - skipped);
    expect(m.training.lossScale.enabled).toBe(true);
    expect(m.training.lossScale.skippedSteps).toBe(skipped);
    // The saved scale is the next step's: the last one's, or twice it when that step completed a window.
    const tracker = m.training.lossScale.growthTracker;
    expect(tracker).toBeLessThan(4);
    expect(m.training.lossScale.scale).toBe((last.loss_scale as number) * (tracker === 0 ? 2 : 1));
  });

  it('a run resumed from its step-20 checkpoint continues exactly: losses, scales, skipped counts', () => {
    const pick = (dir: string) =>
      steps(dir)
        .filter((r) => r.step! > 20)
        .map((r) => [r.step, r.loss, r.grad_norm, r.loss_scale, r.skipped_steps]);
    expect(pick(resumed)).toHaveLength(20);
    expect(pick(resumed)).toEqual(pick(whole));
  });
});

describe('loss_scale settings that cannot work', () => {
  it('a scale that is not a power of two, min above initial, and fp16 on the CPU are refused before any step', () => {
    const dir = tmp();
    for (const [sets, what] of [
      [{ 'loss_scale.initial': 1000 }, 'loss_scale.initial'],
      [{ 'loss_scale.mode': 'dynamic', 'loss_scale.initial': 4, 'loss_scale.min': 8 }, 'loss_scale.min'],
      [{ precision: 'fp16' }, 'precision'],
    ] as const) {
      const r = paratrain(['train', ...tiny('gpt', dir, sets)]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(what);
      expect(fs.existsSync(path.join(dir, 'log.jsonl'))).toBe(false);
    }
  });
});
