// The coordinator's side of checkpointing: the relay takes every rank's report of a step exactly
// once and refuses what breaks the one-save-at-a-time protocol; the resume choice finds nothing
// to resume in an empty root and names an interrupted save it skips.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import type { ShardReport } from '../../src/checkpoint';
import { CheckpointRelay, describeCommit, findResumeCheckpoint } from '../../src/coordinator/checkpoints';

const report = (rank: number, step: number, extra: Partial<ShardReport> = {}): ShardReport => ({
  step,
  rank,
  files: [],
  tensors: [],
  bytes: 1_000_000 * (rank + 1),
  writeMs: 100 * (rank + 1),
  ...extra,
});

describe('checkpoint relay', () => {
  it('returns the reports in rank order once every rank reported the step', () => {
    const relay = new CheckpointRelay(3);
    expect(relay.add(2, report(2, 10))).toBeUndefined();
    expect(relay.add(0, report(0, 10))).toBeUndefined();
    expect(relay.add(1, report(1, 10))!.map((r) => r.rank)).toEqual([0, 1, 2]);
  });

  it('refuses a newer step while one is incomplete, naming the ranks still missing', () => {
    const relay = new CheckpointRelay(4);
    relay.add(0, report(0, 10));
    relay.add(2, report(2, 10));
    expect(() => relay.add(1, report(1, 20))).toThrow(
      expect.objectContaining({
        code: 'ERR_CHECKPOINT_INTERLEAVED',
        message: expect.stringMatching(
          /^reported its shard of step 20 while the save of step 10 is incomplete \(rank\(s\) 1, 3 have not reported it\); a worker must not start a save before the previous one is committed/,
        ),
      }),
    );
  });

  it('refuses a report while its step is being committed, a report for another rank, and one rank twice', () => {
    const relay = new CheckpointRelay(2);
    relay.add(0, report(0, 5));
    expect(() => relay.add(0, report(0, 5))).toThrow(/reported its shard of step 5 twice/);
    expect(() => relay.add(1, report(0, 5))).toThrow(
      expect.objectContaining({
        code: 'ERR_CHECKPOINT_REPORT',
        message: 'sent a checkpoint report for rank 0, not its own',
      }),
    );
    relay.add(1, report(1, 5));
    expect(() => relay.add(0, report(0, 6))).toThrow(/while the save of step 5 is being committed/);
  });

  it('says what a commit wrote and who was slowest', () => {
    expect(describeCommit('/r/checkpoints/step-0000010', [report(0, 10), report(1, 10, { writeMs: 812.4 })])).toBe(
      'checkpoint step 10 committed: /r/checkpoints/step-0000010 (3.0 MB from 2 ranks, slowest rank 812 ms: rank 1)',
    );
  });
});

describe('resume choice', () => {
  it('nothing to resume: no --resume, or auto in a root without a committed checkpoint', async () => {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-resume-'));
    const skipped: string[] = [];
    const onSkip = (dir: string) => skipped.push(dir);
    expect(await findResumeCheckpoint(undefined, root, { onSkip })).toBeUndefined();
    expect(await findResumeCheckpoint('auto', path.join(root, 'missing'), { onSkip })).toBeUndefined();
    expect(skipped).toEqual([]);
    // A step directory without a manifest is a save that never committed: skipped, and said so
    // (as `paratrain train --resume auto` does).
    const leftover = path.join(root, 'step-0000010');
    fs.mkdirSync(leftover);
    expect(await findResumeCheckpoint('auto', root, { onSkip })).toBeUndefined();
    expect(skipped).toEqual([leftover]);
  });
});
