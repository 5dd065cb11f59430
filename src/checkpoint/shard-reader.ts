// shard-reader.ts — resharding reads: for every tensor a rank needs (a box of the global tensor),
// read only the overlapping bytes of whichever stored pieces cover it, with positional reads
// straight into the destination buffers. Any layout loads a checkpoint of any other.
import type * as fsp from 'node:fs/promises';
import * as path from 'node:path';

import { Box, boxOfSlice, findUncovered, formatBox, intersectBoxes } from './coverage';
import { CheckpointError, corrupt } from './errors';
import { readExactlyAt } from './fsutil';
import { OPTIMIZER_STATE_PREFIX } from './manifest';
import { openForRead, parseSafetensorsHeader, SafetensorsEntry } from './safetensors';
import { checkTableEntry } from './shard-plan';
import { MANIFEST_FILE, resolveIn } from './store';
import type { CheckpointManifest, ManifestTensorEntry, ShardTensor } from './types';

/** One tensor to fill: the box of the global tensor it needs and where its elements go. */
export interface ReadTarget {
  name: string;
  globalShape: number[];
  box: Box;
  dest: Float32Array;
  /** Element offset of the tensor in `dest`. */
  destOffset: number;
  /** The tensor's shape in `dest`; larger than `box` where it has padding. */
  destShape: number[];
  /** Global index of the tensor's first element in `dest`. */
  destOrigin: number[];
}

/** Larger source runs that are not contiguous in the destination are read in parts of this many elements. */
const STAGE_LIMIT_ELEMENTS = 16 * 1024 * 1024;
/** Positional reads in flight at once (libuv thread pool). */
const READS_IN_FLIGHT = 8;

function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) s[d] = (s[d + 1] as number) * (shape[d + 1] as number);
  return s;
}

const product = (xs: readonly number[]) => xs.reduce((n, x) => n * x, 1);

/** Visits every index of `lengths` (row-major); an empty `lengths` is visited once. */
function* indices(lengths: readonly number[]): Generator<number[]> {
  if (lengths.some((l) => l === 0)) return;
  const idx = new Array<number>(lengths.length).fill(0);
  for (;;) {
    yield idx;
    let d = lengths.length - 1;
    while (d >= 0) {
      idx[d] = (idx[d] as number) + 1;
      if ((idx[d] as number) < (lengths[d] as number)) break;
      idx[d] = 0;
      d--;
    }
    if (d < 0) return;
  }
}

interface OpenPieceFile {
  fh: fsp.FileHandle;
  path: string;
  dataStart: number;
  entries: Map<string, SafetensorsEntry>;
}

/**
 * The reads that copy `I` (a box inside both the piece and the target) from the piece's data in
 * the file into the target. A run is a stretch contiguous in the file; runs that are also
 * contiguous in the destination are read straight into it, others go through a staging buffer.
 */
function* readJobs(
  file: OpenPieceFile,
  entry: SafetensorsEntry,
  piece: Box,
  I: Box,
  t: ReadTarget,
  count: (bytes: number) => void,
): Generator<() => Promise<void>> {
  const rank = I.length.length;
  const src = strides(piece.length);
  const dst = strides(t.destShape);
  const fullInSource = (d: number) => I.length[d] === piece.length[d];
  const fullInDest = (d: number) => I.length[d] === t.destShape[d];
  // kSrc / kBoth: outermost dim of a run that is contiguous in the source / in source and destination.
  let kSrc = Math.max(rank - 1, 0);
  while (kSrc > 0 && fullInSource(kSrc)) kSrc--;
  let kBoth = Math.max(rank - 1, 0);
  while (kBoth > 0 && fullInSource(kBoth) && fullInDest(kBoth)) kBoth--;
  let kRead = kSrc;
  while (kRead < kBoth && product(I.length.slice(kRead)) > STAGE_LIMIT_ELEMENTS) kRead++;
  const runLen = product(I.length.slice(kRead));
  const rowLen = product(I.length.slice(kBoth));
  const srcBase = I.start.reduce((n, s, d) => n + (s - (piece.start[d] as number)) * (src[d] as number), 0);
  const dstBase =
    t.destOffset + I.start.reduce((n, s, d) => n + (s - (t.destOrigin[d] as number)) * (dst[d] as number), 0);
  const fileBase = file.dataStart + entry.dataOffsets[0];
  const dest = t.dest;

  for (const outer of indices(I.length.slice(0, kRead))) {
    let srcOff = srcBase;
    let dstOff = dstBase;
    outer.forEach((i, d) => {
      srcOff += i * (src[d] as number);
      dstOff += i * (dst[d] as number);
    });
    const position = fileBase + srcOff * 4;
    if (kRead === kBoth) {
      const into = new Uint8Array(dest.buffer, dest.byteOffset + dstOff * 4, runLen * 4);
      yield async () => {
        await readExactlyAt(file.fh, into, position, file.path);
        count(into.byteLength);
      };
    } else {
      const inner = I.length.slice(kRead, kBoth);
      const innerStride = strides(I.length).slice(kRead, kBoth);
      const innerDst = dst.slice(kRead, kBoth);
      yield async () => {
        const staged = new Float32Array(runLen);
        await readExactlyAt(file.fh, new Uint8Array(staged.buffer), position, file.path);
        count(staged.byteLength);
        for (const idx of indices(inner)) {
          let from = 0;
          let to = dstOff;
          idx.forEach((i, j) => {
            from += i * (innerStride[j] as number);
            to += i * (innerDst[j] as number);
          });
          dest.set(staged.subarray(from, from + rowLen), to);
        }
      };
    }
  }
}

/** Runs jobs with a bounded number in flight; stops taking new ones after the first failure. */
async function runBounded(jobs: Iterator<() => Promise<void>>, inFlight: number): Promise<void> {
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (failure === undefined) {
      const next = jobs.next();
      if (next.done === true) return;
      try {
        await next.value();
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: inFlight }, worker));
  if (failure !== undefined) throw failure.error;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

/**
 * Fills every target from the checkpoint in `dir`. Each needed file is opened once; its size is
 * checked against the manifest and each piece's safetensors entry (F32, the piece's shape) before
 * any data is read. Returns the bytes read.
 */
export async function readTargets(
  dir: string,
  manifest: CheckpointManifest,
  targets: readonly ReadTarget[],
): Promise<number> {
  const manifestPath = path.join(dir, MANIFEST_FILE);
  const pieces = new Map<string, ManifestTensorEntry[]>();
  for (const t of manifest.tensors) {
    const list = pieces.get(t.name);
    if (list === undefined) pieces.set(t.name, [t]);
    else list.push(t);
  }
  const sizes = new Map(manifest.files.map((f) => [f.path, f.sizeBytes]));

  const work: Array<{ piece: ManifestTensorEntry; I: Box; target: ReadTarget }> = [];
  for (const target of targets) {
    const stored = pieces.get(target.name);
    if (stored === undefined) {
      throw new CheckpointError(
        'ERR_CHECKPOINT_MISMATCH',
        `${manifestPath}: the checkpoint has no tensor "${target.name}"`,
        manifestPath,
      );
    }
    for (const p of stored) {
      if (!sameShape(p.globalShape, target.globalShape)) {
        throw new CheckpointError(
          'ERR_CHECKPOINT_MISMATCH',
          `${manifestPath}: tensor "${target.name}" is [${p.globalShape.join(', ')}] in the checkpoint, the model expects [${target.globalShape.join(', ')}]`,
          manifestPath,
        );
      }
      if (p.dtype !== 'F32') {
        throw new CheckpointError(
          'ERR_CHECKPOINT_UNSUPPORTED',
          `${manifestPath}: tensor "${target.name}" is stored as ${p.dtype}; only F32 pieces load`,
          manifestPath,
        );
      }
    }
    const gap = findUncovered(
      target.box,
      stored.map((p) => boxOfSlice(p.slice)),
    );
    if (gap !== undefined) {
      throw corrupt(
        manifestPath,
        `tensor "${target.name}": no stored piece covers ${formatBox(gap)} (this rank needs ${formatBox(target.box)})`,
      );
    }
    for (const piece of stored) {
      const I = intersectBoxes(target.box, boxOfSlice(piece.slice));
      if (I !== undefined) work.push({ piece, I, target });
    }
  }

  const open = new Map<string, OpenPieceFile>();
  let bytesRead = 0;
  const count = (n: number) => {
    bytesRead += n;
  };
  try {
    for (const { piece } of work) {
      if (open.has(piece.file)) continue;
      const p = resolveIn(dir, piece.file);
      const fh = await openForRead(p);
      const file: OpenPieceFile = { fh, path: p, dataStart: 0, entries: new Map() };
      open.set(piece.file, file);
      const size = (await fh.stat()).size;
      const expected = sizes.get(piece.file) as number;
      if (size < expected) throw corrupt(p, `truncated: ${size} bytes, manifest says ${expected}`);
      if (size !== expected) throw corrupt(p, `size mismatch: ${size} bytes, manifest says ${expected}`);
      const header = await parseSafetensorsHeader(fh, p);
      count(header.dataStart);
      file.dataStart = header.dataStart;
      for (const e of header.entries) file.entries.set(e.name, e);
    }
    const jobs: Array<Generator<() => Promise<void>>> = [];
    for (const { piece, I, target } of work) {
      const file = open.get(piece.file) as OpenPieceFile;
      const key = piece.key || piece.name;
      const entry = file.entries.get(key);
      if (entry === undefined)
        throw corrupt(file.path, `tensor "${key}" listed in the manifest is missing from the file`);
      const shape = piece.slice.map((s) => s.length);
      if (entry.dtype !== 'F32' || !sameShape(entry.shape, shape)) {
        throw corrupt(
          file.path,
          `tensor "${key}" is ${entry.dtype}[${entry.shape.join(', ')}], manifest says F32[${shape.join(', ')}]`,
        );
      }
      jobs.push(readJobs(file, entry, boxOfSlice(piece.slice), I, target, count));
    }
    await runBounded(
      (function* () {
        for (const j of jobs) yield* j;
      })(),
      READS_IN_FLIGHT,
    );
  } finally {
    await Promise.all([...open.values()].map((f) => f.fh.close().catch(() => undefined)));
  }
  return bytesRead;
}

/**
 * Loads one rank's parameters (and optimizer moments) from a checkpoint of any layout: for each
 * tensor of `table` (this rank's layout), the global range it holds is read from the pieces that
 * overlap it. Buffers have the table's layout; padding stays zero.
 */
export async function readRankState(
  dir: string,
  manifest: CheckpointManifest,
  table: ShardTensor[],
  options: { optimizer?: boolean } = {},
): Promise<{ params: Float32Array; m?: Float32Array; v?: Float32Array; optimizerStep: number; bytesRead: number }> {
  for (const t of table) checkTableEntry(t, Number.MAX_SAFE_INTEGER);
  const total = table.reduce((n, t) => Math.max(n, t.offset + t.numel), 0);
  const params = new Float32Array(total);
  const m = options.optimizer === true ? new Float32Array(total) : undefined;
  const v = options.optimizer === true ? new Float32Array(total) : undefined;
  const targets: ReadTarget[] = [];
  for (const t of table) {
    const d = t.splitDim;
    const box: Box = {
      start: t.globalShape.map((_, i) => (i === d ? t.shardStart : 0)),
      length: t.globalShape.map((g, i) => (i === d ? t.shardValid : g)),
    };
    const target = (name: string, dest: Float32Array): ReadTarget => ({
      name,
      globalShape: t.globalShape,
      box,
      dest,
      destOffset: t.offset,
      destShape: t.shape,
      destOrigin: box.start,
    });
    targets.push(target(t.name, params));
    if (m !== undefined && v !== undefined) {
      targets.push(target(OPTIMIZER_STATE_PREFIX.m + t.name, m), target(OPTIMIZER_STATE_PREFIX.v + t.name, v));
    }
  }
  const bytesRead = await readTargets(dir, manifest, targets);
  const out: { params: Float32Array; m?: Float32Array; v?: Float32Array; optimizerStep: number; bytesRead: number } = {
    params,
    optimizerStep: manifest.optimizer.step,
    bytesRead,
  };
  if (m !== undefined && v !== undefined) {
    out.m = m;
    out.v = v;
  }
  return out;
}
