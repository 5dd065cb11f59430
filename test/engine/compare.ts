// compare.ts — how the golden tests compare the engine's float32 results with float64 references.
import { expect } from 'vitest';

import type { AnyTensor } from '../../src/checkpoint';

/** ‖actual − expected‖ / ‖expected‖. */
export function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let diff = 0,
    ref = 0;
  for (let i = 0; i < expected.length; i++) {
    diff += (actual[i] - expected[i]) ** 2;
    ref += expected[i] ** 2;
  }
  return Math.sqrt(diff) / Math.max(Math.sqrt(ref), 1e-30);
}

/**
 * Every gradient `got` against `expected` (names `grad.<hf name>`): the same names and shapes, each
 * within 1e-4 relative. A gradient that is exactly 0 in theory (softmax cancels the key bias, and the
 * QA output bias: Σ_t (p_t − y_t) = 0) is ~1e-17 in PyTorch's float64 and ~1e-9 in our float32: those
 * compare absolutely.
 */
export function expectGradients(got: Map<string, AnyTensor>, expected: Map<string, AnyTensor>): void {
  const gradNames = [...expected.keys()].filter((k) => k.startsWith('grad.'));
  expect([...got.keys()].sort()).toEqual(gradNames.sort());
  for (const [name, g] of got) {
    const want = expected.get(name)!;
    expect(g.shape, name).toEqual(want.shape);
    const norm = Math.hypot(...want.data);
    if (norm < 1e-6) expect(Math.hypot(...g.data), name).toBeLessThan(1e-6);
    else expect(relativeError(g.data, want.data), name).toBeLessThan(1e-4);
  }
}
