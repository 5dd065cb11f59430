/**
 * Training checkpoints: one `step-NNNNNNN` directory per save under a checkpoints root.
 *
 * Commit protocol (see docs/checkpoint-format.md): every data file is written atomically
 * (temp + fsync + rename), then `manifest.pb` is written the same way and the directory fsync'd.
 * A directory without manifest.pb is not a checkpoint. `latest` is updated only after the commit.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

import { CheckpointError, corrupt, isErrnoException } from './errors';
import { atomicWrite, atomicWriteText, fsyncDir, sha256File, writeAll } from './fsutil';
import {
  CheckpointManifest,
  decodeManifest,
  encodeManifest,
  MANIFEST_FORMAT_VERSION,
  ManifestFileEntry,
  ManifestTensorEntry,
  paratrainVersion,
  TensorRole,
} from './manifest';
import { readSafetensors, SafetensorsTensor, writeSafetensors } from './safetensors';
import { NamedTensor, numelOf } from './types';

export const MANIFEST_FILE = 'manifest.pb';
export const MODEL_FILE = 'model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const TOKENIZER_FILE = 'tokenizer.json';
export const LATEST_FILE = 'latest';
export const DEFAULT_KEEP = 3;
/** Never keep fewer than two: the previous checkpoint must survive while the next one is written. */
export const MIN_KEEP = 2;

const STEP_DIR_RE = /^step-(\d+)$/;

export type Arch = 'bert' | 'gpt';

/** Names of the optimizer moments in a checkpoint: `<prefix><param name>` (PyTorch's state keys). */
export const OPTIMIZER_STATE_PREFIX = { m: 'exp_avg.', v: 'exp_avg_sq.' } as const;

export interface OptimizerCheckpoint {
  name: string;
  step: number;
  /** Optimizer state tensors, named e.g. "exp_avg.<param>" / "exp_avg_sq.<param>". */
  state: NamedTensor[];
}

export interface CheckpointData {
  step: number;
  consumedSamples: number;
  /** The resolved run configuration (stored as JSON). */
  config: object;
  arch: Arch;
  optimizer: OptimizerCheckpoint;
  params: NamedTensor[];
  tokenizerJson?: string;
  /** Any JSON-serialisable resumable state (RNG seeds, loss scaler, data cursor...). */
  extra?: unknown;
}

export interface SaveCheckpointOptions {
  /** How many committed checkpoints to keep (newest by step). Default 3, clamped to at least 2. */
  keep?: number;
  /** Parallel layout recorded in the manifest; default {1, 1}. */
  layout?: { tensorParallel: number; dataParallel: number };
}

export interface SavedCheckpoint {
  dir: string;
  manifest: CheckpointManifest;
  /** Directories removed by pruning. */
  pruned: string[];
}

export interface LoadCheckpointOptions {
  /** Check sizes and sha256 of every file against the manifest (default true). */
  verify?: boolean;
  /** Also read optimizer state (default true); false returns an empty state list. */
  loadOptimizer?: boolean;
}

export interface LoadedCheckpoint extends CheckpointData {
  /** The step directory that was loaded. */
  dir: string;
  manifest: CheckpointManifest;
}

export interface CheckpointListing {
  name: string;
  dir: string;
  step: number;
  /** True when the directory holds manifest.pb. */
  committed: boolean;
}

function invalidArg(msg: string): CheckpointError {
  return new CheckpointError('ERR_CHECKPOINT_INVALID_ARG', msg);
}

/** The directory a checkpoint of `step` is written to: `<root>/step-NNNNNNN` (7+ digits, zero padded). */
export function checkpointDirFor(root: string, step: number): string {
  if (!Number.isSafeInteger(step) || step < 0) throw invalidArg(`step must be a non-negative integer, got ${step}`);
  return path.join(root, `step-${String(step).padStart(7, '0')}`);
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isFile();
  } catch (e) {
    if (isErrnoException(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return false;
    throw e;
  }
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await fsp.stat(p)).isDirectory();
  } catch (e) {
    if (isErrnoException(e) && (e.code === 'ENOENT' || e.code === 'ENOTDIR')) return false;
    throw e;
  }
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

function checkTensors(kind: string, tensors: readonly NamedTensor[]): void {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (typeof t.name !== 'string' || t.name.length === 0) throw invalidArg(`${kind}: tensor with an empty name`);
    if (seen.has(t.name)) throw invalidArg(`${kind}: duplicate tensor ${t.name}`);
    seen.add(t.name);
    if (!(t.data instanceof Float32Array)) throw invalidArg(`${kind}: tensor ${t.name} must hold a Float32Array`);
    if (numelOf(t.shape) !== t.data.length) {
      throw invalidArg(`${kind}: tensor ${t.name} has shape [${t.shape.join(', ')}] but ${t.data.length} elements`);
    }
  }
}

function tensorEntry(t: NamedTensor, file: string, sha256: string, role: TensorRole): ManifestTensorEntry {
  return {
    name: t.name,
    dtype: 'F32',
    globalShape: [...t.shape],
    file,
    // Rank-0 writer, no sharding: each entry covers the whole tensor.
    slice: t.shape.map((d) => ({ start: 0, length: d })),
    fileSha256: sha256,
    role,
    key: '',
    tpRank: 0,
    dpRank: 0,
  };
}

/**
 * Writes one checkpoint into `dir` (created if needed) and commits it by writing manifest.pb
 * last. Does not touch `latest` or prune; `saveCheckpoint` does that. An existing committed
 * checkpoint in `dir` is first uncommitted (manifest removed) so a crash never leaves a manifest
 * that describes half-overwritten files.
 */
export async function writeCheckpointDir(
  dir: string,
  ckpt: CheckpointData,
  layout: { tensorParallel: number; dataParallel: number } = { tensorParallel: 1, dataParallel: 1 },
): Promise<CheckpointManifest> {
  if (!Number.isSafeInteger(ckpt.step) || ckpt.step < 0) throw invalidArg(`step must be a non-negative integer`);
  if (!Number.isSafeInteger(ckpt.consumedSamples) || ckpt.consumedSamples < 0) {
    throw invalidArg(`consumedSamples must be a non-negative integer`);
  }
  if (ckpt.arch !== 'bert' && ckpt.arch !== 'gpt')
    throw invalidArg(`arch must be 'bert' or 'gpt', got ${String(ckpt.arch)}`);
  checkTensors('params', ckpt.params);
  checkTensors('optimizer.state', ckpt.optimizer.state);
  const configJson = JSON.stringify(ckpt.config);
  if (configJson === undefined) throw invalidArg('config is not JSON-serialisable');
  const extraJson = ckpt.extra === undefined ? '' : JSON.stringify(ckpt.extra);

  await fsp.mkdir(dir, { recursive: true });
  const manifestPath = path.join(dir, MANIFEST_FILE);
  if (await isFile(manifestPath)) {
    await fsp.rm(manifestPath);
    await fsyncDir(dir);
  }
  await fsyncDir(path.dirname(path.resolve(dir)));

  const files: ManifestFileEntry[] = [];
  const tensors: ManifestTensorEntry[] = [];

  const model = await writeSafetensors(path.join(dir, MODEL_FILE), ckpt.params, { format: 'paratrain', role: 'model' });
  files.push({ path: MODEL_FILE, sizeBytes: model.sizeBytes, sha256: model.sha256 });
  for (const t of ckpt.params) tensors.push(tensorEntry(t, MODEL_FILE, model.sha256, 'parameter'));

  const opt = await writeSafetensors(path.join(dir, OPTIMIZER_FILE), ckpt.optimizer.state, {
    format: 'paratrain',
    role: 'optimizer',
    optimizer: ckpt.optimizer.name,
  });
  files.push({ path: OPTIMIZER_FILE, sizeBytes: opt.sizeBytes, sha256: opt.sha256 });
  for (const t of ckpt.optimizer.state) tensors.push(tensorEntry(t, OPTIMIZER_FILE, opt.sha256, 'optimizer_state'));

  let tokenizerFile = '';
  if (ckpt.tokenizerJson !== undefined) {
    const tok = await atomicWriteText(path.join(dir, TOKENIZER_FILE), ckpt.tokenizerJson);
    files.push({ path: TOKENIZER_FILE, sizeBytes: tok.sizeBytes, sha256: tok.sha256 });
    tokenizerFile = TOKENIZER_FILE;
  } else {
    // A stale tokenizer from an earlier save of this step would otherwise sit there unreferenced.
    await fsp.rm(path.join(dir, TOKENIZER_FILE), { force: true });
  }

  const manifest: CheckpointManifest = {
    formatVersion: MANIFEST_FORMAT_VERSION,
    paratrainVersion: paratrainVersion(),
    step: ckpt.step,
    consumedSamples: ckpt.consumedSamples,
    configJson,
    arch: ckpt.arch,
    layout: { ...layout },
    optimizer: { name: ckpt.optimizer.name, step: ckpt.optimizer.step },
    tensors,
    files,
    tokenizerFile,
    createdUnixMs: Date.now(),
    extraJson,
  };
  const bytes = encodeManifest(manifest);
  // The commit point: atomicWrite renames manifest.pb into place and fsyncs the directory.
  await atomicWrite(manifestPath, (fh) => writeAll(fh, bytes));
  return manifest;
}

async function removeCheckpointDir(dir: string): Promise<void> {
  // Uncommit first so an interrupted removal never leaves a manifest pointing at deleted files.
  const manifestPath = path.join(dir, MANIFEST_FILE);
  if (await isFile(manifestPath)) {
    await fsp.rm(manifestPath);
    await fsyncDir(dir);
  }
  await fsp.rm(dir, { recursive: true, force: true });
}

function normaliseKeep(keep: number | undefined): number {
  if (keep === undefined) return DEFAULT_KEEP;
  if (Number.isNaN(keep)) throw invalidArg('keep must be a number');
  return Math.max(MIN_KEEP, Math.floor(keep));
}

/**
 * Saves `ckpt` to `checkpointDirFor(root, ckpt.step)`, commits it, points `<root>/latest` at it,
 * then prunes: keeps the newest `keep` committed checkpoints (plus the one just written) and
 * removes leftovers of interrupted saves older than this step.
 */
export async function saveCheckpoint(
  root: string,
  ckpt: CheckpointData,
  options: SaveCheckpointOptions = {},
): Promise<SavedCheckpoint> {
  const keep = normaliseKeep(options.keep);
  const dir = checkpointDirFor(root, ckpt.step);
  await fsp.mkdir(root, { recursive: true });
  const manifest = await writeCheckpointDir(dir, ckpt, options.layout);
  await atomicWriteText(path.join(root, LATEST_FILE), `${path.basename(dir)}\n`);

  const pruned: string[] = [];
  const all = await listCheckpoints(root);
  const committed = all.filter((c) => c.committed).sort((a, b) => b.step - a.step);
  const keepDirs = new Set(committed.slice(0, keep).map((c) => c.dir));
  keepDirs.add(dir);
  for (const c of all) {
    if (keepDirs.has(c.dir)) continue;
    if (c.committed || c.step < ckpt.step) {
      await removeCheckpointDir(c.dir);
      pruned.push(c.dir);
    }
  }
  if (pruned.length > 0) await fsyncDir(root);
  return { dir, manifest, pruned };
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
  if (STEP_DIR_RE.test(path.basename(path.resolve(dirOrRoot))) || (await isFile(path.join(dirOrRoot, MODEL_FILE)))) {
    throw new CheckpointError(
      'ERR_CHECKPOINT_NOT_FOUND',
      `${dirOrRoot}: not a committed checkpoint (no ${MANIFEST_FILE}; the save was interrupted or is still running)`,
      dirOrRoot,
    );
  }
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

/** Reads and validates `<dir>/manifest.pb` (no file verification). */
export async function readCheckpointManifest(dir: string): Promise<CheckpointManifest> {
  const file = path.join(dir, MANIFEST_FILE);
  let bytes: Buffer;
  try {
    bytes = await fsp.readFile(file);
  } catch (e) {
    if (isErrnoException(e) && e.code === 'ENOENT') {
      throw new CheckpointError(
        'ERR_CHECKPOINT_NOT_FOUND',
        `${dir}: not a committed checkpoint (no ${MANIFEST_FILE})`,
        dir,
      );
    }
    throw e;
  }
  const m = decodeManifest(bytes, file);
  if (m.formatVersion === 0) throw corrupt(file, 'manifest has no format_version');
  if (m.formatVersion > MANIFEST_FORMAT_VERSION) {
    throw new CheckpointError(
      'ERR_CHECKPOINT_UNSUPPORTED',
      `${file}: checkpoint format_version ${m.formatVersion} is newer than supported (${MANIFEST_FORMAT_VERSION}); written by paratrain ${m.paratrainVersion}`,
      file,
    );
  }
  if (m.arch !== 'bert' && m.arch !== 'gpt') throw corrupt(file, `manifest arch ${JSON.stringify(m.arch)} is unknown`);
  const listed = new Set<string>();
  for (const f of m.files) {
    if (!isSafeRelative(f.path)) throw corrupt(file, `manifest lists an unsafe file path ${JSON.stringify(f.path)}`);
    if (listed.has(f.path)) throw corrupt(file, `manifest lists ${f.path} twice`);
    listed.add(f.path);
  }
  for (const t of m.tensors) {
    if (!listed.has(t.file))
      throw corrupt(file, `tensor ${t.name} refers to ${JSON.stringify(t.file)}, which is not in the file list`);
    if (t.slice.length !== t.globalShape.length) {
      throw corrupt(
        file,
        `tensor ${t.name} has ${t.slice.length} slice dims for a rank-${t.globalShape.length} tensor`,
      );
    }
  }
  if (m.tokenizerFile !== '' && !listed.has(m.tokenizerFile)) {
    throw corrupt(file, `tokenizer_file ${JSON.stringify(m.tokenizerFile)} is not in the file list`);
  }
  return m;
}

function isSafeRelative(p: string): boolean {
  if (p.length === 0 || p.includes('\\') || p.includes('\0') || path.posix.isAbsolute(p) || path.win32.isAbsolute(p)) {
    return false;
  }
  return p.split('/').every((seg) => seg !== '' && seg !== '.' && seg !== '..');
}

function resolveIn(dir: string, rel: string): string {
  return path.join(dir, ...rel.split('/'));
}

/** Checks every file listed in the manifest for presence, size and sha256; errors name the file. */
export async function verifyCheckpointFiles(dir: string, manifest: CheckpointManifest): Promise<void> {
  for (const f of manifest.files) {
    const p = resolveIn(dir, f.path);
    let size: number;
    try {
      size = (await fsp.stat(p)).size;
    } catch (e) {
      if (isErrnoException(e) && e.code === 'ENOENT') throw corrupt(p, 'file listed in the manifest is missing', e);
      throw e;
    }
    if (size < f.sizeBytes) throw corrupt(p, `truncated: ${size} bytes, manifest says ${f.sizeBytes}`);
    if (size !== f.sizeBytes) throw corrupt(p, `size mismatch: ${size} bytes, manifest says ${f.sizeBytes}`);
    const digest = await sha256File(p);
    if (digest !== f.sha256)
      throw corrupt(p, `sha256 mismatch (content corrupt): got ${digest}, manifest says ${f.sha256}`);
  }
}

/** Resolves `dirOrRoot`, then verifies the checkpoint's files without loading tensors. */
export async function verifyCheckpoint(dirOrRoot: string): Promise<{ dir: string; manifest: CheckpointManifest }> {
  const dir = await resolveCheckpointDir(dirOrRoot);
  const manifest = await readCheckpointManifest(dir);
  await verifyCheckpointFiles(dir, manifest);
  return { dir, manifest };
}

/**
 * Loads a checkpoint from a step directory or a checkpoints root (see resolveCheckpointDir).
 * Returns the same structure that was saved, plus `dir` and the decoded `manifest`.
 */
export async function loadCheckpoint(
  dirOrRoot: string,
  options: LoadCheckpointOptions = {},
): Promise<LoadedCheckpoint> {
  const dir = await resolveCheckpointDir(dirOrRoot);
  const manifest = await readCheckpointManifest(dir);
  const manifestPath = path.join(dir, MANIFEST_FILE);
  if (options.verify !== false) await verifyCheckpointFiles(dir, manifest);
  const loadOptimizer = options.loadOptimizer !== false;

  const wanted = manifest.tensors.filter((t) => loadOptimizer || t.role !== 'optimizer_state');
  const byFile = new Map<string, Map<string, SafetensorsTensor>>();
  for (const fileName of new Set(wanted.map((t) => t.file))) {
    const keys = new Set(wanted.filter((t) => t.file === fileName).map((t) => t.key || t.name));
    const { tensors } = await readSafetensors(resolveIn(dir, fileName), { filter: (e) => keys.has(e.name) });
    byFile.set(fileName, new Map(tensors.map((t) => [t.name, t])));
  }

  const params: NamedTensor[] = [];
  const state: NamedTensor[] = [];
  for (const t of wanted) {
    const filePath = resolveIn(dir, t.file);
    const key = t.key || t.name;
    const stored = byFile.get(t.file)?.get(key);
    if (stored === undefined)
      throw corrupt(filePath, `tensor "${key}" listed in the manifest is missing from the file`);
    const whole = t.slice.every((s, i) => s.start === 0 && s.length === t.globalShape[i]);
    if (!whole) {
      throw new CheckpointError(
        'ERR_CHECKPOINT_UNSUPPORTED',
        `${manifestPath}: tensor ${t.name} is sharded; loading sharded checkpoints is not supported yet`,
        manifestPath,
      );
    }
    if (stored.storedDtype !== t.dtype || !(stored.data instanceof Float32Array)) {
      throw corrupt(filePath, `tensor "${key}" is ${stored.storedDtype}, manifest says ${t.dtype}`);
    }
    if (stored.shape.length !== t.globalShape.length || stored.shape.some((d, i) => d !== t.globalShape[i])) {
      throw corrupt(
        filePath,
        `tensor "${key}" has shape [${stored.shape.join(', ')}], manifest says [${t.globalShape.join(', ')}]`,
      );
    }
    const nt: NamedTensor = { name: t.name, shape: [...t.globalShape], data: stored.data };
    if (t.role === 'optimizer_state') state.push(nt);
    else params.push(nt);
  }

  let config: object;
  try {
    config = JSON.parse(manifest.configJson) as object;
  } catch (e) {
    throw corrupt(manifestPath, 'config_json is not valid JSON', e);
  }
  let extra: unknown;
  if (manifest.extraJson !== '') {
    try {
      extra = JSON.parse(manifest.extraJson);
    } catch (e) {
      throw corrupt(manifestPath, 'extra_json is not valid JSON', e);
    }
  }
  const out: LoadedCheckpoint = {
    dir,
    manifest,
    step: manifest.step,
    consumedSamples: manifest.consumedSamples,
    config,
    arch: manifest.arch as Arch,
    optimizer: { name: manifest.optimizer.name, step: manifest.optimizer.step, state },
    params,
  };
  if (manifest.tokenizerFile !== '') {
    out.tokenizerJson = await fsp.readFile(resolveIn(dir, manifest.tokenizerFile), 'utf8');
  }
  if (extra !== undefined) out.extra = extra;
  return out;
}
