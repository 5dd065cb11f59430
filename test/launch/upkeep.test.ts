// Checkpoint upkeep in real runs (`paratrain train` and `paratrain launch`, real engine, real
// files): an old checkpoint that cannot be pruned costs a warning, not the run; a full disk (a small
// tmpfs) is ERR_DISK_FULL, leaves no partial shard and is not restarted; `--resume auto` among
// checkpoints none of which verifies stops with a list of them, and --start-fresh starts over.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';

import { makeUnremovable, mountSmallDisk } from '../checkpoint/fs-conditions';
import { bin, freePort, root } from './launch-harness';
import { launch, tiny, tmp } from './train-harness';

const undo: Array<() => void> = [];
afterEach(() => {
  for (const u of undo.splice(0).reverse()) u();
});

function train(args: string[]) {
  const r = spawnSync(process.execPath, [bin, 'train', ...args], { cwd: root, encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Saves every 2 steps, keeps 2: the third save prunes the first. */
const saving = (steps: number) => ({ 'train.steps': steps, 'checkpoint.every': 2, 'checkpoint.keep': 2 });

const stepDir = (dir: string, step: number) => path.join(dir, 'checkpoints', `step-${String(step).padStart(7, '0')}`);

function dataFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(d, e.name));
      else if (e.name.includes('.safetensors')) out.push(path.join(d, e.name));
    }
  };
  walk(dir);
  return out;
}

function corrupt(dir: string, step: number): void {
  const file = path.join(stepDir(dir, step), 'model-tp00-dp00.safetensors');
  const bytes = fs.readFileSync(file);
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] as number) ^ 1;
  fs.writeFileSync(file, bytes);
}

describe('an old checkpoint that cannot be pruned', () => {
  it('paratrain train: a warning naming the directory, and the run finishes (exit 0)', async (ctx) => {
    const dir = tmp();
    expect(train(tiny('bert', dir, saving(4))).code).toBe(0);
    const stuck = stepDir(dir, 2);
    const cond = makeUnremovable(stuck);
    if ('skip' in cond) return ctx.skip(cond.skip);
    undo.push(cond.undo);
    const r = train([...tiny('bert', dir, saving(8)), '--resume', 'auto']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`could not prune the old checkpoint ${stuck}`);
    expect(r.stderr).toContain('trained steps 5..8');
    expect(fs.existsSync(path.join(stepDir(dir, 8), 'manifest.pb'))).toBe(true);
    expect(fs.existsSync(path.join(stuck, 'manifest.pb'))).toBe(true);
  });

  it('paratrain launch (the coordinator commits): a warning, and the job finishes (exit 0)', async (ctx) => {
    const dir = tmp();
    const port = async () => ['--nproc-per-node', '2', '--master-port', String(await freePort())];
    const first = launch([...(await port()), ...tiny('gpt', dir, { ...saving(4), 'parallel.tensor': 2 })]);
    expect(first.code, first.stderr).toBe(0);
    const stuck = stepDir(dir, 2);
    const cond = makeUnremovable(stuck);
    if ('skip' in cond) return ctx.skip(cond.skip);
    undo.push(cond.undo);
    const r = launch([
      ...(await port()),
      '--resume',
      'auto',
      ...tiny('gpt', dir, { ...saving(8), 'parallel.tensor': 2 }),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`could not prune the old checkpoint ${stuck}`);
    expect(r.stdout).not.toContain('ERR_CHECKPOINT_COMMIT');
    expect(fs.existsSync(path.join(stepDir(dir, 8), 'manifest.pb'))).toBe(true);
  });
});

describe('a full disk', () => {
  // The tiny model's save is ~0.8 MB (model 0.26 MB, optimizer 0.52 MB): the model file fits in
  // 400 KiB, the optimizer's does not.
  it('paratrain train: ERR_DISK_FULL naming the file, and no partial shard is left', async (ctx) => {
    const dir = tmp();
    const cond = mountSmallDisk(path.join(dir, 'checkpoints'), 400);
    if ('skip' in cond) return ctx.skip(cond.skip);
    undo.push(cond.undo);
    const r = train(tiny('bert', dir, saving(4)));
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      new RegExp(`error \\[ERR_DISK_FULL\\]: disk full writing ${stepDir(dir, 2)}/optimizer-tp00-dp00\\.safetensors`),
    );
    expect(r.stderr).toMatch(/the save needs about 0\.\d MB, 0\.\d MB free there/);
    expect(dataFiles(path.join(dir, 'checkpoints'))).toEqual([]);
  });

  it('paratrain launch --max-restarts 2: the job fails at once with ERR_DISK_FULL, not restarted', async (ctx) => {
    const dir = tmp();
    const cond = mountSmallDisk(path.join(dir, 'checkpoints'), 400);
    if ('skip' in cond) return ctx.skip(cond.skip);
    undo.push(cond.undo);
    const r = launch([
      '--nproc-per-node',
      '2',
      '--master-port',
      String(await freePort()),
      '--max-restarts',
      '2',
      ...tiny('bert', dir, saving(4)),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Root cause [ERR_DISK_FULL]');
    expect(r.stderr).toContain(`disk full writing ${stepDir(dir, 2)}`);
    expect(r.stdout).not.toMatch(/restarting the job/);
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'failure.json'), 'utf8')) as {
      restarts: number;
      rootCause: { code: string };
    };
    expect(report).toMatchObject({ restarts: 0, rootCause: { code: 'ERR_DISK_FULL' } });
    expect(dataFiles(path.join(dir, 'checkpoints'))).toEqual([]);
  });
});

describe('--resume auto when no checkpoint verifies', () => {
  it('stops listing them, leaves the run as it was; --start-fresh sets them aside and trains from step 0', () => {
    const dir = tmp();
    expect(train(tiny('bert', dir, saving(4))).code).toBe(0);
    corrupt(dir, 2);
    corrupt(dir, 4);
    const config = fs.readFileSync(path.join(dir, 'config.yaml'), 'utf8');
    const r = train([...tiny('bert', dir, { ...saving(8), 'train.lr': 0.002 }), '--resume', 'auto']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[ERR_CHECKPOINT_NONE_VALID]');
    expect(r.stderr).toContain(`holds 2 committed checkpoint(s) and none verifies`);
    expect(r.stderr).toContain(`${stepDir(dir, 4)}: ${stepDir(dir, 4)}/model-tp00-dp00.safetensors: sha256 mismatch`);
    expect(r.stderr).toContain(`${stepDir(dir, 2)}: `);
    // Nothing was pruned, set aside or rewritten: not the checkpoints, not the run's config.
    expect(fs.readdirSync(path.join(dir, 'checkpoints')).sort()).toEqual(['latest', 'step-0000002', 'step-0000004']);
    expect(fs.readFileSync(path.join(dir, 'config.yaml'), 'utf8')).toBe(config);

    const noAuto = train([...tiny('bert', dir, saving(8)), '--start-fresh']);
    expect(noAuto.code).toBe(1);
    expect(noAuto.stderr).toContain('[ERR_TRAIN_OPTION]: --start-fresh only applies to --resume auto');

    const fresh = train([...tiny('bert', dir, saving(8)), '--resume', 'auto', '--start-fresh']);
    expect(fresh.code, fresh.stderr).toBe(0);
    expect(fresh.stderr).toContain('trained steps 1..8');
    expect(fresh.stdout).toContain(`set aside ${stepDir(dir, 4)} as ${stepDir(dir, 4)}.unverified`);
    expect(fs.readdirSync(path.join(dir, 'checkpoints')).sort()).toEqual([
      'latest',
      'step-0000002.unverified',
      'step-0000004.unverified',
      'step-0000006',
      'step-0000008',
    ]);
  });

  it('paratrain launch: the same error, before any worker trains', async () => {
    const dir = tmp();
    expect(train(tiny('bert', dir, saving(2))).code).toBe(0);
    corrupt(dir, 2);
    const r = launch([
      '--nproc-per-node',
      '2',
      '--master-port',
      String(await freePort()),
      '--resume',
      'auto',
      ...tiny('bert', dir, saving(4)),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[ERR_CHECKPOINT_NONE_VALID]');
    expect(r.stderr).toContain(`${stepDir(dir, 2)}: ${stepDir(dir, 2)}/model-tp00-dp00.safetensors: sha256 mismatch`);
    expect(fs.existsSync(path.join(stepDir(dir, 2), 'manifest.pb'))).toBe(true);
  });
});
