#!/usr/bin/env node
// bench-open-sentence-data.mjs — how long opening a sentence-split dataset (data.path, BERT) takes:
// IndexedDataset.open plus IndexedSentences, then openPreprocessedDataset twice (NSP, seq 128, split
// 969,30,1, each followed by one batch of 8): first with its sentence-pair cut built (the prefix's
// .sentence-pairs-*.pidx files are removed first), then with the cut read back from its cache. Reads
// dist/ (npm run build:ts first).
//
//   node scripts/bench-open-sentence-data.mjs PREFIX [--vocab 400] [--cache-dir /tmp/paratrain-bench-open]
import * as fs from 'node:fs';
import * as path from 'node:path';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: o, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    vocab: { type: 'string', default: '400' },
    'cache-dir': { type: 'string', default: '/tmp/paratrain-bench-open' },
  },
});
const prefix = path.resolve(positionals[0]);
const { IndexedDataset } = await import(path.join(root, 'dist', 'data', 'indexed-dataset.js'));
const { IndexedSentences } = await import(path.join(root, 'dist', 'data', 'indexed-sentences.js'));
const { openPreprocessedDataset } = await import(path.join(root, 'dist', 'data', 'preprocessed-dataset.js'));

let started = performance.now();
const data = IndexedDataset.open(prefix);
new IndexedSentences(data, Number(o.vocab));
const indexMs = performance.now() - started;
const sentences = data.sequenceCount;
data.close();

const folder = path.dirname(prefix);
for (const name of fs.readdirSync(folder))
  if (name.startsWith(`${path.basename(prefix)}.sentence-pairs-`)) fs.rmSync(path.join(folder, name));
const options = {
  ...{ path: prefix, cacheDir: o['cache-dir'], objective: 'masked-lm', tokenizerKind: 'wordpiece' },
  ...{ vocabSize: 512, seqLen: 128, seed: 1234, heldoutFraction: 0, maskProb: 0.15, pairTask: 'nsp' },
};
const opens = [];
for (let i = 0; i < 2; i++) {
  started = performance.now();
  const { dataset } = await openPreprocessedDataset(options);
  dataset.batch('train', 0, 8);
  const origins = dataset.summary.sampleIndices.map((use) => use.origin).join(' ');
  opens.push({ ms: Math.round(performance.now() - started), indices: origins });
}
const rssMb = Math.round(process.memoryUsage().rss / 2 ** 20);
process.stdout.write(JSON.stringify({ sentences, index_open_ms: Math.round(indexMs), opens, rss_mb: rssMb }) + '\n');
