#!/usr/bin/env node
// bench-preprocessed-rss.mjs — peak resident memory of a short GPT run that trains from a
// preprocessed dataset (data.path), for datasets of several sizes side by side: if reading does
// not copy the corpus, peak RSS stays flat while the dataset grows. The datasets are synthetic
// (random ids below the tokenizer's size, documents of 1,000 tokens ending with <|endoftext|>),
// written with paratrain's IndexedDatasetWriter; the tokenizer is a 400-token BPE that
// `paratrain preprocess` trains on a small text. Peak RSS is GNU time's "Maximum resident set size".
//
//   node scripts/bench-preprocessed-rss.mjs [--mb 10,1024] [--steps 20] [--dir /tmp/paratrain-bench-rss]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: o } = parseArgs({
  options: {
    mb: { type: 'string', default: '10,1024' },
    steps: { type: 'string', default: '20' },
    dir: { type: 'string', default: '/tmp/paratrain-bench-rss' },
  },
});
const { IndexedDatasetWriter } = await import(path.join(root, 'dist', 'data', 'indexed-dataset.js'));
const { TextTokenizer } = await import(path.join(root, 'dist', 'data', 'tokenizer.js'));
fs.mkdirSync(o.dir, { recursive: true });
const paratrain = path.join(root, 'bin', 'paratrain.js');

// The tokenizer: preprocess a small text once, keep its tokenizer.json.
const tokenizerFile = path.join(o.dir, 'small_tokenizer.json');
if (!fs.existsSync(tokenizerFile)) {
  const text = path.join(o.dir, 'small.txt');
  fs.writeFileSync(
    text,
    Array.from({ length: 200 }, (_, i) => `Document ${i}: the whale swam far out to sea.`).join('\n\n'),
  );
  const r = spawnSync(
    process.execPath,
    [
      paratrain,
      'preprocess',
      '--input',
      text,
      '--output-prefix',
      path.join(o.dir, 'small'),
      '--tokenizer-kind',
      'bpe',
      '--vocab-size',
      '400',
      '--append-eod',
      '--json',
      '--cache-dir',
      path.join(o.dir, 'cache'),
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`preprocess failed: ${r.stderr}`);
}
const tokenizer = TextTokenizer.fromFile(tokenizerFile);
const eod = tokenizer.endOfTextId();

function writeDataset(mb) {
  const prefix = path.join(o.dir, `synthetic-${mb}mb_text_document`);
  if (fs.existsSync(`${prefix}.idx`)) return prefix;
  const writer = new IndexedDatasetWriter(prefix, 8); // uint16: 2 bytes a token
  const documents = Math.ceil((mb * 1024 * 1024) / 2 / 1000);
  const tokens = new Uint16Array(1000);
  let state = 12345;
  for (let d = 0; d < documents; d++) {
    for (let t = 0; t < 999; t++) {
      state = (state * 1103515245 + 12345) >>> 0;
      let id = state % tokenizer.vocabSize;
      if (tokenizer.isSpecialId(id)) id = 300;
      tokens[t] = id;
    }
    tokens[999] = eod;
    writer.addSequence(tokens);
    writer.endDocument();
  }
  writer.finish();
  fs.copyFileSync(tokenizerFile, path.join(o.dir, `synthetic-${mb}mb_tokenizer.json`));
  return prefix;
}

for (const mb of o.mb.split(',').map(Number)) {
  const prefix = writeDataset(mb);
  const runDir = path.join(o.dir, `run-${mb}`);
  fs.rmSync(runDir, { recursive: true, force: true });
  const set = [
    'model.layers=2',
    'model.hidden=64',
    'model.heads=2',
    'model.ffn=256',
    'model.vocab_size=512',
    'model.seq_len=128',
    'train.micro_batch=8',
    `train.steps=${o.steps}`,
    'train.eval_every=0',
    'checkpoint.every=0',
    `data.path=${prefix}`,
    `run.dir=${runDir}`,
    `data.cache_dir=${path.join(o.dir, 'cache')}`,
  ].flatMap((kv) => ['--set', kv]);
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, paratrain, 'train', '--config', 'gpt-mini', ...set], {
    encoding: 'utf8',
    env: { ...process.env, PARATRAIN_NUM_THREADS: '2' },
  });
  if (r.status !== 0) throw new Error(`training on ${prefix} failed: ${r.stderr.slice(-2000)}`);
  const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1]);
  const seconds = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)/.exec(r.stderr)?.[1];
  const binMb = fs.statSync(`${prefix}.bin`).size / 2 ** 20;
  process.stdout.write(
    JSON.stringify({
      dataset_mb: Number(binMb.toFixed(1)),
      steps: Number(o.steps),
      peak_rss_mb: Number((rssKb / 1024).toFixed(1)),
      wall: seconds,
    }) + '\n',
  );
}
