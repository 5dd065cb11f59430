// The engine's memory estimate: exact parameter bytes (the engine's own table), activations close
// to what a real engine allocates (measured in a fresh process), and the refusal, naming the keys,
// of a model the machine cannot hold.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { validateConfig, type ConfigError } from '../../src/config/load';
import type { ModelFamily } from '../../src/config/schema';
import { createEngine, paramTableFor } from '../../src/engine/engine';
import { checkEngineMemory, estimateEngineMemory } from '../../src/engine/memory';

const dist = path.join(__dirname, '..', '..', 'dist');

const tiny = (arch: ModelFamily, extra: Record<string, unknown> = {}) =>
  validateConfig({
    model: {
      arch,
      layers: 2,
      hidden: 32,
      heads: 4,
      ffn: 64,
      vocab_size: 300,
      seq_len: 16,
      ...(arch === 'albert' || arch === 'electra' ? { embedding_size: 16 } : {}),
      ...(arch === 'electra' ? { generator: { hidden_fraction: 0.5, heads: 4 } } : {}),
      ...extra,
    },
    train: { steps: 1, micro_batch: 2, lr: 0.01, threads: 1 },
  });

function refusal(f: () => unknown): ConfigError {
  try {
    f();
  } catch (e) {
    return e as ConfigError;
  }
  throw new Error('expected a refusal');
}

describe('memory estimate', () => {
  it.each(['bert', 'gpt', 'roberta', 'albert', 'electra'] as const)(
    '%s: parameter bytes are exactly the engine’s, and state is 7× them',
    (arch) => {
      const c = tiny(arch);
      const est = estimateEngineMemory(c, 1);
      const engine = createEngine(c);
      expect(est.parameters).toBe(4 * engine.numParams());
      expect(est.gradients + est.optimizerState + est.checkpointCopy).toBe(6 * est.parameters);
      expect(est.activations).toBeGreaterThan(0);
      // Tensor parallelism: each rank holds its shard's parameters.
      const tp2 = paramTableFor(c, 0, 2).reduce((n, p) => n + p.numel, 0);
      expect(estimateEngineMemory(c, 2).parameters).toBe(4 * tp2);
    },
  );

  it('is within 25% of what a real engine allocates (a fresh process’s resident memory)', () => {
    const shapes = [
      ['activations dominate', ['train.micro_batch=32', 'model.seq_len=256']],
      ['parameters dominate', ['model.layers=8', 'model.hidden=512', 'model.heads=8', 'model.ffn=2048']],
    ] as const;
    for (const [what, sets] of shapes) {
      const program = `
        const { loadConfig } = require(${JSON.stringify(path.join(dist, 'config', 'load.js'))});
        const { estimateEngineMemory } = require(${JSON.stringify(path.join(dist, 'engine', 'memory.js'))});
        const { createEngine } = require(${JSON.stringify(path.join(dist, 'engine', 'engine.js'))});
        const c = loadConfig({ config: 'bert-mini', set: ${JSON.stringify([...sets, 'train.threads=1'])} });
        const e = estimateEngineMemory(c);
        const before = process.memoryUsage().rss;
        createEngine(c).initParams(1);
        const grown = process.memoryUsage().rss - before;
        process.stdout.write(JSON.stringify({ engine: e.total - e.checkpointCopy, grown }));`;
      const r = spawnSync(process.execPath, ['-e', program], { encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
      const { engine, grown } = JSON.parse(r.stdout) as { engine: number; grown: number };
      expect(grown / engine, `${what}: estimated ${engine} bytes, the engine took ${grown}`).toBeGreaterThan(0.75);
      expect(grown / engine, `${what}: estimated ${engine} bytes, the engine took ${grown}`).toBeLessThan(1.25);
    }
  });

  it.each(['bert', 'gpt', 'electra'] as const)(
    '%s: the engine’s own report counts its buffers: state exactly, activations as estimated',
    (arch) => {
      const c = tiny(arch, { seq_len: 64 });
      const engine = createEngine(c);
      const report = engine.memoryReport();
      const est = estimateEngineMemory(c, 1);
      expect(report.params).toBe(4 * engine.numParams());
      expect(report.grads).toBe(report.params);
      expect(report.optimizer).toBe(2 * report.params); // m and v
      expect(report.deviceUsed).toBeUndefined(); // the CPU addon
      // The estimate follows the same buffers (src/engine/memory.ts) without building them; it also
      // counts a few the engine sizes to zero for some shapes (a second ∂top, the embedding norm's
      // gradient), which shows at this tiny size (measured 0.88–0.93).
      expect(report.activations / est.activations).toBeGreaterThan(0.85);
      expect(report.activations / est.activations).toBeLessThan(1.05);
    },
  );

  it('device: cuda — refuses what one GPU cannot hold (state and activations there, the copy on the host)', () => {
    const c = { ...tiny('gpt', { seq_len: 4096 }), device: 'cuda' as const };
    const est = estimateEngineMemory(c, 1);
    const onGpu = est.parameters + est.gradients + est.optimizerState + est.activations + 2 ** 30;
    expect(checkEngineMemory(c, { gpu: { bytes: onGpu, count: 1 } }).total).toBe(est.total);
    const e = refusal(() => checkEngineMemory(c, { gpu: { bytes: onGpu - 1, count: 1 } }));
    expect(e.code).toBe('ERR_CONFIG');
    expect(e.message).toMatch(/^each GPU would need about [\d.]+ GB, and it has [\d.]+ GB:/);
    expect(e.message).toMatch(/per worker: parameters .*, activations .*, CUDA runtime 1\.1 GB/);
    expect(e.message).toMatch(/lower train\.micro_batch \(2\) or model\.seq_len \(4096\) for the activations/);
    // Four workers on two GPUs: two share each card.
    const shared = refusal(() => checkEngineMemory(c, { processes: 4, gpu: { bytes: onGpu * 1.5, count: 2 } }));
    expect(shared.message).toMatch(/^each GPU, shared by 2 workers, would need about/);
    expect(checkEngineMemory(c, { processes: 4, gpu: { bytes: onGpu * 1.5, count: 4 } }).total).toBe(est.total);
  });

  it('refuses what the machine cannot hold, naming the keys, the biggest part first', () => {
    const big = tiny('bert', { hidden: 65536, heads: 64, ffn: 65536 });
    const e = refusal(() => checkEngineMemory(big));
    expect(e.code).toBe('ERR_CONFIG');
    expect(e.message).toMatch(/^the engine would need about [\d.]+ TB of memory, and this machine has [\d.]+ GB:/);
    expect(e.message).toMatch(/per process: parameters [\d.]+ GB, gradients .*, activations /);
    expect(e.message).toMatch(/lower model\.layers \(2\), model\.hidden \(65536\), model\.ffn \(65536\)/);

    // Activations first when they are the bigger part; a node's workers count together.
    const c = tiny('gpt', { seq_len: 4096 });
    const est = checkEngineMemory(c);
    const four = refusal(() => checkEngineMemory(c, { processes: 4, machineBytes: est.total * 3 }));
    expect(four.message).toMatch(/^4 workers on this machine would need about/);
    expect(four.message).toMatch(/lower train\.micro_batch \(2\) or model\.seq_len \(4096\) for the activations/);
    expect(checkEngineMemory(c, { processes: 3, machineBytes: est.total * 3 }).total).toBe(est.total);
  });
});
