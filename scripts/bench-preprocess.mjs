#!/usr/bin/env node
// bench-preprocess.mjs — `paratrain preprocess` throughput with 1 and 2 worker threads beside the
// floor: the `tokenizers` package's own encodeBatch over the same documents, in the same batches,
// from one thread with nothing else (no reading of output, no writing). The corpus is the bundled
// text repeated (each copy numbered) into one file of --mb megabytes, documents separated by blank
// lines; one WordPiece tokenizer (30,522) trained on the bundled corpus serves all three runs.
// TOKENIZERS_PARALLELISM is false for all three (unless set): the `tokenizers` package would
// otherwise spread each encodeBatch over its own thread pool, and "one thread" and "--workers N"
// would not mean what they say. The floor's time is its encodeBatch calls only (reading the
// documents is timed apart); preprocess's is its own (reading, tokenizing, writing).
// --keep keeps the --workers 1 output (OUT-w1_text_document.bin/.idx) for
// scripts/check-megatron-compat.mjs.
//
//   node scripts/bench-preprocess.mjs [--mb 1024] [--dir /tmp/paratrain-bench-preprocess] [--keep] [--json]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: o } = parseArgs({
  options: {
    mb: { type: 'string', default: '1024' },
    dir: { type: 'string', default: '/tmp/paratrain-bench-preprocess' },
    json: { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
  },
});
process.env.TOKENIZERS_PARALLELISM ??= 'false';
const data = await import(path.join(root, 'dist', 'data', 'index.js'));
const { corpusDocuments } = await import(path.join(root, 'dist', 'data', 'corpus.js'));
fs.mkdirSync(o.dir, { recursive: true });

// The corpus file, built once per size.
const corpusFile = path.join(o.dir, `corpus-${o.mb}mb.txt`);
const targetBytes = Number(o.mb) * 1e6;
if (!fs.existsSync(corpusFile) || fs.statSync(corpusFile).size < targetBytes) {
  const bundled = data.loadCorpus('bundled').map((d) => d.text.replace(/\n\s*\n/g, '\n'));
  const fd = fs.openSync(corpusFile, 'w');
  let written = 0;
  for (let copy = 0; written < targetBytes; copy++) {
    for (const text of bundled) {
      const piece = `Copy ${copy}.\n${text}\n\n`;
      written += fs.writeSync(fd, piece);
      if (written >= targetBytes) break;
    }
  }
  fs.closeSync(fd);
}
const corpusBytes = fs.statSync(corpusFile).size;

const cacheDir = path.join(root, '.paratrain-cache');
const bundled = data.loadCorpus('bundled');
const trained = await data.loadOrTrainTokenizer({
  kind: 'wordpiece',
  vocabSize: 30522,
  corpus: bundled,
  corpusKey: data.fingerprintDocuments(bundled),
  cacheDir,
});
const tokenizerFile = path.join(o.dir, 'tokenizer.json');
fs.writeFileSync(tokenizerFile, trained.toJSON());
// The floor reads the very file preprocess is given.
const tokenizer = data.TextTokenizer.fromFile(tokenizerFile);

// The floor: read the same documents, encodeBatch them in ~1 M-character batches, one thread.
const floorStarted = performance.now();
let floorTokens = 0;
let encodeMs = 0;
let batch = [];
let chars = 0;
const encode = async () => {
  const started = performance.now();
  const encoded = await tokenizer.encodeBatch(batch);
  encodeMs += performance.now() - started;
  for (const ids of encoded) floorTokens += ids.length;
  batch = [];
  chars = 0;
};
for (const document of corpusDocuments(corpusFile)) {
  batch.push(document.text);
  chars += document.text.length;
  if (chars >= 1 << 20) await encode();
}
await encode();
const floorSeconds = encodeMs / 1000;
const floorWallSeconds = (performance.now() - floorStarted) / 1000;

const runs = [];
for (const workers of [1, 2]) {
  const prefix = path.join(o.dir, `out-w${workers}`);
  const started = performance.now();
  const r = spawnSync(
    process.execPath,
    [
      path.join(root, 'bin', 'paratrain.js'),
      'preprocess',
      ...['--input', corpusFile, '--output-prefix', prefix, '--tokenizer', tokenizerFile],
      ...['--workers', String(workers), '--json'],
    ],
    { encoding: 'utf8', maxBuffer: 1 << 26 },
  );
  if (r.status !== 0) throw new Error(`preprocess --workers ${workers} failed: ${r.stderr}`);
  const [out] = JSON.parse(r.stdout).outputs;
  runs.push({ workers, tokens: out.tokens, seconds: out.seconds, wallSeconds: (performance.now() - started) / 1000 });
  if (!(o.keep && workers === 1)) for (const ext of ['.bin', '.idx']) fs.rmSync(`${out.prefix}${ext}`, { force: true });
}

const summary = {
  corpusMB: corpusBytes / 1e6,
  tokenizersParallelism: process.env.TOKENIZERS_PARALLELISM,
  floor: {
    tokens: floorTokens,
    seconds: floorSeconds,
    wallSeconds: floorWallSeconds,
    tokensPerSecond: floorTokens / floorSeconds,
  },
  preprocess: runs.map((r) => ({
    ...r,
    tokensPerSecond: r.tokens / r.seconds,
    vsFloor: r.tokens / r.seconds / (floorTokens / floorSeconds),
    sameTokensAsFloor: r.tokens === floorTokens,
  })),
};
if (o.json) process.stdout.write(JSON.stringify(summary) + '\n');
else {
  process.stdout.write(`corpus ${summary.corpusMB.toFixed(0)} MB, ${floorTokens} tokens\n`);
  process.stdout.write(
    `floor (encodeBatch, one thread): ${Math.round(summary.floor.tokensPerSecond)} tokens/s ` +
      `(${floorSeconds.toFixed(1)} s encoding, ${floorWallSeconds.toFixed(1)} s with reading)\n`,
  );
  for (const r of summary.preprocess)
    process.stdout.write(
      `preprocess --workers ${r.workers}: ${Math.round(r.tokensPerSecond)} tokens/s (${r.vsFloor.toFixed(2)}× the floor), ` +
        `${r.wallSeconds.toFixed(1)} s wall\n`,
    );
}
