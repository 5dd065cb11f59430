// GPT training from a preprocessed dataset (data.path): real files made by `paratrain preprocess`,
// windows checked against the documents read back, the split by documents, the errors a user meets,
// and a few CLI training steps.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/load';
import { openDataset, type DatasetOptions } from '../../src/data/dataset';
import { DataError } from '../../src/data/errors';
import { splitDocuments } from '../../src/data/indexed-causal-lm-dataset';
import { IndexedDataset } from '../../src/data/indexed-dataset';

import { cliScratch } from './cli-scratch';

const { scratch, paratrain } = cliScratch('paratrain-preprocessed-');

const DOCUMENTS = 50;
fs.writeFileSync(
  path.join(scratch, 'book.txt'),
  Array.from(
    { length: DOCUMENTS },
    (_, i) => `The whale number ${i} swam far out to sea. The crew of ship ${i % 7} waited, and it rose again.`,
  ).join('\n\n') + '\n',
);

/** Preprocesses book.txt as GPT data; returns the dataset prefix. */
function preprocess(name: string, extra: string[]): string {
  const r = paratrain([
    'preprocess',
    ...['--input', path.join(scratch, 'book.txt'), '--output-prefix', path.join(scratch, name)],
    ...['--cache-dir', path.join(scratch, 'cache'), '--json'],
    ...extra,
  ]);
  expect(r.code, r.stderr).toBe(0);
  return path.join(scratch, `${name}_text_document`);
}
const withEod = preprocess('gpt', ['--tokenizer-kind', 'bpe', '--vocab-size', '400', '--append-eod']);
const tokenizerJson = path.join(scratch, 'gpt_tokenizer.json');
const withoutEod = preprocess('plain', ['--tokenizer', tokenizerJson]);

const SEQ_LEN = 16;
const options: DatasetOptions = {
  objective: 'causal-lm',
  tokenizerKind: 'bpe',
  corpus: 'bundled',
  path: withEod,
  split: '8,2,0',
  cacheDir: path.join(scratch, 'cache'),
  vocabSize: 512,
  seqLen: SEQ_LEN,
  seed: 5,
  heldoutFraction: 0,
};

async function refusal(promise: Promise<unknown>): Promise<DataError> {
  try {
    await promise;
  } catch (error) {
    return error as DataError;
  }
  throw new Error('expected a refusal');
}

describe('training from a preprocessed dataset (data.path)', () => {
  it('splits by documents and reads every window of the train stream once an epoch', async () => {
    const { dataset, tokenizer } = await openDataset(options);
    expect(dataset.summary).toMatchObject({ corpusDocuments: DOCUMENTS, trainDocuments: 40, evalDocuments: 10 });
    expect(dataset.summary.tokenStoreOrigin).toBe('preprocessed');

    // The expected stream: the first 40 documents read back, each already ending with <|endoftext|>.
    const data = IndexedDataset.open(withEod);
    const stream: number[] = [];
    for (let d = 0; d < 40; d++) {
      const [first, end] = data.documentSequences(d);
      for (let s = first; s < end; s++) stream.push(...data.sequence(s));
      expect(stream[stream.length - 1]).toBe(tokenizer.endOfTextId());
    }
    data.close();
    const windows = dataset.samplesPerEpoch('train');
    expect(windows).toBe(Math.floor((stream.length - 1) / SEQ_LEN));
    const batch = dataset.batch('train', 0, windows);
    const starts = new Set<number>();
    for (let row = 0; row < windows; row++) {
      const tokens = Array.from(batch.tokens.subarray(row * SEQ_LEN, (row + 1) * SEQ_LEN));
      const labels = Array.from(batch.labels.subarray(row * SEQ_LEN, (row + 1) * SEQ_LEN));
      expect(labels.slice(0, -1)).toEqual(tokens.slice(1));
      // Find the window's start among the multiples of seqLen.
      let start = -1;
      for (let w = 0; w < windows && start < 0; w++) {
        const at = w * SEQ_LEN;
        if (stream.slice(at, at + SEQ_LEN + 1).every((id, i) => id === (i < SEQ_LEN ? tokens[i] : labels[i - 1])))
          start = at;
      }
      expect(start, `row ${row}`).toBeGreaterThanOrEqual(0);
      starts.add(start);
    }
    expect(starts.size).toBe(windows);
    // The eval split is the next share of documents, and deterministic.
    expect(dataset.samplesPerEpoch('eval')).toBeGreaterThan(0);
    const again = await openDataset(options);
    expect(again.dataset.batch('eval', 3, 4).tokens).toEqual(dataset.batch('eval', 3, 4).tokens);
  });

  it('adds <|endoftext|> after each document when preprocess ran without --append-eod', async () => {
    const eod = await openDataset(options);
    const plain = await openDataset({ ...options, path: withoutEod, tokenizerPath: tokenizerJson });
    const count = eod.dataset.samplesPerEpoch('train');
    expect(plain.dataset.samplesPerEpoch('train')).toBe(count);
    expect(plain.dataset.batch('train', 0, count).tokens).toEqual(eod.dataset.batch('train', 0, count).tokens);
  });

  it('takes Megatron split weights by documents', () => {
    expect(splitDocuments('969,30,1', 1000)).toEqual({ train: [0, 969], eval: [969, 999] });
    expect(splitDocuments('1', 10)).toEqual({ train: [0, 10], eval: [10, 10] });
    // `--set data.split=1` arrives as a number.
    const config = validateConfig({
      model: { arch: 'gpt', layers: 1, hidden: 32, heads: 4, ffn: 64, vocab_size: 300, seq_len: 16 },
      train: { steps: 1, micro_batch: 2, lr: 0.01 },
      data: { path: withEod, split: 1 },
    });
    expect(config.data.split).toBe('1');
    expect(() => splitDocuments('a,b', 10)).toThrow(/data\.split must be .* got "a,b"/);
    expect(() => splitDocuments('0,1', 10)).toThrow(/gives the training split no share/);
  });

  it('names a missing file, a model vocabulary smaller than the dataset tokenizer, and ids outside it', async () => {
    const missing = await refusal(openDataset({ ...options, path: path.join(scratch, 'nope_text_document') }));
    expect(missing.code).toBe('ERR_DATA_NOT_FOUND');
    expect(missing.message).toContain('nope_tokenizer.json');

    fs.copyFileSync(tokenizerJson, path.join(scratch, 'lonely_tokenizer.json'));
    const noBin = await refusal(openDataset({ ...options, path: path.join(scratch, 'lonely_text_document') }));
    expect(noBin.code).toBe('ERR_DATA_NOT_FOUND');
    expect(noBin.message).toContain('lonely_text_document.idx does not exist');

    const small = await refusal(openDataset({ ...options, vocabSize: 300 }));
    expect(small.code).toBe('ERR_TOKENIZER');
    expect(small.message).toMatch(/has \d+ tokens but model.vocab_size is 300.*at least/);

    // Tokenized with a 400-token vocabulary, read with a 280-token one: ids beyond it are named.
    const other = preprocess('other', ['--tokenizer-kind', 'bpe', '--vocab-size', '280', '--append-eod']);
    const { dataset } = await openDataset({ ...options, tokenizerPath: path.join(scratch, 'other_tokenizer.json') });
    expect(other).toContain('other_text_document');
    let error: DataError | undefined;
    try {
      dataset.batch('train', 0, dataset.samplesPerEpoch('train'));
    } catch (e) {
      error = e as DataError;
    }
    expect(error?.code).toBe('ERR_TOKENIZER');
    expect(error?.message).toMatch(/gpt_text_document\.bin holds token id \d+ .* tokenized with another vocabulary/);
  });

  it('trains gpt for a few steps through the CLI, with evaluation on the validation share', () => {
    const runDir = path.join(scratch, 'run');
    const set = (kv: string) => ['--set', kv];
    const r = paratrain([
      'train',
      ...['--config', 'gpt-mini'],
      ...['model.layers=1', 'model.hidden=32', 'model.heads=2', 'model.ffn=64', 'model.vocab_size=512'].flatMap(set),
      ...[
        `model.seq_len=${SEQ_LEN}`,
        'train.micro_batch=4',
        'train.steps=4',
        'train.eval_every=2',
        'train.log_every=1',
      ].flatMap(set),
      ...['checkpoint.every=0', `data.path=${withEod}`, 'data.split=8,2,0', `run.dir=${runDir}`].flatMap(set),
      ...set(`data.cache_dir=${path.join(scratch, 'cache')}`),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const events = fs
      .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const start = events.find((e) => e.event === 'start');
    expect(start).toMatchObject({ corpus_documents: DOCUMENTS, eval_documents: 10 });
    const steps = events.filter((e) => e.event === undefined && 'loss' in e);
    expect(steps.length).toBe(4);
    for (const step of steps) expect(Number.isFinite(step.loss)).toBe(true);
    expect(events.filter((e) => e.event === 'eval').length).toBeGreaterThan(0);
  }, 120_000);

  it('names a file given as data.path: empty, binary, text, or one file of the pair', () => {
    const train = (dataPath: string) =>
      paratrain(['train', '--config', 'gpt-mini', '--set', 'train.steps=1', '--set', `data.path=${dataPath}`]);
    const file = (name: string, content: string | Buffer) => {
      const p = path.join(scratch, name);
      fs.writeFileSync(p, content);
      return p;
    };
    const empty = file('empty.txt', '');
    const e = train(empty);
    expect(e.code).toBe(1);
    expect(e.stderr).toContain(
      `paratrain: error [ERR_CORPUS]: data.path ${empty} is empty: data.path names a preprocessed`,
    );
    const binary = file('weights.dat', Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x00, 0x01]));
    const b = train(binary);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain(
      `[ERR_CORPUS]: data.path ${binary} is not text (a NUL byte at offset 4): give a UTF-8 text corpus as ` +
        'data.corpus, or a preprocessed .bin/.idx prefix as data.path',
    );
    const latin1 = file('latin1.txt', Buffer.from('caf\xe9\n', 'latin1'));
    expect(train(latin1).stderr).toContain(`data.path ${latin1} is not text (not valid UTF-8)`);
    const text = path.join(scratch, 'book.txt');
    const t = train(text);
    expect(t.code).toBe(1);
    expect(t.stderr).toContain(`[ERR_DATA_CONFIG]: data.path ${text} is a text file`);
    expect(t.stderr).toContain(`train on the text with data.corpus=${text}`);
    const half = train(`${withEod}.bin`);
    expect(half.code).toBe(1);
    expect(half.stderr).toContain(
      `data.path ${withEod}.bin is the .bin file of a dataset: give its prefix, data.path=${withEod}`,
    );
  });

  it('is refused for masked-LM families (GPT ids) and next to data.corpus', () => {
    const r = paratrain(['train', '--config', 'bert-mini', '--set', `data.path=${withEod}`]);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/was tokenized with a bpe tokenizer .* reads wordpiece ids/);
    const both = paratrain([
      'train',
      '--config',
      'gpt-mini',
      '--set',
      `data.path=${withEod}`,
      '--set',
      'data.corpus=x',
    ]);
    expect(both.code).not.toBe(0);
    expect(both.stderr).toContain('data.path and data.corpus both name training data');
  });
});
