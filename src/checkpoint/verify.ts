// verify.ts — full verification of a committed checkpoint (files, checksums, coverage, safetensors
// entries) and the choice of the checkpoint a run resumes from.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

import { findTilingProblem } from './coverage';
import { CheckpointError, corrupt, isErrnoException } from './errors';
import { sha256File } from './fsutil';
import { readSafetensorsHeader } from './safetensors';
import { listCheckpoints, MANIFEST_FILE, readCheckpointManifest, resolveCheckpointDir, resolveIn } from './store';
import type { CheckpointManifest } from './types';

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
    if (digest !== f.sha256) {
      throw corrupt(p, `sha256 mismatch (content corrupt): got ${digest}, manifest says ${f.sha256}`);
    }
  }
}

/**
 * Everything a load relies on: the files (presence, size, sha256), that the pieces of every tensor
 * tile its global shape, and that each piece is in its file with the recorded dtype and shape.
 * Reads every byte once. Errors are ERR_CHECKPOINT_CORRUPT naming the file.
 */
export async function verifyCheckpointDir(dir: string, manifest: CheckpointManifest): Promise<void> {
  await verifyCheckpointFiles(dir, manifest);
  const problem = findTilingProblem(manifest.tensors);
  if (problem !== undefined) throw corrupt(path.join(dir, MANIFEST_FILE), problem);
  const files = new Set(manifest.tensors.map((t) => t.file));
  for (const file of files) {
    const p = resolveIn(dir, file);
    const header = await readSafetensorsHeader(p);
    const entries = new Map(header.entries.map((e) => [e.name, e]));
    for (const t of manifest.tensors) {
      if (t.file !== file) continue;
      const key = t.key || t.name;
      const e = entries.get(key);
      if (e === undefined) throw corrupt(p, `tensor "${key}" listed in the manifest is missing from the file`);
      const shape = t.slice.map((s) => s.length);
      if (e.dtype !== t.dtype || e.shape.length !== shape.length || e.shape.some((d, i) => d !== shape[i])) {
        throw corrupt(
          p,
          `tensor "${key}" is ${e.dtype}[${e.shape.join(', ')}], manifest says ${t.dtype}[${shape.join(', ')}]`,
        );
      }
    }
  }
}

/** Resolves `dirOrRoot` (see resolveCheckpointDir), then fully verifies that checkpoint. */
export async function verifyCheckpoint(dirOrRoot: string): Promise<{ dir: string; manifest: CheckpointManifest }> {
  const dir = await resolveCheckpointDir(dirOrRoot);
  const manifest = await readCheckpointManifest(dir);
  await verifyCheckpointDir(dir, manifest);
  return { dir, manifest };
}

/**
 * The checkpoint to resume from. `'auto'`: the newest committed step directory under `root` that
 * verifies; newer ones that are uncommitted or fail verification go to `onSkip` with the reason;
 * none → undefined. Anything else is an explicit path (step directory or root), resolved and
 * verified; a problem throws, never falling back to another checkpoint.
 */
export async function selectResumeCheckpoint(
  spec: string,
  root: string,
  onSkip?: (dir: string, reason: string) => void,
): Promise<{ dir: string; manifest: CheckpointManifest } | undefined> {
  if (spec !== 'auto') return verifyCheckpoint(spec);
  const newestFirst = (await listCheckpoints(root)).reverse();
  for (const c of newestFirst) {
    if (!c.committed) {
      onSkip?.(c.dir, `not committed (no ${MANIFEST_FILE}: the save was interrupted)`);
      continue;
    }
    try {
      const manifest = await readCheckpointManifest(c.dir);
      await verifyCheckpointDir(c.dir, manifest);
      return { dir: c.dir, manifest };
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      onSkip?.(c.dir, e.message);
    }
  }
  return undefined;
}
