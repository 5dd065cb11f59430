/**
 * Training checkpoints: one `step-NNNNNNN` directory per save under a checkpoints root.
 *
 * This file is the whole-model API (saveCheckpoint / loadCheckpoint) used by import, export,
 * inference and tests. It stores the same format as a sharded save (writeShard + commitCheckpoint): one rank of a
 * TP1×DP1 layout writes model-tp00-dp00.safetensors and optimizer-tp00-dp00.safetensors, and the
 * commit writes manifest.pb last. loadCheckpoint assembles whole tensors from the pieces of any
 * layout. See docs/checkpoint-format.md.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

import { commitReports } from './commit';
import { wholeBox } from './coverage';
import { CheckpointError, corrupt } from './errors';
import { checkHeader, headerFromManifest } from './header';
import { readTargets, ReadTarget } from './shard-reader';
import { prepareStepDir, ShardPiece, writeRankFiles } from './shard-writer';
import { checkpointDirFor, MANIFEST_FILE, readCheckpointManifest, resolveCheckpointDir, resolveIn } from './store';
import { verifyCheckpointDir } from './verify';
import {
  numelOf,
  type CheckpointData,
  type LoadCheckpointOptions,
  type LoadedCheckpoint,
  type ManifestHeader,
  type NamedTensor,
  type SaveCheckpointOptions,
  type SavedCheckpoint,
  type ShardReport,
} from './types';

export { verifyCheckpoint, verifyCheckpointDir, verifyCheckpointFiles } from './verify';

function invalidArg(msg: string): CheckpointError {
  return new CheckpointError('ERR_CHECKPOINT_INVALID_ARG', msg);
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

function wholePiece(t: NamedTensor): ShardPiece {
  return {
    name: t.name,
    globalShape: [...t.shape],
    slice: t.shape.map((d) => ({ start: 0, length: d })),
    data: t.data,
  };
}

/**
 * Saves `ckpt` (whole tensors) to `checkpointDirFor(root, ckpt.step)` as the single rank of a
 * TP1×DP1 layout, commits it, points `<root>/latest` at it, then prunes: keeps the newest `keep`
 * committed checkpoints (plus the one just written) and removes leftovers of interrupted saves
 * older than this step.
 */
export async function saveCheckpoint(
  root: string,
  ckpt: CheckpointData,
  options: SaveCheckpointOptions = {},
): Promise<SavedCheckpoint> {
  const started = performance.now();
  if (options.layout !== undefined && (options.layout.tensorParallel !== 1 || options.layout.dataParallel !== 1)) {
    throw invalidArg(
      `saveCheckpoint writes whole tensors (layout 1×1), not TP${options.layout.tensorParallel}×DP${options.layout.dataParallel}; ` +
        'sharded saves go through writeShard + commitCheckpoint',
    );
  }
  const header: ManifestHeader = {
    step: ckpt.step,
    consumedSamples: ckpt.consumedSamples,
    config: ckpt.config,
    arch: ckpt.arch,
    optimizer: { name: ckpt.optimizer?.name, step: ckpt.optimizer?.step },
    layout: { tensorParallel: 1, dataParallel: 1 },
  };
  if (ckpt.training !== undefined) header.training = ckpt.training;
  if (ckpt.extra !== undefined) header.extra = ckpt.extra;
  checkHeader(header, invalidArg);
  checkTensors('params', ckpt.params);
  checkTensors('optimizer.state', ckpt.optimizer.state);
  if (ckpt.tokenizerJson !== undefined && typeof ckpt.tokenizerJson !== 'string') {
    throw invalidArg('tokenizerJson must be a string');
  }

  const dir = checkpointDirFor(root, ckpt.step);
  await fsp.mkdir(root, { recursive: true });
  await prepareStepDir(dir);
  const owner = { tpRank: 0, dpRank: 0, optimizerName: ckpt.optimizer.name, tokenizerJson: ckpt.tokenizerJson };
  const written = await writeRankFiles(dir, owner, ckpt.params.map(wholePiece), ckpt.optimizer.state.map(wholePiece));
  const report: ShardReport = { step: ckpt.step, rank: 0, ...written, writeMs: performance.now() - started };
  return commitReports(root, [report], header, options.keep);
}

/**
 * Loads a checkpoint from a step directory or a checkpoints root (see resolveCheckpointDir) as
 * whole tensors, assembled from the stored pieces of whatever layout wrote it. Returns the same
 * structure that was saved, plus `dir` and the decoded `manifest`.
 */
export async function loadCheckpoint(
  dirOrRoot: string,
  options: LoadCheckpointOptions = {},
): Promise<LoadedCheckpoint> {
  const dir = await resolveCheckpointDir(dirOrRoot);
  const manifest = await readCheckpointManifest(dir);
  const manifestPath = path.join(dir, MANIFEST_FILE);
  if (options.verify !== false) await verifyCheckpointDir(dir, manifest);
  const loadOptimizer = options.loadOptimizer !== false;
  const header = headerFromManifest(manifest, (what) => corrupt(manifestPath, what));

  // One whole tensor per name, in the manifest's order.
  const targets: Array<ReadTarget & { role: string }> = [];
  const seen = new Set<string>();
  for (const t of manifest.tensors) {
    if (seen.has(t.name) || (!loadOptimizer && t.role === 'optimizer_state')) continue;
    seen.add(t.name);
    const box = wholeBox(t.globalShape);
    targets.push({
      name: t.name,
      role: t.role,
      globalShape: [...t.globalShape],
      box,
      dest: new Float32Array(numelOf(t.globalShape)),
      destOffset: 0,
      destShape: [...t.globalShape],
      destOrigin: box.start,
    });
  }
  await readTargets(dir, manifest, targets);
  const named = (t: ReadTarget): NamedTensor => ({ name: t.name, shape: t.globalShape, data: t.dest });

  const out: LoadedCheckpoint = {
    dir,
    manifest,
    step: manifest.step,
    consumedSamples: manifest.consumedSamples,
    config: header.config,
    arch: header.arch,
    optimizer: {
      name: manifest.optimizer.name,
      step: manifest.optimizer.step,
      state: targets.filter((t) => t.role === 'optimizer_state').map(named),
    },
    params: targets.filter((t) => t.role !== 'optimizer_state').map(named),
  };
  if (manifest.tokenizerFile !== '') {
    out.tokenizerJson = await fsp.readFile(resolveIn(dir, manifest.tokenizerFile), 'utf8');
  }
  if (header.extra !== undefined) out.extra = header.extra;
  if (header.training !== undefined) out.training = header.training;
  return out;
}
