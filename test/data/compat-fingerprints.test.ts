// Bitwise pins: the BERT/ALBERT-style (masked-lm, sentence-pairs, nsp|sop, wordpiece) and GPT-style
// (causal-lm, bpe) batches and tokenizers must stay exactly what the data layer produced before it
// learned objectives and packings (test/model compares whole training runs against numbers recorded
// then). The sha256 values below were computed with that earlier code (arch 'bert' / 'gpt',
// nspLabels) on the same options; a difference means a changed draw order, layout or tokenizer.
// Re-pin only for a change that is meant to alter every run.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { TrainBatch } from '../../src/data/batch';
import { openDataset, type DatasetOptions } from '../../src/data/dataset';

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-compat-'));
afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

/** sha256 over the shape and the bytes of every array (null arrays marked), in a fixed order. */
function fingerprint(batch: TrainBatch): string {
  const hash = crypto.createHash('sha256');
  hash.update(`${batch.batchSize}x${batch.seqLen}`);
  for (const array of [batch.tokens, batch.labels, batch.segments, batch.attentionMask, batch.pairLabels]) {
    if (array === null) {
      hash.update('|null');
    } else {
      hash.update(`|${array.constructor.name}:${array.length}:`);
      hash.update(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
    }
  }
  return hash.digest('hex');
}

const base = { corpus: 'bundled', cacheDir, vocabSize: 512, heldoutFraction: 0.1, maskProb: 0.15, maxDocuments: 20 };

interface Pinned {
  options: DatasetOptions;
  /** sha256 of the tokenizer JSON, and the names (cache keys) of its cache file and of the token store's. */
  tokenizerHash: string;
  tokenizerCacheFile: string;
  tokenStoreFile: string;
  samplesPerEpoch: { train: number; eval: number };
  /** train [0, 16), train [n - 3, n + 3) across the epoch boundary, the whole first epoch, eval [5, 13). */
  fingerprints: { trainHead: string; trainEpochBoundary: string; trainEpoch: string; eval: string };
}

const WORDPIECE_512 = {
  tokenizerHash: 'fefc1f2596e86e18ec9ae38d607f4fef3baaf425012511a2974ff05a093b8fc3',
  tokenizerCacheFile: 'wordpiece-512-be483df6ade0f863b002.json',
  tokenStoreFile: '8c8b42c978d56922d507fa28.ptok',
};

const PINNED: Record<string, Pinned> = {
  'BERT (masked-lm, sentence-pairs, nsp, wordpiece)': {
    options: {
      ...base,
      objective: 'masked-lm',
      packing: 'sentence-pairs',
      pairTask: 'nsp',
      tokenizerKind: 'wordpiece',
      seqLen: 64,
      seed: 1234,
    },
    ...WORDPIECE_512,
    samplesPerEpoch: { train: 738, eval: 47 },
    fingerprints: {
      trainHead: '65743dd4d267562e10654d4131608227663278a5adf250f870c9cab1d7aee348',
      trainEpochBoundary: 'bf1ec9346c0bc8e74ab97e40dd7f029708f822778de57fc3b824e3907e5a03df',
      trainEpoch: '5ffea845aae057ddc698fc32ee5373a696c619ddc2406120bea8257da072688b',
      eval: '89731b978c3853f43363320aaccc46ef26b10d3e39885365ba30669d0518d7e9',
    },
  },
  'ALBERT-style (masked-lm, sentence-pairs, sop, wordpiece, maxPredictionsPerSeq 4)': {
    options: {
      ...base,
      objective: 'masked-lm',
      packing: 'sentence-pairs',
      pairTask: 'sop',
      tokenizerKind: 'wordpiece',
      seqLen: 48,
      seed: 5,
      maxPredictionsPerSeq: 4,
    },
    ...WORDPIECE_512,
    samplesPerEpoch: { train: 894, eval: 59 },
    fingerprints: {
      trainHead: '4bfc7d451b74f3a8d782797fefd13663fffb39b5f85677f7ec44da02af2419cb',
      trainEpochBoundary: '754730864ae607ebaf328d7ce05cf77f8b3937aec5e39aadf4aa76cf404620c9',
      trainEpoch: '30fc96301aa92813abfdb80e7cc499793d7714bffc88b3ee372eead0cee65022',
      eval: '48289f6279b7ab3ba7368d6e670cea9dfe8327bf2e7ab7f789570930a2cecc06',
    },
  },
  'GPT (causal-lm, bpe)': {
    options: { ...base, objective: 'causal-lm', tokenizerKind: 'bpe', seqLen: 32, seed: 7 },
    tokenizerHash: '47072f820ff0b94964e9f8c29afce3fa3de24a2e97985362a0eb98d916fe9cb6',
    tokenizerCacheFile: 'bpe-512-be483df6ade0f863b002.json',
    tokenStoreFile: '02e66d14987073d5cad26c3a.ptok',
    samplesPerEpoch: { train: 2766, eval: 169 },
    fingerprints: {
      trainHead: 'bf4c0e9184c19766f8e17db848d86fcbb24cc3ba0cca834e966d01d5fa3706bc',
      trainEpochBoundary: '00d129ec80238ccbd96c42698295f032365cf75f67fec37557df4ff82be9e3ed',
      trainEpoch: '9f58f291de40455dc32683e5e0e3674aab18c73e3d5cb0c8572fba6c68651f12',
      eval: '911d98e807a2e6c976c5e3707725e5008694e859cd665bbc7358e00e44b3d1e3',
    },
  },
};

describe('batches and tokenizers stay bit-for-bit what the BERT and GPT datasets produced', () => {
  for (const [name, pinned] of Object.entries(PINNED)) {
    it(name, async () => {
      const { dataset, tokenizer } = await openDataset(pinned.options);
      expect(tokenizer.hash).toBe(pinned.tokenizerHash);
      expect(fs.readdirSync(path.join(cacheDir, 'tokenizers'))).toContain(pinned.tokenizerCacheFile);
      expect(fs.readdirSync(path.join(cacheDir, 'token-stores'))).toContain(pinned.tokenStoreFile);
      const train = dataset.samplesPerEpoch('train');
      expect({ train, eval: dataset.samplesPerEpoch('eval') }).toEqual(pinned.samplesPerEpoch);
      expect({
        trainHead: fingerprint(dataset.batch('train', 0, 16)),
        trainEpochBoundary: fingerprint(dataset.batch('train', train - 3, 6)),
        trainEpoch: fingerprint(dataset.batch('train', 0, train)),
        eval: fingerprint(dataset.batch('eval', 5, 8)),
      }).toEqual(pinned.fingerprints);
    });
  }
});
