// A user's corpus as it arrives: one big text file (with or without blank lines), a file of
// separator-delimited documents, JSON lines, a directory; and the files that cannot be trained on
// (empty, binary, malformed), each named in its message with what would fix it.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadCorpus, type LoadCorpusOptions } from '../../src/data/corpus';
import { openDataset, type DatasetOptions } from '../../src/data/dataset';
import { DataError } from '../../src/data/errors';
import { HELDOUT_TAIL_SUFFIX, splitHeldout } from '../../src/data/heldout';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-corpus-files-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

let fileCount = 0;
function write(name: string, content: string | Buffer): string {
  const directory = path.join(scratch, `case-${fileCount++}`);
  fs.mkdirSync(directory);
  const file = path.join(directory, name);
  fs.writeFileSync(file, content);
  return file;
}

function failure(run: () => unknown): DataError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(DataError);
    return error as DataError;
  }
  throw new Error('expected a DataError');
}

/** `count` distinct lines of a few words each, e.g. verses of a book. */
const lines = (count: number, prefix = 'verse') =>
  Array.from({ length: count }, (_, i) => `${prefix} ${i + 1} and the words of line ${i + 1}.`);

describe('one text file', () => {
  it('without blank lines is one document until it is longer than data.max_document_chars, then cut at line breaks', () => {
    const verses = lines(2000); // ~64 k characters
    const text = verses.join('\n'); // the document: the file's lines, without the last line break
    const file = write('book.txt', text + '\n');
    expect(loadCorpus(file, { maxDocumentChars: 0 })).toEqual([{ id: 'book.txt', text }]);

    const documents = loadCorpus(file, { maxDocumentChars: 5000 });
    expect(documents.length).toBe(Math.ceil(text.length / 5000)); // each piece as long as a line break allows
    expect(documents.map((d) => d.text).join('')).toBe(text); // nothing lost, nothing repeated
    for (const [i, d] of documents.entries()) {
      expect(d.id).toBe(`book.txt#${i + 1}`);
      expect(d.text.length).toBeLessThanOrEqual(5000);
      if (i < documents.length - 1) expect(d.text.endsWith('\n')).toBe(true);
    }
    // The default limit (50,000 characters) applies without options.
    expect(loadCorpus(file).length).toBe(2);
  });

  it('with blank lines splits at each run of blank lines', () => {
    const paragraphs = ['First paragraph.\nIts second line.', 'Second one.', 'Third, after two blank lines.'];
    const file = write('paragraphs.txt', `\n${paragraphs[0]}\n\n${paragraphs[1]}\n \t\n\n${paragraphs[2]}\n\n`);
    expect(loadCorpus(file)).toEqual(paragraphs.map((text, i) => ({ id: `paragraphs.txt#${i + 1}`, text })));
    // CRLF line ends split the same way.
    const crlf = write('crlf.txt', paragraphs.join('\r\n\r\n'));
    expect(loadCorpus(crlf).map((d) => d.text)).toEqual(paragraphs);
  });

  it('splits at a separator line such as <|endoftext|>, keeping blank lines inside documents', () => {
    const documents = ['One.\n\nStill one.', 'Two.', 'Three.\nThree again.'];
    const file = write('dump.txt', documents.join('\n<|endoftext|>\n') + '\n<|endoftext|>\n');
    const options: LoadCorpusOptions = { documentSeparator: '<|endoftext|>' };
    expect(loadCorpus(file, options).map((d) => d.text)).toEqual(documents);
    expect(loadCorpus(file, { documentSeparator: 'file' })).toHaveLength(1);
  });

  it('JSON lines: one document per object, the text under data.json_key', () => {
    const file = write(
      'docs.jsonl',
      ['{"text": "Alpha doc.", "id": 1}', '', '{"text": "Beta\\n\\ndoc."}', '{"text": ""}', '{"text": "Gamma."}'].join(
        '\n',
      ),
    );
    expect(loadCorpus(file)).toEqual([
      { id: 'docs.jsonl#1', text: 'Alpha doc.' },
      { id: 'docs.jsonl#2', text: 'Beta\n\ndoc.' },
      { id: 'docs.jsonl#3', text: 'Gamma.' },
    ]);
    const other = write('other-key.json', '{"content": "x y z"}\n{"content": "u v"}\n');
    expect(loadCorpus(other, { jsonKey: 'content' }).map((d) => d.text)).toEqual(['x y z', 'u v']);

    const missingKey = failure(() => loadCorpus(other));
    expect(missingKey.code).toBe('ERR_CORPUS');
    expect(missingKey.message).toContain(`${other}:1: the object has no string field "text" (its fields: content)`);
    expect(missingKey.message).toContain('data.json_key');
    const broken = write('broken.jsonl', '{"text": "fine"}\n{"text": "unterminated\n');
    const notJson = failure(() => loadCorpus(broken));
    expect(notJson.message).toContain(`${broken}:2: not JSON`);
    const notObject = failure(() => loadCorpus(write('array.jsonl', '["text"]\n')));
    expect(notObject.message).toContain(':1: expected a JSON object with a "text" field, got an array');
  });
});

describe('reading in 1 MiB chunks', () => {
  const MiB = 1 << 20;
  // Bytes whose chunk boundary (at 1 MiB) falls inside \r\n, or inside a two-byte character.
  const straddling = (tail: Buffer) => {
    const head = Buffer.alloc(MiB - 1, 'a');
    for (let i = 100; i < head.length; i += 100) head[i] = 0x0a; // lines of 99 'a'
    return Buffer.concat([head, tail]);
  };

  it('keeps \r\n and multi-byte characters whole across a chunk boundary', () => {
    for (const tail of [Buffer.from('\r\nafter\r\nend\r\n'), Buffer.from('éafter\nend\n')]) {
      const bytes = straddling(tail);
      const file = write('chunked.txt', bytes);
      const [document, ...rest] = loadCorpus(file, { documentSeparator: 'file', maxDocumentChars: 0 });
      expect(rest).toEqual([]);
      expect(document.text).toBe(bytes.toString('utf8').replace(/\r\n/g, '\n').replace(/\n$/, ''));
    }
  });

  it('cuts a long document while reading it exactly as it would cut it whole', () => {
    const lines = Array.from({ length: 60000 }, (_, i) => `line ${i} ${'x'.repeat(i % 50)}`);
    const file = write('long.txt', lines.join('\n'));
    const pieces = loadCorpus(file, { maxDocumentChars: 10000 });
    expect(pieces.map((d) => d.text).join('')).toBe(lines.join('\n'));
    for (const piece of pieces.slice(0, -1)) {
      expect(piece.text.length).toBeLessThanOrEqual(10000);
      expect(piece.text.length).toBeGreaterThan(10000 - 60); // cut at the last line break before the limit
      expect(piece.text.endsWith('\n')).toBe(true);
    }
  });
});

describe('a directory', () => {
  it('takes each .txt and .jsonl file whole by default, or split when a separator is named', () => {
    const directory = path.join(scratch, 'directory');
    fs.mkdirSync(directory);
    fs.writeFileSync(path.join(directory, 'b.txt'), 'Para one.\n\nPara two.');
    fs.writeFileSync(path.join(directory, 'a.jsonl'), '{"text": "From JSON."}\n');
    fs.writeFileSync(path.join(directory, 'empty.txt'), '');
    fs.writeFileSync(path.join(directory, 'notes.md'), 'ignored');
    fs.writeFileSync(path.join(directory, 'c.txt'), ' \n\n');
    expect(loadCorpus(directory, {})).toEqual([
      { id: 'a.jsonl', text: 'From JSON.' },
      { id: 'b.txt', text: 'Para one.\n\nPara two.' },
    ]);
    expect(loadCorpus(directory, { documentSeparator: 'blank-line' }).map((d) => d.id)).toEqual([
      'a.jsonl',
      'b.txt#1',
      'b.txt#2',
    ]);
  });

  it('without .txt or .jsonl files is refused, naming the directory', () => {
    const directory = path.join(scratch, 'no-text');
    fs.mkdirSync(directory);
    fs.writeFileSync(path.join(directory, 'readme.md'), 'words');
    const error = failure(() => loadCorpus(directory));
    expect(error.code).toBe('ERR_DATA_NOT_FOUND');
    expect(error.message).toContain(`corpus directory ${directory} contains no .txt or .jsonl files`);
  });
});

describe('files that cannot be trained on', () => {
  it('an empty file, a whitespace-only file and a binary file are each named with the problem', () => {
    const empty = write('empty.txt', '');
    const emptyError = failure(() => loadCorpus(empty));
    expect(emptyError.code).toBe('ERR_CORPUS');
    expect(emptyError.message).toBe(`corpus file ${empty} is empty; put text in it or point data.corpus elsewhere`);

    const blank = write('blank.txt', '\n \n\t\n');
    expect(failure(() => loadCorpus(blank)).message).toContain(`corpus ${blank} holds no text`);

    const binary = write('weights.txt', Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x00, 0x00, 0xff, 0x10]));
    const binaryError = failure(() => loadCorpus(binary));
    expect(binaryError.code).toBe('ERR_CORPUS');
    expect(binaryError.message).toContain(`corpus file ${binary} is not text (a NUL byte at offset 4)`);

    const latin1 = write('latin1.txt', Buffer.from('caf\xe9 au lait', 'latin1'));
    expect(failure(() => loadCorpus(latin1)).message).toContain('is not text (not valid UTF-8)');
  });
});

describe('splitHeldout', () => {
  const docs = (n: number) =>
    Array.from({ length: n }, (_, i) => ({ id: `d${i}`, text: lines(10, `d${i}`).join('\n') }));

  it('holds out whole documents from the end when there are enough of them', () => {
    const split = splitHeldout(docs(50), 0.02, 'corpus');
    expect(split.by).toBe('documents');
    expect(split.train.map((d) => d.id)).toEqual(docs(49).map((d) => d.id));
    expect(split.heldout.map((d) => d.id)).toEqual(['d49']);
    // 30 documents at 2%: one document (3.3%), as before.
    expect(splitHeldout(docs(30), 0.02, 'corpus').heldout.map((d) => d.id)).toEqual(['d29']);
  });

  it('holds out the last share of the text, cut at a line break, when there are few documents', () => {
    const one = { id: 'd0', text: lines(200).join('\n') };
    const split = splitHeldout([one], 0.1, 'corpus');
    expect(split.by).toBe('text');
    expect(split.train).toHaveLength(1);
    expect(split.heldout.map((d) => d.id)).toEqual([`d0${HELDOUT_TAIL_SUFFIX}`]);
    expect(split.heldout[0].text).toMatch(/^verse \d+ /); // a whole line
    expect(split.train[0].text + split.heldout[0].text).toBe(one.text);
    expect(split.train[0].text.endsWith('\n')).toBe(true);
    const share = split.heldout[0].text.length / one.text.length;
    expect(share).toBeGreaterThan(0.09);
    expect(share).toBeLessThanOrEqual(0.1);

    // Several documents: the cut falls in the one where the last share begins; later ones are held out whole.
    const few = docs(5);
    const fewSplit = splitHeldout(few, 0.3, 'corpus');
    expect(fewSplit.by).toBe('documents'); // 5 · 0.3 ≥ 0.5
    const textSplit = splitHeldout(docs(10), 0.04, 'corpus');
    expect(textSplit.by).toBe('text');
    expect([...textSplit.train, ...textSplit.heldout].map((d) => d.text).join('')).toBe(
      docs(10)
        .map((d) => d.text)
        .join(''),
    );
  });

  it('holds out nothing at fraction 0, and refuses a fraction that leaves nothing to train on', () => {
    expect(splitHeldout(docs(3), 0, 'corpus')).toEqual({ train: docs(3), heldout: [], by: 'none' });
    const error = failure(() => splitHeldout(docs(4), 0.9, '/data/x.txt'));
    expect(error.message).toContain('data.heldout_fraction 0.9 of the 4 documents of /data/x.txt leaves none');
  });
});

describe('openDataset on one file', () => {
  const cacheDir = path.join(scratch, 'cache');
  const causal = (corpus: string, extra: Partial<DatasetOptions> = {}): DatasetOptions => ({
    objective: 'causal-lm',
    tokenizerKind: 'bpe',
    corpus,
    cacheDir,
    vocabSize: 400,
    seqLen: 32,
    seed: 1,
    heldoutFraction: 0.02,
    ...extra,
  });

  it('holds out the end of a single book by text, and evaluates on it', async () => {
    const book = write('book.txt', lines(1500, 'line').join('\n') + '\n');
    const { dataset } = await openDataset(causal(book, { corpusOptions: { maxDocumentChars: 0 } }));
    expect(dataset.summary).toMatchObject({ corpusDocuments: 2, heldoutBy: 'text', trainDocuments: 1 });
    expect(dataset.samplesPerEpoch('eval')).toBeGreaterThan(0);
    expect(dataset.documentIds('eval')).toEqual([`book.txt${HELDOUT_TAIL_SUFFIX}`]);
    expect(dataset.batch('eval', 0, 2).tokens.length).toBe(64);
  });

  it('names the file and model.seq_len when the text cannot fill one sequence', async () => {
    const short = write('short.txt', 'A few words only, far fewer than a sequence.\n');
    let caught: unknown;
    try {
      await openDataset(causal(short, { heldoutFraction: 0 }));
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DataError);
    expect((caught as DataError).code).toBe('ERR_CORPUS');
    expect((caught as DataError).message).toContain(`corpus ${short} has too little text: its training split`);
    expect((caught as DataError).message).toContain('model.seq_len 32');
  });

  it('names data.heldout_fraction when the held-out share of the text cannot fill one sequence', async () => {
    const small = write('small.txt', lines(40).join('\n'));
    const error = await openDataset(causal(small)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DataError);
    expect((error as DataError).message).toContain(`corpus ${small} has too little text: its held-out split`);
    expect((error as DataError).message).toContain('raise data.heldout_fraction');
    expect((error as DataError).message).toContain('set data.heldout_fraction: 0 to train without evaluation');
  });
});
