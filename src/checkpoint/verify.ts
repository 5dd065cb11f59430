// verify.ts — full verification of a committed checkpoint (files, checksums, coverage, safetensors
// entries) and the choice of the checkpoint a run resumes from.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

import { findTilingProblem } from './coverage';
import { CheckpointError, corrupt, isErrnoException } from './errors';
import { fsyncDir } from '../files/atomic-write';
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

/** A committed checkpoint that failed verification, and why. */
export interface UnverifiedCheckpoint {
  dir: string;
  reason: string;
}

/**
 * Newest first: the first committed step directory under `root` that verifies, and the committed
 * ones newer than it that did not. Uncommitted directories go to `onSkip` only (a save that never
 * finished is not a checkpoint); failed ones go there too.
 */
async function scanForResume(
  root: string,
  onSkip?: (dir: string, reason: string) => void,
): Promise<{ chosen?: { dir: string; manifest: CheckpointManifest }; unverified: UnverifiedCheckpoint[] }> {
  const unverified: UnverifiedCheckpoint[] = [];
  for (const c of (await listCheckpoints(root)).reverse()) {
    if (!c.committed) {
      onSkip?.(c.dir, `not committed (no ${MANIFEST_FILE}: the save was interrupted)`);
      continue;
    }
    try {
      const manifest = await readCheckpointManifest(c.dir);
      await verifyCheckpointDir(c.dir, manifest);
      return { chosen: { dir: c.dir, manifest }, unverified };
    } catch (e) {
      if (!(e instanceof CheckpointError)) throw e;
      onSkip?.(c.dir, e.message);
      unverified.push({ dir: c.dir, reason: e.message });
    }
  }
  return { unverified };
}

/**
 * The checkpoint to resume from. `'auto'`: the newest committed step directory under `root` that
 * verifies; newer ones that are uncommitted or fail verification go to `onSkip` with the reason;
 * none → undefined. Anything else is an explicit path (step directory or root), resolved and
 * verified; a problem throws, never falling back to another checkpoint. Changes nothing on disk
 * (`paratrain checkpoint verify` uses it); a run that resumes uses resumeAuto.
 */
export async function selectResumeCheckpoint(
  spec: string,
  root: string,
  onSkip?: (dir: string, reason: string) => void,
): Promise<{ dir: string; manifest: CheckpointManifest } | undefined> {
  if (spec !== 'auto') return verifyCheckpoint(spec);
  return (await scanForResume(root, onSkip)).chosen;
}

/** The name a checkpoint that failed verification is set aside under: `step-N.unverified` (then -2, -3 …). */
async function setAsideName(dir: string): Promise<string> {
  for (let n = 1; ; n++) {
    const to = `${dir}.unverified${n === 1 ? '' : `-${n}`}`;
    if (!(await fsp.stat(to).catch(() => undefined))) return to;
  }
}

export interface ResumeAutoOptions {
  onSkip?: (dir: string, reason: string) => void;
  /** A checkpoint that failed verification was renamed (from, to); log it. */
  onSetAside?: (from: string, to: string, reason: string) => void;
  /** Committed checkpoints are present but none verifies: start at step 0 instead of failing. */
  startFresh?: boolean;
}

/**
 * `--resume auto` for a run: the newest committed checkpoint under `root` that verifies (undefined
 * when there is none at all, or only saves that never committed). When committed checkpoints are
 * present but none verifies it throws ERR_CHECKPOINT_NONE_VALID listing each with its reason and
 * changes nothing, unless `startFresh`. Those that failed verification (newer than the one chosen,
 * or all of them with `startFresh`) are set aside as `step-N.unverified`: out of the listing, so
 * they are never pruned, never overwritten by a later save of the same step, and still there to
 * inspect or repair.
 */
export async function resumeAuto(
  root: string,
  opts: ResumeAutoOptions = {},
): Promise<{ dir: string; manifest: CheckpointManifest } | undefined> {
  const { chosen, unverified } = await scanForResume(root, opts.onSkip);
  if (!chosen && unverified.length > 0 && !opts.startFresh) {
    throw new CheckpointError(
      'ERR_CHECKPOINT_NONE_VALID',
      `--resume auto: ${root} holds ${unverified.length} committed checkpoint(s) and none verifies:\n  ` +
        unverified.map((u) => `${u.dir}: ${u.reason}`).join('\n  ') +
        `\nnothing was changed. Repair or remove them (\`paratrain checkpoint verify --all ${root}\` lists them), ` +
        'resume from a path you trust, or pass --start-fresh to set them aside and start at step 0',
      root,
    );
  }
  for (const u of unverified) {
    const to = await setAsideName(u.dir);
    try {
      await fsp.rename(u.dir, to);
    } catch (e) {
      // Gone meanwhile (an old checkpoint pruned by a commit still finishing): nothing to keep.
      if (isErrnoException(e) && e.code === 'ENOENT') continue;
      throw e;
    }
    opts.onSetAside?.(u.dir, to, u.reason);
  }
  if (unverified.length > 0) await fsyncDir(root);
  return chosen;
}

/** The warning for a checkpoint resumeAuto set aside. */
export function describeSetAside(dir: string, to: string, reason: string): string {
  return (
    `set aside ${dir} as ${to}: it failed verification (${reason}); it is never pruned or resumed from ` +
    'automatically: repair it or remove it by hand'
  );
}
