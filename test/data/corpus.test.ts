import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compareNamesNaturally, fingerprintDocuments, loadCorpus } from '../../src/data/corpus';
import { DataError } from '../../src/data/errors';
import { splitSentences } from '../../src/data/sentences';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-corpus-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

describe('loadCorpus', () => {
  it('loads the bundled corpus in reading order: Moby-Dick chapters, then the State of the Union addresses', () => {
    const documents = loadCorpus('bundled');
    const ids = documents.map((doc) => doc.id);
    expect(ids.slice(0, 3)).toEqual(['moby-dick/chapter_1', 'moby-dick/chapter_2', 'moby-dick/chapter_3']);
    expect(ids).toContain('moby-dick/epilogue');
    const firstSotu = ids.findIndex((id) => id.startsWith('sotu/'));
    expect(ids[firstSotu]).toBe('sotu/1790_george_washington_n');
    expect(ids.slice(firstSotu).every((id) => id.startsWith('sotu/'))).toBe(true);
    expect(new Set(ids).size).toBe(ids.length);
    expect(documents[0].text).toMatch(/^CHAPTER 1\. Loomings\./);
    expect(documents.length).toBeGreaterThan(300);
  });

  it('keeps only the first maxDocuments documents', () => {
    const few = loadCorpus('bundled', { maxDocuments: 5 });
    expect(few.map((doc) => doc.id)).toEqual(
      loadCorpus('bundled')
        .slice(0, 5)
        .map((doc) => doc.id),
    );
  });

  it('reads a .txt file as one document and a directory as one document per .txt file', () => {
    const directory = path.join(scratch, 'docs');
    fs.mkdirSync(directory);
    fs.writeFileSync(path.join(directory, 'b10.txt'), 'ten\r\nlines');
    fs.writeFileSync(path.join(directory, 'b2.txt'), '\uFEFFtwo');
    fs.writeFileSync(path.join(directory, 'notes.md'), 'ignored');
    expect(loadCorpus(directory)).toEqual([
      { id: 'b2.txt', text: 'two' },
      { id: 'b10.txt', text: 'ten\nlines' },
    ]);
    expect(loadCorpus(path.join(directory, 'b10.txt'))).toEqual([{ id: 'b10.txt', text: 'ten\nlines' }]);
  });

  it('reports a missing corpus with ERR_DATA_NOT_FOUND, naming the path and what is expected', () => {
    const missing = path.join(scratch, 'no-such-corpus');
    let caught: unknown;
    try {
      loadCorpus(missing);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(DataError);
    expect((caught as DataError).code).toBe('ERR_DATA_NOT_FOUND');
    expect((caught as DataError).message).toContain(missing);
    expect((caught as DataError).message).toContain('.txt');
  });

  it('fingerprints change with content and order only', () => {
    const docs = [
      { id: 'a', text: 'x' },
      { id: 'b', text: 'y' },
    ];
    expect(fingerprintDocuments(docs)).toBe(fingerprintDocuments(docs.map((doc) => ({ ...doc }))));
    expect(fingerprintDocuments(docs)).not.toBe(fingerprintDocuments([...docs].reverse()));
    expect(fingerprintDocuments(docs)).not.toBe(fingerprintDocuments([docs[0], { id: 'b', text: 'z' }]));
  });

  it('orders names with numbers numerically', () => {
    expect(['chapter_10', 'chapter_2', 'chapter_1', 'epilogue'].sort(compareNamesNaturally)).toEqual([
      'chapter_1',
      'chapter_2',
      'chapter_10',
      'epilogue',
    ]);
  });
});

describe('splitSentences', () => {
  it('splits at sentence ends and paragraph breaks and tiles the text exactly', () => {
    const text = 'Mr. Starbuck said so. "Aye!" he cried.\n\nThe U.S. Navy came 2 days later. it ended';
    const sentences = splitSentences(text);
    expect(sentences.join('')).toBe(text);
    expect(sentences.map((s) => s.trim())).toEqual([
      'Mr. Starbuck said so.',
      '"Aye!" he cried.',
      'The U.S. Navy came 2 days later. it ended',
    ]);
  });

  it('tiles every bundled document', () => {
    for (const doc of loadCorpus('bundled', { maxDocuments: 40 }))
      expect(splitSentences(doc.text).join('')).toBe(doc.text);
  });
});
