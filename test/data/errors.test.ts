import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDataset, type DatasetOptions } from '../../src/data/dataset';
import { DataError } from '../../src/data/errors';

const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-data-errors-'));
afterAll(() => fs.rmSync(cacheDir, { recursive: true, force: true }));

const options: DatasetOptions = {
  arch: 'bert',
  corpus: 'bundled',
  cacheDir,
  vocabSize: 512,
  seqLen: 64,
  seed: 1,
  heldoutFraction: 0.1,
  maskProb: 0.15,
  pairTask: 'nsp',
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

  it('refuses a BERT tokenizer for GPT', async () => {
    const error = await rejection(openDataset({ ...options, arch: 'gpt', tokenizerPath }));
    expect(error.code).toBe('ERR_TOKENIZER');
  });

  it('rejects invalid options with ERR_DATA_CONFIG', async () => {
    expect((await rejection(openDataset({ ...options, maskProb: 1.5 }))).code).toBe('ERR_DATA_CONFIG');
    expect((await rejection(openDataset({ ...options, heldoutFraction: 0.99 }))).code).toBe('ERR_DATA_CONFIG');
  });

  it('reports an empty eval split on use, not on open', async () => {
    const { dataset } = await openDataset({ ...options, heldoutFraction: 0 });
    expect(dataset.samplesPerEpoch('eval')).toBe(0);
    expect(() => dataset.batch('eval', 0, 1)).toThrow(DataError);
  });
});
