import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  checkpointDirFor,
  CheckpointData,
  listCheckpoints,
  loadCheckpoint,
  readCheckpointManifest,
  saveCheckpoint,
  verifyCheckpoint,
} from '../../src/checkpoint';
import { decodeManifest, encodeManifest } from '../../src/checkpoint';
import { NamedTensor, numelOf } from '../../src/checkpoint';
import { randomValues } from './fake-engine';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-ckpt-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

function tensor(name: string, shape: number[], seed: number): NamedTensor {
  return { name, shape, data: randomValues(numelOf(shape), seed) };
}

function makeCkpt(step: number): CheckpointData {
  const params = [
    tensor('embeddings.word.weight', [11, 4], step * 7 + 1),
    tensor('layers.0.attn.q.weight', [4, 4], step * 7 + 2),
    tensor('layers.0.attn.q.bias', [4], step * 7 + 3),
    tensor('final_norm.weight', [4], step * 7 + 4),
  ];
  const state = params.flatMap((p, i) => [
    tensor(`exp_avg.${p.name}`, p.shape, step * 13 + i),
    tensor(`exp_avg_sq.${p.name}`, p.shape, step * 17 + i),
  ]);
  return {
    step,
    consumedSamples: step * 32,
    config: { model: { arch: 'gpt', hidden: 4, layers: 1 }, train: { lr: 0.001, steps: 100 }, name: 'tiny' },
    arch: 'gpt',
    optimizer: { name: 'adamw', step, state },
    params,
    tokenizerJson: JSON.stringify({ version: '1.0', model: { type: 'BPE', vocab: { a: 0 } } }),
    extra: { rng: [1, 2, 3], lossScale: 65536 },
  };
}

async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}

function expectSame(loaded: CheckpointData, saved: CheckpointData): void {
  expect(loaded.step).toBe(saved.step);
  expect(loaded.consumedSamples).toBe(saved.consumedSamples);
  expect(loaded.config).toEqual(saved.config);
  expect(loaded.arch).toBe(saved.arch);
  expect(loaded.optimizer.name).toBe(saved.optimizer.name);
  expect(loaded.optimizer.step).toBe(saved.optimizer.step);
  expect(loaded.tokenizerJson).toBe(saved.tokenizerJson);
  expect(loaded.extra).toEqual(saved.extra);
  const cmp = (a: NamedTensor[], b: NamedTensor[]): void => {
    expect(a.map((t) => t.name)).toEqual(b.map((t) => t.name));
    a.forEach((t, i) => {
      expect(t.shape).toEqual(b[i]?.shape);
      expect(t.data).toBeInstanceOf(Float32Array);
      expect(Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength)).toEqual(
        Buffer.from(
          (b[i] as NamedTensor).data.buffer,
          (b[i] as NamedTensor).data.byteOffset,
          (b[i] as NamedTensor).data.byteLength,
        ),
      );
    });
  };
  cmp(loaded.params, saved.params);
  cmp(loaded.optimizer.state, saved.optimizer.state);
}

describe('checkpoint save/load', () => {
  it('names step directories with 7 zero-padded digits', () => {
    expect(checkpointDirFor('/r', 42)).toBe(path.join('/r', 'step-0000042'));
    expect(checkpointDirFor('/r', 123456789)).toBe(path.join('/r', 'step-123456789'));
    expect(() => checkpointDirFor('/r', -1)).toThrow();
  });

  it('round-trips through a checkpoints root and a step directory', async () => {
    const root = path.join(tmp, 'ckpts');
    const ckpt = makeCkpt(100);
    const saved = await saveCheckpoint(root, ckpt);
    expect(saved.dir).toBe(checkpointDirFor(root, 100));
    expect(fs.readdirSync(saved.dir).sort()).toEqual([
      'manifest.pb',
      'model-tp00-dp00.safetensors',
      'optimizer-tp00-dp00.safetensors',
      'tokenizer.json',
    ]);
    expect(fs.readFileSync(path.join(root, 'latest'), 'utf8').trim()).toBe('step-0000100');
    expect(fs.readdirSync(root).sort()).toEqual(['latest', 'step-0000100']);

    const fromRoot = await loadCheckpoint(root);
    expectSame(fromRoot, ckpt);
    expect(fromRoot.dir).toBe(saved.dir);
    const fromDir = await loadCheckpoint(saved.dir);
    expectSame(fromDir, ckpt);

    const m = fromDir.manifest;
    expect(m.formatVersion).toBe(2);
    expect(m.arch).toBe('gpt');
    expect(m.layout).toEqual({ tensorParallel: 1, dataParallel: 1 });
    expect(m.files.map((f) => f.path)).toEqual([
      'model-tp00-dp00.safetensors',
      'optimizer-tp00-dp00.safetensors',
      'tokenizer.json',
    ]);
    expect(m.tokenizerFile).toBe('tokenizer.json');
    const q = m.tensors.find((t) => t.name === 'layers.0.attn.q.weight');
    expect(q).toMatchObject({
      dtype: 'F32',
      globalShape: [4, 4],
      file: 'model-tp00-dp00.safetensors',
      role: 'parameter',
    });
    expect(q?.slice).toEqual([
      { start: 0, length: 4 },
      { start: 0, length: 4 },
    ]);
    expect(q?.fileSha256).toBe(m.files[0]?.sha256);
    expect(m.tensors.filter((t) => t.role === 'optimizer_state')).toHaveLength(8);
    expect(JSON.parse(m.configJson)).toEqual(ckpt.config);
    expect(m.createdUnixMs).toBeGreaterThan(0);
  });

  it('saves without tokenizer/extra and can skip the optimizer on load', async () => {
    const root = path.join(tmp, 'r');
    const ckpt = makeCkpt(3);
    delete ckpt.tokenizerJson;
    delete ckpt.extra;
    await saveCheckpoint(root, ckpt);
    const loaded = await loadCheckpoint(root, { loadOptimizer: false });
    expect(loaded.tokenizerJson).toBeUndefined();
    expect(loaded.extra).toBeUndefined();
    expect(loaded.optimizer.state).toEqual([]);
    expect(loaded.params).toHaveLength(4);
  });

  it('re-saving the same step replaces it', async () => {
    const root = path.join(tmp, 'r');
    await saveCheckpoint(root, makeCkpt(5));
    const again = makeCkpt(5);
    again.consumedSamples = 999;
    await saveCheckpoint(root, again);
    expect((await loadCheckpoint(root)).consumedSamples).toBe(999);
  });

  it('round-trips large step / sample counts through the manifest', () => {
    const big = Number.MAX_SAFE_INTEGER;
    const bytes = encodeManifest({
      formatVersion: 1,
      paratrainVersion: 'x',
      step: big,
      consumedSamples: 2 ** 40,
      configJson: '{}',
      arch: 'bert',
      layout: { tensorParallel: 2, dataParallel: 4 },
      optimizer: { name: 'adamw', step: 7 },
      tensors: [],
      files: [],
      tokenizerFile: '',
      createdUnixMs: 1,
      extraJson: '',
    });
    const m = decodeManifest(bytes, 'mem');
    expect(m.step).toBe(big);
    expect(m.consumedSamples).toBe(2 ** 40);
    expect(m.layout).toEqual({ tensorParallel: 2, dataParallel: 4 });
  });
});

describe('checkpoint corruption', () => {
  it('a flipped byte in a shard is reported with the file name', async () => {
    const root = path.join(tmp, 'r');
    const { dir } = await saveCheckpoint(root, makeCkpt(1));
    for (const name of ['model-tp00-dp00.safetensors', 'optimizer-tp00-dp00.safetensors']) {
      const file = path.join(dir, name);
      const orig = fs.readFileSync(file);
      const bad = Buffer.from(orig);
      bad[bad.length - 5] = (bad[bad.length - 5] as number) ^ 0x40;
      fs.writeFileSync(file, bad);
      const err = await rejection(loadCheckpoint(root));
      expect(err.code).toBe('ERR_CHECKPOINT_CORRUPT');
      expect(err.message).toContain(file);
      expect(err.message).toMatch(/sha256 mismatch/);
      await expect(verifyCheckpoint(dir)).rejects.toMatchObject({ code: 'ERR_CHECKPOINT_CORRUPT' });
      // verify:false skips hashing, so the flipped value loads (documented trade-off).
      await expect(loadCheckpoint(dir, { verify: false })).resolves.toBeTruthy();
      fs.writeFileSync(file, orig);
    }
    await expect(verifyCheckpoint(root)).resolves.toMatchObject({ dir });
  });

  it('a truncated or missing file is reported precisely', async () => {
    const root = path.join(tmp, 'r');
    const { dir } = await saveCheckpoint(root, makeCkpt(1));
    const model = path.join(dir, 'model-tp00-dp00.safetensors');
    const orig = fs.readFileSync(model);
    fs.writeFileSync(model, orig.subarray(0, orig.length - 10));
    let err = await rejection(loadCheckpoint(dir));
    expect(err.code).toBe('ERR_CHECKPOINT_CORRUPT');
    expect(err.message).toContain(model);
    expect(err.message).toMatch(/truncated: \d+ bytes, manifest says \d+/);
    fs.writeFileSync(model, orig);

    const tok = path.join(dir, 'tokenizer.json');
    fs.rmSync(tok);
    err = await rejection(loadCheckpoint(dir));
    expect(err.code).toBe('ERR_CHECKPOINT_CORRUPT');
    expect(err.message).toContain(tok);
    expect(err.message).toMatch(/missing/);
  });

  it('a garbage manifest is reported as corrupt', async () => {
    const root = path.join(tmp, 'r');
    const { dir } = await saveCheckpoint(root, makeCkpt(1));
    fs.writeFileSync(path.join(dir, 'manifest.pb'), Buffer.from([0xff, 0xff, 0xff, 0xff]));
    const err = await rejection(loadCheckpoint(dir));
    expect(err.code).toBe('ERR_CHECKPOINT_CORRUPT');
    expect(err.message).toContain(path.join(dir, 'manifest.pb'));
  });

  it('a directory without manifest is not a checkpoint; the root falls back to the previous one', async () => {
    const root = path.join(tmp, 'r');
    await saveCheckpoint(root, makeCkpt(10));
    const { dir: d20 } = await saveCheckpoint(root, makeCkpt(20));
    // Simulate a crash before the commit of step 20.
    fs.rmSync(path.join(d20, 'manifest.pb'));
    expect(fs.readFileSync(path.join(root, 'latest'), 'utf8').trim()).toBe('step-0000020');

    const loaded = await loadCheckpoint(root);
    expect(loaded.step).toBe(10);
    expectSame(loaded, makeCkpt(10));

    const err = await rejection(loadCheckpoint(d20));
    expect(err.code).toBe('ERR_CHECKPOINT_NOT_FOUND');
    expect(err.message).toContain(d20);
    expect(err.message).toMatch(/not a committed checkpoint/);

    // Without a latest file the newest committed directory is used.
    fs.rmSync(path.join(root, 'latest'));
    expect((await loadCheckpoint(root)).step).toBe(10);
    // latest pointing at an older committed checkpoint is honoured (manual rollback).
    await saveCheckpoint(root, makeCkpt(30));
    fs.writeFileSync(path.join(root, 'latest'), 'step-0000010\n');
    expect((await loadCheckpoint(root)).step).toBe(10);
  });

  it('an empty or missing root reports not found', async () => {
    const empty = path.join(tmp, 'empty');
    fs.mkdirSync(empty);
    await expect(loadCheckpoint(empty)).rejects.toMatchObject({ code: 'ERR_CHECKPOINT_NOT_FOUND' });
    const err = await rejection(loadCheckpoint(path.join(tmp, 'nope')));
    expect(err.code).toBe('ERR_CHECKPOINT_NOT_FOUND');
    expect(err.message).toContain(path.join(tmp, 'nope'));
    await expect(readCheckpointManifest(empty)).rejects.toMatchObject({ code: 'ERR_CHECKPOINT_NOT_FOUND' });
  });
});

describe('checkpoint retention', () => {
  it('keeps the newest K committed checkpoints', async () => {
    const root = path.join(tmp, 'r');
    for (let s = 1; s <= 6; s++) await saveCheckpoint(root, makeCkpt(s), { keep: 3 });
    const list = await listCheckpoints(root);
    expect(list.map((c) => c.step)).toEqual([4, 5, 6]);
    expect(list.every((c) => c.committed)).toBe(true);
    expect((await loadCheckpoint(root)).step).toBe(6);
  });

  it('defaults to 3 and never keeps fewer than 2', async () => {
    const a = path.join(tmp, 'a');
    for (let s = 1; s <= 5; s++) await saveCheckpoint(a, makeCkpt(s));
    expect((await listCheckpoints(a)).map((c) => c.step)).toEqual([3, 4, 5]);
    const b = path.join(tmp, 'b');
    for (let s = 1; s <= 4; s++) await saveCheckpoint(b, makeCkpt(s), { keep: 1 });
    expect((await listCheckpoints(b)).map((c) => c.step)).toEqual([3, 4]);
    const c = path.join(tmp, 'c');
    for (let s = 1; s <= 4; s++) await saveCheckpoint(c, makeCkpt(s), { keep: 0 });
    expect((await listCheckpoints(c)).map((x) => x.step)).toEqual([3, 4]);
  });

  it('removes older leftovers of interrupted saves but lists them until then', async () => {
    const root = path.join(tmp, 'r');
    await saveCheckpoint(root, makeCkpt(1));
    const partial = checkpointDirFor(root, 2);
    fs.mkdirSync(partial);
    fs.writeFileSync(path.join(partial, 'model.safetensors'), 'partial');
    expect((await listCheckpoints(root)).map((c) => [c.step, c.committed])).toEqual([
      [1, true],
      [2, false],
    ]);
    await saveCheckpoint(root, makeCkpt(3));
    expect((await listCheckpoints(root)).map((c) => c.step)).toEqual([1, 3]);
    expect(fs.existsSync(partial)).toBe(false);
  });

  it('listCheckpoints of a missing root is empty and ignores unrelated entries', async () => {
    expect(await listCheckpoints(path.join(tmp, 'none'))).toEqual([]);
    const root = path.join(tmp, 'r');
    await saveCheckpoint(root, makeCkpt(1));
    fs.mkdirSync(path.join(root, 'other'));
    fs.writeFileSync(path.join(root, 'step-0000009'), 'a file, not a dir');
    expect((await listCheckpoints(root)).map((c) => c.name)).toEqual(['step-0000001']);
  });
});
