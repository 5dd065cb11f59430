// Megatron-LM's indexed dataset (megatron/core/datasets/indexed_dataset.py): token ids in PREFIX.bin
// back to back, and PREFIX.idx describing them, all little-endian:
//   magic "MMIDIDX\0\0" (9 bytes) | version u64 = 1 | dtype code u8 | sequence count u64 (S)
//   | document index count u64 (D + 1) | S × int32 sequence lengths (tokens)
//   | S × int64 byte offsets of the sequences in .bin | (D + 1) × int64 document indices
// Document d is sequences [indices[d], indices[d + 1]); indices start at 0 and end at S. A sequence
// is a sentence in sentence-split data (BERT), a whole document otherwise (GPT). The reader keeps
// the index in memory (12 bytes a sequence) and reads tokens from .bin with positional reads, so
// its memory does not grow with the token count.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { DataError } from './errors';

const MAGIC = Buffer.from('MMIDIDX\x00\x00', 'latin1');
const VERSION = 1n;
const HEADER_BYTES = MAGIC.length + 8 + 1 + 8 + 8;

/** Megatron's dtype codes. Token ids are written as uint16 (vocabulary under 65,500) or int32. */
export const INDEXED_DTYPES = {
  1: { name: 'uint8', bytes: 1 },
  2: { name: 'int8', bytes: 1 },
  3: { name: 'int16', bytes: 2 },
  4: { name: 'int32', bytes: 4 },
  5: { name: 'int64', bytes: 8 },
  6: { name: 'float64', bytes: 8 },
  7: { name: 'float32', bytes: 4 },
  8: { name: 'uint16', bytes: 2 },
} as const;
export type IndexedDtypeCode = keyof typeof INDEXED_DTYPES;

/** Megatron's choice: uint16 when every id fits below 65,500, else int32. */
export function tokenDtypeFor(vocabSize: number): 4 | 8 {
  return vocabSize < 65500 ? 8 : 4;
}

/** The index arrays are viewed and written as host-order typed arrays, which is the format's order only here. */
function requireLittleEndian(): void {
  if (os.endianness() !== 'LE')
    throw new Error('Megatron indexed datasets are read and written on little-endian hosts only');
}

function formatError(file: string, problem: string): DataError {
  return new DataError(
    'ERR_DATA_FORMAT',
    `${file} is not a usable Megatron indexed dataset: ${problem}; rebuild it with \`paratrain preprocess\` ` +
      `or Megatron's tools/preprocess_data.py`,
  );
}

export class IndexedDataset {
  private constructor(
    readonly prefix: string,
    readonly dtype: IndexedDtypeCode,
    /** Tokens per sequence. */
    readonly sequenceLengths: Int32Array,
    /** Byte offset of each sequence in .bin. */
    readonly sequencePointers: BigInt64Array,
    /** Document d covers sequences [documentIndices[d], documentIndices[d + 1]). */
    readonly documentIndices: BigInt64Array,
    private readonly fd: number,
  ) {}

  get sequenceCount(): number {
    return this.sequenceLengths.length;
  }

  get documentCount(): number {
    return this.documentIndices.length - 1;
  }

  /** Sequences of document d: [first, end). */
  documentSequences(d: number): [number, number] {
    return [Number(this.documentIndices[d]), Number(this.documentIndices[d + 1])];
  }

  /** Tokens [offset, offset + length) of sequence i (all of it by default), as int32. */
  sequence(i: number, offset = 0, length = this.sequenceLengths[i] - offset): Int32Array {
    if (!(i >= 0 && i < this.sequenceCount)) throw new RangeError(`sequence ${i} is not in [0, ${this.sequenceCount})`);
    if (offset < 0 || length < 0 || offset + length > this.sequenceLengths[i])
      throw new RangeError(
        `tokens [${offset}, ${offset + length}) are outside sequence ${i} of ${this.sequenceLengths[i]}`,
      );
    const { bytes } = INDEXED_DTYPES[this.dtype];
    const raw = Buffer.alloc(length * bytes);
    const position = Number(this.sequencePointers[i]) + offset * bytes;
    let read = 0;
    while (read < raw.length) {
      const n = fs.readSync(this.fd, raw, read, raw.length - read, position + read);
      if (n === 0) throw formatError(`${this.prefix}.bin`, `it ends inside sequence ${i}`);
      read += n;
    }
    return decodeTokens(raw, this.dtype, length);
  }

  /**
   * Tokens [start, end) of .bin counted across sequences (open() has checked that each sequence follows
   * the one before, so token t is at byte t × dtype size), as int32.
   */
  tokens(start: number, end: number): Int32Array {
    const { bytes } = INDEXED_DTYPES[this.dtype];
    const raw = Buffer.alloc((end - start) * bytes);
    let read = 0;
    while (read < raw.length) {
      const n = fs.readSync(this.fd, raw, read, raw.length - read, start * bytes + read);
      if (n === 0) throw formatError(`${this.prefix}.bin`, `it ends before token ${end}`);
      read += n;
    }
    return decodeTokens(raw, this.dtype, end - start);
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  /** Opens PREFIX.idx and PREFIX.bin, checking every size and offset against the files. */
  static open(prefix: string): IndexedDataset {
    requireLittleEndian();
    const idxPath = `${prefix}.idx`;
    const binPath = `${prefix}.bin`;
    for (const file of [idxPath, binPath]) {
      if (!fs.existsSync(file))
        throw new DataError('ERR_DATA_NOT_FOUND', `${file} does not exist (an indexed dataset is a .bin/.idx pair)`);
    }
    const idx = fs.readFileSync(idxPath);
    if (idx.length < HEADER_BYTES) throw formatError(idxPath, `${idx.length} bytes, shorter than the header`);
    if (!idx.subarray(0, MAGIC.length).equals(MAGIC)) throw formatError(idxPath, 'the magic is not MMIDIDX');
    let at = MAGIC.length;
    const version = idx.readBigUInt64LE(at);
    at += 8;
    if (version !== VERSION) throw formatError(idxPath, `version ${version}, expected ${VERSION}`);
    const dtype = idx.readUInt8(at++) as IndexedDtypeCode;
    if (!(dtype in INDEXED_DTYPES)) throw formatError(idxPath, `unknown dtype code ${dtype}`);
    if (dtype === 6 || dtype === 7)
      throw formatError(idxPath, `dtype ${INDEXED_DTYPES[dtype].name} cannot hold token ids`);
    const sequences = idx.readBigUInt64LE(at);
    const indexCount = idx.readBigUInt64LE(at + 8);
    at += 16;
    const expected = BigInt(HEADER_BYTES) + 12n * sequences + 8n * indexCount;
    if (BigInt(idx.length) !== expected || indexCount < 1n) {
      throw formatError(
        idxPath,
        `${idx.length} bytes, but ${sequences} sequences and ${indexCount} document indices need ${expected}`,
      );
    }
    const S = Number(sequences);
    const copy = (bytes: number) => {
      const out = new ArrayBuffer(bytes); // aligned, whatever the header's length
      new Uint8Array(out).set(idx.subarray(at, at + bytes));
      at += bytes;
      return out;
    };
    const lengths = new Int32Array(copy(4 * S));
    const pointers = new BigInt64Array(copy(8 * S));
    const documents = new BigInt64Array(copy(8 * Number(indexCount)));

    const { bytes } = INDEXED_DTYPES[dtype];
    const binBytes = fs.statSync(binPath).size;
    let next = 0n;
    for (let i = 0; i < S; i++) {
      if (lengths[i] < 0) throw formatError(idxPath, `sequence ${i} has length ${lengths[i]}`);
      if (pointers[i] !== next)
        throw formatError(
          idxPath,
          `sequence ${i} starts at byte ${pointers[i]}, expected ${next} (right after the one before)`,
        );
      next += BigInt(lengths[i] * bytes);
    }
    if (next !== BigInt(binBytes))
      throw formatError(
        binPath,
        `${binBytes} bytes, but the index describes ${next} (${INDEXED_DTYPES[dtype].name} tokens)`,
      );
    if (documents[0] !== 0n) throw formatError(idxPath, `the document indices start at ${documents[0]}, not 0`);
    for (let d = 1; d < documents.length; d++) {
      if (documents[d] < documents[d - 1]) throw formatError(idxPath, `document index ${d} goes backwards`);
    }
    if (documents[documents.length - 1] !== sequences)
      throw formatError(
        idxPath,
        `the last document index is ${documents[documents.length - 1]}, not the ${S} sequences`,
      );
    return new IndexedDataset(prefix, dtype, lengths, pointers, documents, fs.openSync(binPath, 'r'));
  }
}

function decodeTokens(raw: Buffer, dtype: IndexedDtypeCode, length: number): Int32Array {
  const out = new Int32Array(length);
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  for (let t = 0; t < length; t++) {
    switch (dtype) {
      case 1:
        out[t] = view.getUint8(t);
        break;
      case 2:
        out[t] = view.getInt8(t);
        break;
      case 3:
        out[t] = view.getInt16(2 * t, true);
        break;
      case 4:
        out[t] = view.getInt32(4 * t, true);
        break;
      case 5:
        out[t] = Number(view.getBigInt64(8 * t, true));
        break;
      case 8:
        out[t] = view.getUint16(2 * t, true);
        break;
      default:
        throw new RangeError(`dtype ${dtype} holds no token ids`);
    }
  }
  return out;
}

/**
 * Writes PREFIX.bin / PREFIX.idx as Megatron's IndexedDatasetBuilder does, streaming the tokens;
 * both go to temporary names and are renamed by finish(), .idx last, so an interrupted write
 * leaves no pair that looks complete.
 */
export class IndexedDatasetWriter {
  private readonly fd: number;
  private lengths = new Int32Array(1024);
  private sequences = 0;
  private readonly documentEnds: number[] = [0];
  private readonly tmpBin: string;
  private readonly tmpIdx: string;

  constructor(
    readonly prefix: string,
    readonly dtype: 4 | 8,
  ) {
    requireLittleEndian();
    fs.mkdirSync(path.dirname(path.resolve(prefix)), { recursive: true });
    const tag = `.tmp-${process.pid}`;
    this.tmpBin = `${prefix}.bin${tag}`;
    this.tmpIdx = `${prefix}.idx${tag}`;
    this.fd = fs.openSync(this.tmpBin, 'w');
  }

  addSequence(tokens: ArrayLike<number>): void {
    const bytes = INDEXED_DTYPES[this.dtype].bytes;
    const raw = Buffer.alloc(tokens.length * bytes);
    const limit = this.dtype === 8 ? 0xffff : 0x7fffffff;
    for (let t = 0; t < tokens.length; t++) {
      const id = tokens[t];
      if (!Number.isInteger(id) || id < 0 || id > limit)
        throw new RangeError(`token id ${id} does not fit ${INDEXED_DTYPES[this.dtype].name}`);
      if (this.dtype === 8) raw.writeUInt16LE(id, 2 * t);
      else raw.writeInt32LE(id, 4 * t);
    }
    fs.writeSync(this.fd, raw);
    if (this.sequences === this.lengths.length) {
      const grown = new Int32Array(this.lengths.length * 2);
      grown.set(this.lengths);
      this.lengths = grown;
    }
    this.lengths[this.sequences++] = tokens.length;
  }

  /** Ends the current document (the sequences added since the last call). */
  endDocument(): void {
    this.documentEnds.push(this.sequences);
  }

  /** Removes the temporary files of a write that will not finish. */
  abort(): void {
    try {
      fs.closeSync(this.fd);
    } catch {
      // already closed by finish()
    }
    for (const file of [this.tmpBin, this.tmpIdx]) fs.rmSync(file, { force: true });
  }

  finish(): void {
    if (this.documentEnds[this.documentEnds.length - 1] !== this.sequences) this.endDocument();
    fs.fsyncSync(this.fd);
    fs.closeSync(this.fd);
    const S = this.sequences;
    const header = Buffer.alloc(HEADER_BYTES);
    MAGIC.copy(header, 0);
    header.writeBigUInt64LE(VERSION, 9);
    header.writeUInt8(this.dtype, 17);
    header.writeBigUInt64LE(BigInt(S), 18);
    header.writeBigUInt64LE(BigInt(this.documentEnds.length), 26);
    const pointers = new BigInt64Array(S);
    let offset = 0n;
    const bytes = BigInt(INDEXED_DTYPES[this.dtype].bytes);
    for (let i = 0; i < S; i++) {
      pointers[i] = offset;
      offset += BigInt(this.lengths[i]) * bytes;
    }
    const documents = BigInt64Array.from(this.documentEnds, (n) => BigInt(n));
    const fd = fs.openSync(this.tmpIdx, 'w');
    for (const part of [
      header,
      new Uint8Array(this.lengths.buffer, 0, 4 * S),
      new Uint8Array(pointers.buffer),
      new Uint8Array(documents.buffer),
    ])
      fs.writeSync(fd, part);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(this.tmpBin, `${this.prefix}.bin`);
    fs.renameSync(this.tmpIdx, `${this.prefix}.idx`);
  }
}
