// schedule.ts — learning rate as a pure function of the step: linear warm-up, then poly decay
// (NVIDIA's BERT recipe: lr·(1 − p)^0.5), linear, cosine, or constant. Pure, so resume is exact.
import type { Config } from '../config/schema';

export interface ScheduleSpec {
  lr: number;
  minLr: number;
  steps: number;
  warmupSteps: number;
  kind: Config['train']['schedule'];
  power: number;
}

export function scheduleFromConfig(c: Config): ScheduleSpec {
  return {
    lr: c.train.lr,
    minLr: c.train.min_lr,
    steps: c.train.steps,
    warmupSteps: Math.round(c.train.warmup * c.train.steps),
    kind: c.train.schedule,
    power: c.train.poly_power,
  };
}

/** Learning rate for 0-based `step` (the update that step applies). */
export function learningRate(s: ScheduleSpec, step: number): number {
  if (s.warmupSteps > 0 && step < s.warmupSteps) return (s.lr * (step + 1)) / s.warmupSteps;
  if (s.kind === 'constant') return s.lr;
  const span = Math.max(1, s.steps - s.warmupSteps);
  const p = Math.min(1, Math.max(0, (step - s.warmupSteps) / span));
  let factor: number;
  if (s.kind === 'poly') factor = Math.pow(1 - p, s.power);
  else if (s.kind === 'linear') factor = 1 - p;
  else factor = 0.5 * (1 + Math.cos(Math.PI * p));
  return s.minLr + (s.lr - s.minLr) * factor;
}
