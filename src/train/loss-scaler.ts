// loss-scaler.ts — the loss scale of mixed-precision training, and the count of skipped updates.
// The engine multiplies the loss gradient by `scale` and divides the gradients by it in the update
// (cpp/engine/engine.cpp); a step whose gradients overflow is skipped there. This decides the next
// scale from that outcome, the way Megatron-LM's and PyTorch's dynamic scalers do: halve on an
// overflow, double after `window` clean steps in a row. Every rank runs the same scaler on the same
// job-wide outcome, so the scales agree without a message. Powers of two only: scaling is then
// exact, and a run that never overflows computes bit for bit what an unscaled run does.

import type { Config } from '../config/schema';

export type LossScaleMode = 'dynamic' | 'static' | 'off';

/** What a checkpoint keeps (its manifest's training.loss_scale). */
export interface LossScaleSnapshot {
  enabled: boolean;
  scale: number;
  /** Clean steps since the scale last changed. */
  growthTracker: number;
  /** Updates skipped since step 0 (overflows and skipped non-finite losses alike). */
  skippedSteps: number;
}

export interface LossScaleOutcome {
  /** The scale the step ran with. */
  scale: number;
  /** The scale the next step runs with. */
  next: number;
  /** The step overflowed at a dynamic scale that could still go down: a routine skip, not divergence. */
  absorbed: boolean;
}

/** The mode a config asks for: auto means dynamic with fp16 and off otherwise. */
export function lossScaleMode(c: Pick<Config, 'precision' | 'loss_scale'>): LossScaleMode {
  const mode = c.loss_scale.mode;
  if (mode !== 'auto') return mode;
  return c.precision === 'fp16' ? 'dynamic' : 'off';
}

export class LossScaler {
  private scaleNow: number;
  private clean = 0;
  private skipped = 0;

  constructor(
    readonly mode: LossScaleMode,
    private readonly initial: number,
    private readonly window: number,
    private readonly min: number,
  ) {
    this.scaleNow = mode === 'off' ? 1 : initial;
  }

  static fromConfig(c: Pick<Config, 'precision' | 'loss_scale'>): LossScaler {
    const s = c.loss_scale;
    return new LossScaler(lossScaleMode(c), s.initial, s.window, s.min);
  }

  get enabled(): boolean {
    return this.mode !== 'off';
  }

  /** The scale the next step runs with. */
  get scale(): number {
    return this.scaleNow;
  }

  get skippedSteps(): number {
    return this.skipped;
  }

  /** After a step: `skipped` when the engine did not apply the update (non-finite loss or gradients). */
  update(skipped: boolean): LossScaleOutcome {
    const scale = this.scaleNow;
    if (skipped) {
      this.skipped += 1;
      this.clean = 0;
      const absorbed = this.mode === 'dynamic' && scale > this.min;
      if (absorbed) this.scaleNow = Math.max(scale / 2, this.min);
      return { scale, next: this.scaleNow, absorbed };
    }
    if (this.mode === 'dynamic') {
      this.clean += 1;
      if (this.clean >= this.window) {
        this.clean = 0;
        this.scaleNow = Math.min(scale * 2, MAX_LOSS_SCALE);
      }
    }
    return { scale, next: this.scaleNow, absorbed: false };
  }

  snapshot(): LossScaleSnapshot {
    return { enabled: this.enabled, scale: this.scaleNow, growthTracker: this.clean, skippedSteps: this.skipped };
  }

  /**
   * Continues a checkpoint's state. A checkpoint saved with scaling on seeds the scale and its
   * tracker when this run scales dynamically too; the skipped count always carries over.
   */
  restore(saved: LossScaleSnapshot): void {
    this.skipped = saved.skippedSteps;
    if (this.mode === 'dynamic' && saved.enabled) {
      this.scaleNow = Math.min(Math.max(saved.scale, this.min), MAX_LOSS_SCALE);
      this.clean = saved.growthTracker;
    }
  }
}

/** The largest power of two below fp32's overflow: the engine refuses more. */
export const MAX_LOSS_SCALE = 2 ** 127;
