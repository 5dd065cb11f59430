// commit.ts — the one process that commits a step: once every rank reported, it checks that the
// pieces tile every tensor, writes manifest.pb (the rename is the commit), points `latest` at the
// step and prunes old checkpoints.
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

import { findTilingProblem } from './coverage';
import { CheckpointError, isErrnoException } from './errors';
import { atomicWrite, atomicWriteFile, writeAll } from '../files/atomic-write';
import { manifestFromHeader } from './header';
import { encodeManifest } from './manifest';
import { checkShardReport } from './shard-report';
import {
  checkpointDirFor,
  LATEST_FILE,
  MANIFEST_FILE,
  normaliseKeep,
  pruneCheckpoints,
  removeUnlistedFiles,
  resolveIn,
  TOKENIZER_FILE,
  type UpkeepFailure,
} from './store';
import type { ManifestFileEntry, ManifestHeader, ManifestTensorEntry, SavedCheckpoint, ShardReport } from './types';

/** Manifest order: parameters, then optimizer state; names in the order the ranks listed them; pieces by position. */
function orderTensors(reports: readonly ShardReport[]): ManifestTensorEntry[] {
  const all = reports.flatMap((r) => r.tensors);
  const firstSeen = new Map<string, number>();
  all.forEach((t, i) => {
    if (!firstSeen.has(t.name)) firstSeen.set(t.name, i);
  });
  const roleRank = (t: ManifestTensorEntry) => (t.role === 'parameter' ? 0 : 1);
  const byStart = (a: ManifestTensorEntry, b: ManifestTensorEntry) => {
    for (let d = 0; d < a.slice.length; d++) {
      const diff = (a.slice[d]?.start ?? 0) - (b.slice[d]?.start ?? 0);
      if (diff !== 0) return diff;
    }
    return 0;
  };
  return [...all].sort(
    (a, b) =>
      roleRank(a) - roleRank(b) ||
      (firstSeen.get(a.name) as number) - (firstSeen.get(b.name) as number) ||
      byStart(a, b),
  );
}

function rankName(rank: number, tp: number): string {
  return `rank ${rank} (tp${rank % tp} dp${Math.floor(rank / tp)})`;
}

/**
 * Commits a step from the reports of its ranks with the given header (the rank-0 report's, or
 * saveCheckpoint's own). Checks everything before writing the manifest.
 */
export async function commitReports(
  root: string,
  reports: readonly ShardReport[],
  header: ManifestHeader,
  keepOption: number | undefined,
): Promise<SavedCheckpoint> {
  const keep = normaliseKeep(keepOption);
  const step = header.step;
  const fail = (what: string) => new CheckpointError('ERR_SHARD_REPORT', `cannot commit step ${step}: ${what}`);
  const { tensorParallel: tp, dataParallel: dp } = header.layout;
  const sorted = [...reports].sort((a, b) => a.rank - b.rank);

  const ranks = new Set<number>();
  for (const r of sorted) {
    if (r.step !== step) throw fail(`${rankName(r.rank, tp)} reported step ${r.step}`);
    if (r.rank >= tp * dp) throw fail(`report from rank ${r.rank}, outside the TP${tp}×DP${dp} layout`);
    if (ranks.has(r.rank)) throw fail(`two reports from ${rankName(r.rank, tp)}`);
    ranks.add(r.rank);
    for (const t of r.tensors) {
      if (t.tpRank >= tp || t.dpRank >= dp) {
        throw fail(
          `${rankName(r.rank, tp)} lists tensor ${t.name} as written by tp${t.tpRank} dp${t.dpRank}, outside TP${tp}×DP${dp}`,
        );
      }
    }
  }
  const missing: string[] = [];
  for (let r = 0; r < tp * dp; r++) if (!ranks.has(r)) missing.push(rankName(r, tp));
  const missingNote = missing.length > 0 ? `; no report from ${missing.join(', ')}` : '';

  const files: ManifestFileEntry[] = [];
  const fileOwner = new Map<string, number>();
  for (const r of sorted) {
    for (const f of r.files) {
      const other = fileOwner.get(f.path);
      if (other !== undefined)
        throw fail(`${f.path} is listed by both ${rankName(other, tp)} and ${rankName(r.rank, tp)}`);
      fileOwner.set(f.path, r.rank);
      files.push({ ...f });
    }
  }
  const tensors = orderTensors(sorted);
  const problem = findTilingProblem(tensors);
  if (problem !== undefined) throw fail(problem + missingNote);
  if (missing.length > 0) throw fail(`every rank must report${missingNote}`);

  // The ranks wrote on their own hosts: a file this host cannot see means the directory is not shared.
  const dir = checkpointDirFor(root, step);
  for (const f of files) {
    const p = resolveIn(dir, f.path);
    let size: number;
    try {
      size = (await fsp.stat(p)).size;
    } catch (e) {
      if (!(isErrnoException(e) && e.code === 'ENOENT')) throw e;
      throw new CheckpointError(
        'ERR_CHECKPOINT_CORRUPT',
        `${p}: reported by ${rankName(fileOwner.get(f.path) as number, tp)} but missing here; ` +
          `the checkpoint directory must be on a filesystem every node shares`,
        p,
      );
    }
    if (size !== f.sizeBytes) {
      throw new CheckpointError(
        'ERR_CHECKPOINT_CORRUPT',
        `${p}: ${size} bytes on disk, the report says ${f.sizeBytes}`,
        p,
      );
    }
  }

  const tokenizerFile = fileOwner.has(TOKENIZER_FILE) ? TOKENIZER_FILE : '';
  const manifest = manifestFromHeader(header, { files, tensors, tokenizerFile });
  const bytes = encodeManifest(manifest);
  // The commit point: atomicWrite renames manifest.pb into place and fsyncs the directory.
  await atomicWrite(path.join(dir, MANIFEST_FILE), (fh) => writeAll(fh, bytes));
  await atomicWriteFile(path.join(root, LATEST_FILE), `${path.basename(dir)}\n`);
  // Committed. What follows is upkeep: a failure there is reported, never a failed commit.
  const upkeepFailures: UpkeepFailure[] = [];
  await removeUnlistedFiles(dir, manifest).catch((e: Error) =>
    upkeepFailures.push({ dir, message: `could not remove files of an earlier save from ${dir} (${e.message})` }),
  );
  const { pruned, failed } = await pruneCheckpoints(root, dir, step, keep).catch((e: Error) => ({
    pruned: [],
    failed: [{ dir: root, message: `could not list ${root} to prune old checkpoints (${e.message})` }],
  }));
  upkeepFailures.push(...failed);
  return { dir, manifest, pruned, upkeepFailures };
}

/**
 * Commits a sharded save once every rank reported (see docs/checkpoint-format.md, commit
 * protocol). Exactly one report carries the header; the pieces must tile every tensor.
 */
export async function commitCheckpoint(
  root: string,
  reports: ShardReport[],
  options: { keep?: number } = {},
): Promise<SavedCheckpoint> {
  if (!Array.isArray(reports) || reports.length === 0) {
    throw new CheckpointError('ERR_SHARD_REPORT', 'cannot commit: no shard reports');
  }
  for (const r of reports) {
    checkShardReport(
      r,
      (what) => new CheckpointError('ERR_SHARD_REPORT', `cannot commit: report of rank ${r.rank}: ${what}`),
    );
  }
  const withHeader = reports.filter((r) => r.header !== undefined);
  const header = withHeader[0]?.header;
  if (withHeader.length !== 1 || header === undefined) {
    throw new CheckpointError(
      'ERR_SHARD_REPORT',
      `cannot commit: ${withHeader.length} reports carry a header (ranks ${withHeader.map((r) => r.rank).join(', ') || 'none'}); exactly one, rank 0's, must`,
    );
  }
  return commitReports(root, reports, header, options.keep);
}
