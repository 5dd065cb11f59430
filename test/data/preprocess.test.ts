// `paratrain preprocess` as a user runs it: text and JSON lines into .bin/.idx, the same bytes with
// one worker or two, sequences equal to the tokenizer's own encoding, and Megatron's reader (the
// independent Python one) agreeing; bad input named, nothing half-written left behind.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { IndexedDataset } from '../../src/data/indexed-dataset';
import { splitSentences } from '../../src/data/sentences';
import { TextTokenizer } from '../../src/data/tokenizer';

const root = path.join(__dirname, '..', '..');
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-preprocess-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

function paratrain(args: string[]) {
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'paratrain.js'), 'preprocess', ...args], {
    encoding: 'utf8',
    cwd: scratch,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

const paragraphs = Array.from(
  { length: 40 },
  (_, i) => `The whale number ${i} swam far. It dived deep, and the crew waited for it! Then it rose again.`,
);
const textFile = path.join(scratch, 'book.txt');
fs.writeFileSync(textFile, paragraphs.join('\n\n') + '\n');
const jsonFile = path.join(scratch, 'docs.jsonl');
fs.writeFileSync(
  jsonFile,
  paragraphs
    .slice(0, 5)
    .map((p, i) => JSON.stringify({ text: p, title: `Title ${i}` }))
    .join('\n') + '\n',
);

describe('paratrain preprocess', () => {
  it('writes one sequence per sentence, equal to the tokenizer encoding each, documents in input order', async () => {
    const prefix = path.join(scratch, 'bert');
    const r = paratrain([
      ...['--input', textFile, '--input', jsonFile, '--output-prefix', prefix],
      ...['--tokenizer-kind', 'wordpiece', '--vocab-size', '300', '--split-sentences', '--json'],
      ...['--cache-dir', path.join(scratch, 'cache')],
    ]);
    expect(r.code, r.stderr).toBe(0);
    const [out] = JSON.parse(r.stdout).outputs;
    expect(out).toMatchObject({ key: 'text', prefix: `${prefix}_text_sentence`, documents: 45, sequences: 135 });
    const tokenizer = TextTokenizer.fromFile(`${prefix}_tokenizer.json`);
    const ds = IndexedDataset.open(out.prefix);
    expect([ds.documentCount, ds.sequenceCount, ds.dtype]).toEqual([45, 135, 8]);
    const texts = [...paragraphs, ...paragraphs.slice(0, 5)];
    for (const [d, text] of texts.entries()) {
      const [first, end] = ds.documentSequences(d);
      const sentences = splitSentences(text);
      expect(end - first).toBe(sentences.length);
      for (let s = 0; s < sentences.length; s++)
        expect(Array.from(ds.sequence(first + s))).toEqual(await tokenizer.encode(sentences[s]));
    }
    ds.close();
    // Megatron's format, read by the independent reader.
    const py = spawnSync('python3', [path.join(root, 'scripts', 'megatron_indexed.py'), 'read', out.prefix], {
      encoding: 'utf8',
    });
    expect(py.status, py.stderr).toBe(0);
    expect(JSON.parse(py.stdout).document_indices.length).toBe(46);
  });

  it('gives the same bytes with one worker and two; --append-eod ends each document with <|endoftext|>', async () => {
    const run = (workers: string) => {
      const prefix = path.join(scratch, `gpt-${workers}`);
      const r = paratrain([
        ...['--input', path.join(scratch, '*.txt'), '--output-prefix', prefix, '--workers', workers],
        ...['--tokenizer-kind', 'bpe', '--vocab-size', '400', '--append-eod', '--json'],
        ...['--cache-dir', path.join(scratch, 'cache')],
      ]);
      expect(r.code, r.stderr).toBe(0);
      return `${prefix}_text_document`;
    };
    const one = run('1');
    const two = run('2');
    for (const ext of ['.bin', '.idx'])
      expect(fs.readFileSync(two + ext).equals(fs.readFileSync(one + ext))).toBe(true);
    const tokenizer = TextTokenizer.fromFile(path.join(scratch, 'gpt-1_tokenizer.json'));
    const ds = IndexedDataset.open(one);
    expect(ds.documentCount).toBe(40);
    const last = ds.sequence(0);
    expect(last[last.length - 1]).toBe(tokenizer.endOfTextId());
    expect(Array.from(last.subarray(0, -1))).toEqual(await tokenizer.encode(paragraphs[0]));
    ds.close();
  });

  it('takes the JSON field that --json-keys names, one output per key', () => {
    const prefix = path.join(scratch, 'titles');
    const r = paratrain([
      ...['--input', jsonFile, '--output-prefix', prefix, '--json-keys', 'title', '--json'],
      ...['--tokenizer', path.join(scratch, 'bert_tokenizer.json')],
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(
      JSON.parse(r.stdout).outputs.map((o: { prefix: string; documents: number }) => [o.prefix, o.documents]),
    ).toEqual([[`${prefix}_title_document`, 5]]);
  });

  it('--cased trains a WordPiece that keeps case; with a BPE kind it is refused before anything is written', async () => {
    const prefix = path.join(scratch, 'cased');
    const r = paratrain([
      ...['--input', textFile, '--output-prefix', prefix, '--cased', '--vocab-size', '300', '--json'],
      ...['--cache-dir', path.join(scratch, 'cache')],
    ]);
    expect(r.code, r.stderr).toBe(0);
    const tokenizer = TextTokenizer.fromFile(`${prefix}_tokenizer.json`);
    expect(JSON.parse(tokenizer.toJSON()).normalizer.lowercase).toBe(false);
    const ds = IndexedDataset.open(`${prefix}_text_document`);
    expect(Array.from(ds.sequence(0))).toEqual(await tokenizer.encode(paragraphs[0]));
    expect(await tokenizer.decode(Array.from(ds.sequence(0)))).toMatch(/^The whale number 0/);
    ds.close();

    const bpePrefix = path.join(scratch, 'cased-bpe');
    const bpe = paratrain(['--input', textFile, '--output-prefix', bpePrefix, '--cased', '--tokenizer-kind', 'bpe']);
    expect(bpe.code).toBe(1);
    expect(bpe.stderr).toContain('--cased applies to the wordpiece tokenizer that --tokenizer auto trains');
    expect(fs.readdirSync(scratch).filter((name) => name.startsWith('cased-bpe'))).toEqual([]);
  });

  it('names an empty input, a binary one and a glob without matches, and leaves no half-written pair', () => {
    const empty = path.join(scratch, 'empty', 'nothing.txt');
    fs.mkdirSync(path.dirname(empty));
    fs.writeFileSync(empty, '');
    const prefix = path.join(scratch, 'empty', 'out');
    const tokenizer = ['--tokenizer', path.join(scratch, 'bert_tokenizer.json')];
    const r = paratrain(['--input', empty, '--output-prefix', prefix, ...tokenizer]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `paratrain: error [ERR_CORPUS]: input file ${empty} is empty; put text in it or give --input`,
    );
    expect(fs.readdirSync(path.dirname(empty))).toEqual(['nothing.txt']);
    const binary = path.join(scratch, 'empty', 'model.bin');
    fs.writeFileSync(binary, Buffer.from([65, 66, 0, 67]));
    const b = paratrain(['--input', binary, '--output-prefix', prefix, ...tokenizer]);
    expect(b.code).toBe(1);
    expect(b.stderr).toContain(
      `input file ${binary} is not text (a NUL byte at offset 2); preprocess reads UTF-8 text`,
    );
    const glob = paratrain(['--input', path.join(scratch, '*.none'), '--output-prefix', prefix, ...tokenizer]);
    expect(glob.code).toBe(1);
    expect(glob.stderr).toContain('*.none matches no file');
  });
});
