/** CheckpointManifest (proto/checkpoint.proto) <-> plain TypeScript objects. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

import { CheckpointError, corrupt } from './errors';

export const MANIFEST_FORMAT_VERSION = 1;

export type TensorRole = 'unspecified' | 'parameter' | 'optimizer_state';

export interface ManifestSliceDim {
  start: number;
  length: number;
}

export interface ManifestTensorEntry {
  name: string;
  dtype: string;
  globalShape: number[];
  file: string;
  slice: ManifestSliceDim[];
  fileSha256: string;
  role: TensorRole;
  /** Key inside `file`; '' means the same as `name`. */
  key: string;
  tpRank: number;
  dpRank: number;
}

export interface ManifestFileEntry {
  path: string;
  sizeBytes: number;
  sha256: string;
}

export interface CheckpointManifest {
  formatVersion: number;
  paratrainVersion: string;
  step: number;
  consumedSamples: number;
  configJson: string;
  arch: string;
  layout: { tensorParallel: number; dataParallel: number };
  optimizer: { name: string; step: number };
  tensors: ManifestTensorEntry[];
  files: ManifestFileEntry[];
  tokenizerFile: string;
  createdUnixMs: number;
  extraJson: string;
}

const ROLE_TO_ENUM: Record<TensorRole, number> = { unspecified: 0, parameter: 1, optimizer_state: 2 };
const ENUM_TO_ROLE: Record<number, TensorRole> = { 0: 'unspecified', 1: 'parameter', 2: 'optimizer_state' };

let cachedRoot: string | undefined;

/**
 * The package root (directory holding package.json and proto/), found by walking up from this
 * file so it works both from src/ (vitest) and from dist/ (compiled).
 */
export function packageRoot(): string {
  if (cachedRoot !== undefined) return cachedRoot;
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'proto', 'checkpoint.proto')) && fs.existsSync(path.join(dir, 'package.json'))) {
      cachedRoot = dir;
      return dir;
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`cannot locate proto/checkpoint.proto above ${__dirname}`);
    dir = up;
  }
}

let cachedVersion: string | undefined;

export function paratrainVersion(): string {
  if (cachedVersion === undefined) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(packageRoot(), 'package.json'), 'utf8')) as {
        version?: unknown;
      };
      cachedVersion = typeof pkg.version === 'string' ? pkg.version : '0.0.0';
    } catch {
      cachedVersion = '0.0.0';
    }
  }
  return cachedVersion;
}

let manifestType: protobuf.Type | undefined;

export function manifestProtoType(): protobuf.Type {
  if (manifestType === undefined) {
    const root = protobuf.loadSync(path.join(packageRoot(), 'proto', 'checkpoint.proto'));
    manifestType = root.lookupType('paratrain.CheckpointManifest');
  }
  return manifestType;
}

/** Shape of Type.toObject(..., {longs: String, enums: Number, defaults: true, arrays: true}). */
interface RawManifest {
  formatVersion: number;
  paratrainVersion: string;
  step: string;
  consumedSamples: string;
  configJson: string;
  arch: string;
  layout: { tensorParallel: number; dataParallel: number } | null;
  optimizer: { name: string; step: string } | null;
  tensors: Array<{
    name: string;
    dtype: string;
    globalShape: string[];
    file: string;
    slice: Array<{ start: string; length: string }>;
    fileSha256: string;
    role: number;
    key: string;
    tpRank: number;
    dpRank: number;
  }>;
  files: Array<{ path: string; sizeBytes: string; sha256: string }>;
  tokenizerFile: string;
  createdUnixMs: string;
  extraJson: string;
}

function toSafeNumber(v: unknown, field: string, file: string): number {
  // int64 fields are decoded as decimal strings (longs: String) to avoid silent precision loss.
  const n = typeof v === 'string' ? Number(v) : typeof v === 'number' ? v : NaN;
  if (!Number.isSafeInteger(n)) throw corrupt(file, `manifest field ${field} = ${String(v)} is not a safe integer`);
  return n;
}

function checkUInt(v: number, field: string): void {
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new CheckpointError(
      'ERR_CHECKPOINT_INVALID_ARG',
      `manifest field ${field} must be a non-negative integer, got ${v}`,
    );
  }
}

export function encodeManifest(m: CheckpointManifest): Uint8Array {
  checkUInt(m.step, 'step');
  checkUInt(m.consumedSamples, 'consumed_samples');
  checkUInt(m.createdUnixMs, 'created_unix_ms');
  checkUInt(m.optimizer.step, 'optimizer.step');
  for (const f of m.files) checkUInt(f.sizeBytes, `files[${f.path}].size_bytes`);
  const T = manifestProtoType();
  const plain = {
    ...m,
    tensors: m.tensors.map((t) => ({ ...t, role: ROLE_TO_ENUM[t.role] })),
  };
  const err = T.verify(plain);
  if (err !== null) throw new CheckpointError('ERR_CHECKPOINT_INVALID_ARG', `invalid manifest: ${err}`);
  return T.encode(T.fromObject(plain)).finish();
}

/** Decodes and validates manifest bytes; `file` is only used in error messages. */
export function decodeManifest(bytes: Uint8Array, file: string): CheckpointManifest {
  const T = manifestProtoType();
  let msg: protobuf.Message;
  try {
    msg = T.decode(bytes);
  } catch (e) {
    throw corrupt(file, `manifest is not a valid protobuf (${(e as Error).message})`, e);
  }
  const err = T.verify(msg);
  if (err !== null) throw corrupt(file, `manifest failed verification: ${err}`);
  const o = T.toObject(msg, { longs: String, enums: Number, defaults: true, arrays: true }) as RawManifest;

  const tensors: ManifestTensorEntry[] = o.tensors.map((t, i) => ({
    name: t.name,
    dtype: t.dtype,
    globalShape: t.globalShape.map((d, j) => toSafeNumber(d, `tensors[${i}].global_shape[${j}]`, file)),
    file: t.file,
    slice: t.slice.map((s, j) => ({
      start: toSafeNumber(s.start, `tensors[${i}].slice[${j}].start`, file),
      length: toSafeNumber(s.length, `tensors[${i}].slice[${j}].length`, file),
    })),
    fileSha256: t.fileSha256,
    role: ENUM_TO_ROLE[t.role] ?? 'unspecified',
    key: t.key,
    tpRank: t.tpRank,
    dpRank: t.dpRank,
  }));
  const files: ManifestFileEntry[] = o.files.map((f, i) => ({
    path: f.path,
    sizeBytes: toSafeNumber(f.sizeBytes, `files[${i}].size_bytes`, file),
    sha256: f.sha256,
  }));
  const layout = o.layout ?? { tensorParallel: 0, dataParallel: 0 };
  const optimizer = o.optimizer ?? { name: '', step: '0' };
  return {
    formatVersion: o.formatVersion,
    paratrainVersion: o.paratrainVersion,
    step: toSafeNumber(o.step, 'step', file),
    consumedSamples: toSafeNumber(o.consumedSamples, 'consumed_samples', file),
    configJson: o.configJson,
    arch: o.arch,
    layout: { tensorParallel: layout.tensorParallel, dataParallel: layout.dataParallel },
    optimizer: { name: optimizer.name, step: toSafeNumber(optimizer.step, 'optimizer.step', file) },
    tensors,
    files,
    tokenizerFile: o.tokenizerFile,
    createdUnixMs: toSafeNumber(o.createdUnixMs, 'created_unix_ms', file),
    extraJson: o.extraJson,
  };
}
