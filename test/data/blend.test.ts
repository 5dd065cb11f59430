// Blending preprocessed datasets (data.path: [w, PREFIX, w, PREFIX]): the key's forms and refusals,
// Megatron's rule against an independent Python implementation, a blended GPT dataset read back row by
// row from its sources, and the cached sample indices (reused, rebuilt, never half-written).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '../../src/config/load';
import { BLEND_BLOCK, BlendedStream, blendingOrder, parseDataPath, type SampleStream } from '../../src/data/blend';
import type { TrainBatch } from '../../src/data/batch';
import { openDataset, type DatasetOptions } from '../../src/data/dataset';
import { DataError } from '../../src/data/errors';
import { loadOrBuildSampleIndex, sampleIndexPaths } from '../../src/data/sample-index-cache';

import { cliScratch } from './cli-scratch';

const { scratch, paratrain } = cliScratch('paratrain-blend-');

/** Writes `documents` blank-line-separated to NAME.txt and preprocesses it as GPT data; returns the prefix. */
function preprocess(name: string, documents: string[], tokenizer: string[]): string {
  const dir = path.join(scratch, name);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, 'text.txt'), documents.join('\n\n') + '\n');
  const r = paratrain([
    'preprocess',
    ...['--input', path.join(dir, 'text.txt'), '--output-prefix', path.join(dir, name)],
    ...['--cache-dir', path.join(scratch, 'cache'), '--json', '--append-eod'],
    ...tokenizer,
  ]);
  expect(r.code, r.stderr).toBe(0);
  return path.join(dir, `${name}_text_document`);
}

const whales = Array.from(
  { length: 40 },
  (_, i) => `The whale number ${i} swam far out to sea. The crew of ship ${i % 7} waited, and it rose again.`,
);
const ships = Array.from(
  { length: 30 },
  (_, i) => `A ship called ${i} left the harbour at dawn; its captain counted ${i * 3} barrels of oil below.`,
);
const prefixA = preprocess('whales', whales, ['--tokenizer-kind', 'bpe', '--vocab-size', '400']);
const tokenizerJson = path.join(scratch, 'whales', 'whales_tokenizer.json');
const prefixB = preprocess('ships', ships, ['--tokenizer', tokenizerJson]);

const SEQ_LEN = 16;
const options: DatasetOptions = {
  objective: 'causal-lm',
  tokenizerKind: 'bpe',
  corpus: 'bundled',
  path: [0.7, prefixA, 0.3, prefixB],
  split: '8,2,0',
  cacheDir: path.join(scratch, 'cache'),
  vocabSize: 512,
  seqLen: SEQ_LEN,
  seed: 5,
  heldoutFraction: 0,
};

const gptModel = { arch: 'gpt', layers: 1, hidden: 32, heads: 4, ffn: 64, vocab_size: 512, seq_len: 16 };
function configProblems(dataPath: unknown): string {
  try {
    validateConfig({ model: gptModel, train: { steps: 1, micro_batch: 2, lr: 0.01 }, data: { path: dataPath } });
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).message;
  }
  return '';
}

async function refusal(promise: Promise<unknown>): Promise<DataError> {
  try {
    await promise;
  } catch (error) {
    return error as DataError;
  }
  throw new Error('expected a refusal');
}

/** Megatron's blending rule, written again in Python from its description: the source of each sample. */
function pythonBlend(weights: number[], size: number): number[] {
  const program = [
    'import json, sys',
    'w = json.loads(sys.argv[1]); n = int(sys.argv[2])',
    'total = 0.0',
    'for x in w: total += x',
    'w = [x / total for x in w]',
    'counts = [0] * len(w); out = []',
    'for i in range(n):',
    '    deficits = [w[k] * (i + 1) - counts[k] for k in range(len(w))]',
    '    k = deficits.index(max(deficits))',
    '    counts[k] += 1; out.append(k)',
    'print(json.dumps(out))',
  ].join('\n');
  const r = spawnSync('/usr/bin/python3', ['-c', program, JSON.stringify(weights), String(size)], {
    encoding: 'utf8',
  });
  expect(r.status, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as number[];
}

describe('data.path as a weighted list', () => {
  it('takes one prefix, the list, the list as one string, and normalises the weights', () => {
    expect(parseDataPath('data/web_text_document')).toEqual([{ prefix: 'data/web_text_document', weight: 1 }]);
    expect(parseDataPath(['data/web'])).toEqual([{ prefix: 'data/web', weight: 1 }]);
    expect(parseDataPath([7, 'a', 3, 'b'])).toEqual([
      { prefix: 'a', weight: 0.7 },
      { prefix: 'b', weight: 0.3 },
    ]);
    expect(parseDataPath('0.5 a  1.5 b')).toEqual([
      { prefix: 'a', weight: 0.25 },
      { prefix: 'b', weight: 0.75 },
    ]);
    // Validated by the config schema, kept as written (a run's config.yaml validates again).
    const config = validateConfig({
      model: gptModel,
      train: { steps: 1, micro_batch: 2, lr: 0.01 },
      data: { path: [0.7, prefixA, 0.3, prefixB] },
    });
    expect(config.data.path).toEqual([0.7, prefixA, 0.3, prefixB]);
  });

  it('refuses an odd list, a weight that is not positive, and items out of place, naming what to do', () => {
    expect(configProblems([0.7, 'a', 0.3])).toMatch(
      /data\.path: a weighted list alternates weight and prefix .* 3 items, an odd count: give every prefix a weight/,
    );
    expect(configProblems([0.7, 'a', 0, 'b'])).toMatch(
      /data\.path: the weight of b is 0; weights must be positive numbers \(remove the pair/,
    );
    expect(configProblems([-1, 'a', 2, 'b'])).toContain('the weight of a is -1');
    expect(configProblems(['a', 0.7, 'b', 0.3])).toMatch(/item 2 should be a dataset prefix .* got 0\.7/);
    expect(configProblems([0.7, 'a', 'b', 'c'])).toMatch(/item 3 should be the weight \(a number\) of c, got "b"/);
    expect(configProblems({ a: 1 })).toMatch(/data\.path: expected a dataset prefix or a list/);
    expect(configProblems('0.7 a 0.3')).toContain('an odd count');
  });

  it('names a prefix of the blend whose files are missing, a weight too small to draw, and datasets tokenized differently', async () => {
    const ghost = path.join(scratch, 'whales', 'ghost_text_document');
    fs.copyFileSync(tokenizerJson, path.join(scratch, 'whales', 'ghost_tokenizer.json'));
    const missing = await refusal(openDataset({ ...options, path: [0.5, prefixA, 0.5, ghost] }));
    expect(missing.code).toBe('ERR_DATA_NOT_FOUND');
    expect(missing.message).toContain(`${ghost}.idx does not exist`);

    const starved = await refusal(openDataset({ ...options, path: [1e-7, prefixA, 1, prefixB] }));
    expect(starved.code).toBe('ERR_DATA_CONFIG');
    expect(starved.message).toMatch(
      /weight of .*whales_text_document .* gives it no sample in 262144 .* raise it above/,
    );

    const other = preprocess('other', ships, ['--tokenizer-kind', 'bpe', '--vocab-size', '300']);
    const mixed = await refusal(openDataset({ ...options, path: [0.5, prefixA, 0.5, other] }));
    expect(mixed.code).toBe('ERR_TOKENIZER');
    expect(mixed.message).toMatch(/were tokenized differently: .*other_text_document .*preprocess them again/);
  });
});

describe("Megatron's blending rule", () => {
  it('draws from the source furthest below its share: within one sample of each weight, as Python computes it', () => {
    for (const raw of [
      [0.7, 0.3],
      [3, 1, 0.5],
      [1, 1, 1, 1],
      [0.01, 0.98, 0.01],
    ]) {
      const total = raw.reduce((sum, w) => sum + w, 0);
      const weights = raw.map((w) => w / total);
      const { source, sample } = blendingOrder(weights, 1000);
      const counts = new Array<number>(weights.length).fill(0);
      source.forEach((k, i) => {
        expect(sample[i]).toBe(counts[k]); // each source's samples in order, none skipped
        counts[k]++;
        for (let j = 0; j < weights.length; j++)
          expect(Math.abs(counts[j] - weights[j] * (i + 1)), `weights ${raw} sample ${i}`).toBeLessThanOrEqual(1);
      });
      expect(Array.from(source)).toEqual(pythonBlend(raw, 1000));
    }
    // Ties go to the lowest source.
    expect(Array.from(blendingOrder([0.5, 0.5], 4).source)).toEqual([0, 1, 0, 1]);
  });

  it('repeats the block with each source moving on: every source sample once, in order, across blocks', () => {
    const fake = (samplesPerEpoch: number): SampleStream => ({
      samplesPerEpoch,
      batch: () => ({}) as TrainBatch,
    });
    const weights = [0.6, 0.3, 0.1];
    const stream = new BlendedStream([fake(5), fake(7), fake(11)], blendingOrder(weights, BLEND_BLOCK), 'train');
    const next = [0, 0, 0];
    const total = 2 * BLEND_BLOCK + 1000;
    let outOfOrder = 0;
    for (let i = 0; i < total; i++) {
      const { source, sample } = stream.locate(i);
      if (sample !== next[source]) outOfOrder++;
      next[source]++;
    }
    expect(outOfOrder).toBe(0);
    for (let k = 0; k < 3; k++) expect(Math.abs(next[k] - weights[k] * total)).toBeLessThanOrEqual(2);
  });
});

describe('a blended GPT dataset', () => {
  it('reads each row from the source the blend names, deterministically, and from any step on', async () => {
    const blended = await openDataset(options);
    const a = await openDataset({ ...options, path: prefixA });
    const b = await openDataset({ ...options, path: prefixB });
    expect(blended.dataset.summary).toMatchObject({
      corpusDocuments: 70,
      trainDocuments: 32 + 24,
      evalDocuments: 8 + 6,
      blend: [
        { prefix: prefixA, weight: 0.7 },
        { prefix: prefixB, weight: 0.3 },
      ],
    });
    expect(blended.dataset.samplesPerEpoch('train')).toBe(
      a.dataset.samplesPerEpoch('train') + b.dataset.samplesPerEpoch('train'),
    );

    const ROWS = 1000;
    const batch = blended.dataset.batch('train', 0, ROWS);
    const { source } = blendingOrder([0.7, 0.3], ROWS);
    const drawn = [0, 0];
    for (let row = 0; row < ROWS; row++) {
      const k = source[row];
      const own = (k === 0 ? a : b).dataset.batch('train', drawn[k]++, 1);
      expect(batch.tokens.subarray(row * SEQ_LEN, (row + 1) * SEQ_LEN)).toEqual(own.tokens);
      expect(batch.labels.subarray(row * SEQ_LEN, (row + 1) * SEQ_LEN)).toEqual(own.labels);
    }
    expect(drawn).toEqual([700, 300]);

    // A second construction and a resume at step 37 (micro-batch 8) see the same samples.
    const again = await openDataset(options);
    expect(again.dataset.batch('train', 0, ROWS).tokens).toEqual(batch.tokens);
    const resumed = again.dataset.batch('train', 37 * 8, 8);
    expect(resumed.firstSample).toBe(37 * 8);
    expect(resumed.tokens).toEqual(batch.tokens.subarray(37 * 8 * SEQ_LEN, 38 * 8 * SEQ_LEN));
    // Evaluation blends the validation shares with the same weights.
    const evalRows = blended.dataset.batch('eval', 0, 10);
    const firstEval = a.dataset.batch('eval', 0, 1);
    expect(evalRows.tokens.subarray(0, SEQ_LEN)).toEqual(firstEval.tokens);
  });

  it('leaves evaluation to the sources that have validation documents', async () => {
    // "8,2,0" over 30 documents still gives ships 6; a 1-document source has none.
    const single = preprocess('single', [whales.slice(0, 12).join(' ')], ['--tokenizer', tokenizerJson]);
    const { dataset } = await openDataset({ ...options, path: [0.5, prefixA, 0.5, single], seqLen: 8 });
    const a = await openDataset({ ...options, path: prefixA, seqLen: 8 });
    expect(dataset.summary.evalDocuments).toBe(8);
    expect(dataset.batch('eval', 0, 5).tokens).toEqual(a.dataset.batch('eval', 0, 5).tokens);
  });
});

describe('cached sample indices', () => {
  it('builds each index once beside the data, reuses it, and rebuilds it when an input changes', async () => {
    const cacheFiles = () =>
      [path.dirname(prefixA), path.dirname(prefixB)].flatMap((dir) =>
        fs
          .readdirSync(dir)
          .filter((f) => f.endsWith('.pidx'))
          .map((f) => path.join(dir, f)),
      );
    for (const file of cacheFiles()) fs.rmSync(file);
    const first = await openDataset(options);
    const built = first.dataset.summary.sampleIndices ?? [];
    // A stream layout per source and split, and the blend order per split (the same weights: one file,
    // built for training and read back for evaluation).
    expect(built.map((use) => `${use.kind}/${use.split}/${use.origin}`).sort()).toEqual([
      'blend/eval/cache',
      'blend/train/built',
      'gpt-stream/eval/built',
      'gpt-stream/eval/built',
      'gpt-stream/train/built',
      'gpt-stream/train/built',
    ]);
    for (const use of built) expect(path.dirname(use.file as string)).toMatch(/whales|ships/);
    const blendFile = built.find((use) => use.kind === 'blend' && use.split === 'train')?.file as string;
    expect(path.basename(blendFile)).toMatch(/^whales_text_document\.blend-[0-9a-f]{16}\.pidx$/);
    const mtimes = new Map(cacheFiles().map((file) => [file, fs.statSync(file).mtimeMs]));
    expect(mtimes.size).toBe(5);

    const second = await openDataset(options);
    expect(second.dataset.summary.sampleIndices?.every((use) => use.origin === 'cache')).toBe(true);
    for (const [file, mtime] of mtimes) expect(fs.statSync(file).mtimeMs).toBe(mtime);
    expect(second.dataset.batch('train', 100, 50).tokens).toEqual(first.dataset.batch('train', 100, 50).tokens);

    // New weights: a new blend order (built for training, read back for evaluation), the layouts reused.
    const reweighted = await openDataset({ ...options, path: [0.2, prefixA, 0.8, prefixB] });
    const origins = (reweighted.dataset.summary.sampleIndices ?? []).map((use) => `${use.kind}/${use.origin}`);
    expect(origins.filter((o) => o.startsWith('blend'))).toEqual(['blend/built', 'blend/cache']);
    expect(origins.filter((o) => o.startsWith('gpt-stream')).every((o) => o.endsWith('cache'))).toBe(true);

    // The data files change (here only their time): the layouts of that prefix are built again.
    const later = new Date(Date.now() + 5000);
    fs.utimesSync(`${prefixB}.idx`, later, later);
    const touched = await openDataset(options);
    const rebuilt = (touched.dataset.summary.sampleIndices ?? []).filter((use) => use.origin === 'built');
    expect(rebuilt.map((use) => path.basename(use.file as string).split('.')[0])).toEqual([
      'ships_text_document',
      'ships_text_document',
    ]);
    expect(touched.dataset.batch('train', 0, 50).tokens).toEqual(first.dataset.batch('train', 0, 50).tokens);
    // Writing them removed the layouts of the old ships files; the whales layouts and the blend orders stay.
    const stale = [...mtimes.keys()].filter((file) => path.basename(file).startsWith('ships_text_document.gpt-stream'));
    expect(stale.length).toBe(2);
    for (const file of stale) expect(fs.existsSync(file)).toBe(false);
    for (const file of mtimes.keys()) if (!stale.includes(file)) expect(fs.existsSync(file)).toBe(true);
    expect(cacheFiles().length).toBe(6); // 5 - 2 + 2 rebuilt + the reweighted blend order
  });

  it('never takes a damaged or half-written file for a complete index', async () => {
    const request = {
      kind: 'test',
      stem: path.join(scratch, 'probe'),
      cacheDir: path.join(scratch, 'cache'),
      inputs: { n: 3 },
      build: () => ({ values: new Float64Array([1, 2, 3]), flags: new Uint8Array([1, 0, 1]) }),
    };
    const built = await loadOrBuildSampleIndex(request);
    expect(built.origin).toBe('built');
    const file = built.file as string;
    expect(file).toBe(sampleIndexPaths(request).beside);
    // No temporary name is left behind.
    expect(fs.readdirSync(scratch).filter((f) => f.includes('probe'))).toEqual([path.basename(file)]);
    const whole = fs.readFileSync(file);
    fs.writeFileSync(file, whole.subarray(0, whole.length - 8)); // cut short
    const again = await loadOrBuildSampleIndex(request);
    expect(again.origin).toBe('built');
    expect(Array.from(again.arrays.values)).toEqual([1, 2, 3]);
    const reread = await loadOrBuildSampleIndex(request);
    expect(reread.origin).toBe('cache');
    expect(Array.from(reread.arrays.flags)).toEqual([1, 0, 1]);
  });

  it('goes to data.cache_dir when the data folder is read-only', async () => {
    // /sys refuses new files even to root (EACCES), like a read-only data mount.
    const request = {
      kind: 'test',
      stem: '/sys/paratrain-probe',
      cacheDir: path.join(scratch, 'cache'),
      inputs: { n: 1 },
      build: () => ({ values: new Uint32Array([7]) }),
    };
    const built = await loadOrBuildSampleIndex(request);
    expect(built.file).toBe(sampleIndexPaths(request).fallback);
    expect(path.dirname(built.file as string)).toBe(path.join(scratch, 'cache', 'sample-indices'));
    const reread = await loadOrBuildSampleIndex(request);
    expect(reread).toMatchObject({ origin: 'cache', file: built.file });
  });
});

describe('training on a blend through the CLI', () => {
  const run = (dir: string, extra: string[] = []) => {
    const set = (kv: string) => ['--set', kv];
    const r = paratrain([
      'train',
      ...['--config', 'gpt-mini'],
      ...['model.layers=1', 'model.hidden=32', 'model.heads=2', 'model.ffn=64', 'model.vocab_size=512'].flatMap(set),
      ...[`model.seq_len=${SEQ_LEN}`, 'train.micro_batch=4', 'train.steps=3', 'train.eval_every=3'].flatMap(set),
      ...['checkpoint.every=0', `data.path=[0.6, ${prefixA}, 0.4, ${prefixB}]`, 'data.split=8,2,0'].flatMap(set),
      ...set(`run.dir=${dir}`),
      ...set(`data.cache_dir=${path.join(scratch, 'cache')}`),
      ...extra,
    ]);
    expect(r.code, r.stderr).toBe(0);
    return fs
      .readFileSync(path.join(dir, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  };

  it('trains gpt for a few steps on two sources, and a second run reuses the cached indices', () => {
    const events = run(path.join(scratch, 'run1'));
    const start = events.find((e) => e.event === 'start') as Record<string, unknown>;
    expect(start).toMatchObject({ corpus_documents: 70, eval_documents: 14 });
    expect(start.blend).toEqual([
      { prefix: prefixA, weight: 0.6 },
      { prefix: prefixB, weight: 0.4 },
    ]);
    const steps = events.filter((e) => e.event === undefined && 'loss' in e);
    expect(steps.length).toBe(3);
    for (const step of steps) expect(Number.isFinite(step.loss)).toBe(true);
    expect(events.filter((e) => e.event === 'eval').length).toBeGreaterThan(0);

    const second = run(path.join(scratch, 'run2'));
    const uses = (second.find((e) => e.event === 'start') as { sample_indices: { origin: string }[] }).sample_indices;
    expect(uses.length).toBe(6);
    expect(uses.every((use) => use.origin === 'cache')).toBe(true);
  }, 180_000);

  it('resumes at step 2 with the samples the uninterrupted run read: the same losses, bit for bit', () => {
    const losses = (events: Record<string, unknown>[]) =>
      events.filter((e) => e.event === undefined && 'loss' in e).map((e) => [e.step, e.loss]);
    const whole = path.join(scratch, 'whole');
    const straight = losses(run(whole, ['--set', 'train.steps=4', '--set', 'checkpoint.every=2']));
    expect(straight.map(([step]) => step)).toEqual([1, 2, 3, 4]);
    const resumed = run(path.join(scratch, 'resumed'), [
      ...['--set', 'train.steps=4', '--set', 'checkpoint.every=2'],
      ...['--resume', path.join(whole, 'checkpoints', 'step-0000002')],
    ]);
    expect(losses(resumed)).toEqual(straight.slice(2));
  }, 180_000);
});
