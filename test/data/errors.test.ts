import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDataset, type DatasetOptions } from '../../src/data/dataset';
import { DataError } from '../../src/data/errors';

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-data-errors-'));
afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

const options: DatasetOptions = {
  objective: 'masked-lm',
  packing: 'sentence-pairs',
  pairTask: 'nsp',
  tokenizerKind: 'wordpiece',
  corpus: 'bundled',
  cacheDir,
  vocabSize: 512,
  seqLen: 64,
  seed: 1,
  heldoutFraction: 0.1,
  maskProb: 0.15,
  maxDocuments: 12,
};

// A WordPiece tokenizer trained for `options`, saved as a tokenizer.json file.
const tokenizerPath = path.join(cacheDir, 'tokenizer.json');
let tokenizerVocabSize: number;
beforeAll(async () => {
  const { tokenizer } = await openDataset(options);
  fs.writeFileSync(tokenizerPath, tokenizer.toJSON());
  tokenizerVocabSize = tokenizer.vocabSize;
});

async function rejection(promise: Promise<unknown>): Promise<DataError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(DataError);
    return error as DataError;
  }
  throw new Error('expected openDataset to reject');
}

describe('openDataset errors', () => {
  it('names a missing corpus path', async () => {
    const missing = path.join(cacheDir, 'missing-corpus.txt');
    const error = await rejection(openDataset({ ...options, corpus: missing }));
    expect(error.code).toBe('ERR_DATA_NOT_FOUND');
    expect(error.message).toContain(missing);
  });

  it('explains a tokenizer larger than model.vocab_size', async () => {
    const error = await rejection(openDataset({ ...options, tokenizerPath, vocabSize: 300 }));
    expect(error.code).toBe('ERR_TOKENIZER');
    expect(error.message).toContain(`has ${tokenizerVocabSize} tokens but model.vocab_size is 300`);
  });

  it('refuses a WordPiece tokenizer for a causal LM, and for a RoBERTa-style BPE', async () => {
    const causal = await rejection(
      openDataset({ ...options, objective: 'causal-lm', tokenizerKind: 'bpe', tokenizerPath }),
    );
    expect(causal.code).toBe('ERR_TOKENIZER');
    expect(causal.message).toContain('is a wordpiece tokenizer but a bpe one is required');
    const roberta = await rejection(
      openDataset({ ...options, packing: 'full-sentences', tokenizerKind: 'roberta-bpe', tokenizerPath }),
    );
    expect(roberta.code).toBe('ERR_TOKENIZER');
    expect(roberta.message).toContain('<mask>');
  });

  it('rejects invalid options with ERR_DATA_CONFIG', async () => {
    expect((await rejection(openDataset({ ...options, maskProb: 1.5 }))).code).toBe('ERR_DATA_CONFIG');
    expect((await rejection(openDataset({ ...options, heldoutFraction: 0.99 }))).code).toBe('ERR_DATA_CONFIG');
  });

  it('names the option and its allowed values', async () => {
    const messageOf = async (overrides: Record<string, unknown>) =>
      (await rejection(openDataset({ ...options, ...overrides } as DatasetOptions))).message;
    expect(await messageOf({ objective: 'mlm' })).toContain(
      "objective must be one of 'masked-lm', 'causal-lm', got mlm",
    );
    expect(await messageOf({ packing: 'docs' })).toContain(
      "packing must be one of 'sentence-pairs', 'full-sentences' for objective 'masked-lm', got docs",
    );
    expect(await messageOf({ packing: undefined })).toContain('packing must be one of');
    expect(await messageOf({ pairTask: 'nxp' })).toContain(
      "pairTask must be one of 'nsp', 'sop', 'none' for packing 'sentence-pairs', got nxp",
    );
    expect(await messageOf({ maskProb: undefined })).toContain('maskProb must be in (0, 1), got undefined');
    expect(await messageOf({ tokenizerKind: 'bpe' })).toContain(
      "tokenizerKind must be one of 'wordpiece', 'roberta-bpe' for objective 'masked-lm', got bpe",
    );
    expect(await messageOf({ objective: 'causal-lm', tokenizerKind: 'wordpiece' })).toContain(
      "tokenizerKind must be one of 'bpe' for objective 'causal-lm', got wordpiece",
    );
    expect(await messageOf({ seqLen: 4 })).toContain('seqLen must be an integer >= 5, got 4');
    expect(await messageOf({ packing: 'full-sentences', seqLen: 2 })).toContain(
      'seqLen must be an integer >= 3, got 2',
    );
  });

  it('ignores the masked-LM options for a causal LM, as before', async () => {
    const { dataset } = await openDataset({
      ...options,
      objective: 'causal-lm',
      tokenizerKind: 'bpe',
      vocabSize: 600,
      packing: undefined,
      pairTask: undefined,
      maskProb: undefined,
    });
    expect(dataset.objective).toBe('causal-lm');
  });

  it('reports an empty eval split on use, not on open', async () => {
    const { dataset } = await openDataset({ ...options, heldoutFraction: 0 });
    expect(dataset.samplesPerEpoch('eval')).toBe(0);
    expect(() => dataset.batch('eval', 0, 1)).toThrow(DataError);
  });
});
