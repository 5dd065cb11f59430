// Checkpoint upkeep under real filesystem conditions: an old checkpoint that cannot be pruned is a
// warning, never a failed commit; a full disk is ERR_DISK_FULL naming the file and leaves no partial
// shard; `--resume auto` among checkpoints none of which verifies stops (or, asked to, starts fresh)
// and sets the unverifiable ones aside instead of ever pruning them.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import {
  checkpointDirFor,
  commitCheckpoint,
  listCheckpoints,
  resumeAuto,
  writeShard,
  type CheckpointError,
} from '../../src/checkpoint';
import { BIG_SPECS, headerFor, rankShard, wholeModel } from './fake-engine';
import { makeUnremovable, mountSmallDisk } from './fs-conditions';

let tmp: string;
const undo: Array<() => void> = [];
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-upkeep-'));
});
afterEach(() => {
  for (const u of undo.splice(0).reverse()) u();
  fs.rmSync(tmp, { recursive: true, force: true });
});

async function save(root: string, step: number, keep = 2) {
  const dir = checkpointDirFor(root, step);
  const report = await writeShard(dir, rankShard(wholeModel(step), step, 1, 1, 0, 0), headerFor(step, 1, 1));
  return commitCheckpoint(root, [report], { keep });
}

async function rejection(p: Promise<unknown>): Promise<CheckpointError> {
  try {
    await p;
  } catch (e) {
    return e as CheckpointError;
  }
  throw new Error('expected a rejection');
}

/** Flips a byte in the model file of a committed step: it no longer verifies. */
function corruptStep(root: string, step: number): string {
  const file = path.join(checkpointDirFor(root, step), 'model-tp00-dp00.safetensors');
  const bytes = fs.readFileSync(file);
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 1;
  fs.writeFileSync(file, bytes);
  return file;
}

describe('pruning is upkeep', () => {
  it('an old checkpoint that cannot be removed is reported, and the new step is committed', async (ctx) => {
    const root = path.join(tmp, 'checkpoints');
    await save(root, 10);
    await save(root, 20);
    const stuck = checkpointDirFor(root, 10);
    const cond = makeUnremovable(stuck);
    if ('skip' in cond) return ctx.skip(cond.skip);
    undo.push(cond.undo);

    const saved = await save(root, 30);
    expect(saved.dir).toBe(checkpointDirFor(root, 30));
    expect(saved.pruned).toEqual([]);
    expect(saved.upkeepFailures).toHaveLength(1);
    expect(saved.upkeepFailures[0]?.dir).toBe(stuck);
    expect(saved.upkeepFailures[0]?.message).toContain(`could not prune the old checkpoint ${stuck}`);
    expect(saved.upkeepFailures[0]?.message).toMatch(/EPERM|EACCES/);
    expect(fs.readFileSync(path.join(root, 'latest'), 'utf8').trim()).toBe('step-0000030');

    // The next commit prunes what it can (step 20) and reports the stuck one again.
    const next = await save(root, 40);
    expect(next.pruned).toEqual([checkpointDirFor(root, 20)]);
    expect(next.upkeepFailures.map((f) => f.dir)).toEqual([stuck]);
    cond.undo();
    undo.pop();
    const left = await save(root, 50);
    expect(left.upkeepFailures).toEqual([]);
    expect(left.pruned).toEqual([stuck, checkpointDirFor(root, 30)]);
  });
});

describe('a full disk', () => {
  it('is ERR_DISK_FULL naming the file and the bytes needed, and leaves no partial shard', async (ctx) => {
    const root = path.join(tmp, 'small');
    // The BIG_SPECS model file is ~16 MB: it cannot fit in 4 MiB.
    const cond = mountSmallDisk(root, 4096);
    if ('skip' in cond) return ctx.skip(cond.skip);
    undo.push(cond.undo);
    const dir = checkpointDirFor(root, 5);
    const shard = rankShard(wholeModel(5, BIG_SPECS), 5, 1, 1, 0, 0, BIG_SPECS);
    const err = await rejection(writeShard(dir, shard, headerFor(5, 1, 1)));
    expect(err.code).toBe('ERR_DISK_FULL');
    expect(err.message).toContain(`disk full writing ${path.join(dir, 'model-tp00-dp00.safetensors')}`);
    // Parameters and both moments without the vocabulary padding: more than the disk, at most 3× the flat buffer.
    const needed = Number(/the save needs about ([\d.]+) MB/.exec(err.message)?.[1]);
    expect(needed).toBeGreaterThan(4.2);
    expect(needed).toBeLessThanOrEqual((shard.params.byteLength * 3) / 1e6 + 0.1);
    expect(err.message).toMatch(/MB free there/);
    // Nothing of the failed save is left: no shard, no temp file.
    expect(fs.readdirSync(dir)).toEqual([]);
    expect((await listCheckpoints(root)).filter((c) => c.committed)).toEqual([]);
  });
});

describe('--resume auto among checkpoints that do not verify', () => {
  it('stops with an error that lists every one and changes nothing', async () => {
    const root = path.join(tmp, 'checkpoints');
    await save(root, 10, 5);
    await save(root, 20, 5);
    const f10 = corruptStep(root, 10);
    const f20 = corruptStep(root, 20);
    const before = fs.readdirSync(root).sort();
    const err = await rejection(resumeAuto(root));
    expect(err.code).toBe('ERR_CHECKPOINT_NONE_VALID');
    expect(err.message).toContain(`${root} holds 2 committed checkpoint(s) and none verifies`);
    expect(err.message).toContain(`${checkpointDirFor(root, 20)}: ${f20}: sha256 mismatch`);
    expect(err.message).toContain(`${checkpointDirFor(root, 10)}: ${f10}: sha256 mismatch`);
    expect(err.message).toContain('--start-fresh');
    expect(fs.readdirSync(root).sort()).toEqual(before);
  });

  it('with startFresh sets them aside (never pruned, never overwritten) and starts at step 0', async () => {
    const root = path.join(tmp, 'checkpoints');
    await save(root, 10, 5);
    corruptStep(root, 10);
    const setAside: Array<[string, string]> = [];
    const chosen = await resumeAuto(root, { startFresh: true, onSetAside: (from, to) => setAside.push([from, to]) });
    expect(chosen).toBeUndefined();
    const d10 = checkpointDirFor(root, 10);
    expect(setAside).toEqual([[d10, `${d10}.unverified`]]);
    expect(fs.existsSync(path.join(`${d10}.unverified`, 'manifest.pb'))).toBe(true);
    // The fresh run saves step 10 again and keeps 2: the set-aside one is neither touched nor pruned.
    for (const step of [10, 20, 30]) await save(root, step, 2);
    expect(fs.existsSync(path.join(`${d10}.unverified`, 'manifest.pb'))).toBe(true);
    expect((await listCheckpoints(root)).map((c) => c.step)).toEqual([20, 30]);
    // A second set-aside of the same step gets a name of its own.
    corruptStep(root, 30);
    corruptStep(root, 20);
    await resumeAuto(root, { startFresh: true });
    expect(fs.readdirSync(root).sort()).toEqual([
      'latest',
      'step-0000010.unverified',
      'step-0000020.unverified',
      'step-0000030.unverified',
    ]);
  });

  it('resumes from the newest that verifies and sets the newer broken ones aside', async () => {
    const root = path.join(tmp, 'checkpoints');
    for (const step of [10, 20, 30]) await save(root, step, 5);
    corruptStep(root, 30);
    const chosen = await resumeAuto(root);
    expect(chosen?.dir).toBe(checkpointDirFor(root, 20));
    expect(fs.existsSync(`${checkpointDirFor(root, 30)}.unverified`)).toBe(true);
    expect((await listCheckpoints(root)).map((c) => c.step)).toEqual([10, 20]);
  });

  it('a save that never committed is not a checkpoint: nothing to resume, no error', async () => {
    const root = path.join(tmp, 'checkpoints');
    fs.mkdirSync(checkpointDirFor(root, 10), { recursive: true });
    const skipped: string[] = [];
    expect(await resumeAuto(root, { onSkip: (d) => skipped.push(d) })).toBeUndefined();
    expect(skipped).toEqual([checkpointDirFor(root, 10)]);
    expect(await resumeAuto(path.join(tmp, 'missing'))).toBeUndefined();
  });
});
