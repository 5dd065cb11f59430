// Recovery and preemption with real launchers, real sockets and the fixture worker: the gang
// restarts after a failure (--max-restarts), on one node and across two; restarts run out; a
// graceful stop on SIGTERM/SIGUSR1 (from node 0's launcher or another's) ends the job with exit 0
// and status.json; SIGUSR2 asks for a checkpoint and training goes on; a stop that does not
// complete is bounded by --stop-timeout; a broken checkpoint report fails the job. (SIGINT, an
// immediate abort, is in launch.test.ts.)
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import type { RootCauseReport } from '../../src/coordinator/failure';
import type { LaunchStatus } from '../../src/launch/status';
import {
  freePort,
  isAlive,
  jobArgs,
  startLauncher,
  startTwoNodes,
  tmp,
  waitFor,
  workerRecords,
  type WorkerRecord,
} from './launch-harness';

const readJson = <T>(file: string) => JSON.parse(fs.readFileSync(file, 'utf8')) as T;
const status = (runDir: string) => readJson<LaunchStatus>(path.join(runDir, 'status.json'));

/** What each fixture worker of `round` wrote (out/round-<r>/<rank>.json). */
function roundRecords(outDir: string, round: number): Map<number, WorkerRecord> {
  const dir = path.join(outDir, `round-${round}`);
  return fs.existsSync(dir) ? workerRecords(dir) : new Map();
}

/** The save requests a fixture worker received. */
function saves(outDir: string, rank: number): Array<{ stop: boolean; reason: string; step: number }> {
  const file = path.join(outDir, `${rank}.saves.json`);
  return fs.existsSync(file) ? readJson(file) : [];
}

const stepOf = (runDir: string, rank: number) => {
  const log = fs.readFileSync(path.join(runDir, 'logs', `rank-0000${rank}.log`), 'utf8');
  return Math.max(0, ...[...log.matchAll(/step (\d+)/g)].map((m) => Number(m[1])));
};

describe('gang restart (--max-restarts)', () => {
  it('a worker that fails in round 0 restarts the whole job; round 1 finishes and the launcher exits 0', async () => {
    const dir = tmp(),
      out = tmp();
    const l = startLauncher(jobArgs(dir, await freePort(), ['--nproc-per-node', '2', '--max-restarts', '2']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '5',
      FIXTURE_EXIT_RANK: '1',
      FIXTURE_EXIT_ROUND: '0',
    });
    const r = await l.exited;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /restarting the job \(restart 1 of 2\) after \[ERR_WORKER_EXITED\] rank 1 \(host [^,]+, pid \d+\) exited with code 1; resuming from step 0/,
    );

    const [round0, round1] = [roundRecords(out, 0), roundRecords(out, 1)];
    expect([...round0.keys()].sort()).toEqual([0, 1]);
    expect([...round1.keys()].sort()).toEqual([0, 1]);
    for (const rec of round1.values()) {
      expect(rec.env).toMatchObject({
        PARATRAIN_ROUND: '1',
        PARATRAIN_RESTART_COUNT: '1',
        TORCHELASTIC_RESTART_COUNT: '1',
      });
      expect(rec.env.PARATRAIN_RESUME).toBeUndefined();
      expect(rec.assignment).toMatchObject({ round: 1, restartCount: 1, resumeDir: '' });
      expect(rec.assignment.jobId).toBe(round0.get(0)!.assignment.jobId);
    }
    expect(round0.get(0)!.env).toMatchObject({ PARATRAIN_RESTART_COUNT: '0', TORCHELASTIC_RESTART_COUNT: '0' });
    // Every worker of round 0 is gone; round 1's finished.
    for (const rec of [...round0.values(), ...round1.values()]) expect(isAlive(rec.pid)).toBe(false);
    expect(fs.readFileSync(path.join(dir, 'logs', 'rank-00001.log'), 'utf8')).toMatch(
      /exiting with code 1 in round 0[\s\S]*round 1 starting[\s\S]*rank 1 step 5/,
    );

    // The failed round is on record; the job is not a failure.
    const round0Report = readJson<RootCauseReport>(path.join(dir, 'failures', 'round-0.json'));
    expect(round0Report).toMatchObject({
      round: 0,
      restarts: 0,
      rootCause: { code: 'ERR_WORKER_EXITED', rank: 1, exitCode: 1 },
    });
    expect(round0Report.rootCause.lastLines).toContain('rank 1: exiting with code 1 in round 0');
    expect(fs.existsSync(path.join(dir, 'failure.json'))).toBe(false);
    expect(status(dir)).toMatchObject({ state: 'finished', restarts: 1, step: 5, checkpoint: null });
  });

  it('when restarts run out the job fails with the last root cause, "after 1 restart"', async () => {
    const dir = tmp();
    const l = startLauncher(jobArgs(dir, await freePort(), ['--nproc-per-node', '2', '--max-restarts', '1']), {
      FIXTURE_STEPS: '5',
      FIXTURE_EXIT_RANK: '0',
    });
    const r = await l.exited;
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/restarting the job \(restart 1 of 1\) after \[ERR_WORKER_EXITED\] rank 0/);
    expect(r.stderr).toMatch(
      /\[ERR_WORKER_EXITED\]: job \w+ \(round 1\) failed after 1 restart\. Root cause \[ERR_WORKER_EXITED\]: rank 0 \(host [^,]+, pid \d+\) exited with code 1/,
    );
    const report = readJson<RootCauseReport>(path.join(dir, 'failure.json'));
    expect(report).toMatchObject({ round: 1, restarts: 1, rootCause: { code: 'ERR_WORKER_EXITED', rank: 0 } });
    expect(report.rootCause.lastLines).toContain('rank 0: exiting with code 1 in round 1');
    expect(readJson<RootCauseReport>(path.join(dir, 'failures', 'round-0.json')).rootCause.lastLines).toContain(
      'rank 0: exiting with code 1 in round 0',
    );
    expect(fs.existsSync(path.join(dir, 'failures', 'round-1.json'))).toBe(true);
    expect(status(dir)).toMatchObject({ state: 'failed', restarts: 1, code: 'ERR_WORKER_EXITED' });
  });

  it('failures a restart cannot mend are not retried (a config mismatch)', async () => {
    const dir = tmp();
    const r = await startLauncher(jobArgs(dir, await freePort(), ['--nproc-per-node', '2', '--max-restarts', '3']), {
      FIXTURE_OTHER_CONFIG_RANK: '1',
    }).exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[ERR_CONFIG_MISMATCH]');
    expect(r.stdout).not.toMatch(/restarting the job/);
    expect(readJson<RootCauseReport>(path.join(dir, 'failure.json'))).toMatchObject({ round: 0, restarts: 0 });
  });

  it('two nodes: a worker on node 1 fails, both nodes restart together and finish', async () => {
    const dir = tmp(),
      out = tmp();
    const env = { FIXTURE_OUT_DIR: out, FIXTURE_STEPS: '5', FIXTURE_EXIT_RANK: '3', FIXTURE_EXIT_ROUND: '0' };
    const [n0, n1] = await startTwoNodes(dir, env, 2, ['--max-restarts', '1']);
    const [r0, r1] = await Promise.all([n0.exited, n1.exited]);
    expect(r0.code, r0.stderr).toBe(0);
    expect(r1.code, r1.stderr).toBe(0);
    expect(r0.stdout).toMatch(/restarting the job \(restart 1 of 1\) after \[ERR_WORKER_EXITED\] rank 3/);
    expect(r1.stdout).toMatch(/node 1: stopping its workers for round 1 after \[ERR_WORKER_EXITED\] rank 3/);
    const [round0, round1] = [roundRecords(out, 0), roundRecords(out, 1)];
    expect([...round1.keys()].sort()).toEqual([0, 1, 2, 3]);
    for (const rec of round1.values()) expect(rec.env.PARATRAIN_RESTART_COUNT).toBe('1');
    for (const rec of [...round0.values(), ...round1.values()]) expect(isAlive(rec.pid)).toBe(false);
    for (const r of [0, 1, 2, 3])
      expect(fs.readFileSync(path.join(dir, 'logs', `rank-0000${r}.log`), 'utf8')).toContain(`rank ${r} step 5`);
    expect(status(dir)).toMatchObject({ state: 'finished', restarts: 1 });
  });
});

describe('save and stop requests (preemption)', () => {
  it('SIGUSR1: every worker is asked to save and stop; the launcher exits 0 and status.json says stopped', async () => {
    const dir = tmp(),
      out = tmp();
    const l = startLauncher(jobArgs(dir, await freePort(), ['--nproc-per-node', '2', '--max-restarts', '2']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '100000',
    });
    await waitFor('a few steps', () => workerRecords(out).size === 2 && stepOf(dir, 1) >= 3);
    l.proc.kill('SIGUSR1');
    const r = await l.exited;
    expect(r.code, r.stderr).toBe(0);
    const s = status(dir);
    expect(s).toMatchObject({ state: 'stopped', signal: 'SIGUSR1', restarts: 0, checkpoint: null });
    for (const rank of [0, 1]) {
      expect(saves(out, rank)).toEqual([
        expect.objectContaining({ stop: true, reason: 'the launcher of node 0 received SIGUSR1' }),
      ]);
      expect(fs.readFileSync(path.join(dir, 'logs', `rank-0000${rank}.log`), 'utf8')).toContain(
        `rank ${rank} stops at step ${s.step}`,
      );
    }
    // The fixture saves nothing (no ShardSaved): the line says so.
    expect(r.stdout).toContain(
      `stopped at step ${s.step} on SIGUSR1 without a checkpoint of that step (newest: none); continue with \`--resume auto\``,
    );
    for (const rec of workerRecords(out).values()) expect(isAlive(rec.pid)).toBe(false);
    expect(fs.existsSync(path.join(dir, 'failure.json'))).toBe(false);
  });

  it('SIGUSR1 to the launcher of node 1 reaches the coordinator; both launchers exit 0', async () => {
    const dir = tmp(),
      out = tmp();
    const env = { FIXTURE_OUT_DIR: out, FIXTURE_STEPS: '100000' };
    const [n0, n1] = await startTwoNodes(dir, env, 1);
    await waitFor('a few steps', () => workerRecords(out).size === 2 && stepOf(dir, 1) >= 3);
    n1.proc.kill('SIGUSR1');
    const [r0, r1] = await Promise.all([n0.exited, n1.exited]);
    expect(r0.code, r0.stderr).toBe(0);
    expect(r1.code, r1.stderr).toBe(0);
    for (const rank of [0, 1])
      expect(saves(out, rank)).toEqual([
        expect.objectContaining({ stop: true, reason: 'the launcher of node 1 received SIGUSR1' }),
      ]);
    const { step } = status(dir);
    for (const r of [r0, r1]) expect(r.stdout).toContain(`stopped at step ${step} on SIGUSR1 (node 1)`);
  });

  it('SIGUSR2: every worker is asked for a checkpoint and training goes on to the end', async () => {
    const dir = tmp(),
      out = tmp();
    const l = startLauncher(jobArgs(dir, await freePort(), ['--nproc-per-node', '2']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '80',
      FIXTURE_STEP_MS: '25',
    });
    await waitFor('a few steps', () => workerRecords(out).size === 2 && stepOf(dir, 1) >= 3);
    l.proc.kill('SIGUSR2');
    const r = await l.exited;
    expect(r.code, r.stderr).toBe(0);
    for (const rank of [0, 1]) expect(saves(out, rank)).toEqual([expect.objectContaining({ stop: false })]);
    expect(status(dir)).toMatchObject({ state: 'finished', step: 80 });
  });

  it('a stop that does not complete within --stop-timeout aborts the job (ERR_STOP_TIMEOUT)', async () => {
    const dir = tmp(),
      out = tmp();
    const l = startLauncher(jobArgs(dir, await freePort(), ['--nproc-per-node', '2', '--stop-timeout', '1']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '100000',
      FIXTURE_ON_STOP: 'ignore',
    });
    await waitFor('a few steps', () => workerRecords(out).size === 2 && stepOf(dir, 1) >= 3);
    const signalledAt = Date.now();
    l.proc.kill('SIGTERM');
    const r = await l.exited;
    // The stop timeout, a heartbeat interval to notice, and the workers' exits.
    expect(Date.now() - signalledAt).toBeLessThan(4000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /Root cause \[ERR_STOP_TIMEOUT\]: the job did not stop within --stop-timeout 1\.0 s after node 0's launcher received SIGTERM: rank 0 \(phase '[\w-]+'\), rank 1 \(phase '[\w-]+'\) had not saved and finished/,
    );
    expect(status(dir)).toMatchObject({ state: 'failed', code: 'ERR_STOP_TIMEOUT' });
    for (const rec of workerRecords(out).values()) expect(isAlive(rec.pid)).toBe(false);
  });

  it('a stop while the job restarts calls the restart off; a worker that ignores SIGTERM is killed', async () => {
    const dir = tmp(),
      out = tmp();
    const l = startLauncher(jobArgs(dir, await freePort(), ['--nproc-per-node', '2', '--max-restarts', '2']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '100000',
      FIXTURE_EXIT_RANK: '1',
      FIXTURE_LINGER_RANK: '0',
    });
    // Rank 0 holds the restart up for the agent's 3 s grace before SIGKILL.
    await waitFor('the restart', () => l.output().stdout.includes('stopping its workers for round 1'));
    l.proc.kill('SIGUSR1');
    const r = await l.exited;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/received SIGUSR1: the restart is called off/);
    expect(r.stdout).toContain('stopped on SIGUSR1 while no worker was training (nothing to save)');
    expect(status(dir)).toMatchObject({ state: 'stopped', signal: 'SIGUSR1', step: null, restarts: 0 });
    expect(roundRecords(out, 1).size).toBe(0);
    const round0 = readJson<RootCauseReport>(path.join(dir, 'failures', 'round-0.json'));
    expect(round0.rootCause).toMatchObject({ rank: 1, exitCode: 1 });
    expect(round0.consequences).toContainEqual(expect.objectContaining({ rank: 0, signal: 'SIGKILL' }));
    expect(fs.existsSync(path.join(dir, 'failure.json'))).toBe(false);
  });

  it('SIGTERM before every worker runs ends the job cleanly: nothing to save, exit 0', async () => {
    const dir = tmp();
    const port = await freePort();
    // Node 1 never comes: the job waits at the rendezvous.
    const l = startLauncher(jobArgs(dir, port, ['--nnodes', '2', '--node-rank', '0']));
    await waitFor('the coordinator', () => fs.existsSync(path.join(dir, 'status.json')));
    await waitFor('node 0 to join', () => l.output().stdout.includes('node 0 joined'));
    l.proc.kill('SIGTERM');
    const r = await l.exited;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('stopped on SIGTERM while no worker was training (nothing to save)');
    expect(status(dir)).toMatchObject({ state: 'stopped', signal: 'SIGTERM', step: null });
  });

  it('a checkpoint report that cannot be read fails the job, naming the rank', async () => {
    const dir = tmp(),
      out = tmp();
    const l = startLauncher(jobArgs(dir, await freePort(), ['--nproc-per-node', '2', '--max-restarts', '2']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '100000',
      FIXTURE_SAVE: 'garbage',
    });
    await waitFor('a few steps', () => workerRecords(out).size === 2 && stepOf(dir, 1) >= 3);
    l.proc.kill('SIGUSR2');
    const r = await l.exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /Root cause \[ERR_CHECKPOINT_REPORT\]: rank \d \(host [^,]+, pid \d+\) sent a checkpoint report that cannot be read/,
    );
    // A broken report is a bug, not bad luck: no restart.
    expect(r.stdout).not.toMatch(/restarting the job/);
  });

  // The fixture writes real shards, the coordinator commits them.
  it('SIGUSR1 with real shards: the step is committed, every rank learns its directory, status.json names it', async () => {
    const dir = tmp(),
      out = tmp();
    const l = startLauncher(jobArgs(dir, await freePort(), ['--nproc-per-node', '2']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '100000',
      FIXTURE_SAVE: 'shard',
    });
    await waitFor('a few steps', () => workerRecords(out).size === 2 && stepOf(dir, 1) >= 3);
    l.proc.kill('SIGUSR1');
    const r = await l.exited;
    expect(r.code, r.stderr).toBe(0);
    const s = status(dir);
    const ckpt = path.join(dir, 'checkpoints', `step-${String(s.step).padStart(7, '0')}`);
    expect(s).toMatchObject({ state: 'stopped', checkpoint: ckpt });
    expect(fs.existsSync(path.join(ckpt, 'manifest.pb'))).toBe(true);
    for (const rank of [0, 1])
      expect(readJson(path.join(out, `${rank}.committed.json`))).toEqual({ step: s.step, dir: ckpt });
    expect(r.stdout).toMatch(
      new RegExp(
        `checkpoint step ${s.step} committed: ${ckpt} \\([\\d.]+ MB from 2 ranks, slowest rank \\d+ ms: rank \\d\\)`,
      ),
    );
    expect(r.stdout).toContain(
      `stopped at step ${s.step} on SIGUSR1: checkpoint ${ckpt} committed; continue with \`--resume auto\``,
    );

    // The next launch resumes from it, and so does a restart of that launch.
    const out2 = tmp();
    const again = await startLauncher(
      jobArgs(dir, await freePort(), ['--nproc-per-node', '2', '--resume', 'auto', '--max-restarts', '1']),
      { FIXTURE_OUT_DIR: out2, FIXTURE_STEPS: '5', FIXTURE_EXIT_RANK: '1', FIXTURE_EXIT_ROUND: '0' },
    ).exited;
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`resuming from ${ckpt}`);
    for (const round of [0, 1])
      for (const rec of roundRecords(out2, round).values()) expect(rec.assignment.resumeDir).toBe(ckpt);
  });
});
