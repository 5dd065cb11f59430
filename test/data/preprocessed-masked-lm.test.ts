// Masked-LM (BERT, ALBERT, RoBERTa) training from sentence-split preprocessed data (data.path made by
// `paratrain preprocess --split-sentences`): the samples equal those the text pipeline cuts from the
// same text with the same tokenizer (the sentence-pair and full-sentence datasets read both through
// one SentenceSource), the cut is cached beside the data, and bert trains a few steps through the CLI.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { openDataset, type DatasetOptions } from '../../src/data/dataset';
import { DataError } from '../../src/data/errors';

import { cliScratch } from './cli-scratch';

const { scratch, paratrain } = cliScratch('paratrain-preprocessed-mlm-');

const DOCUMENTS = 30;
const book = path.join(scratch, 'book.txt');
fs.writeFileSync(
  book,
  Array.from(
    { length: DOCUMENTS },
    (_, i) =>
      `The whale number ${i} swam far out to sea. The crew of ship ${i % 7} waited on deck. ` +
      `Then it rose again, and the harpooner stood up. Nobody spoke for ${i + 2} minutes.`,
  ).join('\n\n') + '\n',
);

function preprocess(name: string, extra: string[]): string {
  const r = paratrain([
    'preprocess',
    ...['--input', book, '--output-prefix', path.join(scratch, name), '--split-sentences'],
    ...['--cache-dir', path.join(scratch, 'cache'), '--json'],
    ...extra,
  ]);
  expect(r.code, r.stderr).toBe(0);
  return path.join(scratch, `${name}_text_sentence`);
}
const bertData = preprocess('bert', ['--tokenizer-kind', 'wordpiece', '--vocab-size', '400']);
const bertTokenizer = path.join(scratch, 'bert_tokenizer.json');

const SEQ_LEN = 24;
const fromText: DatasetOptions = {
  objective: 'masked-lm',
  packing: 'sentence-pairs',
  pairTask: 'nsp',
  tokenizerKind: 'wordpiece',
  corpus: book,
  tokenizerPath: bertTokenizer,
  cacheDir: path.join(scratch, 'cache'),
  vocabSize: 512,
  seqLen: SEQ_LEN,
  seed: 11,
  heldoutFraction: 0,
  maskProb: 0.15,
};
// All documents train: the text pipeline with no held-out share reads the same documents in the same order.
const fromData: DatasetOptions = { ...fromText, corpus: 'bundled', path: bertData, split: '1' };

describe('masked-LM training from sentence-split preprocessed data', () => {
  it('cuts the same samples as the text pipeline from the same text: nsp, sop, full sentences, whole words', async () => {
    for (const variant of [
      {},
      { pairTask: 'sop' as const },
      { pairTask: 'none' as const, wholeWordMask: true },
      { packing: 'full-sentences' as const, pairTask: undefined },
    ]) {
      const text = await openDataset({ ...fromText, ...variant });
      const data = await openDataset({ ...fromData, ...variant });
      expect(data.dataset.summary.corpusDocuments).toBe(DOCUMENTS);
      const count = data.dataset.samplesPerEpoch('train');
      expect(count, JSON.stringify(variant)).toBe(text.dataset.samplesPerEpoch('train'));
      expect(count).toBeGreaterThan(DOCUMENTS);
      // Two epochs and a bit: fresh pairs and masks each time round.
      const rows = 2 * count + 5;
      const a = data.dataset.batch('train', 0, rows);
      const b = text.dataset.batch('train', 0, rows);
      expect(a.tokens, JSON.stringify(variant)).toEqual(b.tokens);
      expect(a.labels).toEqual(b.labels);
      expect(a.segments).toEqual(b.segments);
      expect(a.attentionMask).toEqual(b.attentionMask);
      expect(a.pairLabels).toEqual(b.pairLabels);
    }
  });

  it('keeps validation documents by data.split and caches its cut beside the data', async () => {
    for (const file of fs.readdirSync(scratch)) if (file.endsWith('.pidx')) fs.rmSync(path.join(scratch, file));
    const first = await openDataset({ ...fromData, split: '8,2,0' });
    expect(first.dataset.summary).toMatchObject({ trainDocuments: 24, evalDocuments: 6 });
    expect(first.dataset.samplesPerEpoch('eval')).toBeGreaterThan(0);
    expect(first.dataset.summary.sampleIndices?.map((use) => `${use.kind}/${use.split}/${use.origin}`)).toEqual([
      'sentence-pairs/train/built',
      'sentence-pairs/eval/built',
    ]);
    const second = await openDataset({ ...fromData, split: '8,2,0' });
    expect(second.dataset.summary.sampleIndices?.every((use) => use.origin === 'cache')).toBe(true);
    expect(second.dataset.batch('train', 7, 9).tokens).toEqual(first.dataset.batch('train', 7, 9).tokens);
    // seq_len shapes the cut: another length, another index.
    const longer = await openDataset({ ...fromData, split: '8,2,0', seqLen: 32 });
    expect(longer.dataset.summary.sampleIndices?.every((use) => use.origin === 'built')).toBe(true);
  });

  it('refuses data tokenized for GPT, naming the tokenizer kinds, and ids beyond the vocabulary', async () => {
    const gpt = preprocess('gpt', ['--tokenizer-kind', 'bpe', '--vocab-size', '400']);
    let error: DataError | undefined;
    try {
      await openDataset({ ...fromData, path: gpt, tokenizerPath: undefined });
    } catch (e) {
      error = e as DataError;
    }
    expect(error?.code).toBe('ERR_TOKENIZER');
    expect(error?.message).toMatch(/was tokenized with a bpe tokenizer .* reads wordpiece ids/);

    // Read with a smaller WordPiece vocabulary than it was made with: the batch names file and sequence.
    preprocess('small', ['--tokenizer-kind', 'wordpiece', '--vocab-size', '150']);
    const { dataset } = await openDataset({ ...fromData, tokenizerPath: path.join(scratch, 'small_tokenizer.json') });
    error = undefined;
    try {
      dataset.batch('train', 0, dataset.samplesPerEpoch('train'));
    } catch (e) {
      error = e as DataError;
    }
    expect(error?.code).toBe('ERR_TOKENIZER');
    expect(error?.message).toMatch(/bert_text_sentence\.bin holds token id \d+ in sequence \d+, but the tokenizer has/);
  });

  it('warns when the sentence data was preprocessed with --append-eod', async () => {
    const withEod = preprocess('eod', ['--tokenizer', bertTokenizer, '--append-eod']);
    const { dataset } = await openDataset({ ...fromData, path: withEod });
    expect(dataset.summary.warnings).toHaveLength(1);
    const sep = JSON.parse(fs.readFileSync(bertTokenizer, 'utf8')).model.vocab['[SEP]'] as number;
    expect(dataset.summary.warnings?.[0]).toBe(
      `data.path ${withEod}: all of its first ${DOCUMENTS} documents end with [SEP] (id ${sep}), the token ` +
        `\`paratrain preprocess --append-eod\` adds; the wordpiece samples read it as the last token of each ` +
        `document's last sentence. Preprocess the text again without --append-eod`,
    );
    const plain = await openDataset(fromData);
    expect(plain.dataset.summary.warnings).toBeUndefined();
  });

  it('trains bert for a few steps through the CLI on a blend of two sentence-split datasets', () => {
    const other = preprocess('other', ['--tokenizer', bertTokenizer]);
    const runDir = path.join(scratch, 'run');
    const set = (kv: string) => ['--set', kv];
    const r = paratrain([
      'train',
      ...['--config', 'bert-mini'],
      ...['model.layers=1', 'model.hidden=32', 'model.heads=2', 'model.ffn=64', 'model.vocab_size=512'].flatMap(set),
      ...['model.seq_len=32', 'train.micro_batch=4', 'train.steps=3', 'train.eval_every=3'].flatMap(set),
      ...['checkpoint.every=0', `data.path=[1, ${bertData}, 1, ${other}]`, 'data.split=8,2,0'].flatMap(set),
      ...set(`run.dir=${runDir}`),
      ...set(`data.cache_dir=${path.join(scratch, 'cache')}`),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const events = fs
      .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events.find((e) => e.event === 'start')).toMatchObject({
      corpus_documents: 2 * DOCUMENTS,
      eval_documents: 12,
    });
    const steps = events.filter((e) => e.event === undefined && 'loss' in e);
    expect(steps.length).toBe(3);
    for (const step of steps) expect(Number.isFinite(step.loss)).toBe(true);
    expect(events.filter((e) => e.event === 'eval').length).toBeGreaterThan(0);
  }, 180_000);

  /** Trains `config` (shrunk) for 3 steps from data.path through the CLI; returns its log.jsonl events. */
  function trainTiny(config: string, dataPath: string, extra: string[] = []): Record<string, unknown>[] {
    const runDir = path.join(scratch, `run-${config}`);
    const set = (kv: string) => ['--set', kv];
    const r = paratrain([
      'train',
      ...['--config', config],
      ...['model.layers=1', 'model.hidden=64', 'model.heads=2', 'model.ffn=128', 'model.vocab_size=512'].flatMap(set),
      ...['model.seq_len=32', 'train.micro_batch=4', 'train.steps=3', 'train.eval_every=3'].flatMap(set),
      ...['checkpoint.every=0', `data.path=${dataPath}`, 'data.split=8,2,0', `run.dir=${runDir}`].flatMap(set),
      ...set(`data.cache_dir=${path.join(scratch, 'cache')}`),
      ...extra.flatMap(set),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const events = fs
      .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(events.find((e) => e.event === 'start')).toMatchObject({ corpus_documents: DOCUMENTS, eval_documents: 6 });
    const steps = events.filter((e) => e.event === undefined && 'loss' in e);
    expect(steps.map((e) => e.step)).toEqual([1, 2, 3]);
    for (const step of steps) expect(Number.isFinite(step.loss)).toBe(true);
    expect(events.filter((e) => e.event === 'eval').length).toBeGreaterThan(0);
    return events;
  }

  it('trains roberta (full sentences) for a few steps through the CLI from data.path', () => {
    const robertaData = preprocess('roberta', ['--tokenizer-kind', 'roberta-bpe', '--vocab-size', '400']);
    const events = trainTiny('roberta-mini', robertaData);
    const start = events.find((e) => e.event === 'start') as { sample_indices: { kind: string }[] };
    expect(start.sample_indices.map((use) => use.kind)).toEqual(['full-sentences', 'full-sentences']);
    expect(events.filter((e) => e.event === 'data-warning')).toEqual([]);
  }, 180_000);

  it('trains electra for a few steps through the CLI from data.path, warning about --append-eod data', () => {
    const withEod = preprocess('electra-eod', ['--tokenizer', bertTokenizer, '--append-eod']);
    const events = trainTiny('electra-mini', withEod, ['model.embedding_size=32']);
    const start = events.find((e) => e.event === 'start') as { sample_indices: { kind: string }[] };
    expect(start.sample_indices.map((use) => use.kind)).toEqual(['sentence-pairs', 'sentence-pairs']);
    const warnings = events.filter((e) => e.event === 'data-warning');
    expect(warnings.length).toBe(1);
    expect(warnings[0].msg).toMatch(/electra-eod_text_sentence: all of its first 30 documents end with \[SEP\]/);
  }, 180_000);
});
