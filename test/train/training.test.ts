// Training in one process on the bundled corpus with a tiny model of every family: the loss falls, a
// seed reproduces bitwise, and 20 steps in one go equal 10 + resume + 10 bitwise.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { loadCheckpoint, readSafetensors } from '../../src/checkpoint';
import { validateConfig } from '../../src/config/load';
import type { ModelFamily } from '../../src/config/schema';
import { train } from '../../src/train/trainer';

const cacheDir = path.join(os.tmpdir(), 'paratrain-test-cache');

const FAMILIES = ['bert', 'gpt', 'roberta', 'albert', 'electra'] as const;
const LAMB: ReadonlySet<ModelFamily> = new Set(['bert', 'albert']);

function tinyConfig(
  arch: ModelFamily,
  runDir: string,
  extra: { steps?: number; every?: number; dropout?: number; checkpoint?: Record<string, unknown> } = {},
) {
  return validateConfig({
    model: {
      arch,
      layers: 2,
      hidden: 64,
      heads: 4,
      ffn: 128,
      vocab_size: 1000,
      seq_len: 64,
      dropout: extra.dropout ?? 0.1,
      ...(arch === 'albert' || arch === 'electra' ? { embedding_size: 32 } : {}),
      ...(arch === 'electra' ? { generator: { hidden_fraction: 0.5, heads: 2 } } : {}),
    },
    train: {
      steps: extra.steps ?? 20,
      micro_batch: 8,
      grad_accum: 2,
      lr: LAMB.has(arch) ? 0.02 : 0.01,
      warmup: 0.1,
      threads: 2,
    },
    optimizer: { name: LAMB.has(arch) ? 'lamb' : 'adamw' },
    checkpoint: { every: extra.every ?? 0, ...extra.checkpoint },
    run: { dir: runDir },
    data: { max_documents: 40, cache_dir: cacheDir },
  });
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-train-'));

describe.each(FAMILIES)('%s', (arch) => {
  it('loss falls on the bundled corpus, and the same seed gives bitwise-identical losses', async () => {
    const a = await train(tinyConfig(arch, tmp(), { steps: 60 }), { quiet: true });
    const b = await train(tinyConfig(arch, tmp(), { steps: 60 }), { quiet: true });
    const losses = a.steps.map((s) => s.loss);
    expect(b.steps.map((s) => s.loss)).toEqual(losses);
    const start = losses.slice(0, 3).reduce((x, y) => x + y) / 3;
    const end = losses.slice(-5).reduce((x, y) => x + y) / 5;
    // From a uniform guess (≈ ln 1000 = 6.9 nats, + ln 2 for a sentence-pair head, + 50·ln 2 for
    // ELECTRA's replaced-token detection) to below it.
    expect(end).toBeLessThan(start - 0.5);
    expect(a.evals.length).toBeGreaterThan(0);
    expect(a.evals[a.evals.length - 1].loss).toBeLessThan(start - 0.5); // held-out text, too
  });
});

it.each(FAMILIES)('%s: 20 steps in one go equal 10 + resume + 10, bitwise (dropout on)', async (arch) => {
  const whole = tmp();
  const full = await train(tinyConfig(arch, whole, { steps: 20, every: 10 }), { quiet: true });
  const resumed = tmp();
  const mid = path.join(whole, 'checkpoints', 'step-0000010');
  const second = await train(tinyConfig(arch, resumed, { steps: 20 }), { quiet: true, resume: mid });
  expect(second.steps.map((s) => s.step)).toEqual(Array.from({ length: 10 }, (_, i) => i + 11));
  expect(second.steps.map((s) => s.loss)).toEqual(full.steps.slice(10).map((s) => s.loss));
  expect(second.steps.map((s) => s.losses)).toEqual(full.steps.slice(10).map((s) => s.losses));
  expect(second.steps.map((s) => s.gradNorm)).toEqual(full.steps.slice(10).map((s) => s.gradNorm));
  const a = await readSafetensors(path.join(whole, 'checkpoints', 'step-0000020', 'model-tp00-dp00.safetensors'));
  const b = await readSafetensors(path.join(resumed, 'checkpoints', 'step-0000020', 'model-tp00-dp00.safetensors'));
  expect(b.tensors.map((t) => t.name)).toEqual(a.tensors.map((t) => t.name));
  a.tensors.forEach((t, i) =>
    expect(Buffer.from(b.tensors[i].data.buffer).equals(Buffer.from(t.data.buffer))).toBe(true),
  );
});

it('async saves every few milliseconds (checkpoint.every_minutes) commit while training goes on; the run ends where a run without them ends', async () => {
  const plain = tmp();
  const without = await train(tinyConfig('gpt', plain, { steps: 40 }), { quiet: true });
  const busy = tmp();
  const withSaves = await train(
    tinyConfig('gpt', busy, { steps: 40, checkpoint: { every_minutes: 0.0003, async: true, keep: 2 } }),
    { quiet: true },
  );
  // Time-triggered saves at steps that are no multiple of anything, plus the final one.
  expect(withSaves.saves.length).toBeGreaterThan(2);
  expect(withSaves.saves.at(-1)!.step).toBe(40);
  // The step loop waited only for the host copy, never for a write.
  for (const s of withSaves.saves.slice(0, -1)) expect(s.blockedMs).toBeLessThan(s.totalMs);
  expect(withSaves.steps.map((s) => s.loss)).toEqual(without.steps.map((s) => s.loss));
  const listed = fs.readdirSync(path.join(busy, 'checkpoints')).filter((n) => n.startsWith('step-'));
  expect(listed.length).toBe(2); // keep: 2
  const a = await loadCheckpoint(path.join(plain, 'checkpoints'));
  const b = await loadCheckpoint(path.join(busy, 'checkpoints'));
  a.params.forEach((t, i) =>
    expect(Buffer.from(b.params[i].data.buffer).equals(Buffer.from(t.data.buffer))).toBe(true),
  );
});
