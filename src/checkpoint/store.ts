// store.ts — the checkpoints root on disk: step directories and the names of the files in them,
// `latest`, listing, resolving a user's path to a committed step, reading its manifest, pruning.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

import { MODEL_FAMILIES } from '../config/schema';
import { CheckpointError, corrupt, isErrnoException } from './errors';
import { fsyncDir } from '../files/atomic-write';
import { decodeManifest, isSafeRelative, MANIFEST_FORMAT_VERSION } from './manifest';
import type { CheckpointManifest } from './types';

export const MANIFEST_FILE = 'manifest.pb';
/** Whole-model files of format version 1. */
export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TOKENIZER_FILE = 'tokenizer.json';
export const LATEST_FILE = 'latest';
export const DEFAULT_KEEP = 3;
/** Never keep fewer than two: the previous checkpoint must survive while the next one is written. */
export const MIN_KEEP = 2;

const STEP_DIR_RE = /^step-(\d+)$/;
/** Data files a save writes (both format versions); anything else in a step directory is not ours. */
const DATA_FILE_RE = /^(model|optimizer)(-tp\d{2,}-dp\d{2,})?\.safetensors$/;
/** Temp files of atomicWrite (src/files/atomic-write.ts tempPathFor) left by a crashed writer. */
const TEMP_FILE_RE = /^\..+\.tmp-\d+-[0-9a-f]{8}$/;

export interface CheckpointListing {
  name: string;
  dir: string;
  step: number;
  /** True when the directory holds manifest.pb. */
  committed: boolean;
}

/** `model-tpTT-dpDD.safetensors` / `optimizer-tpTT-dpDD.safetensors` (two digits, more when needed). */
export function shardFileName(kind: 'model' | 'optimizer', tpRank: number, dpRank: number): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${kind}-tp${two(tpRank)}-dp${two(dpRank)}.safetensors`;
}

/** The directory a checkpoint of `step` is written to: `<root>/step-NNNNNNN` (7+ digits, zero padded). */
export function checkpointDirFor(root: string, step: number): string {
  if (!Number.isSafeInteger(step) || step < 0) {
    throw new CheckpointError('ERR_CHECKPOINT_INVALID_ARG', `step must be a non-negative integer, got ${step}`);
  }
  return path.join(root, `step-${String(step).padStart(7, '0')}`);
}

export function isStepDirName(name: string): boolean {
  return STEP_DIR_RE.test(name);
}

export async function isFile(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isFile();
  } catch (e) {
    if (isErrnoException(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return false;
    throw e;
  }
}

export async function isDir(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isDirectory();
  } catch (e) {
    if (isErrnoException(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return false;
    throw e;
  }
}

/** A manifest path ('/'-separated, already checked by isSafeRelative) inside `dir`. */
export function resolveIn(dir: string, rel: string): string {
  return path.join(dir, ...rel.split('/'));
}

/** Step directories under `root`, ascending by step, committed or not. Missing root -> []. */
export async function listCheckpoints(root: string): Promise<CheckpointListing[]> {
  let names: string[];
  try {
    names = await fsp.readdir(root);
  } catch (e) {
    if (isErrnoException(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return [];
    throw e;
  }
  const out: CheckpointListing[] = [];
  for (const name of names) {
    const m = STEP_DIR_RE.exec(name);
    if (m === null) continue;
    const dir = path.join(root, name);
    if (!(await isDir(dir))) continue;
    out.push({ name, dir, step: Number(m[1]), committed: await isFile(path.join(dir, MANIFEST_FILE)) });
  }
  out.sort((a, b) => a.step - b.step || a.name.localeCompare(b.name));
  return out;
}

/**
 * Removes the shard and temporary files of every uncommitted step directory under `root` (and the
 * directory when nothing else is left in it): what the other ranks wrote of a save that failed on
 * one of them. Committed checkpoints are not touched. Returns the files removed.
 */
export async function removeUncommittedShards(root: string): Promise<string[]> {
  const removed: string[] = [];
  for (const c of await listCheckpoints(root)) {
    if (c.committed) continue;
    for (const name of await fsp.readdir(c.dir)) {
      if (!DATA_FILE_RE.test(name) && !TEMP_FILE_RE.test(name) && name !== TOKENIZER_FILE) continue;
      await fsp.rm(path.join(c.dir, name), { force: true });
      removed.push(path.join(c.dir, name));
    }
    if ((await fsp.readdir(c.dir)).length === 0) await fsp.rmdir(c.dir);
  }
  return removed;
}

/** True for a directory that is (or was meant to be) one step: `step-N`, or holding a data file. */
async function looksLikeStepDir(dir: string): Promise<boolean> {
  if (STEP_DIR_RE.test(path.basename(path.resolve(dir)))) return true;
  return (await fsp.readdir(dir)).some((n) => DATA_FILE_RE.test(n));
}

function notCommitted(dir: string): CheckpointError {
  return new CheckpointError(
    'ERR_CHECKPOINT_NOT_FOUND',
    `${dir}: not a committed checkpoint (no ${MANIFEST_FILE}; the save was interrupted or is still running)`,
    dir,
  );
}

/**
 * Resolves `dirOrRoot` to a committed step directory: a directory holding manifest.pb is used as
 * is; otherwise it is treated as a checkpoints root and `latest` is followed, falling back to the
 * newest committed step directory.
 */
export async function resolveCheckpointDir(dirOrRoot: string): Promise<string> {
  if (!(await isDir(dirOrRoot))) {
    throw new CheckpointError('ERR_CHECKPOINT_NOT_FOUND', `${dirOrRoot}: no such checkpoint directory`, dirOrRoot);
  }
  if (await isFile(path.join(dirOrRoot, MANIFEST_FILE))) return dirOrRoot;
  if (await looksLikeStepDir(dirOrRoot)) throw notCommitted(dirOrRoot);
  const latestPath = path.join(dirOrRoot, LATEST_FILE);
  if (await isFile(latestPath)) {
    const name = (await fsp.readFile(latestPath, 'utf8')).trim();
    // Only a plain step-directory name is honoured; anything else falls through to the scan.
    if (STEP_DIR_RE.test(name)) {
      const dir = path.join(dirOrRoot, name);
      if (await isFile(path.join(dir, MANIFEST_FILE))) return dir;
    }
  }
  const committed = (await listCheckpoints(dirOrRoot)).filter((c) => c.committed);
  const newest = committed[committed.length - 1];
  if (newest === undefined) {
    throw new CheckpointError(
      'ERR_CHECKPOINT_NOT_FOUND',
      `${dirOrRoot}: no committed checkpoint (expected ${MANIFEST_FILE} here or in a step-NNNNNNN subdirectory)`,
      dirOrRoot,
    );
  }
  return newest.dir;
}

/** The step directory named by `<root>/latest`, when it names one; undefined otherwise. */
export async function readLatest(root: string): Promise<string | undefined> {
  try {
    const name = (await fsp.readFile(path.join(root, LATEST_FILE), 'utf8')).trim();
    return STEP_DIR_RE.test(name) ? name : undefined;
  } catch (e) {
    if (isErrnoException(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR' || e.code === 'EISDIR')) return undefined;
    throw e;
  }
}

/**
 * Reads and validates `<dir>/manifest.pb`: version, arch, safe and unique file paths, tensor
 * entries that point at listed files with matching checksums and slices inside their global shape.
 * Files are not opened (see verifyCheckpointDir).
 */
export async function readCheckpointManifest(dir: string): Promise<CheckpointManifest> {
  const file = path.join(dir, MANIFEST_FILE);
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(file);
  } catch (e) {
    if (isErrnoException(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) {
      throw new CheckpointError(
        'ERR_CHECKPOINT_NOT_FOUND',
        `${dir}: not a committed checkpoint (no ${MANIFEST_FILE})`,
        dir,
      );
    }
    throw e;
  }
  const m = decodeManifest(bytes, file);
  if (m.formatVersion === 0) throw corrupt(file, 'manifest has no format_version (empty or torn file)');
  if (m.formatVersion > MANIFEST_FORMAT_VERSION) {
    throw new CheckpointError(
      'ERR_CHECKPOINT_UNSUPPORTED',
      `${file}: checkpoint format_version ${m.formatVersion} is newer than supported (${MANIFEST_FORMAT_VERSION}); written by paratrain ${m.paratrainVersion}`,
      file,
    );
  }
  if (!(MODEL_FAMILIES as readonly string[]).includes(m.arch))
    throw corrupt(file, `manifest arch ${JSON.stringify(m.arch)} is unknown (known: ${MODEL_FAMILIES.join(', ')})`);
  const { tensorParallel: tp, dataParallel: dp } = m.layout;
  if (tp < 1 || dp < 1) throw corrupt(file, `manifest layout TP${tp}×DP${dp} is invalid`);
  const listed = new Map<string, string>();
  for (const f of m.files) {
    if (!isSafeRelative(f.path)) throw corrupt(file, `manifest lists an unsafe file path ${JSON.stringify(f.path)}`);
    if (listed.has(f.path)) throw corrupt(file, `manifest lists ${f.path} twice`);
    listed.set(f.path, f.sha256);
  }
  for (const t of m.tensors) {
    const sha = listed.get(t.file);
    if (sha === undefined) {
      throw corrupt(file, `tensor ${t.name} refers to ${JSON.stringify(t.file)}, which is not in the file list`);
    }
    if (t.fileSha256 !== sha) throw corrupt(file, `tensor ${t.name}: file_sha256 differs from the entry of ${t.file}`);
    if (t.slice.length !== t.globalShape.length) {
      throw corrupt(
        file,
        `tensor ${t.name} has ${t.slice.length} slice dims for a rank-${t.globalShape.length} tensor`,
      );
    }
    t.slice.forEach((s, d) => {
      if (s.start + s.length > (t.globalShape[d] as number)) {
        throw corrupt(
          file,
          `tensor ${t.name} in ${t.file}: slice ${s.start}+${s.length} of dim ${d} exceeds the global size ${t.globalShape[d]}`,
        );
      }
    });
    if (t.tpRank >= tp || t.dpRank >= dp) {
      throw corrupt(
        file,
        `tensor ${t.name} in ${t.file}: writer tp${t.tpRank} dp${t.dpRank} is outside TP${tp}×DP${dp}`,
      );
    }
  }
  if (m.tokenizerFile !== '' && !listed.has(m.tokenizerFile)) {
    throw corrupt(file, `tokenizer_file ${JSON.stringify(m.tokenizerFile)} is not in the file list`);
  }
  return m;
}

/** Uncommits (manifest first, fsync) then deletes a step directory, so a half-removed one is never loaded. */
export async function removeCheckpointDir(dir: string): Promise<void> {
  await uncommit(dir);
  await fsp.rm(dir, { recursive: true, force: true });
}

/** Removes `<dir>/manifest.pb` if present and makes that durable. Several ranks may race here. */
export async function uncommit(dir: string): Promise<void> {
  try {
    // unlink, not rm: rm reports a refused unlink (an immutable directory) as a misleading ENOTDIR.
    await fsp.unlink(path.join(dir, MANIFEST_FILE));
  } catch (e) {
    if (isErrnoException(e) && e.code === 'ENOENT') return;
    throw e;
  }
  await fsyncDir(dir);
}

export function normaliseKeep(keep: number | undefined): number {
  if (keep === undefined) return DEFAULT_KEEP;
  if (Number.isNaN(keep)) throw new CheckpointError('ERR_CHECKPOINT_INVALID_ARG', 'keep must be a number');
  return Math.max(MIN_KEEP, Math.floor(keep));
}

/** Upkeep after a commit that did not succeed: the checkpoint is committed regardless. */
export interface UpkeepFailure {
  /** The directory (an old step directory, or the one just committed) the upkeep was about. */
  dir: string;
  message: string;
}

/**
 * Keeps the newest `keep` committed checkpoints plus `justWritten`; removes the other committed
 * ones and uncommitted directories older than `step` (leftovers of crashed saves). A directory that
 * cannot be removed (immutable, busy, a leftover `.nfsXXXX`) is reported in `failed` and the rest
 * go on: pruning is upkeep, and never fails the commit it follows.
 */
export async function pruneCheckpoints(
  root: string,
  justWritten: string,
  step: number,
  keep: number,
): Promise<{ pruned: string[]; failed: UpkeepFailure[] }> {
  const pruned: string[] = [];
  const failed: UpkeepFailure[] = [];
  const all = await listCheckpoints(root);
  const committed = all.filter((c) => c.committed).sort((a, b) => b.step - a.step);
  const keepDirs = new Set(committed.slice(0, keep).map((c) => c.dir));
  keepDirs.add(justWritten);
  for (const c of all) {
    if (keepDirs.has(c.dir)) continue;
    if (c.committed || c.step < step) {
      try {
        await removeCheckpointDir(c.dir);
        pruned.push(c.dir);
      } catch (e) {
        const why = e instanceof Error ? e.message : String(e);
        failed.push({
          dir: c.dir,
          message: `could not prune the old checkpoint ${c.dir} (${why}); training goes on, remove it by hand`,
        });
      }
    }
  }
  if (pruned.length > 0)
    await fsyncDir(root).catch((e: Error) =>
      failed.push({ dir: root, message: `could not make the pruning in ${root} durable (${e.message})` }),
    );
  return { pruned, failed };
}

/**
 * After a commit: deletes data files, tokenizers and temp files in `dir` that the manifest does
 * not list (an earlier save of this step with another layout, a crashed writer's temp file).
 */
export async function removeUnlistedFiles(dir: string, manifest: CheckpointManifest): Promise<void> {
  const listed = new Set(manifest.files.map((f) => f.path));
  let removed = false;
  for (const name of await fsp.readdir(dir)) {
    if (listed.has(name) || name === MANIFEST_FILE) continue;
    if (DATA_FILE_RE.test(name) || name === TOKENIZER_FILE || TEMP_FILE_RE.test(name)) {
      await fsp.rm(path.join(dir, name), { force: true });
      removed = true;
    }
  }
  if (removed) await fsyncDir(dir);
}
