// shard-report.ts — a rank's ShardReport on the wire (message paratrain.ShardReport) and its checks.
// A report arrives over the network, so decoding validates everything the committer relies on.
import { paratrain, type Plain, type With } from '../proto';
import { CheckpointError } from './errors';
import { checkHeader, headerFromManifest, manifestFromHeader } from './header';
import {
  fileEntryFromProto,
  isSafeRelative,
  manifestFromProto,
  manifestToProto,
  RawFileEntry,
  RawManifest,
  RawTensorEntry,
  tensorEntryFromProto,
  tensorEntryToProto,
  TO_OBJECT_OPTIONS,
  toSafeNumber,
} from './manifest';
import { MANIFEST_FILE } from './store';
import type { CheckpointHeader, ShardReport } from './types';

type RawShardReport = With<
  Plain<paratrain.ShardReport, string>,
  { files: RawFileEntry[]; tensors: RawTensorEntry[]; header: RawManifest | null }
>;

const SHA256_HEX = /^[0-9a-f]{64}$/;

export function shardReportError(what: string): CheckpointError {
  return new CheckpointError('ERR_SHARD_REPORT', what);
}

/**
 * Checks a report's own consistency: counts, safe unique file paths that are not the manifest,
 * pieces that are F32, lie inside their global shape and point at files of this report.
 */
export function checkShardReport(r: ShardReport, fail: (what: string) => Error): void {
  const isCount = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (!isCount(r.step) || !isCount(r.rank) || !isCount(r.bytes))
    throw fail('step, rank and bytes must be non-negative integers');
  if (typeof r.writeMs !== 'number' || !Number.isFinite(r.writeMs) || r.writeMs < 0) {
    throw fail(`writeMs ${r.writeMs} is not a finite non-negative number`);
  }
  const files = new Map<string, string>();
  for (const f of r.files) {
    if (!isSafeRelative(f.path) || f.path === MANIFEST_FILE) throw fail(`unsafe file path ${JSON.stringify(f.path)}`);
    if (files.has(f.path)) throw fail(`lists ${f.path} twice`);
    if (!isCount(f.sizeBytes)) throw fail(`${f.path}: size ${f.sizeBytes} is not a byte count`);
    if (!SHA256_HEX.test(f.sha256))
      throw fail(`${f.path}: sha256 ${JSON.stringify(f.sha256)} is not 64 lowercase hex digits`);
    files.set(f.path, f.sha256);
  }
  for (const t of r.tensors) {
    const where = `tensor ${JSON.stringify(t.name)} in ${t.file}`;
    if (typeof t.name !== 'string' || t.name.length === 0) throw fail('a tensor has an empty name');
    if (t.dtype !== 'F32') throw fail(`${where}: dtype ${JSON.stringify(t.dtype)}, expected F32`);
    if (t.role !== 'parameter' && t.role !== 'optimizer_state')
      throw fail(`${where}: role ${t.role} is not a tensor role`);
    const sha = files.get(t.file);
    if (sha === undefined) throw fail(`${where}: the file is not among the report's files`);
    if (t.fileSha256 !== sha) throw fail(`${where}: file_sha256 differs from the file's entry`);
    if (!t.globalShape.every(isCount)) throw fail(`${where}: invalid global shape [${t.globalShape.join(', ')}]`);
    if (t.slice.length !== t.globalShape.length) {
      throw fail(`${where}: ${t.slice.length} slice dims for a rank-${t.globalShape.length} tensor`);
    }
    t.slice.forEach((s, d) => {
      if (!isCount(s.start) || !isCount(s.length) || s.start + s.length > (t.globalShape[d] as number)) {
        throw fail(`${where}: slice ${s.start}+${s.length} of dim ${d} exceeds the global size ${t.globalShape[d]}`);
      }
    });
    if (!isCount(t.tpRank) || !isCount(t.dpRank)) throw fail(`${where}: invalid writer ranks`);
  }
  if (r.header !== undefined) {
    checkHeader(r.header, fail);
    if (r.header.training === undefined) throw fail('the header lacks the training state');
    if (r.header.step !== r.step) throw fail(`header step ${r.header.step} differs from the report's step ${r.step}`);
  }
}

export function encodeShardReport(r: ShardReport): Uint8Array {
  const fail = (what: string) =>
    new CheckpointError('ERR_CHECKPOINT_INVALID_ARG', `shard report of rank ${String(r.rank)}: ${what}`);
  checkShardReport(r, fail);
  const plain: Record<string, unknown> = {
    step: r.step,
    rank: r.rank,
    files: r.files,
    tensors: r.tensors.map(tensorEntryToProto),
    bytes: r.bytes,
    writeMs: r.writeMs,
  };
  if (r.header !== undefined)
    plain.header = manifestToProto(manifestFromHeader(r.header, { files: [], tensors: [], tokenizerFile: '' }));
  const T = paratrain.ShardReport;
  const err = T.verify(plain);
  if (err !== null) throw fail(err);
  return T.encode(T.fromObject(plain)).finish();
}

/** Decodes and validates a report received from a rank; throws ERR_SHARD_REPORT saying what is wrong. */
export function decodeShardReport(bytes: Uint8Array): ShardReport {
  const T = paratrain.ShardReport;
  let msg: paratrain.ShardReport;
  try {
    msg = T.decode(bytes);
  } catch (e) {
    throw shardReportError(`shard report is not a valid protobuf (${(e as Error).message})`);
  }
  const err = T.verify(msg);
  if (err !== null) throw shardReportError(`shard report failed verification: ${err}`);
  const o = T.toObject(msg, TO_OBJECT_OPTIONS) as RawShardReport;
  const fail = (what: string) => shardReportError(`shard report from rank ${o.rank}: ${what}`);
  const r: ShardReport = {
    step: toSafeNumber(o.step, 'step', fail),
    rank: o.rank,
    files: o.files.map((f, i) => fileEntryFromProto(f, `files[${i}]`, fail)),
    tensors: o.tensors.map((t, i) => tensorEntryFromProto(t, `tensors[${i}]`, fail)),
    bytes: toSafeNumber(o.bytes, 'bytes', fail),
    writeMs: o.writeMs,
  };
  if (o.header !== null) {
    const h = headerFromManifest(manifestFromProto(o.header, fail), (what) => fail(`header ${what}`));
    r.header = h as CheckpointHeader; // checkShardReport insists on the training state
  }
  checkShardReport(r, fail);
  return r;
}
