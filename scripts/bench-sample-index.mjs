#!/usr/bin/env node
// bench-sample-index.mjs — what the cached sample indices save: the time to open a GPT dataset from
// data.path (one prefix, and a blend of two) when its indices are built, then when they are read back
// from the .pidx files beside the data. The datasets are synthetic (documents of --tokens random ids
// ending with <|endoftext|>), written with paratrain's IndexedDatasetWriter; the tokenizer is a
// 400-token BPE that `paratrain preprocess` trains on a small text. Run `npm run build:ts` first.
//
//   node scripts/bench-sample-index.mjs [--documents 500000] [--tokens 50] [--dir /tmp/paratrain-bench-index]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: o } = parseArgs({
  options: {
    documents: { type: 'string', default: '500000' },
    tokens: { type: 'string', default: '50' },
    dir: { type: 'string', default: '/tmp/paratrain-bench-index' },
  },
});
const { IndexedDatasetWriter } = await import(path.join(root, 'dist', 'data', 'indexed-dataset.js'));
const { TextTokenizer } = await import(path.join(root, 'dist', 'data', 'tokenizer.js'));
const { openDataset } = await import(path.join(root, 'dist', 'data', 'dataset.js'));
fs.mkdirSync(o.dir, { recursive: true });

const tokenizerFile = path.join(o.dir, 'small_tokenizer.json');
if (!fs.existsSync(tokenizerFile)) {
  const text = path.join(o.dir, 'small.txt');
  fs.writeFileSync(text, Array.from({ length: 200 }, (_, i) => `Document ${i}: the whale swam.`).join('\n\n'));
  const args = ['preprocess', '--input', text, '--output-prefix', path.join(o.dir, 'small')];
  args.push('--tokenizer-kind', 'bpe', '--vocab-size', '400', '--append-eod', '--json');
  args.push('--cache-dir', path.join(o.dir, 'cache'));
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'paratrain.js'), ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`preprocess failed: ${r.stderr}`);
}
const tokenizer = TextTokenizer.fromFile(tokenizerFile);
const eod = tokenizer.endOfTextId();
const documents = Number(o.documents);
const perDocument = Number(o.tokens);

/** A synthetic PREFIX_text_document with the tokenizer beside it. */
function synthetic(name) {
  const prefix = path.join(o.dir, `${name}_${documents}_text_document`);
  fs.copyFileSync(tokenizerFile, path.join(o.dir, `${name}_${documents}_tokenizer.json`));
  if (fs.existsSync(`${prefix}.idx`)) return prefix;
  const writer = new IndexedDatasetWriter(prefix, 8);
  const ids = new Int32Array(perDocument);
  for (let d = 0; d < documents; d++) {
    for (let t = 0; t < perDocument - 1; t++) ids[t] = (d * 7919 + t * 104729) % (eod > 300 ? 300 : eod);
    ids[perDocument - 1] = eod;
    writer.addSequence(ids);
    writer.endDocument();
  }
  writer.finish();
  return prefix;
}
const a = synthetic('a');
const b = synthetic('b');

const options = {
  objective: 'causal-lm',
  tokenizerKind: 'bpe',
  corpus: 'bundled',
  split: '969,30,1',
  cacheDir: path.join(o.dir, 'cache'),
  vocabSize: 512,
  seqLen: 128,
  seed: 1,
  heldoutFraction: 0,
};
const removeIndices = () => {
  for (const file of fs.readdirSync(o.dir)) if (file.endsWith('.pidx')) fs.rmSync(path.join(o.dir, file));
};
const time = async (dataPath) => {
  const started = performance.now();
  const { dataset } = await openDataset({ ...options, path: dataPath });
  const millis = performance.now() - started;
  const origins = [...new Set(dataset.summary.sampleIndices.map((use) => use.origin))].join('+');
  return { millis: Math.round(millis), origins };
};
removeIndices();
for (const [label, dataPath] of [
  ['one prefix', a],
  ['blend of two', [0.6, a, 0.4, b]],
]) {
  const built = await time(dataPath);
  const cached = await time(dataPath);
  const line = { data: label, documents, tokensPerDocument: perDocument, first: built, second: cached };
  process.stdout.write(`${JSON.stringify(line)}\n`);
  removeIndices();
}
