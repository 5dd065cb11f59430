// The native boundary: the loader's errors, native errors as JS Errors with a code, the
// parameter table, and tensor-parallel shards that equal slices of the unsplit weights.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { validateConfig } from '../../src/config/load';
import type { ModelFamily } from '../../src/config/schema';
import type { TrainBatch } from '../../src/data/batch';
import { createEngine, engineOptions, paramTableFor } from '../../src/engine/engine';
import { loadNative } from '../../src/engine/native';

// Read before anything loads the addon: the loader sets it when the user has not.
const coreTypeFromEnvironment = process.env.OPENBLAS_CORETYPE;

const FAMILIES = ['bert', 'gpt', 'roberta', 'albert', 'electra'] as const;

const tiny = (arch: ModelFamily) =>
  validateConfig({
    model: {
      arch,
      layers: 2,
      hidden: 32,
      heads: 4,
      ffn: 64,
      vocab_size: 50,
      seq_len: 8,
      ...(arch === 'albert' || arch === 'electra' ? { embedding_size: 16 } : {}),
      ...(arch === 'electra' ? { generator: { hidden_fraction: 0.5, heads: 4 } } : {}),
    },
    train: { steps: 1, micro_batch: 2, lr: 0.01 },
  });

function gptBatch(tokens: number[]): TrainBatch {
  return {
    batchSize: 2,
    seqLen: 8,
    tokens: Int32Array.from(tokens),
    labels: new Int32Array(16).fill(1),
    segments: null,
    attentionMask: null,
    pairLabels: null,
  };
}

/** The loader's error for one addon file, from a fresh process (the loader caches what it loaded). */
function loadError(file: string): { code: string; message: string } {
  const program = `try { require(${JSON.stringify(path.join(__dirname, '..', '..', 'dist', 'engine', 'native.js'))}).loadNative('cpu'); }
    catch (e) { process.stdout.write(JSON.stringify({ code: e.code, message: e.message })); }`;
  const r = spawnSync(process.execPath, ['-e', program], {
    encoding: 'utf8',
    env: { ...process.env, PARATRAIN_ADDON: file },
  });
  return JSON.parse(r.stdout);
}

describe('loader', () => {
  it('a missing or broken build gives one error naming the file and the fix', () => {
    const broken = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-addon-')), 'paratrain.node');
    fs.writeFileSync(broken, 'not a shared library');
    for (const file of ['/nonexistent/paratrain.node', broken]) {
      const err = loadError(file);
      expect(err.code).toBe('ERR_NATIVE_LOAD');
      expect(err.message).toContain(file);
      expect(err.message).toContain('`npx paratrain build`');
    }
  });

  it('an addon whose shared library is missing gets the fix for that library', () => {
    // An addon that needs a library which is gone by the time it loads.
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-addon-'));
    fs.writeFileSync(path.join(dir, 'gone.c'), 'int gone(void) { return 1; }\n');
    fs.writeFileSync(path.join(dir, 'addon.c'), 'int gone(void);\nint use(void) { return gone(); }\n');
    const cc = (args: string[]) => expect(spawnSync('cc', args, { cwd: dir }).status).toBe(0);
    cc(['-shared', '-fPIC', '-o', 'libparatrain_gone.so', 'gone.c']);
    cc(['-shared', '-fPIC', '-o', 'paratrain.node', 'addon.c', `-L${dir}`, '-lparatrain_gone']);
    fs.rmSync(path.join(dir, 'libparatrain_gone.so'));
    const err = loadError(path.join(dir, 'paratrain.node'));
    expect(err.code).toBe('ERR_NATIVE_LOAD');
    expect(err.message).toContain('libparatrain_gone.so is missing');
    expect(err.message).toContain('Or build the engine from source with `npx paratrain build`');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('picks an OpenBLAS kernel family, never the generic fallback on an AVX2 machine', () => {
    const flags = fs.readFileSync('/proc/cpuinfo', 'utf8');
    if (coreTypeFromEnvironment || !/\bavx2\b/.test(flags)) return; // the user's choice wins
    expect(loadNative('cpu').blasCore.toLowerCase()).not.toBe('prescott');
  });
});

describe('native errors are JS Errors with a code', () => {
  it('an out-of-range token id rejects the step with ERR_BATCH, and the engine stays usable', async () => {
    const engine = createEngine(tiny('gpt'));
    engine.initParams(1);
    const bad = gptBatch(Array.from({ length: 16 }, (_, i) => (i === 5 ? 50 : i)));
    expect(() => engine.trainStep([bad], { step: 0, lr: 0.01 })).toThrow(
      expect.objectContaining({ code: 'ERR_BATCH', message: expect.stringContaining('token id 50') }),
    );
    const ok = await engine.trainStep([gptBatch(Array.from({ length: 16 }, (_, i) => i))], { step: 0, lr: 0.01 });
    expect(Number.isFinite(ok.loss)).toBe(true);
  });

  it('a second call while a step runs is refused with ERR_ENGINE_BUSY', async () => {
    const engine = createEngine(tiny('gpt'));
    engine.initParams(1);
    const batch = gptBatch(Array.from({ length: 16 }, (_, i) => i));
    const running = engine.trainStep([batch], { step: 0, lr: 0.01 });
    expect(() => engine.getParams()).toThrow(expect.objectContaining({ code: 'ERR_ENGINE_BUSY' }));
    await running;
    expect(engine.getParams().length).toBe(engine.numParams());
  });

  it('an impossible shape is refused at construction with ERR_CONFIG', () => {
    const addon = loadNative('cpu');
    const opts = engineOptions(tiny('bert'));
    opts.spec.stacks[0].heads = 5;
    expect(() => new addon.Engine(opts)).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG', message: expect.stringContaining('heads (5) must divide hidden') }),
    );
    expect(() => addon.paramTable(opts)).toThrow(expect.objectContaining({ code: 'ERR_CONFIG' }));
  });
});

describe('engine options and state are checked before use', () => {
  it('a field of the wrong type or a missing one fails with ERR_CONFIG naming it, never a default', () => {
    const addon = loadNative('cpu');
    const wrongType = engineOptions(tiny('bert'));
    (wrongType.spec as unknown as Record<string, unknown>).hiddenDropout = '0.1';
    expect(() => new addon.Engine(wrongType)).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG', message: 'spec.hiddenDropout must be a number' }),
    );
    const missing = engineOptions(tiny('bert'));
    delete (missing.spec.stacks[0] as Partial<(typeof missing.spec.stacks)[0]>).causal;
    expect(() => addon.paramTable(missing)).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG', message: 'spec.stacks[0].causal must be a boolean' }),
    );
    const optimizer = engineOptions(tiny('bert'));
    (optimizer.optimizer as unknown as Record<string, unknown>).beta2 = null;
    expect(() => new addon.Engine(optimizer)).toThrow(
      expect.objectContaining({ code: 'ERR_CONFIG', message: 'engine options.optimizer.beta2 must be a number' }),
    );
  });

  it('setOptimizerState with a bad v leaves m as it was', () => {
    const engine = createEngine(tiny('bert'));
    const n = engine.numParams();
    const before = engine.getOptimizerState();
    const m = new Float32Array(n).fill(0.5);
    expect(() => engine.setOptimizerState({ step: 7, m, v: new Float32Array(n - 1) })).toThrow(
      expect.objectContaining({ code: 'ERR_ARGUMENT', message: expect.stringContaining('optimizer v holds') }),
    );
    const after = engine.getOptimizerState();
    expect(after.m).toEqual(before.m);
    expect(after.step).toBe(before.step);
  });
});

describe('parameter layout', () => {
  it('is contiguous and names every tensor once; paramTable() without an engine is the same table', () => {
    for (const arch of FAMILIES) {
      const table = createEngine(tiny(arch)).paramTable();
      expect(paramTableFor(tiny(arch))).toEqual(table);
      let offset = 0;
      for (const p of table) {
        expect(p.offset).toBe(offset);
        expect(p.numel).toBe(p.shape.reduce((a, b) => a * b, 1));
        offset += p.numel;
      }
      expect(new Set(table.map((p) => p.name)).size).toBe(table.length);
    }
  });

  it('a tensor-parallel rank without its data plane refuses to train instead of computing garbage', async () => {
    const addon = loadNative('cpu');
    const config = tiny('gpt');
    const shard = new addon.Engine({ ...engineOptions(config), tensorParallelRank: 0, tensorParallelSize: 2 });
    shard.initParams(1);
    const batch = {
      batchSize: 1,
      seqLen: 4,
      tokens: new Int32Array([1, 2, 3, 4]),
      labels: new Int32Array([2, 3, 4, 5]),
    } as unknown as TrainBatch;
    await expect(shard.trainStep([batch], { step: 0, lr: 1e-3 })).rejects.toMatchObject({ code: 'ERR_CONFIG' });
  });

  it('tensor-parallel shards initialise to the matching slices of the TP=1 weights', () => {
    const addon = loadNative('cpu');
    for (const arch of FAMILIES) {
      const config = tiny(arch);
      const whole = new addon.Engine(engineOptions(config));
      whole.initParams(9);
      const full = whole.getParams();
      const fullTable = new Map(whole.paramTable().map((p) => [p.name, p]));
      for (const tp of [2, 4]) {
        let vocabRows = 0;
        for (let rank = 0; rank < tp; rank++) {
          const shard = new addon.Engine({
            ...engineOptions(config),
            tensorParallelRank: rank,
            tensorParallelSize: tp,
          });
          shard.initParams(9);
          const params = shard.getParams();
          for (const p of shard.paramTable()) {
            const f = fullTable.get(p.name)!;
            expect(p.globalShape).toEqual(f.shape);
            const got = params.subarray(p.offset, p.offset + p.numel);
            const [rows, cols] = p.shape.length === 2 ? p.shape : [p.shape[0], 1];
            const fullCols = f.shape.length === 2 ? f.shape[1] : 1;
            if (p.name === 'embeddings.word.weight') vocabRows += p.shardValid;
            for (let r = 0; r < rows; r++)
              for (let c = 0; c < cols; c++) {
                const gr = p.splitDim === 0 ? p.shardStart + r : r;
                const gc = p.splitDim === 1 ? p.shardStart + c : c;
                // Vocabulary padding rows (past the real vocabulary) start at zero.
                const want = p.splitDim === 0 && r >= p.shardValid ? 0 : full[f.offset + gr * fullCols + gc];
                expect(got[r * cols + c]).toBe(want);
              }
          }
          // The vocabulary is padded to a multiple of 128·TP and split evenly.
          const word = shard.paramTable().find((p) => p.name === 'embeddings.word.weight')!;
          expect((word.shape[0] * tp) % (128 * tp)).toBe(0);
        }
        expect(vocabRows).toBe(config.model.vocab_size);
      }
    }
  });
});
