// Megatron-LM's indexed dataset (megatron/core/datasets/indexed_dataset.py): token ids in PREFIX.bin
// back to back, and PREFIX.idx describing them, all little-endian:
//   magic "MMIDIDX\0\0" (9 bytes) | version u64 = 1 | dtype code u8 | sequence count u64 (S)
//   | document index count u64 (D + 1) | S × int32 sequence lengths (tokens)
//   | S × int64 byte offsets of the sequences in .bin | (D + 1) × int64 document indices
// Document d is sequences [indices[d], indices[d + 1]); indices start at 0 and end at S. A sequence
// is a sentence in sentence-split data (BERT), a whole document otherwise (GPT). The reader reads the
// index in chunks and keeps where each sequence starts (8 bytes a sequence) and the document indices
// (8 bytes a document); tokens are read from .bin with positional reads, so its memory does not grow
// with the token count.
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
    /**
     * Sequence i is tokens [sequenceStarts[i], sequenceStarts[i + 1]) of .bin, counted in tokens (S + 1
     * entries): the index's lengths and byte offsets in one array, as open() has checked that every
     * sequence starts where the one before ends.
     */
    readonly sequenceStarts: Float64Array,
    /** Document d covers sequences [documentIndices[d], documentIndices[d + 1]). */
    readonly documentIndices: Float64Array,
    private readonly fd: number,
  ) {}

  get sequenceCount(): number {
    return this.sequenceStarts.length - 1;
  }

  get documentCount(): number {
    return this.documentIndices.length - 1;
  }

  /** Tokens in .bin. */
  get tokenCount(): number {
    return this.sequenceStarts[this.sequenceCount];
  }

  /** Tokens of sequence i. */
  sequenceLength(i: number): number {
    return this.sequenceStarts[i + 1] - this.sequenceStarts[i];
  }

  /** Sequences of document d: [first, end). */
  documentSequences(d: number): [number, number] {
    return [this.documentIndices[d], this.documentIndices[d + 1]];
  }

  /** Tokens [offset, offset + length) of sequence i (all of it by default), as int32. */
  sequence(i: number, offset = 0, length = this.sequenceLength(i) - offset): Int32Array {
    if (!(i >= 0 && i < this.sequenceCount)) throw new RangeError(`sequence ${i} is not in [0, ${this.sequenceCount})`);
    const sequenceLength = this.sequenceLength(i);
    if (offset < 0 || length < 0 || offset + length > sequenceLength)
      throw new RangeError(`tokens [${offset}, ${offset + length}) are outside sequence ${i} of ${sequenceLength}`);
    const { bytes } = INDEXED_DTYPES[this.dtype];
    const raw = Buffer.alloc(length * bytes);
    const position = (this.sequenceStarts[i] + offset) * bytes;
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

  /**
   * Opens PREFIX.idx and PREFIX.bin, checking every size and offset against the files. The index is
   * read with positional reads of OPEN_CHUNK entries at a time, checked and folded into
   * sequenceStarts and documentIndices as it comes: nothing holds the whole .idx or a copy of it.
   */
  static open(prefix: string): IndexedDataset {
    requireLittleEndian();
    const idxPath = `${prefix}.idx`;
    const binPath = `${prefix}.bin`;
    for (const file of [idxPath, binPath]) {
      if (!fs.existsSync(file))
        throw new DataError('ERR_DATA_NOT_FOUND', `${file} does not exist (an indexed dataset is a .bin/.idx pair)`);
    }
    const idx = fs.openSync(idxPath, 'r');
    try {
      const idxBytes = fs.fstatSync(idx).size;
      if (idxBytes < HEADER_BYTES) throw formatError(idxPath, `${idxBytes} bytes, shorter than the header`);
      const header = Buffer.alloc(HEADER_BYTES);
      readFully(idx, header, 0, idxPath);
      if (!header.subarray(0, MAGIC.length).equals(MAGIC)) throw formatError(idxPath, 'the magic is not MMIDIDX');
      const version = header.readBigUInt64LE(MAGIC.length);
      if (version !== VERSION) throw formatError(idxPath, `version ${version}, expected ${VERSION}`);
      const dtype = header.readUInt8(MAGIC.length + 8) as IndexedDtypeCode;
      if (!(dtype in INDEXED_DTYPES)) throw formatError(idxPath, `unknown dtype code ${dtype}`);
      if (dtype === 6 || dtype === 7)
        throw formatError(idxPath, `dtype ${INDEXED_DTYPES[dtype].name} cannot hold token ids`);
      const sequences = header.readBigUInt64LE(MAGIC.length + 9);
      const indexCount = header.readBigUInt64LE(MAGIC.length + 17);
      const expected = BigInt(HEADER_BYTES) + 12n * sequences + 8n * indexCount;
      if (BigInt(idxBytes) !== expected || indexCount < 1n) {
        throw formatError(
          idxPath,
          `${idxBytes} bytes, but ${sequences} sequences and ${indexCount} document indices need ${expected}`,
        );
      }
      const S = Number(sequences);
      const binBytes = fs.statSync(binPath).size;
      const starts = readSequenceStarts(idx, idxPath, S, dtype);
      const next = starts[S] * INDEXED_DTYPES[dtype].bytes;
      if (next !== binBytes)
        throw formatError(
          binPath,
          `${binBytes} bytes, but the index describes ${next} (${INDEXED_DTYPES[dtype].name} tokens)`,
        );
      const documents = readDocumentIndices(idx, idxPath, S, Number(indexCount));
      return new IndexedDataset(prefix, dtype, starts, documents, fs.openSync(binPath, 'r'));
    } finally {
      fs.closeSync(idx);
    }
  }
}

/** Index entries read per positional read while opening (a few hundred KiB of buffer). */
const OPEN_CHUNK = 1 << 16;

/** Fills `into` from `fd` at `position`, or stops naming the file when it ends first. */
function readFully(fd: number, into: Uint8Array, position: number, file: string): void {
  let read = 0;
  while (read < into.length) {
    const n = fs.readSync(fd, into, read, into.length - read, position + read);
    if (n === 0) throw formatError(file, `it ends at byte ${position + read}`);
    read += n;
  }
}

/** An int64 from its two little-endian halves, exact below 2^53 (every value a valid index holds). */
function int64At(words: Int32Array, i: number): number {
  return (words[2 * i] >>> 0) + words[2 * i + 1] * 2 ** 32;
}

/**
 * The lengths (int32) and byte offsets (int64) regions, read side by side in chunks: checks that every
 * length is not negative and every offset is the end of the sequence before, and returns the
 * sequences' starts in tokens (S + 1 entries, the last the token count).
 */
function readSequenceStarts(idx: number, idxPath: string, S: number, dtype: IndexedDtypeCode): Float64Array {
  const { bytes } = INDEXED_DTYPES[dtype];
  const starts = new Float64Array(S + 1);
  const lengths = new Int32Array(Math.min(S, OPEN_CHUNK));
  const pointers = new Int32Array(2 * Math.min(S, OPEN_CHUNK));
  const lengthsAt = HEADER_BYTES;
  const pointersAt = HEADER_BYTES + 4 * S;
  // Bytes, exact below 2^53; a larger sum only comes from a damaged index, which the .bin size check refuses.
  let next = 0;
  for (let first = 0; first < S; first += OPEN_CHUNK) {
    const count = Math.min(OPEN_CHUNK, S - first);
    readFully(idx, new Uint8Array(lengths.buffer, 0, 4 * count), lengthsAt + 4 * first, idxPath);
    readFully(idx, new Uint8Array(pointers.buffer, 0, 8 * count), pointersAt + 8 * first, idxPath);
    for (let k = 0; k < count; k++) {
      const i = first + k;
      if (lengths[k] < 0) throw formatError(idxPath, `sequence ${i} has length ${lengths[k]}`);
      if (int64At(pointers, k) !== next) {
        const pointer = new BigInt64Array(pointers.buffer, 8 * k, 1)[0];
        throw formatError(
          idxPath,
          `sequence ${i} starts at byte ${pointer}, expected ${next} (right after the one before)`,
        );
      }
      next += lengths[k] * bytes;
      starts[i + 1] = starts[i] + lengths[k];
    }
  }
  return starts;
}

/** The document indices region, in chunks: checks that it runs from 0 to S without going backwards. */
function readDocumentIndices(idx: number, idxPath: string, S: number, count: number): Float64Array {
  const documents = new Float64Array(count);
  const words = new Int32Array(2 * Math.min(count, OPEN_CHUNK));
  const at = HEADER_BYTES + 12 * S;
  for (let first = 0; first < count; first += OPEN_CHUNK) {
    const n = Math.min(OPEN_CHUNK, count - first);
    readFully(idx, new Uint8Array(words.buffer, 0, 8 * n), at + 8 * first, idxPath);
    for (let k = 0; k < n; k++) documents[first + k] = int64At(words, k);
  }
  if (documents[0] !== 0) throw formatError(idxPath, `the document indices start at ${documents[0]}, not 0`);
  for (let d = 1; d < documents.length; d++) {
    if (documents[d] < documents[d - 1]) throw formatError(idxPath, `document index ${d} goes backwards`);
  }
  if (documents[documents.length - 1] !== S)
    throw formatError(idxPath, `the last document index is ${documents[documents.length - 1]}, not the ${S} sequences`);
  return documents;
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
