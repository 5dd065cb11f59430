#!/usr/bin/env node
// check-megatron-compat.mjs — the two-way Megatron compatibility check at scale, with the
// independent Python reader/writer (scripts/megatron_indexed.py, standard library only):
//
// 1. paratrain → Python: a dataset paratrain wrote (--paratrain PREFIX, e.g. the 1 GB output that
//    `node scripts/bench-preprocess.mjs --keep` leaves) is read whole by Python's `verify` (header,
//    every offset, the document index, the .bin size; .bin streamed) and by paratrain's own reader;
//    the counts and the digests of the lengths, offsets, document indices and all token ids must agree.
// 2. Python → paratrain: Python's `write-synthetic` writes --mb megabytes of GPT documents (uint16,
//    ids of a 400-token BPE that `paratrain preprocess` trains, each document ending with
//    <|endoftext|>); paratrain's reader gets the same digests, and `paratrain train` (a 2-layer GPT)
//    trains --steps steps from it through data.path. Prints one JSON line per part; exits 1 on a mismatch.
//
//   node scripts/check-megatron-compat.mjs --paratrain PREFIX [--mb 1024] [--steps 5] [--dir /tmp/paratrain-compat] [--keep]
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: o } = parseArgs({
  options: {
    paratrain: { type: 'string' },
    mb: { type: 'string', default: '1024' },
    steps: { type: 'string', default: '5' },
    dir: { type: 'string', default: '/tmp/paratrain-compat' },
    keep: { type: 'boolean', default: false },
  },
});
const { IndexedDataset, INDEXED_DTYPES } = await import(path.join(root, 'dist', 'data', 'indexed-dataset.js'));
const { TextTokenizer } = await import(path.join(root, 'dist', 'data', 'tokenizer.js'));
const python = path.join(root, 'scripts', 'megatron_indexed.py');
const paratrain = path.join(root, 'bin', 'paratrain.js');
fs.mkdirSync(o.dir, { recursive: true });
if (os.endianness() !== 'LE') throw new Error('the digests below assume a little-endian machine');

const sha256 = (array) =>
  crypto
    .createHash('sha256')
    .update(new Uint8Array(array.buffer, array.byteOffset, array.byteLength))
    .digest('hex');

/** The counts and digests megatron_indexed.py gives, from paratrain's reader (tokens read 16 M at a time). */
function paratrainDigests(prefix) {
  const data = IndexedDataset.open(prefix);
  const tokens = crypto.createHash('sha256');
  const count = data.tokenCount;
  let position = 0;
  while (position < count) {
    const end = Math.min(count, position + (1 << 24));
    const ids = data.tokens(position, end);
    tokens.update(new Uint8Array(ids.buffer, ids.byteOffset, ids.byteLength));
    position = end;
  }
  // The index as stored: the reader keeps it as sequence starts in tokens and document indices.
  const S = data.sequenceCount;
  const bytes = BigInt(INDEXED_DTYPES[data.dtype].bytes);
  const lengths = Int32Array.from({ length: S }, (_, i) => data.sequenceLength(i));
  const pointers = BigInt64Array.from({ length: S }, (_, i) => BigInt(data.sequenceStarts[i]) * bytes);
  const documentIndices = BigInt64Array.from(data.documentIndices, (d) => BigInt(d));
  const digests = {
    dtype: data.dtype,
    sequences: data.sequenceCount,
    documents: data.documentCount,
    tokens: count,
    tokens_sha256: tokens.digest('hex'),
    lengths_sha256: sha256(lengths),
    pointers_sha256: sha256(pointers),
    document_indices_sha256: sha256(documentIndices),
  };
  data.close();
  return digests;
}

function runPython(args) {
  const started = performance.now();
  const r = spawnSync('python3', [python, ...args], { encoding: 'utf8', maxBuffer: 1 << 24 });
  if (r.status !== 0) throw new Error(`megatron_indexed.py ${args[0]} failed: ${r.stderr}`);
  return { result: JSON.parse(r.stdout), seconds: (performance.now() - started) / 1000 };
}

function timed(f) {
  const started = performance.now();
  const result = f();
  return { result, seconds: (performance.now() - started) / 1000 };
}

const mismatches = (a, b) => Object.keys(a).filter((key) => a[key] !== b[key]);
let failed = false;
const report = (line) => {
  failed ||= line.mismatched.length > 0;
  process.stdout.write(JSON.stringify(line) + '\n');
};

// 1. paratrain wrote it, Python reads it.
if (o.paratrain) {
  const prefix = path.resolve(o.paratrain);
  const py = runPython(['verify', prefix]);
  const ours = timed(() => paratrainDigests(prefix));
  report({
    check: 'paratrain wrote, python read',
    prefix,
    bin_mb: Number((fs.statSync(`${prefix}.bin`).size / 2 ** 20).toFixed(1)),
    ...py.result,
    python_seconds: Number(py.seconds.toFixed(1)),
    paratrain_seconds: Number(ours.seconds.toFixed(1)),
    mismatched: mismatches(py.result, ours.result),
  });
}

// 2. Python wrote it, paratrain reads and trains from it.
const tokenizerFile = path.join(o.dir, 'py_tokenizer.json');
if (!fs.existsSync(tokenizerFile)) {
  const text = path.join(o.dir, 'small.txt');
  fs.writeFileSync(
    text,
    Array.from({ length: 200 }, (_, i) => `Document ${i}: the whale swam far out to sea.`).join('\n\n'),
  );
  const r = spawnSync(
    process.execPath,
    [paratrain, 'preprocess', '--input', text, '--output-prefix', path.join(o.dir, 'py')]
      .concat(['--tokenizer-kind', 'bpe', '--vocab-size', '400', '--json'])
      .concat(['--cache-dir', path.join(o.dir, 'cache')]),
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`preprocess failed: ${r.stderr}`);
}
const tokenizer = TextTokenizer.fromFile(tokenizerFile);
// The ids Python draws from: the run of ordinary ids after the leading special ones.
let low = 0;
while (tokenizer.isSpecialId(low)) low++;
let high = low;
while (high < tokenizer.vocabSize && !tokenizer.isSpecialId(high)) high++;
const prefix = path.join(o.dir, 'py_text_document');
// Documents of 1,000 ids on average (200 to 1,799 and the end of text), 2 bytes an id.
const documents = Math.ceil((Number(o.mb) * 2 ** 20) / 2 / 1000);
const written = runPython(['write-synthetic', prefix, documents, low, high, tokenizer.endOfTextId(), 7].map(String));
const read = timed(() => paratrainDigests(prefix));
const runDir = path.join(o.dir, 'run');
fs.rmSync(runDir, { recursive: true, force: true });
const set = [
  ...['model.layers=2', 'model.hidden=64', 'model.heads=2', 'model.ffn=256', 'model.vocab_size=512'],
  ...['model.seq_len=128', 'train.micro_batch=8', `train.steps=${o.steps}`, 'train.eval_every=0'],
  ...['checkpoint.every=0', `data.path=${prefix}`, `run.dir=${runDir}`],
  `data.cache_dir=${path.join(o.dir, 'cache')}`,
].flatMap((kv) => ['--set', kv]);
const train = timed(() =>
  spawnSync(process.execPath, [paratrain, 'train', '--config', 'gpt-mini', ...set], {
    encoding: 'utf8',
    env: { ...process.env, PARATRAIN_NUM_THREADS: '2' },
  }),
);
if (train.result.status !== 0) throw new Error(`training failed: ${train.result.stderr.slice(-2000)}`);
const events = fs
  .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
  .trim()
  .split('\n')
  .map((line) => JSON.parse(line));
const start = events.find((e) => e.event === 'start');
const losses = events.filter((e) => e.event === undefined && 'loss' in e).map((e) => Number(e.loss.toFixed(3)));
const trainedOk =
  start?.corpus_documents === documents && losses.length === Number(o.steps) && losses.every(Number.isFinite);
report({
  check: 'python wrote, paratrain read and trained',
  prefix,
  bin_mb: Number((fs.statSync(`${prefix}.bin`).size / 2 ** 20).toFixed(1)),
  ...written.result,
  python_write_seconds: Number(written.seconds.toFixed(1)),
  paratrain_read_seconds: Number(read.seconds.toFixed(1)),
  train_corpus_documents: start?.corpus_documents,
  train_losses: losses,
  train_seconds: Number(train.seconds.toFixed(1)),
  mismatched: [...mismatches(written.result, read.result), ...(trainedOk ? [] : ['training'])],
});
if (!o.keep) for (const ext of ['.bin', '.idx']) fs.rmSync(`${prefix}${ext}`, { force: true });
process.exitCode = failed ? 1 : 0;
