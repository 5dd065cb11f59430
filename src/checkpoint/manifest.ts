/** CheckpointManifest (proto/checkpoint.proto) <-> plain TypeScript objects. */
import * as path from 'node:path';
import type * as protobuf from 'protobufjs';

import { paratrain, type Plain, type With } from '../proto';
import { CheckpointError, corrupt } from './errors';
import type { CheckpointManifest, ManifestFileEntry, ManifestTensorEntry, TensorRole, TrainingState } from './types';

/** 2: per-rank shard files and the training state. Version-1 manifests (whole tensors) still load. */
export const MANIFEST_FORMAT_VERSION = 2;
/** Value of the manifest's last field (end_marker, "PTMF"): its absence exposes a torn manifest.pb. */
export const MANIFEST_END_MARKER = 0x50544d46;

/** Names of the optimizer moments in a checkpoint: `<prefix><param name>` (PyTorch's state keys). */
export const OPTIMIZER_STATE_PREFIX = { m: 'exp_avg.', v: 'exp_avg_sq.' } as const;

const ROLE_TO_ENUM: Record<TensorRole, number> = { unspecified: 0, parameter: 1, optimizer_state: 2 };
const ENUM_TO_ROLE: Record<number, TensorRole> = { 0: 'unspecified', 1: 'parameter', 2: 'optimizer_state' };

/** The generated ShardReport message (proto/checkpoint.proto). */
export function shardReportProtoType(): typeof paratrain.ShardReport {
  return paratrain.ShardReport;
}

// The decoded messages, as toObject(..., TO_OBJECT_OPTIONS) returns them: 64-bit integers as
// decimal strings, enums as numbers, an absent sub-message null.
export type RawTensorEntry = With<Plain<paratrain.TensorEntry, string>, { slice: Plain<paratrain.SliceDim, string>[] }>;
export type RawFileEntry = Plain<paratrain.FileEntry, string>;
type RawTrainingState = {
  rng: Plain<paratrain.RngState, string> | null;
  schedule: Plain<paratrain.LrSchedule, string> | null;
  lossScale: Plain<paratrain.LossScaleState, string> | null;
};
export type RawManifest = With<
  Plain<paratrain.CheckpointManifest, string>,
  {
    layout: Plain<paratrain.Layout> | null;
    optimizer: Plain<paratrain.OptimizerInfo, string> | null;
    tensors: RawTensorEntry[];
    files: RawFileEntry[];
    training: RawTrainingState | null;
  }
>;

export const TO_OBJECT_OPTIONS: protobuf.IConversionOptions = {
  longs: String,
  enums: Number,
  defaults: true,
  arrays: true,
};

/** A decoded int64 as a number; `fail` builds the error (corrupt manifest, bad shard report). */
export function toSafeNumber(v: unknown, field: string, fail: (what: string) => Error): number {
  // int64 fields are decoded as decimal strings (longs: String) to avoid silent precision loss.
  const n = typeof v === 'string' ? Number(v) : typeof v === 'number' ? v : NaN;
  if (!Number.isSafeInteger(n)) throw fail(`field ${field} = ${String(v)} is not a safe integer`);
  return n;
}

function invalidArg(msg: string): CheckpointError {
  return new CheckpointError('ERR_CHECKPOINT_INVALID_ARG', msg);
}

function checkUInt(v: number, field: string): void {
  if (!Number.isSafeInteger(v) || v < 0)
    throw invalidArg(`manifest field ${field} must be a non-negative integer, got ${v}`);
}

function checkFinite(v: number, field: string): void {
  if (typeof v !== 'number' || !Number.isFinite(v))
    throw invalidArg(`manifest field ${field} must be a finite number, got ${v}`);
}

/** Throws ERR_CHECKPOINT_INVALID_ARG unless every part of the training state is present and in range. */
export function checkTrainingState(t: TrainingState): void {
  if (typeof t !== 'object' || t === null || !t.rng || !t.schedule || !t.lossScale) {
    throw invalidArg('training state must have rng, schedule and lossScale');
  }
  checkUInt(t.rng.seed, 'training.rng.seed');
  if (typeof t.rng.scheme !== 'string') throw invalidArg('training.rng.scheme must be a string');
  const s = t.schedule;
  if (typeof s.kind !== 'string') throw invalidArg('training.schedule.kind must be a string');
  checkFinite(s.lr, 'training.schedule.lr');
  checkFinite(s.minLr, 'training.schedule.min_lr');
  checkUInt(s.steps, 'training.schedule.steps');
  checkUInt(s.warmupSteps, 'training.schedule.warmup_steps');
  checkFinite(s.power, 'training.schedule.power');
  checkFinite(s.nextLr, 'training.schedule.next_lr');
  if (typeof t.lossScale.enabled !== 'boolean') throw invalidArg('training.loss_scale.enabled must be a boolean');
  checkFinite(t.lossScale.scale, 'training.loss_scale.scale');
  checkUInt(t.lossScale.growthTracker, 'training.loss_scale.growth_tracker');
  checkUInt(t.lossScale.skippedSteps, 'training.loss_scale.skipped_steps');
  const scale = t.lossScale.scale;
  if (t.lossScale.enabled && !(scale >= 1 && scale <= 2 ** 127 && Number.isInteger(Math.log2(scale))))
    throw invalidArg(`manifest field training.loss_scale.scale must be a power of two from 1 to 2^127, got ${scale}`);
}

export function tensorEntryToProto(t: ManifestTensorEntry): Record<string, unknown> {
  return { ...t, role: ROLE_TO_ENUM[t.role] };
}

/** Checks what encodeManifest needs and returns the object protobufjs encodes (the end marker included). */
export function manifestToProto(m: CheckpointManifest): Record<string, unknown> {
  checkUInt(m.step, 'step');
  checkUInt(m.consumedSamples, 'consumed_samples');
  checkUInt(m.createdUnixMs, 'created_unix_ms');
  checkUInt(m.optimizer.step, 'optimizer.step');
  for (const f of m.files) checkUInt(f.sizeBytes, `files[${f.path}].size_bytes`);
  if (m.training !== undefined) checkTrainingState(m.training);
  const { training, ...rest } = m;
  const plain: Record<string, unknown> = {
    ...rest,
    tensors: m.tensors.map(tensorEntryToProto),
    endMarker: MANIFEST_END_MARKER,
  };
  if (training !== undefined) plain.training = training;
  return plain;
}

export function encodeManifest(m: CheckpointManifest): Uint8Array {
  const T = paratrain.CheckpointManifest;
  const plain = manifestToProto(m);
  const err = T.verify(plain);
  if (err !== null) throw invalidArg(`invalid manifest: ${err}`);
  return T.encode(T.fromObject(plain)).finish();
}

export function tensorEntryFromProto(
  t: RawTensorEntry,
  where: string,
  fail: (what: string) => Error,
): ManifestTensorEntry {
  return {
    name: t.name,
    dtype: t.dtype,
    globalShape: t.globalShape.map((d, j) => toSafeNumber(d, `${where}.global_shape[${j}]`, fail)),
    file: t.file,
    slice: t.slice.map((s, j) => ({
      start: toSafeNumber(s.start, `${where}.slice[${j}].start`, fail),
      length: toSafeNumber(s.length, `${where}.slice[${j}].length`, fail),
    })),
    fileSha256: t.fileSha256,
    role: ENUM_TO_ROLE[t.role] ?? 'unspecified',
    key: t.key,
    tpRank: t.tpRank,
    dpRank: t.dpRank,
  };
}

export function fileEntryFromProto(f: RawFileEntry, where: string, fail: (what: string) => Error): ManifestFileEntry {
  return { path: f.path, sizeBytes: toSafeNumber(f.sizeBytes, `${where}.size_bytes`, fail), sha256: f.sha256 };
}

function trainingFromProto(t: RawTrainingState, fail: (what: string) => Error): TrainingState {
  if (t.rng === null || t.schedule === null || t.lossScale === null) {
    throw fail('training state lacks one of rng, schedule, loss_scale');
  }
  const s = t.schedule;
  return {
    rng: { seed: toSafeNumber(t.rng.seed, 'training.rng.seed', fail), scheme: t.rng.scheme },
    schedule: {
      kind: s.kind,
      lr: s.lr,
      minLr: s.minLr,
      steps: toSafeNumber(s.steps, 'training.schedule.steps', fail),
      warmupSteps: toSafeNumber(s.warmupSteps, 'training.schedule.warmup_steps', fail),
      power: s.power,
      nextLr: s.nextLr,
    },
    lossScale: {
      enabled: t.lossScale.enabled,
      scale: t.lossScale.scale,
      growthTracker: toSafeNumber(t.lossScale.growthTracker, 'training.loss_scale.growth_tracker', fail),
      skippedSteps: toSafeNumber(t.lossScale.skippedSteps, 'training.loss_scale.skipped_steps', fail),
    },
  };
}

/** The manifest from a decoded message; `fail` builds the error for a field out of range. */
export function manifestFromProto(o: RawManifest, fail: (what: string) => Error): CheckpointManifest {
  const layout = o.layout ?? { tensorParallel: 0, dataParallel: 0 };
  const optimizer = o.optimizer ?? { name: '', step: '0' };
  const m: CheckpointManifest = {
    formatVersion: o.formatVersion,
    paratrainVersion: o.paratrainVersion,
    step: toSafeNumber(o.step, 'step', fail),
    consumedSamples: toSafeNumber(o.consumedSamples, 'consumed_samples', fail),
    configJson: o.configJson,
    arch: o.arch,
    layout: { tensorParallel: layout.tensorParallel, dataParallel: layout.dataParallel },
    optimizer: { name: optimizer.name, step: toSafeNumber(optimizer.step, 'optimizer.step', fail) },
    tensors: o.tensors.map((t, i) => tensorEntryFromProto(t, `tensors[${i}]`, fail)),
    files: o.files.map((f, i) => fileEntryFromProto(f, `files[${i}]`, fail)),
    tokenizerFile: o.tokenizerFile,
    createdUnixMs: toSafeNumber(o.createdUnixMs, 'created_unix_ms', fail),
    extraJson: o.extraJson,
  };
  if (o.training !== null) m.training = trainingFromProto(o.training, fail);
  return m;
}

/** Decodes and validates manifest bytes; `file` is only used in error messages. */
export function decodeManifest(bytes: Uint8Array, file: string): CheckpointManifest {
  const T = paratrain.CheckpointManifest;
  let msg: paratrain.CheckpointManifest;
  try {
    msg = T.decode(bytes);
  } catch (e) {
    throw corrupt(file, `manifest is not a valid protobuf, torn or truncated (${(e as Error).message})`, e);
  }
  const err = T.verify(msg);
  if (err !== null) throw corrupt(file, `manifest failed verification: ${err}`);
  const o = T.toObject(msg, TO_OBJECT_OPTIONS) as RawManifest;
  if (o.formatVersion >= 2 && o.endMarker !== MANIFEST_END_MARKER) {
    throw corrupt(file, 'manifest is incomplete (torn or truncated: its end marker is missing)');
  }
  return manifestFromProto(o, (what) => corrupt(file, `manifest ${what}`));
}

/** A relative '/'-separated path that stays inside its directory (no '..', no absolute, no backslash). */
export function isSafeRelative(p: string): boolean {
  if (p.length === 0 || p.includes('\\') || p.includes('\0') || path.posix.isAbsolute(p) || path.win32.isAbsolute(p)) {
    return false;
  }
  return p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}
