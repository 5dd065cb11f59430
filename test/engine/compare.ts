// compare.ts — the golden tests' shared parts: a fixture directory loaded into an engine, and how
// the engine's float32 results are compared with the float64 references.
import * as path from 'node:path';
import { expect } from 'vitest';

import { readSafetensors, type AnyTensor } from '../../src/checkpoint';
import { validateConfig } from '../../src/config/load';
import { createEngine, joinFlat } from '../../src/engine/engine';
import { importHuggingFace } from '../../src/interop';

/**
 * A fixture directory (HF config.json + model.safetensors, inputs.safetensors, expected.safetensors)
 * imported as paratrain would, in an engine shaped for its inputs' [B, T], dropout off.
 */
export async function loadGoldenDir(dir: string) {
  const hf = await importHuggingFace(dir);
  const byName = (ts: AnyTensor[]) => new Map(ts.map((t) => [t.name, t]));
  const inputs = byName((await readSafetensors(path.join(dir, 'inputs.safetensors'))).tensors);
  const expected = byName((await readSafetensors(path.join(dir, 'expected.safetensors'))).tensors);
  const [B, T] = inputs.get('input_ids')!.shape;
  const config = validateConfig({
    ...hf.config,
    model: { ...hf.config.model, seq_len: T, dropout: 0, attention_dropout: 0 },
    train: { steps: 1, micro_batch: B, lr: 1 },
  });
  const engine = createEngine(config, { allPositions: true });
  const table = engine.paramTable();
  engine.setParams(joinFlat(table, new Map(hf.params.map((p) => [p.name, p]))));
  const int = (name: string) => Int32Array.from(inputs.get(name)!.data);
  return { config, engine, table, inputs, expected, B, T, int, warnings: hf.warnings };
}

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
