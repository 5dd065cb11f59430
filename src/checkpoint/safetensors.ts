/**
 * safetensors reader/writer (https://github.com/huggingface/safetensors format):
 *   [u64 LE header length N][N bytes JSON header, space padded][data region]
 * The header maps tensor name -> {dtype, shape, data_offsets: [begin, end)} (offsets relative to
 * the data region) plus an optional "__metadata__" string->string map.
 */
import { createHash } from 'node:crypto';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';

import { CheckpointError, corrupt, isErrnoException } from './errors';
import { atomicWrite, writeAll } from '../files/atomic-write';
import { readExactlyAt } from './fsutil';
import { numelOf, type AnyTensor } from './types';

/** Same limit as the reference implementation: protects against absurd header lengths. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Bytes per element of every dtype the format defines (so headers with exotic dtypes still validate). */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1,
  U8: 1,
  I8: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
  I16: 2,
  U16: 2,
  F16: 2,
  BF16: 2,
  I32: 4,
  U32: 4,
  F32: 4,
  I64: 8,
  U64: 8,
  F64: 8,
};

/** dtypes decoded to Float32Array / Int32Array on read. */
const FLOAT_DTYPES = new Set(['F32', 'F16', 'BF16', 'F64']);
const INT_DTYPES = new Set(['I32', 'I64', 'U32', 'U64', 'I16', 'U16', 'I8', 'U8', 'BOOL']);

export interface SafetensorsEntry {
  name: string;
  dtype: string;
  shape: number[];
  /** [begin, end) byte offsets relative to the start of the data region. */
  dataOffsets: [number, number];
}

export interface SafetensorsHeader {
  file: string;
  fileSize: number;
  /** Byte length of the JSON header (without the 8-byte length prefix). */
  headerLength: number;
  /** Absolute file offset of the data region (8 + headerLength). */
  dataStart: number;
  metadata: Record<string, string> | undefined;
  /** Entries in data-region order. */
  entries: SafetensorsEntry[];
}

export interface SafetensorsTensor extends AnyTensor {
  /** dtype of the decoded data. */
  dtype: 'F32' | 'I32';
  /** dtype as stored in the file (F16/BF16/F64 become F32; I64/U8/... become I32). */
  storedDtype: string;
}

export interface ReadSafetensorsOptions {
  /** Decode only entries for which this returns true (others are validated but not read). */
  filter?: (entry: SafetensorsEntry) => boolean;
}

export interface WrittenFile {
  path: string;
  sizeBytes: number;
  sha256: string;
}

function assertLittleEndianHost(): void {
  // Typed arrays use host byte order; the format is little-endian.
  if (os.endianness() !== 'LE') {
    throw new CheckpointError('ERR_CHECKPOINT_UNSUPPORTED', 'safetensors I/O requires a little-endian host');
  }
}

function dtypeOf(t: AnyTensor): 'F32' | 'I32' {
  if (t.data instanceof Float32Array) return 'F32';
  if (t.data instanceof Int32Array) return 'I32';
  throw new CheckpointError(
    'ERR_CHECKPOINT_INVALID_ARG',
    `tensor ${t.name}: data must be a Float32Array or Int32Array`,
  );
}

/** Builds the padded header bytes for `tensors` (exported for tests that craft corrupt files). */
export function encodeSafetensorsHeader(tensors: readonly AnyTensor[], metadata?: Record<string, string>): Buffer {
  // Null prototype: a tensor literally named "__proto__" must stay an ordinary key.
  const header: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  if (metadata !== undefined) {
    const meta: Record<string, string> = Object.create(null) as Record<string, string>;
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') {
        throw new CheckpointError(
          'ERR_CHECKPOINT_INVALID_ARG',
          `safetensors metadata value for "${k}" must be a string`,
        );
      }
      meta[k] = v;
    }
    header['__metadata__'] = meta;
  }
  const seen = new Set<string>();
  let offset = 0;
  for (const t of tensors) {
    if (typeof t.name !== 'string' || t.name.length === 0 || t.name === '__metadata__') {
      throw new CheckpointError('ERR_CHECKPOINT_INVALID_ARG', `invalid tensor name ${JSON.stringify(t.name)}`);
    }
    if (seen.has(t.name)) throw new CheckpointError('ERR_CHECKPOINT_INVALID_ARG', `duplicate tensor name ${t.name}`);
    seen.add(t.name);
    if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new CheckpointError(
        'ERR_CHECKPOINT_INVALID_ARG',
        `tensor ${t.name}: invalid shape ${JSON.stringify(t.shape)}`,
      );
    }
    const dtype = dtypeOf(t);
    if (numelOf(t.shape) !== t.data.length) {
      throw new CheckpointError(
        'ERR_CHECKPOINT_INVALID_ARG',
        `tensor ${t.name}: shape [${t.shape.join(', ')}] has ${numelOf(t.shape)} elements but data has ${t.data.length}`,
      );
    }
    const end = offset + t.data.byteLength;
    header[t.name] = { dtype, shape: t.shape, data_offsets: [offset, end] };
    offset = end;
  }
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  // Pad with spaces so the data region starts 8-byte aligned (8 + N is a multiple of 8).
  const padded = Buffer.alloc(Math.ceil(json.byteLength / 8) * 8, 0x20);
  json.copy(padded);
  const out = Buffer.alloc(8 + padded.byteLength);
  out.writeBigUInt64LE(BigInt(padded.byteLength), 0);
  padded.copy(out, 8);
  return out;
}

/**
 * Writes F32/I32 tensors to `file` atomically (temp file, fsync, rename, fsync dir) and returns
 * the file's size and sha256 (computed while writing, overlapped with the writes: no second pass).
 */
export async function writeSafetensors(
  file: string,
  tensors: readonly AnyTensor[],
  metadata?: Record<string, string>,
): Promise<WrittenFile> {
  assertLittleEndianHost();
  const head = encodeSafetensorsHeader(tensors, metadata);
  const parts = [head, ...tensors.map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))];
  const hash = createHash('sha256');
  await atomicWrite(file, (fh) => writeAll(fh, parts, hash));
  return { path: file, sizeBytes: parts.reduce((n, p) => n + p.byteLength, 0), sha256: hash.digest('hex') };
}

/** Longest header value quoted in an error message. */
const QUOTED_VALUE_CHARS = 80;

/**
 * A header value for an error message, cut to QUOTED_VALUE_CHARS: a hostile header may hold a value
 * of any size, or nested too deep for JSON.stringify (a RangeError instead of the corrupt-file error).
 */
function quoted(v: unknown): string {
  let text: string;
  try {
    text = JSON.stringify(v) ?? String(v);
  } catch {
    text = Array.isArray(v) ? '[nested too deep to show]' : '{nested too deep to show}';
  }
  return text.length > QUOTED_VALUE_CHARS ? `${text.slice(0, QUOTED_VALUE_CHARS)}…` : text;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export async function openForRead(file: string): Promise<fsp.FileHandle> {
  try {
    return await fsp.open(file, 'r');
  } catch (e) {
    if (isErrnoException(e) && e.code === 'ENOENT') {
      throw new CheckpointError('ERR_CHECKPOINT_NOT_FOUND', `${file}: file not found`, file, { cause: e });
    }
    throw e;
  }
}

/** Reads and validates the header through an open handle (callers that go on to read slices keep it open). */
export async function parseSafetensorsHeader(fh: fsp.FileHandle, file: string): Promise<SafetensorsHeader> {
  const fileSize = (await fh.stat()).size;
  if (fileSize < 8)
    throw corrupt(file, `not a safetensors file: ${fileSize} bytes is shorter than the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  await readExactlyAt(fh, lenBuf, 0, file);
  const rawLen = lenBuf.readBigUInt64LE(0);
  if (rawLen === 0n) throw corrupt(file, 'header length is 0');
  if (rawLen > BigInt(MAX_HEADER_BYTES)) {
    throw corrupt(file, `header length ${rawLen} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`);
  }
  const headerLength = Number(rawLen);
  if (8 + headerLength > fileSize) {
    throw corrupt(file, `header length ${headerLength} runs past the end of the ${fileSize}-byte file (truncated?)`);
  }
  const headBuf = Buffer.alloc(headerLength);
  await readExactlyAt(fh, headBuf, 8, file);
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(headBuf));
  } catch (e) {
    throw corrupt(file, `header is not valid UTF-8 JSON (${(e as Error).message})`, e);
  }
  if (!isPlainObject(parsed)) throw corrupt(file, 'header JSON is not an object');

  const dataStart = 8 + headerLength;
  const dataLen = fileSize - dataStart;
  let metadata: Record<string, string> | undefined;
  const entries: SafetensorsEntry[] = [];
  for (const [name, info] of Object.entries(parsed)) {
    if (name === '__metadata__') {
      if (!isPlainObject(info) || !Object.values(info).every((v) => typeof v === 'string')) {
        throw corrupt(file, '__metadata__ must be a map of strings');
      }
      metadata = { ...(info as Record<string, string>) };
      continue;
    }
    if (!isPlainObject(info)) throw corrupt(file, `entry "${name}" is not an object`);
    const { dtype, shape, data_offsets: offs } = info;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) {
      throw corrupt(file, `tensor "${name}" has unknown dtype ${quoted(dtype)}`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      throw corrupt(file, `tensor "${name}" has an invalid shape ${quoted(shape)}`);
    }
    if (
      !Array.isArray(offs) ||
      offs.length !== 2 ||
      !offs.every((o) => Number.isSafeInteger(o) && (o as number) >= 0) ||
      (offs[0] as number) > (offs[1] as number)
    ) {
      throw corrupt(file, `tensor "${name}" has invalid data_offsets ${quoted(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end > dataLen) {
      throw corrupt(
        file,
        `tensor "${name}" data_offsets [${begin}, ${end}] lie outside the ${dataLen}-byte data region (truncated file?)`,
      );
    }
    const expected = numelOf(shape as number[]) * (DTYPE_BYTES[dtype] as number);
    if (end - begin !== expected) {
      throw corrupt(
        file,
        `tensor "${name}" ${dtype}[${(shape as number[]).join(', ')}] needs ${expected} bytes but data_offsets span ${end - begin}`,
      );
    }
    entries.push({ name, dtype, shape: [...(shape as number[])], dataOffsets: [begin, end] });
  }
  entries.sort((a, b) => a.dataOffsets[0] - b.dataOffsets[0] || a.dataOffsets[1] - b.dataOffsets[1]);
  // The format requires the data region to be covered exactly, without holes or overlaps.
  let cursor = 0;
  for (const e of entries) {
    if (e.dataOffsets[0] !== cursor) {
      throw corrupt(
        file,
        `tensor "${e.name}" starts at data offset ${e.dataOffsets[0]}, expected ${cursor} (offsets must be contiguous)`,
      );
    }
    cursor = e.dataOffsets[1];
  }
  if (cursor !== dataLen) {
    throw corrupt(file, `tensors cover ${cursor} bytes but the data region has ${dataLen} bytes`);
  }
  return { file, fileSize, headerLength, dataStart, metadata, entries };
}

/** Reads and validates only the header (no tensor data). */
export async function readSafetensorsHeader(file: string): Promise<SafetensorsHeader> {
  const fh = await openForRead(file);
  try {
    return await parseSafetensorsHeader(fh, file);
  } finally {
    await fh.close();
  }
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac === 0 ? sign * Infinity : NaN;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function decode(entry: SafetensorsEntry, raw: Uint8Array, file: string): Float32Array | Int32Array {
  const n = numelOf(entry.shape);
  const buf = raw.buffer;
  switch (entry.dtype) {
    case 'F32':
      return new Float32Array(buf, raw.byteOffset, n);
    case 'I32':
      return new Int32Array(buf, raw.byteOffset, n);
    case 'F64':
      return Float32Array.from(new Float64Array(buf, raw.byteOffset, n));
    case 'F16': {
      const src = new Uint16Array(buf, raw.byteOffset, n);
      const out = new Float32Array(n);
      for (let i = 0; i < n; i++) out[i] = halfToFloat(src[i] as number);
      return out;
    }
    case 'BF16': {
      // bf16 is the top half of an fp32 bit pattern.
      const src = new Uint16Array(buf, raw.byteOffset, n);
      const out = new Float32Array(n);
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = (src[i] as number) << 16;
      return out;
    }
    case 'I64':
    case 'U64': {
      const src =
        entry.dtype === 'I64' ? new BigInt64Array(buf, raw.byteOffset, n) : new BigUint64Array(buf, raw.byteOffset, n);
      const out = new Int32Array(n);
      for (let i = 0; i < n; i++) {
        const v = src[i] as bigint;
        if (v < -2147483648n || v > 2147483647n) {
          throw new CheckpointError(
            'ERR_CHECKPOINT_UNSUPPORTED',
            `${file}: tensor "${entry.name}" (${entry.dtype}) holds ${v} at index ${i}, which does not fit in int32`,
            file,
          );
        }
        out[i] = Number(v);
      }
      return out;
    }
    case 'U32': {
      const src = new Uint32Array(buf, raw.byteOffset, n);
      for (let i = 0; i < n; i++) {
        if ((src[i] as number) > 0x7fffffff) {
          throw new CheckpointError(
            'ERR_CHECKPOINT_UNSUPPORTED',
            `${file}: tensor "${entry.name}" (U32) holds ${src[i]} at index ${i}, which does not fit in int32`,
            file,
          );
        }
      }
      return new Int32Array(buf, raw.byteOffset, n);
    }
    case 'I16':
      return Int32Array.from(new Int16Array(buf, raw.byteOffset, n));
    case 'U16':
      return Int32Array.from(new Uint16Array(buf, raw.byteOffset, n));
    case 'I8':
      return Int32Array.from(new Int8Array(buf, raw.byteOffset, n));
    case 'U8':
    case 'BOOL':
      return Int32Array.from(new Uint8Array(buf, raw.byteOffset, n));
    default:
      throw unsupportedDtype(entry, file);
  }
}

function unsupportedDtype(entry: SafetensorsEntry, file: string): CheckpointError {
  return new CheckpointError(
    'ERR_CHECKPOINT_UNSUPPORTED',
    `${file}: tensor "${entry.name}" has dtype ${entry.dtype}, which paratrain cannot decode`,
    file,
  );
}

/**
 * Reads a safetensors file, validating the header (length, JSON, dtypes, shapes, contiguous
 * offsets inside the file). Float dtypes are returned as Float32Array, integer dtypes as
 * Int32Array. Tensors come back in data-region order; `metadata` is the `__metadata__` map.
 */
export async function readSafetensors(
  file: string,
  options: ReadSafetensorsOptions = {},
): Promise<{ tensors: SafetensorsTensor[]; metadata: Record<string, string> | undefined; header: SafetensorsHeader }> {
  assertLittleEndianHost();
  const fh = await openForRead(file);
  try {
    const header = await parseSafetensorsHeader(fh, file);
    const tensors: SafetensorsTensor[] = [];
    for (const entry of header.entries) {
      if (options.filter !== undefined && !options.filter(entry)) continue;
      if (!FLOAT_DTYPES.has(entry.dtype) && !INT_DTYPES.has(entry.dtype)) throw unsupportedDtype(entry, file);
      const [begin, end] = entry.dataOffsets;
      // Fresh, 8-byte aligned buffer per tensor so typed views of any width are legal.
      const raw = new Uint8Array(new ArrayBuffer(end - begin));
      await readExactlyAt(fh, raw, header.dataStart + begin, file);
      const data = decode(entry, raw, file);
      tensors.push({
        name: entry.name,
        shape: entry.shape,
        data,
        dtype: data instanceof Float32Array ? 'F32' : 'I32',
        storedDtype: entry.dtype,
      });
    }
    return { tensors, metadata: header.metadata, header };
  } finally {
    await fh.close();
  }
}
