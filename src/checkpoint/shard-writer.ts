// shard-writer.ts — one rank's part of a save: the pieces the writer plan gives it (whole tensors
// or row ranges of them), written straight from its flat buffers (vocabulary padding dropped)
// into its own safetensors files.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

import { CheckpointError, diskFullError } from './errors';
import { atomicWriteFile, fsyncDir } from '../files/atomic-write';
import { checkHeader } from './header';
import { OPTIMIZER_STATE_PREFIX } from './manifest';
import { writeSafetensors } from './safetensors';
import { checkTableEntry, planShardWriters, type ShardWritePiece } from './shard-plan';
import { shardFileName, TOKENIZER_FILE, uncommit } from './store';
import {
  numelOf,
  type CheckpointHeader,
  type ManifestFileEntry,
  type ManifestSliceDim,
  type ManifestTensorEntry,
  type RankShard,
  type ShardReport,
  type ShardTensor,
  type TensorRole,
} from './types';

/** A stored piece: `data` is row-major over the slice lengths. */
export interface ShardPiece {
  /** Tensor name, also the key in the file. */
  name: string;
  globalShape: number[];
  slice: ManifestSliceDim[];
  data: Float32Array;
}

export interface RankFilesOwner {
  tpRank: number;
  dpRank: number;
  optimizerName: string;
  /** Written as tokenizer.json. */
  tokenizerJson?: string;
}

function invalidArg(msg: string): CheckpointError {
  return new CheckpointError('ERR_CHECKPOINT_INVALID_ARG', msg);
}

/**
 * Creates the step directory and uncommits it: a manifest left by an earlier save of this step
 * must never describe files that are about to be overwritten. Every rank calls this; they race.
 */
export async function prepareStepDir(dir: string): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  await uncommit(dir);
  await fsyncDir(path.dirname(path.resolve(dir)));
}

function entriesFor(
  pieces: readonly ShardPiece[],
  file: string,
  sha256: string,
  role: TensorRole,
  owner: RankFilesOwner,
): ManifestTensorEntry[] {
  return pieces.map((p) => ({
    name: p.name,
    dtype: 'F32',
    globalShape: [...p.globalShape],
    file,
    slice: p.slice.map((s) => ({ ...s })),
    fileSha256: sha256,
    role,
    key: '',
    tpRank: owner.tpRank,
    dpRank: owner.dpRank,
  }));
}

/**
 * Writes `model` into model-tpTT-dpDD.safetensors and `optimizer` into optimizer-tpTT-dpDD.safetensors
 * (no file when a list is empty), and tokenizer.json when given. Each file is atomic (temp, fsync,
 * rename) and hashed while it is written. On a failure this rank's files of the save are removed
 * again (a partial shard is of no use to anyone), and a full disk is ERR_DISK_FULL naming the file
 * and the bytes the shard needs.
 */
export async function writeRankFiles(
  dir: string,
  owner: RankFilesOwner,
  model: readonly ShardPiece[],
  optimizer: readonly ShardPiece[],
): Promise<{ files: ManifestFileEntry[]; tensors: ManifestTensorEntry[]; bytes: number }> {
  const files: ManifestFileEntry[] = [];
  const tensors: ManifestTensorEntry[] = [];
  const stored = (p: ShardPiece) => ({ name: p.name, shape: p.slice.map((s) => s.length), data: p.data });
  const groups = [
    { kind: 'model', pieces: model, role: 'parameter', meta: { format: 'paratrain', role: 'model' } },
    {
      kind: 'optimizer',
      pieces: optimizer,
      role: 'optimizer_state',
      meta: { format: 'paratrain', role: 'optimizer', optimizer: owner.optimizerName },
    },
  ] as const;
  const mine = [
    ...groups.filter((g) => g.pieces.length > 0).map((g) => shardFileName(g.kind, owner.tpRank, owner.dpRank)),
    ...(owner.tokenizerJson !== undefined ? [TOKENIZER_FILE] : []),
  ];
  let writing = '';
  try {
    for (const g of groups) {
      if (g.pieces.length === 0) continue;
      const name = shardFileName(g.kind, owner.tpRank, owner.dpRank);
      writing = path.join(dir, name);
      const written = await writeSafetensors(writing, g.pieces.map(stored), g.meta);
      files.push({ path: name, sizeBytes: written.sizeBytes, sha256: written.sha256 });
      tensors.push(...entriesFor(g.pieces, name, written.sha256, g.role, owner));
    }
    if (owner.tokenizerJson !== undefined) {
      writing = path.join(dir, TOKENIZER_FILE);
      const tok = await atomicWriteFile(writing, owner.tokenizerJson);
      files.push({ path: TOKENIZER_FILE, sizeBytes: tok.sizeBytes, sha256: tok.sha256 });
    }
    writing = dir;
    await fsyncDir(dir);
  } catch (e) {
    await Promise.all(mine.map((name) => fsp.rm(path.join(dir, name), { force: true }).catch(() => undefined)));
    const needed =
      [...model, ...optimizer].reduce((n, p) => n + p.data.byteLength, 0) +
      Buffer.byteLength(owner.tokenizerJson ?? '', 'utf8');
    throw diskFullError(e, dir, { file: writing, bytesNeeded: needed }) ?? e;
  }
  return { files, tensors, bytes: files.reduce((n, f) => n + f.sizeBytes, 0) };
}

const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function checkRankShard(s: RankShard): void {
  if (!isCount(s.step)) throw invalidArg(`step must be a non-negative integer, got ${String(s.step)}`);
  if (!isCount(s.tpSize) || !isCount(s.dpSize) || s.tpSize < 1 || s.dpSize < 1) {
    throw invalidArg(`layout TP${s.tpSize}×DP${s.dpSize} is invalid`);
  }
  if (!isCount(s.tpRank) || !isCount(s.dpRank) || s.tpRank >= s.tpSize || s.dpRank >= s.dpSize) {
    throw invalidArg(`ranks tp${s.tpRank} dp${s.dpRank} lie outside TP${s.tpSize}×DP${s.dpSize}`);
  }
  if (s.rank !== s.dpRank * s.tpSize + s.tpRank) {
    throw invalidArg(`rank ${s.rank} is not dpRank * tpSize + tpRank = ${s.dpRank * s.tpSize + s.tpRank}`);
  }
  const o = s.optimizer;
  if (!(s.params instanceof Float32Array) || !(o?.m instanceof Float32Array) || !(o.v instanceof Float32Array)) {
    throw invalidArg('params, optimizer.m and optimizer.v must be Float32Arrays');
  }
  if (o.m.length !== s.params.length || o.v.length !== s.params.length) {
    throw invalidArg(`optimizer moments hold ${o.m.length} / ${o.v.length} elements, params ${s.params.length}`);
  }
  if (typeof o.name !== 'string' || !isCount(o.step)) throw invalidArg('optimizer must have a name and a step count');
  if (s.tokenizerJson !== undefined && typeof s.tokenizerJson !== 'string')
    throw invalidArg('tokenizerJson must be a string');
  const seen = new Set<string>();
  for (const t of s.table) {
    checkTableEntry(t, s.params.length);
    if (seen.has(t.name)) throw invalidArg(`table lists ${t.name} twice`);
    seen.add(t.name);
  }
}

type RowRange = ShardWritePiece['rows'];

/**
 * The box of the global tensor that rows `rows` of table entry `t` store: the rows (clipped to the
 * valid ones when they run along the split dim), the shard's range along the split dim, the other
 * dims whole. Undefined when the rows hold only padding.
 */
function pieceSlice(t: ShardTensor, rows: RowRange): ManifestSliceDim[] | undefined {
  const d = t.splitDim;
  if (d > 0 && t.shardValid === 0) return undefined;
  const slice = t.globalShape.map((g, i) =>
    i === d ? { start: t.shardStart, length: t.shardValid } : { start: 0, length: g },
  );
  if (slice.length === 0) return slice;
  if (d === 0) {
    const end = Math.min(rows.start + rows.length, t.shardValid);
    if (end <= rows.start) return undefined;
    slice[0] = { start: t.shardStart + rows.start, length: end - rows.start };
  } else {
    slice[0] = { start: rows.start, length: rows.length };
  }
  return slice;
}

/**
 * The elements of `slice` (from pieceSlice(t, rows)) in `flat`, row-major: a view, or a copy when
 * padding sits inside the rows (split dim not leading).
 */
function pieceData(t: ShardTensor, rows: RowRange, slice: ManifestSliceDim[], flat: Float32Array): Float32Array {
  const local = flat.subarray(t.offset, t.offset + t.numel);
  if (slice.length === 0) return local;
  const rowNumel = numelOf(t.shape.slice(1));
  const count = (slice[0] as ManifestSliceDim).length;
  const mine = local.subarray(rows.start * rowNumel, (rows.start + count) * rowNumel);
  const d = t.splitDim;
  if (d <= 0 || t.shardValid === t.shape[d]) return mine;
  const inner = numelOf(t.shape.slice(d + 1));
  const outer = count * numelOf(t.shape.slice(1, d));
  const width = (t.shape[d] as number) * inner;
  const valid = t.shardValid * inner;
  const data = new Float32Array(outer * valid);
  for (let o = 0; o < outer; o++) data.set(mine.subarray(o * width, o * width + valid), o * valid);
  return data;
}

/**
 * Writes this rank's share of a save into `dir` (the step directory; every rank of the job calls
 * this concurrently) and returns the report for the committer. Rank 0 passes the header.
 */
export async function writeShard(dir: string, shard: RankShard, header?: CheckpointHeader): Promise<ShardReport> {
  const started = performance.now();
  checkRankShard(shard);
  if (header !== undefined) {
    checkHeader(header, invalidArg);
    if (header.training === undefined) throw invalidArg('header.training is required');
    if (header.step !== shard.step)
      throw invalidArg(`header step ${header.step} differs from the shard's ${shard.step}`);
    const { tensorParallel: tp, dataParallel: dp } = header.layout;
    if (tp !== shard.tpSize || dp !== shard.dpSize) {
      throw invalidArg(`header layout TP${tp}×DP${dp} differs from the shard's TP${shard.tpSize}×DP${shard.dpSize}`);
    }
  }
  // At most one piece of a tensor per rank; in table order. Rows that are all padding hold no
  // element of the tensor: nothing to write.
  const mine = planShardWriters(shard.table, shard.tpSize, shard.dpSize)
    .filter((p) => p.writer.rank === shard.rank)
    .sort((a, b) => a.index - b.index)
    .flatMap((p) => {
      const t = shard.table[p.index] as ShardTensor;
      const slice = pieceSlice(t, p.rows);
      return slice === undefined ? [] : [{ t, rows: p.rows, slice }];
    });
  const piecesOf = (flat: Float32Array, prefix: string): ShardPiece[] =>
    mine.map(({ t, rows, slice }) => ({
      name: prefix + t.name,
      globalShape: t.globalShape,
      slice,
      data: pieceData(t, rows, slice, flat),
    }));
  const model = piecesOf(shard.params, '');
  const optimizer = [
    ...piecesOf(shard.optimizer.m, OPTIMIZER_STATE_PREFIX.m),
    ...piecesOf(shard.optimizer.v, OPTIMIZER_STATE_PREFIX.v),
  ];
  await prepareStepDir(dir).catch((e: unknown) => {
    throw diskFullError(e, dir) ?? e;
  });
  const owner: RankFilesOwner = { tpRank: shard.tpRank, dpRank: shard.dpRank, optimizerName: shard.optimizer.name };
  if (shard.rank === 0 && shard.tokenizerJson !== undefined) owner.tokenizerJson = shard.tokenizerJson;
  const written = await writeRankFiles(dir, owner, model, optimizer);
  const report: ShardReport = {
    step: shard.step,
    rank: shard.rank,
    ...written,
    writeMs: performance.now() - started,
  };
  if (header !== undefined) report.header = header;
  return report;
}
