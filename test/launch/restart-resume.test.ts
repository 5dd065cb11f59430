// Recovery end to end, with real processes, sockets and files: a job that loses a worker at a
// random step restarts from its newest checkpoint and ends bitwise where an uninterrupted run ends;
// a job killed while it writes a checkpoint keeps the previous one; a checkpoint written at one
// layout continues at others; SIGUSR1 saves and stops cleanly; corrupt checkpoints are skipped.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { listCheckpoints } from '../../src/checkpoint';
import { bin, freePort, isAlive, root, sharedKeyFile, startLauncher, waitFor } from './launch-harness';
import {
  expectClose,
  expectSameState,
  launch,
  stepLines,
  tiny,
  tmp,
  trainAlone,
  workerWithRank,
} from './train-harness';

const STEPS = 40;
/**
 * TP=2 × DP=2 with dropout on: the bitwise checks cover both groups and the random streams. Big
 * enough (about 20 ms a step on 2 cores) that a kill lands mid-run.
 */
const JOB = {
  'parallel.tensor': 2,
  'model.dropout': 0.1,
  'model.hidden': 64,
  'model.ffn': 128,
  'model.seq_len': 64,
  'train.micro_batch': 8,
  'train.threads': 1,
  'train.steps': STEPS,
  'checkpoint.every': 2,
};
const stepDir = (run: string, step: number) => path.join(run, 'checkpoints', `step-${String(step).padStart(7, '0')}`);

/** Reproducible "random" choices (mulberry32); the seed is in the test's output. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function startJob(dir: string, flags: string[], sets: Record<string, string | number> = {}, env = {}) {
  const args = ['launch', '--nproc-per-node', '4', '--master-port', String(await freePort()), ...flags];
  return startLauncher([...args, ...tiny('bert', dir, { ...JOB, ...sets })], env, bin);
}

/** Runs the 4-worker job to its end (after `flags`, e.g. --resume auto). */
async function runJob(dir: string, flags: string[] = [], sets: Record<string, string | number> = {}) {
  const port = String(await freePort());
  return launch(['--nproc-per-node', '4', '--master-port', port, ...flags, ...tiny('bert', dir, { ...JOB, ...sets })]);
}

function childPids(pid: number): number[] {
  return spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
    .stdout.split('\n')
    .filter(Boolean)
    .map(Number);
}

const lastStep = (dir: string) =>
  fs.existsSync(path.join(dir, 'log.jsonl')) ? Math.max(0, ...stepLines(dir).map((l) => l.step)) : 0;

describe('recovery of a TP=2 × DP=2 job', () => {
  let reference = '';
  beforeAll(async () => {
    reference = tmp();
    const r = await runJob(reference);
    expect(r.code, r.stderr).toBe(0);
  });

  it('kill -9 of a random worker at a random step, 3 trials, --max-restarts: final state bitwise equal', async () => {
    const seed = Number(process.env.PARATRAIN_TEST_SEED ?? 20261127);
    const random = rng(seed);
    for (let trial = 0; trial < 3; trial++) {
      const victim = Math.floor(random() * 4);
      const killAt = 2 + Math.floor(random() * (STEPS - 10));
      const why = `seed ${seed}, trial ${trial}: rank ${victim} at step ≥ ${killAt}`;
      const dir = tmp();
      // The second trial saves in the background (checkpoint.async): a kill may hit a save in flight.
      const job = await startJob(dir, ['--max-restarts', '3'], trial === 1 ? { 'checkpoint.async': 'true' } : {});
      await waitFor(`step ${killAt} (${why})`, () => lastStep(dir) >= killAt, 120_000);
      const pid = workerWithRank(childPids(job.proc.pid!), victim);
      process.kill(pid, 'SIGKILL');
      const r = await job.exited;
      expect(r.code, `${why}\n${r.stderr}`).toBe(0);
      expect(r.stdout + r.stderr, why).toMatch(/restart 1 of 3/);
      // Rank 0 of round 1 started again (from the newest checkpoint, or from step 0 if none was committed).
      const log = fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8');
      expect(log, why).toContain('"restart_count":1');
      await expectSameState(stepDir(dir, STEPS), stepDir(reference, STEPS));
    }
  });

  it('two nodes: kill -9 of a worker on node 1 restarts both nodes; the end state is bitwise the same', async () => {
    const dir = tmp();
    const port = String(await freePort());
    const node = (rank: number) =>
      startLauncher(
        [
          'launch',
          '--nnodes',
          '2',
          '--node-rank',
          String(rank),
          '--nproc-per-node',
          '2',
          '--master-port',
          port,
          '--max-restarts',
          '2',
          '--auth-key-file',
          sharedKeyFile,
          ...tiny('bert', dir, JOB),
        ],
        {},
        bin,
      );
    const [n0, n1] = [node(0), node(1)];
    await waitFor('step 8', () => lastStep(dir) >= 8, 120_000);
    process.kill(workerWithRank(childPids(n1.proc.pid!), 3), 'SIGKILL');
    const [r0, r1] = await Promise.all([n0.exited, n1.exited]);
    expect(r0.code, r0.stderr).toBe(0);
    expect(r1.code, r1.stderr).toBe(0);
    expect(r0.stdout + r0.stderr).toMatch(/restart 1 of 2/);
    await expectSameState(stepDir(dir, STEPS), stepDir(reference, STEPS));
  });

  it('kill -9 of the whole job while a save is being written: the previous checkpoint is intact and resume works', async () => {
    const dir = tmp();
    // Every save waits 1.5 s between writing its shards and committing: a window to kill in.
    const job = await startJob(dir, [], {}, { PARATRAIN_DEBUG_SAVE_DELAY_MS: '1500' });
    await waitFor('the step-4 save to be written but not committed', () => {
      const d = stepDir(dir, 4);
      return (
        fs.existsSync(path.join(stepDir(dir, 2), 'manifest.pb')) &&
        fs.existsSync(d) &&
        fs.readdirSync(d).some((f) => f.endsWith('.safetensors')) &&
        !fs.existsSync(path.join(d, 'manifest.pb'))
      );
    });
    const workers = childPids(job.proc.pid!);
    for (const pid of [job.proc.pid!, ...workers]) process.kill(pid, 'SIGKILL');
    await job.exited;
    for (const pid of workers) await waitFor(`pid ${pid} to be gone`, () => !isAlive(pid), 10_000);

    const listed = await listCheckpoints(path.join(dir, 'checkpoints'));
    expect(listed.filter((c) => c.committed).map((c) => c.step)).toEqual([2]);
    const verify = spawnSync(process.execPath, [bin, 'checkpoint', 'verify', path.join(dir, 'checkpoints')], {
      cwd: root,
      encoding: 'utf8',
    });
    expect(verify.status, verify.stderr).toBe(0);
    expect(verify.stdout).toContain('step-0000002');

    const r = await runJob(dir, ['--resume', 'auto']);
    expect(r.code, r.stderr).toBe(0);
    expect(fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8')).toMatch(/resumed from .*step-0000002/);
    await expectSameState(stepDir(dir, STEPS), stepDir(reference, STEPS));
  });

  it('SIGUSR1 to the launcher mid-run: it saves, commits and exits 0; --resume auto continues bitwise', async () => {
    const dir = tmp();
    const job = await startJob(dir, [], { 'checkpoint.every': 0 });
    await waitFor('step 5', () => lastStep(dir) >= 5, 120_000);
    process.kill(job.proc.pid!, 'SIGUSR1');
    const r = await job.exited;
    expect(r.code, r.stderr).toBe(0);
    const status = JSON.parse(fs.readFileSync(path.join(dir, 'status.json'), 'utf8')) as {
      state: string;
      step: number;
    };
    expect(status.state).toBe('stopped');
    expect(status.step).toBeGreaterThanOrEqual(5);
    expect(status.step).toBeLessThan(STEPS);
    expect(fs.readFileSync(path.join(dir, 'checkpoints', 'latest'), 'utf8').trim()).toBe(
      path.basename(stepDir(dir, status.step)),
    );
    const again = await runJob(dir, ['--resume', 'auto'], { 'checkpoint.every': 0 });
    expect(again.code, again.stderr).toBe(0);
    await expectSameState(stepDir(dir, STEPS), stepDir(reference, STEPS));
  });
});

describe('saves on request and on time', () => {
  it('SIGUSR2 and checkpoint.every_minutes: every rank saves after the same step, training goes on', async () => {
    const dir = tmp();
    const job = await startJob(dir, [], {
      'checkpoint.every': 0,
      'checkpoint.every_minutes': 0.004,
      'checkpoint.keep': 50,
    });
    await waitFor('step 10', () => lastStep(dir) >= 10, 120_000);
    process.kill(job.proc.pid!, 'SIGUSR2');
    const r = await job.exited;
    expect(r.code, r.stderr).toBe(0);
    const committed = (await listCheckpoints(path.join(dir, 'checkpoints'))).filter((c) => c.committed);
    // The time trigger (rank 0's clock, 0.24 s) and the request each committed a checkpoint with a
    // piece from every rank before the end; the job's log says which steps.
    expect(committed.length).toBeGreaterThan(2);
    expect(committed.at(-1)!.step).toBe(STEPS);
    const launcherLog = r.stdout + r.stderr;
    for (const c of committed) expect(launcherLog).toContain(`checkpoint step ${c.step} committed`);
    expect(launcherLog).toMatch(/received SIGUSR2: every worker saves a checkpoint/);
  });
});

describe('resharding', () => {
  it('saved at TP=2 × DP=2, continued at TP=1, TP=4 and TP=1 × DP=4 within 1e-5 of the original; its HF export imports into TP=2', async () => {
    // The same micro-batches (2 samples) in every layout, dropout off (attention streams are per TP rank).
    const base = { 'model.dropout': 0, 'train.micro_batch': 2, 'train.steps': 8, 'checkpoint.every': 4 };
    const original = tmp();
    const go = async (dir: string, procs: number, sets: Record<string, number>, more: string[] = []) => {
      const r = launch([
        '--nproc-per-node',
        String(procs),
        '--master-port',
        String(await freePort()),
        ...more,
        ...tiny('bert', dir, { ...base, ...sets }),
      ]);
      expect(r.code, r.stderr).toBe(0);
    };
    await go(original, 4, { 'parallel.tensor': 2, 'train.grad_accum': 2 });
    const ckpt = stepDir(original, 4);
    const tail = (d: string) => stepLines(d).filter((l) => l.step > 4);
    const want = tail(original);
    expect(want.length).toBe(4);

    const tp4 = tmp();
    await go(tp4, 4, { 'parallel.tensor': 4, 'train.grad_accum': 4 }, ['--resume', ckpt]);
    expectClose(tail(tp4), want);
    const dp4 = tmp();
    await go(dp4, 4, { 'parallel.tensor': 1, 'train.grad_accum': 1 }, ['--resume', ckpt]);
    expectClose(tail(dp4), want);
    const alone = tmp();
    trainAlone([...tiny('bert', alone, { ...base, 'train.grad_accum': 4 }), '--resume', ckpt]);
    expectClose(tail(alone), want);

    // Hugging Face export of the sharded checkpoint, imported again: a TP=2 job and a single
    // process start from it with the same losses.
    const hf = path.join(tmp(), 'hf');
    const imported = path.join(tmp(), 'checkpoints');
    for (const args of [
      ['export', '--checkpoint', ckpt, '--format', 'hf', '--out', hf],
      ['import', '--from', hf, '--out', imported],
    ]) {
      const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8' });
      expect(r.status, r.stderr).toBe(0);
    }
    const fromHf = { ...base, 'train.steps': 3, 'checkpoint.every': 0 };
    const tp2 = tmp();
    const r = launch([
      '--nproc-per-node',
      '2',
      '--master-port',
      String(await freePort()),
      '--resume',
      imported,
      ...tiny('bert', tp2, { ...fromHf, 'parallel.tensor': 2 }),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const single = tmp();
    trainAlone([...tiny('bert', single, fromHf), '--resume', imported]);
    expectClose(stepLines(tp2), stepLines(single));

    // fill-mask reads the sharded checkpoint whole.
    const fill = spawnSync(
      process.execPath,
      [bin, 'fill-mask', '--checkpoint', ckpt, '--json', 'the [MASK] of the sea'],
      {
        cwd: root,
        encoding: 'utf8',
      },
    );
    expect(fill.status, fill.stderr).toBe(0);
    expect(
      (JSON.parse(fill.stdout) as { masks: Array<{ candidates: unknown[] }> }).masks[0].candidates.length,
    ).toBeGreaterThan(0);

    // A checkpoint of another model fails the job at once: a restart would only repeat it.
    const other = tmp();
    const bad = launch([
      '--nproc-per-node',
      '2',
      '--master-port',
      String(await freePort()),
      '--max-restarts',
      '2',
      '--resume',
      ckpt,
      ...tiny('bert', other, { ...base, 'model.hidden': 48, 'model.ffn': 96 }),
    ]);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('ERR_CHECKPOINT_MISMATCH');
    expect(bad.stdout + bad.stderr).not.toMatch(/restarting the job/);
  });
});

describe('paratrain train alone', () => {
  it('SIGTERM saves after the current step and exits 0; --resume auto skips a corrupt newest checkpoint', async () => {
    const dir = tmp();
    const sets = { 'model.dropout': 0.1, 'train.steps': 400, 'checkpoint.every': 2 };
    const job = startLauncher(['train', ...tiny('gpt', dir, sets)], {}, bin);
    await waitFor('step 4', () => lastStep(dir) >= 4, 120_000);
    process.kill(job.proc.pid!, 'SIGTERM');
    const r = await job.exited;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/stopped early/);
    const committed = (await listCheckpoints(path.join(dir, 'checkpoints'))).filter((c) => c.committed);
    const newest = committed.at(-1)!;
    expect(newest.step).toBe(lastStep(dir));
    expect(newest.step).toBeLessThan(400);

    // Flip one byte in the middle of one of the newest checkpoint's shards.
    const shard = fs.readdirSync(newest.dir).find((f) => f.startsWith('model-'))!;
    const file = path.join(newest.dir, shard);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length >> 1] ^= 0x40;
    fs.writeFileSync(file, bytes);
    const resumed = spawnSync(
      process.execPath,
      [bin, 'train', ...tiny('gpt', dir, { ...sets, 'train.steps': newest.step + 2 }), '--resume', 'auto'],
      { cwd: root, encoding: 'utf8' },
    );
    expect(resumed.status, resumed.stderr).toBe(0);
    const log = fs.readFileSync(path.join(dir, 'log.jsonl'), 'utf8');
    expect(log).toContain(`skipping checkpoint ${newest.dir}`);
    expect(log).toContain(shard);
    expect(log).toMatch(new RegExp(`resumed from .*${path.basename(committed.at(-2)!.dir)}`));
  });
});
