// Sample indices built once and kept beside the data: the GPT stream layout of a split, the blend
// order, the masked-LM cuts; read whole into memory, or (openOrBuildSampleIndexColumns) an element at
// a time from the file. A file is named by the hash of everything its arrays depend on and repeats those inputs in
// its header; it is reused when both match and rebuilt otherwise, and written to a temporary name
// then renamed (files/atomic-write), so an interrupted write never looks like a complete index.
// Writing a new file removes the stale ones of the same stem and kind: those whose header names other
// data files (request.identity) than the present ones, which no run can use again.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { atomicWriteFile } from '../files/atomic-write';

const MAGIC = Buffer.from('PTSIDX\x00\x01', 'latin1');
const FORMAT_VERSION = 1;

type IndexArray = Float64Array | Uint32Array | Uint16Array | Uint8Array;
const ARRAY_TYPES = { Float64Array, Uint32Array, Uint16Array, Uint8Array } as const;
type ArrayTypeName = keyof typeof ARRAY_TYPES;

export interface SampleIndexRequest<T extends Record<string, IndexArray>> {
  /** What the index is, e.g. 'gpt-stream' or 'blend'; part of the file name. */
  kind: string;
  /** The file goes beside the data as `${stem}.${kind}-${hash}.pidx`. */
  stem: string;
  /** Where the file goes when stem's directory is read-only. */
  cacheDir: string;
  /** Everything the arrays depend on, as JSON: hashed into the name and kept in the header. */
  inputs: Record<string, unknown>;
  /**
   * The names of the inputs that identify the data's files (their sizes and times). A file of this
   * stem and kind whose header differs in any of them indexes data that is gone, and is removed when
   * a new index is written; one that differs only in other inputs (another split, another seq_len)
   * serves another configuration and stays. Without identity nothing is removed.
   */
  identity?: readonly string[];
  build: () => T;
}

export interface SampleIndex<T> {
  arrays: T;
  /** 'cache': read from `file`; 'built': built now (and written to `file`, or null when nowhere was writable). */
  origin: 'cache' | 'built';
  file: string | null;
}

interface Header {
  format: number;
  kind: string;
  inputs: Record<string, unknown>;
  littleEndian: boolean;
  arrays: { name: string; type: ArrayTypeName; length: number }[];
}

/** The file beside the data, and the one in cacheDir used when the data's folder is read-only. */
export function sampleIndexPaths(request: Pick<SampleIndexRequest<never>, 'kind' | 'stem' | 'cacheDir' | 'inputs'>): {
  beside: string;
  fallback: string;
} {
  const hash = crypto
    .createHash('sha256')
    .update(JSON.stringify({ format: FORMAT_VERSION, kind: request.kind, inputs: request.inputs }))
    .digest('hex')
    .slice(0, 16);
  const { beside, fallbackPrefix } = namePrefixes(request);
  return { beside: `${beside}${hash}.pidx`, fallback: `${fallbackPrefix}${hash}.pidx` };
}

/** The paths of this stem and kind's index files up to their hash, beside the data and in cacheDir. */
function namePrefixes(request: Pick<SampleIndexRequest<never>, 'kind' | 'stem' | 'cacheDir'>): {
  beside: string;
  fallbackPrefix: string;
} {
  const beside = `${request.stem}.${request.kind}-`;
  const folder = crypto
    .createHash('sha256')
    .update(path.dirname(path.resolve(beside)))
    .digest('hex')
    .slice(0, 8);
  return {
    beside,
    fallbackPrefix: path.join(request.cacheDir, 'sample-indices', `${folder}-${path.basename(beside)}`),
  };
}

export async function loadOrBuildSampleIndex<T extends Record<string, IndexArray>>(
  request: SampleIndexRequest<T>,
): Promise<SampleIndex<T>> {
  const { beside, fallback } = sampleIndexPaths(request);
  const expected = JSON.stringify(request.inputs);
  for (const file of [beside, fallback]) {
    const arrays = readIndex<T>(file, request.kind, expected);
    if (arrays) return { arrays, origin: 'cache', file };
  }
  const arrays = request.build();
  return { arrays, origin: 'built', file: await writeBuilt(request, arrays) };
}

/** One array of an index, read an element at a time. */
export interface IndexColumn {
  readonly length: number;
  get(index: number): number;
}

/**
 * As loadOrBuildSampleIndex, but the arrays stay in their file: each column reads the element asked
 * for with a positional read, so the index takes no memory however large. A built index is written
 * first and then read back the same way; only when nowhere was writable does it stay in memory. The
 * file stays open as long as the columns are used.
 */
export async function openOrBuildSampleIndexColumns<T extends Record<string, IndexArray>>(
  request: SampleIndexRequest<T>,
): Promise<SampleIndex<Record<keyof T, IndexColumn>>> {
  const { beside, fallback } = sampleIndexPaths(request);
  const expected = JSON.stringify(request.inputs);
  for (const file of [beside, fallback]) {
    const columns = openColumns<T>(file, request.kind, expected);
    if (columns) return { arrays: columns, origin: 'cache', file };
  }
  const arrays = request.build();
  const file = await writeBuilt(request, arrays);
  const columns = file === null ? undefined : openColumns<T>(file, request.kind, expected);
  return { arrays: columns ?? memoryColumns(arrays), origin: 'built', file };
}

/** Writes a built index beside the data, else in cacheDir; the file written, or null when neither was writable. */
async function writeBuilt<T extends Record<string, IndexArray>>(
  request: SampleIndexRequest<T>,
  arrays: T,
): Promise<string | null> {
  const { beside, fallback } = sampleIndexPaths(request);
  for (const file of [beside, fallback]) {
    try {
      await writeIndex(file, request.kind, request.inputs, arrays, file === fallback);
      removeStaleIndices(request, file);
      return file;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      if (!['EACCES', 'EPERM', 'EROFS'].includes(code)) throw error;
    }
  }
  return null;
}

function memoryColumns<T extends Record<string, IndexArray>>(arrays: T): Record<keyof T, IndexColumn> {
  const columns = {} as Record<keyof T, IndexColumn>;
  for (const name of Object.keys(arrays) as (keyof T)[]) {
    const array = arrays[name];
    columns[name] = { length: array.length, get: (index) => array[index] };
  }
  return columns;
}

/** A column of an index file: element i is read at `start` + i × its size. */
class FileColumn implements IndexColumn {
  private readonly element: IndexArray;
  private readonly bytes: Uint8Array;

  constructor(
    private readonly fd: number,
    private readonly file: string,
    Type: (typeof ARRAY_TYPES)[ArrayTypeName],
    private readonly start: number,
    readonly length: number,
  ) {
    this.element = new Type(1);
    this.bytes = new Uint8Array(this.element.buffer);
  }

  get(index: number): number {
    if (!(index >= 0 && index < this.length)) throw new RangeError(`element ${index} is not in [0, ${this.length})`);
    const size = this.bytes.length;
    if (fs.readSync(this.fd, this.bytes, 0, size, this.start + index * size) !== size)
      throw new Error(`${this.file} ends inside element ${index} of a column of ${this.length}`);
    return this.element[0];
  }
}

/** The columns of `file` when it is a complete index of these inputs (as readIndex decides), read on demand. */
function openColumns<T extends Record<string, IndexArray>>(
  file: string,
  kind: string,
  inputs: string,
): Record<keyof T, IndexColumn> | undefined {
  const header = readHeader(file);
  if (!header || !headerMatches(header, kind, inputs)) return undefined;
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
  const fileBytes = fs.fstatSync(fd).size;
  const start = headerEnd(fd);
  let offset = start;
  const columns: Record<string, IndexColumn> = {};
  for (const { name, type, length } of header.arrays) {
    const Type = ARRAY_TYPES[type];
    if (!Type) break;
    columns[name] = new FileColumn(fd, file, Type, offset, length);
    offset = align8(offset + length * Type.BYTES_PER_ELEMENT);
  }
  if (start < 0 || Object.keys(columns).length !== header.arrays.length || offset !== align8(fileBytes)) {
    fs.closeSync(fd);
    return undefined;
  }
  return columns as Record<keyof T, IndexColumn>;
}

/** Where the arrays of an index file start (readHeader has read it): after the magic, the header length and the header. */
function headerEnd(fd: number): number {
  const length = Buffer.alloc(4);
  return fs.readSync(fd, length, 0, 4, MAGIC.length) === 4 ? MAGIC.length + 4 + length.readUInt32LE(0) : -1;
}

/** Whether a header is this format's, for this kind, byte order and these inputs. */
function headerMatches(header: Header, kind: string, inputs: string): boolean {
  return (
    header.format === FORMAT_VERSION &&
    header.kind === kind &&
    header.littleEndian === (os.endianness() === 'LE') &&
    JSON.stringify(header.inputs) === inputs
  );
}

/**
 * Removes, beside the data and in cacheDir, the index files of this stem and kind (exactly
 * `<prefix><16 hex digits>.pidx`, nothing else) whose header names other data files than
 * request.identity's present ones. `kept` is never touched; a file whose header cannot be read is
 * left alone, and a folder that refuses (read-only) is skipped.
 */
function removeStaleIndices(request: SampleIndexRequest<Record<string, IndexArray>>, kept: string): void {
  const identity = request.identity ?? [];
  if (identity.length === 0) return;
  const present = JSON.stringify(identity.map((key) => request.inputs[key]));
  const { beside, fallbackPrefix } = namePrefixes(request);
  for (const prefix of [beside, fallbackPrefix]) {
    const folder = path.dirname(prefix);
    const start = path.basename(prefix);
    let names: string[];
    try {
      names = fs.readdirSync(folder);
    } catch {
      continue;
    }
    for (const name of names) {
      if (!name.startsWith(start) || !/^[0-9a-f]{16}\.pidx$/.test(name.slice(start.length))) continue;
      const file = path.join(folder, name);
      if (path.resolve(file) === path.resolve(kept)) continue;
      const header = readHeader(file);
      if (!header || header.kind !== request.kind) continue;
      if (JSON.stringify(identity.map((key) => header.inputs[key])) === present) continue;
      try {
        fs.unlinkSync(file);
      } catch {
        // Read-only, or removed meanwhile by another process: nothing to do.
      }
    }
  }
}

/** The header of an index file, read without its arrays; undefined when it is not one. */
function readHeader(file: string): Header | undefined {
  let fd: number | undefined;
  try {
    fd = fs.openSync(file, 'r');
    const start = Buffer.alloc(MAGIC.length + 4);
    if (fs.readSync(fd, start, 0, start.length, 0) !== start.length) return undefined;
    if (!start.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
    const text = Buffer.alloc(start.readUInt32LE(MAGIC.length));
    if (fs.readSync(fd, text, 0, text.length, start.length) !== text.length) return undefined;
    return JSON.parse(text.toString('utf8')) as Header;
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
}

/** The arrays of `file` when it is a complete index of these inputs; undefined otherwise (missing, stale, damaged). */
function readIndex<T extends Record<string, IndexArray>>(file: string, kind: string, inputs: string): T | undefined {
  let bytes: Buffer;
  try {
    bytes = fs.readFileSync(file);
  } catch {
    return undefined;
  }
  if (bytes.length < MAGIC.length + 4 || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return undefined;
  const headerLength = bytes.readUInt32LE(MAGIC.length);
  let header: Header;
  try {
    header = JSON.parse(bytes.toString('utf8', MAGIC.length + 4, MAGIC.length + 4 + headerLength)) as Header;
  } catch {
    return undefined;
  }
  if (!headerMatches(header, kind, inputs)) return undefined;
  let offset = MAGIC.length + 4 + headerLength;
  const arrays: Record<string, IndexArray> = {};
  for (const { name, type, length } of header.arrays) {
    const Type = ARRAY_TYPES[type];
    if (!Type) return undefined;
    const byteLength = length * Type.BYTES_PER_ELEMENT;
    if (offset + byteLength > bytes.length) return undefined;
    // A copy: the file's bytes need not be aligned for the array type.
    const copy = new ArrayBuffer(byteLength);
    new Uint8Array(copy).set(bytes.subarray(offset, offset + byteLength));
    arrays[name] = new Type(copy);
    offset = align8(offset + byteLength);
  }
  return offset === align8(bytes.length) ? (arrays as T) : undefined;
}

/**
 * Layout: magic (8 bytes), header length (u32 LE), header JSON padded with blanks so the arrays start
 * at a multiple of 8, then each array in host byte order (the header records which), each padded to 8.
 */
async function writeIndex(
  file: string,
  kind: string,
  inputs: Record<string, unknown>,
  arrays: Record<string, IndexArray>,
  createDir: boolean,
): Promise<void> {
  const header: Header = {
    format: FORMAT_VERSION,
    kind,
    inputs,
    littleEndian: os.endianness() === 'LE',
    arrays: Object.entries(arrays).map(([name, array]) => ({
      name,
      type: array.constructor.name as ArrayTypeName,
      length: array.length,
    })),
  };
  let headerText = JSON.stringify(header);
  while ((MAGIC.length + 4 + Buffer.byteLength(headerText)) % 8 !== 0) headerText += ' ';
  const headerBytes = Buffer.from(headerText, 'utf8');
  const headerLength = Buffer.alloc(4);
  headerLength.writeUInt32LE(headerBytes.length);
  const parts: Uint8Array[] = [MAGIC, headerLength, headerBytes];
  for (const array of Object.values(arrays)) {
    parts.push(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
    const pad = align8(array.byteLength) - array.byteLength;
    if (pad > 0) parts.push(new Uint8Array(pad));
  }
  await atomicWriteFile(file, parts, { createDir });
}

function align8(n: number): number {
  return Math.ceil(n / 8) * 8;
}
