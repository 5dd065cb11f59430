// Megatron's .bin/.idx, both ways against an independent reader and writer written in Python from
// the format's description (scripts/megatron_indexed.py, standard library only), and every kind of
// damage named with its file.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataError } from '../../src/data/errors';
import { IndexedDataset, IndexedDatasetWriter, tokenDtypeFor } from '../../src/data/indexed-dataset';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-indexed-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
const script = path.join(__dirname, '..', '..', 'scripts', 'megatron_indexed.py');

function python(args: string[], input?: string): string {
  const r = spawnSync('python3', [script, ...args], { input, encoding: 'utf8', maxBuffer: 64 << 20 });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout;
}

// Three documents: two sentences, one sentence, one empty sentence and one more; ids up to 65,000
// (uint16) or past 65,535 (int32).
const documents = (big: boolean) => [
  [
    [5, 6, 7],
    [8, 9],
  ],
  [[big ? 70000 : 65000]],
  [[], [1, 2, 3, 4]],
];

let n = 0;
const prefix = () => path.join(scratch, `ds${n++}`, 'corpus_text_sentence');

describe('Megatron indexed dataset', () => {
  for (const [dtype, big] of [
    [8, false],
    [4, true],
  ] as const) {
    it(`paratrain writes what Python reads (dtype ${dtype})`, () => {
      const p = prefix();
      const writer = new IndexedDatasetWriter(p, dtype);
      for (const document of documents(big)) {
        for (const sequence of document) writer.addSequence(sequence);
        writer.endDocument();
      }
      writer.finish();
      expect(fs.readdirSync(path.dirname(p)).sort()).toEqual(['corpus_text_sentence.bin', 'corpus_text_sentence.idx']);
      const read = JSON.parse(python(['read', p]));
      const bytes = dtype === 8 ? 2 : 4;
      expect(read).toEqual({
        version: 1,
        dtype,
        sequence_lengths: [3, 2, 1, 0, 4],
        sequence_pointers: [0, 3, 5, 6, 6].map((x) => x * bytes),
        document_indices: [0, 2, 3, 5],
        sequences: documents(big).flat(),
      });
    });

    it(`paratrain reads what Python writes (dtype ${dtype})`, () => {
      const p = prefix();
      fs.mkdirSync(path.dirname(p), { recursive: true });
      python(['write', p], JSON.stringify({ dtype, documents: documents(big) }));
      const ds = IndexedDataset.open(p);
      expect([ds.dtype, ds.sequenceCount, ds.documentCount]).toEqual([dtype, 5, 3]);
      expect(ds.documentSequences(2)).toEqual([3, 5]);
      expect(
        documents(big)
          .flat()
          .map((_, i) => Array.from(ds.sequence(i))),
      ).toEqual(documents(big).flat());
      expect(Array.from(ds.sequence(4, 1, 2))).toEqual([2, 3]);
      ds.close();
    });
  }

  it('uses uint16 below a 65,500-token vocabulary, int32 above, as Megatron does', () => {
    expect(tokenDtypeFor(50257)).toBe(8);
    expect(tokenDtypeFor(65500)).toBe(4);
  });

  describe('damage is named with the file', () => {
    const good = () => {
      const p = prefix();
      fs.mkdirSync(path.dirname(p), { recursive: true });
      python(['write', p], JSON.stringify({ dtype: 8, documents: documents(false) }));
      return p;
    };
    const failure = (p: string): DataError => {
      try {
        IndexedDataset.open(p).close();
      } catch (error) {
        expect(error).toBeInstanceOf(DataError);
        return error as DataError;
      }
      throw new Error('expected a DataError');
    };
    const patch = (file: string, at: number, bytes: number[]) => {
      const data = fs.readFileSync(file);
      Buffer.from(bytes).copy(data, at);
      fs.writeFileSync(file, data);
    };

    it('a missing half, wrong magic, version or dtype', () => {
      const p = good();
      fs.rmSync(`${p}.bin`);
      expect(failure(p).message).toBe(`${p}.bin does not exist (an indexed dataset is a .bin/.idx pair)`);
      const magic = good();
      patch(`${magic}.idx`, 0, [0x4e]);
      expect(failure(magic).message).toContain(`${magic}.idx is not a usable Megatron indexed dataset: the magic`);
      const version = good();
      patch(`${version}.idx`, 9, [2]);
      expect(failure(version).message).toContain('version 2, expected 1');
      const dtype = good();
      patch(`${dtype}.idx`, 17, [9]);
      expect(failure(dtype).message).toContain('unknown dtype code 9');
      expect(failure(dtype).code).toBe('ERR_DATA_FORMAT');
    });

    it('a truncated .idx or .bin, sizes that overrun, offsets and document indices that disagree', () => {
      const idx = good();
      fs.truncateSync(`${idx}.idx`, fs.statSync(`${idx}.idx`).size - 8);
      expect(failure(idx).message).toMatch(
        /\.idx is not .*: \d+ bytes, but 5 sequences and 4 document indices need \d+/,
      );
      const bin = good();
      fs.truncateSync(`${bin}.bin`, 4);
      expect(failure(bin).message).toContain(
        `${bin}.bin is not a usable Megatron indexed dataset: 4 bytes, but the index describes 20`,
      );
      const count = good();
      patch(`${count}.idx`, 18, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0]); // a sequence count past the file
      expect(failure(count).message).toContain('document indices need');
      const pointer = good();
      patch(`${pointer}.idx`, 34 + 4 * 5 + 8, [9]); // sequence 1 starts at byte 9
      expect(failure(pointer).message).toContain('sequence 1 starts at byte 9, expected 6');
      const documentsOff = good();
      patch(`${documentsOff}.idx`, 34 + 12 * 5 + 8 * 3, [4]); // the last document index 4, not 5
      expect(failure(documentsOff).message).toContain('the last document index is 4, not the 5 sequences');
    });
  });

  it('reads an index of more sequences than one read takes (70,000) as Python does, and names damage past the first read', () => {
    // Sequence i has i % 4 tokens (some empty), documents of 7 sequences; the index is read 65,536
    // entries at a time, so sequences 65,535 and 65,536 sit on either side of a read.
    const p = prefix();
    const writer = new IndexedDatasetWriter(p, 8);
    const S = 70000;
    for (let i = 0; i < S; i++) {
      writer.addSequence(Array.from({ length: i % 4 }, (_, t) => (i + t) % 60000));
      if (i % 7 === 6) writer.endDocument();
    }
    writer.finish();
    const read = JSON.parse(python(['read', p])) as {
      sequence_lengths: number[];
      sequence_pointers: number[];
      document_indices: number[];
    };
    const ds = IndexedDataset.open(p);
    expect(ds.sequenceCount).toBe(S);
    expect(Array.from({ length: S }, (_, i) => ds.sequenceLength(i))).toEqual(read.sequence_lengths);
    expect(Array.from(ds.sequenceStarts.subarray(0, S), (start) => 2 * start)).toEqual(read.sequence_pointers);
    expect(ds.tokenCount).toBe(read.sequence_lengths.reduce((a, b) => a + b, 0));
    expect(Array.from(ds.documentIndices)).toEqual(read.document_indices);
    for (const i of [65534, 65535, 65536, 69999])
      expect(Array.from(ds.sequence(i))).toEqual(Array.from({ length: i % 4 }, (_, t) => (i + t) % 60000));
    ds.close();

    // Sequence 66,001's offset (in the second read) one byte off.
    const data = fs.readFileSync(`${p}.idx`);
    const at = 34 + 4 * S + 8 * 66001;
    const expected = read.sequence_pointers[66001];
    data.writeBigInt64LE(BigInt(expected + 1), at);
    fs.writeFileSync(`${p}.idx`, data);
    expect(() => IndexedDataset.open(p)).toThrow(`sequence 66001 starts at byte ${expected + 1}, expected ${expected}`);
    // A negative offset is named as the int64 it is.
    data.writeBigInt64LE(-2n, at);
    fs.writeFileSync(`${p}.idx`, data);
    expect(() => IndexedDataset.open(p)).toThrow(`sequence 66001 starts at byte -2, expected ${expected}`);
  });
});
