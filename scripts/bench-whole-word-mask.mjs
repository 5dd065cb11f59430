#!/usr/bin/env node
// bench-whole-word-mask.mjs — the share of real tokens that masked-LM sampling selects, and the
// share of those replaced by the mask token, with token-level and whole-word masking side by side
// (bundled corpus, first 60 documents, a 400-token WordPiece, sentence pairs, seq_len 128), plus
// the time to build a batch of 32. Needs `npm run build:ts`.
//
//   node scripts/bench-whole-word-mask.mjs [--cap 19|none]
import * as os from 'node:os';
import * as path from 'node:path';
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { values: o } = parseArgs({ options: { cap: { type: 'string', default: '19' } } });
const { openDataset } = await import(path.join(root, 'dist', 'data', 'dataset.js'));
const base = {
  objective: 'masked-lm',
  packing: 'sentence-pairs',
  pairTask: 'nsp',
  tokenizerKind: 'wordpiece',
  corpus: 'bundled',
  cacheDir: path.join(os.tmpdir(), 'paratrain-bench-wwm'),
  vocabSize: 400,
  seqLen: 128,
  seed: 7,
  heldoutFraction: 0.1,
  maskProb: 0.15,
  maxDocuments: 60,
  ...(o.cap === 'none' ? {} : { maxPredictionsPerSeq: Number(o.cap) }),
};
for (const wholeWordMask of [false, true]) {
  const { dataset, tokenizer } = await openDataset({ ...base, wholeWordMask });
  const maskId = tokenizer.maskedLmSpecialIds().mask;
  const rows = Math.min(2000, dataset.samplesPerEpoch('train'));
  const b = dataset.batch('train', 0, rows);
  let real = 0;
  let selected = 0;
  let masked = 0;
  for (let i = 0; i < b.tokens.length; i++) {
    if (!b.attentionMask[i]) continue;
    const original = b.labels[i] >= 0 ? b.labels[i] : b.tokens[i];
    if (tokenizer.isSpecialId(original)) continue;
    real++;
    if (b.labels[i] >= 0) {
      selected++;
      if (b.tokens[i] === maskId) masked++;
    }
  }
  const t0 = performance.now();
  for (let k = 0; k < 20; k++) dataset.batch('train', k * 32, 32);
  const batchMs = (performance.now() - t0) / 20;
  process.stdout.write(
    JSON.stringify({
      wholeWordMask,
      cap: o.cap,
      rows,
      selected_share: Number((selected / real).toFixed(4)),
      mask_share_of_selected: Number((masked / selected).toFixed(4)),
      batch32_ms: Number(batchMs.toFixed(2)),
    }) + '\n',
  );
}
