#!/usr/bin/env node
// bench-preprocessed-rss.mjs — peak resident memory of short runs that train from preprocessed
// datasets (data.path), for datasets of several sizes side by side: if reading does not copy the
// corpus, peak RSS stays flat while the dataset grows. Three kinds of run (--runs):
//   gpt    a 2-layer GPT on document data (documents of 1,000 ids ending with <|endoftext|>);
//   bert   a 2-layer BERT (NSP) on sentence-split data (documents of about 1,000 ids in sentences of
//          10 to 49 ids, no end-of-document token);
//   blend  the GPT run on data.path [0.7, A, 0.3, B]: two document datasets of half the size each,
//          so the blend holds as many tokens as the gpt run's one.
// The datasets are synthetic (pseudo-random ordinary ids), written with paratrain's
// IndexedDatasetWriter, uint16; the tokenizers are a 400-token BPE (gpt, blend) and a 400-token
// WordPiece (bert) that `paratrain preprocess` trains on a small text. Every run is seq 128,
// micro-batch 8, --steps steps, no evaluation or checkpoint. Peak RSS is GNU time's "Maximum resident
// set size"; --mb is the size of each run's token data in MiB.
//
//   node scripts/bench-preprocessed-rss.mjs [--mb 10,1024] [--runs gpt,bert,blend] [--steps 20] [--dir /tmp/paratrain-bench-rss]
import { Buffer } from 'node:buffer';
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
    runs: { type: 'string', default: 'gpt,bert,blend' },
    dir: { type: 'string', default: '/tmp/paratrain-bench-rss' },
  },
});
const { IndexedDatasetWriter } = await import(path.join(root, 'dist', 'data', 'indexed-dataset.js'));
const { TextTokenizer } = await import(path.join(root, 'dist', 'data', 'tokenizer.js'));
fs.mkdirSync(o.dir, { recursive: true });
const paratrain = path.join(root, 'bin', 'paratrain.js');

/** A tokenizer of `kind` that preprocess trains on a small text once, and the run of its ordinary ids. */
function smallTokenizer(kind) {
  const file = path.join(o.dir, `small-${kind}_tokenizer.json`);
  if (!fs.existsSync(file)) {
    const text = path.join(o.dir, 'small.txt');
    fs.writeFileSync(
      text,
      Array.from({ length: 200 }, (_, i) => `Document ${i}: the whale swam far out to sea.`).join('\n\n'),
    );
    const r = spawnSync(
      process.execPath,
      [paratrain, 'preprocess', '--input', text, '--output-prefix', path.join(o.dir, `small-${kind}`)]
        .concat(['--tokenizer-kind', kind, '--vocab-size', '400', '--json'])
        .concat(['--cache-dir', path.join(o.dir, 'cache')]),
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`preprocess failed: ${r.stderr}`);
  }
  const tokenizer = TextTokenizer.fromFile(file);
  let low = 0;
  while (tokenizer.isSpecialId(low)) low++;
  let high = low;
  while (high < tokenizer.vocabSize && !tokenizer.isSpecialId(high)) high++;
  return { file, tokenizer, low, high };
}

/**
 * A synthetic dataset of `mb` MiB of uint16 ids: documents of 1,000 ids, one sequence ending with
 * <|endoftext|> (gpt), or sentences of 10 to 49 ids (bert). Written once per name.
 */
function writeDataset(name, mb, kind, seed) {
  const sentences = kind === 'wordpiece';
  const prefix = path.join(o.dir, `${name}_text_${sentences ? 'sentence' : 'document'}`);
  const { file, tokenizer, low, high } = smallTokenizer(kind);
  fs.copyFileSync(file, path.join(o.dir, `${name}_tokenizer.json`));
  if (fs.existsSync(`${prefix}.idx`)) return prefix;
  const writer = new IndexedDatasetWriter(prefix, 8); // uint16: 2 bytes a token
  const documents = Math.ceil((mb * 1024 * 1024) / 2 / 1000);
  const tokens = new Uint16Array(1000);
  let state = seed;
  const next = () => (state = (state * 1103515245 + 12345) >>> 0);
  for (let d = 0; d < documents; d++) {
    for (let t = 0; t < 1000; t++) tokens[t] = low + (next() % (high - low));
    if (!sentences) {
      tokens[999] = tokenizer.endOfTextId();
      writer.addSequence(tokens);
    } else
      for (let at = 0; at < 1000;) {
        const length = Math.min(1000 - at, 10 + (next() % 40));
        writer.addSequence(tokens.subarray(at, at + length));
        at += length;
      }
    writer.endDocument();
  }
  writer.finish();
  return prefix;
}

/** The sequence count in an .idx header (u64 at byte 18). */
function sequenceCount(idx) {
  const fd = fs.openSync(idx, 'r');
  const bytes = Buffer.alloc(8);
  fs.readSync(fd, bytes, 0, 8, 18);
  fs.closeSync(fd);
  return Number(bytes.readBigUInt64LE(0));
}

const model = ['model.layers=2', 'model.hidden=64', 'model.heads=2', 'model.ffn=256', 'model.vocab_size=512'];
const RUNS = {
  gpt: (mb) => ({ config: 'gpt-mini', path: writeDataset(`gpt-${mb}mb`, mb, 'bpe', 12345) }),
  bert: (mb) => ({ config: 'bert-mini', path: writeDataset(`bert-${mb}mb`, mb, 'wordpiece', 12345) }),
  blend: (mb) => ({
    config: 'gpt-mini',
    path: `[0.7, ${writeDataset(`blend-a-${mb / 2}mb`, mb / 2, 'bpe', 777)}, 0.3, ${writeDataset(`blend-b-${mb / 2}mb`, mb / 2, 'bpe', 999)}]`,
  }),
};

// The first training run on a machine measures the CPU's peak FLOP/s (cached in data.cache_dir),
// which would show in its peak RSS: one unreported step first.
const sizes = o.mb.split(',').map(Number);
train(o.runs.split(',')[0], 0.5, 1); // on a dataset of its own, so the measured runs build their indices
for (const run of o.runs.split(','))
  for (const mb of sizes) process.stdout.write(JSON.stringify(train(run, mb)) + '\n');

function train(run, mb, steps = Number(o.steps)) {
  const { config, path: dataPath } = RUNS[run](mb);
  const runDir = path.join(o.dir, `run-${run}-${mb}`);
  fs.rmSync(runDir, { recursive: true, force: true });
  const set = [
    ...model,
    ...['model.seq_len=128', 'train.micro_batch=8', `train.steps=${steps}`, 'train.eval_every=0'],
    ...['checkpoint.every=0', `data.path=${dataPath}`, `run.dir=${runDir}`],
    `data.cache_dir=${path.join(o.dir, 'cache')}`,
  ].flatMap((kv) => ['--set', kv]);
  const r = spawnSync('/usr/bin/time', ['-v', process.execPath, paratrain, 'train', '--config', config, ...set], {
    encoding: 'utf8',
    env: { ...process.env, PARATRAIN_NUM_THREADS: '2' },
  });
  if (r.status !== 0) throw new Error(`${run} training on ${dataPath} failed: ${r.stderr.slice(-2000)}`);
  const rssKb = Number(/Maximum resident set size \(kbytes\): (\d+)/.exec(r.stderr)?.[1]);
  const seconds = /Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)/.exec(r.stderr)?.[1];
  const start = fs
    .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line))
    .find((e) => e.event === 'start');
  const prefixes = dataPath.startsWith('[')
    ? dataPath
        .slice(1, -1)
        .split(', ')
        .filter((_, i) => i % 2 === 1)
    : [dataPath];
  const binMb = prefixes.reduce((sum, p) => sum + fs.statSync(`${p}.bin`).size, 0) / 2 ** 20;
  const sequences = prefixes.reduce((sum, p) => sum + sequenceCount(`${p}.idx`), 0);
  return {
    run,
    dataset_mb: Number(binMb.toFixed(1)),
    documents: start?.corpus_documents,
    sequences,
    steps,
    sample_indices: (start?.sample_indices ?? []).map((use) => `${use.kind}/${use.split}/${use.origin}`).join(' '),
    peak_rss_mb: Number((rssKb / 1024).toFixed(1)),
    wall: seconds,
  };
}
