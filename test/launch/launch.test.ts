// `paratrain launch` with real processes and real sockets: two nodes simulated on loopback, a worker
// killed mid-run, a hung worker, a worker's own failure report, an interrupted launcher, an
// unreachable master, and layouts refused before anything starts. The workers are the fixture
// worker (the real ControlClient, no training) so each case takes seconds.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import type { RootCauseReport } from '../../src/coordinator/failure';
import {
  freePort,
  isAlive,
  jobArgs,
  paratrain,
  startLauncher,
  startTwoNodes,
  tmp,
  waitFor,
  workerRecords,
} from './launch-harness';

function stepLines(runDir: string) {
  return fs
    .readFileSync(path.join(runDir, 'logs', 'launcher-node-0.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"dpRanks"'))
    .map((l) => JSON.parse(l) as { step: number; loss: number; tokensPerS: number; dpRanks: number });
}

const readReport = (runDir: string) =>
  JSON.parse(fs.readFileSync(path.join(runDir, 'failure.json'), 'utf8')) as RootCauseReport;

describe('paratrain launch', () => {
  it('runs a TP2 × DP2 job on two nodes (two launchers on loopback)', async () => {
    const dir = tmp(),
      out = tmp();
    const port = await freePort();
    const env = { FIXTURE_OUT_DIR: out, FIXTURE_STEPS: '4' };
    const [n0, n1] = await startTwoNodes(dir, env, 2, ['--set', 'parallel.tensor=2'], port);
    const [r0, r1] = await Promise.all([n0.exited, n1.exited]);
    expect(r0.code, r0.stderr).toBe(0);
    expect(r1.code, r1.stderr).toBe(0);

    const records = workerRecords(out);
    expect([...records.keys()].sort()).toEqual([0, 1, 2, 3]);
    const a = (rank: number) => records.get(rank)!.assignment;
    expect([0, 1, 2, 3].map((r) => [a(r).tpRank, a(r).dpRank])).toEqual([
      [0, 0],
      [1, 0],
      [0, 1],
      [1, 1],
    ]);
    expect(a(2).tpPeers.map((p) => p.rank)).toEqual([2, 3]);
    expect(a(2).tpPeers.map((p) => p.nodeRank)).toEqual([1, 1]);
    expect(a(1).dpPeers.map((p) => p.rank)).toEqual([1, 3]);
    expect(a(3).dpPeers[1].endpoints.dp.tcp).toBe('tcp://127.0.0.1:40003');
    expect(new Set([0, 1, 2, 3].map((r) => a(r).jobId)).size).toBe(1);

    // torchrun's environment, and the job's.
    const env3 = records.get(3)!.env;
    expect(env3).toMatchObject({
      RANK: '3',
      LOCAL_RANK: '1',
      WORLD_SIZE: '4',
      LOCAL_WORLD_SIZE: '2',
      NODE_RANK: '1',
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(port),
      PARATRAIN_JOB_ID: a(3).jobId,
      PARATRAIN_ROUND: '0',
      PARATRAIN_HOST_ADDR: '127.0.0.1',
      PARATRAIN_HEARTBEAT_INTERVAL_MS: '200',
      PARATRAIN_HEARTBEAT_TIMEOUT_MS: '3000',
      PARATRAIN_FIRST_STEP_TIMEOUT_MS: '300000',
      PARATRAIN_NUM_THREADS: '1',
    });
    // The per-job ipc directory is short enough for ipc:// paths, and removed at the end.
    expect(env3.PARATRAIN_IPC_DIR.length).toBeLessThan(40);
    expect(fs.existsSync(env3.PARATRAIN_IPC_DIR)).toBe(false);

    // Per-rank logs, the merged progress (both DP ranks in every step), no failure report.
    for (const r of [0, 1, 2, 3])
      expect(fs.readFileSync(path.join(dir, 'logs', `rank-0000${r}.log`), 'utf8')).toContain(`rank ${r} step 4`);
    const steps = stepLines(dir);
    expect(steps.map((s) => s.step)).toEqual([1, 2, 3, 4]);
    expect(steps.every((s) => s.dpRanks === 2 && s.tokensPerS === 2000)).toBe(true);
    expect(fs.existsSync(path.join(dir, 'failure.json'))).toBe(false);
  });

  it('a worker killed with SIGKILL mid-run stops every process of the job; the report names it', async () => {
    const dir = tmp(),
      out = tmp();
    const env = { FIXTURE_OUT_DIR: out, FIXTURE_STEPS: '100000', FIXTURE_STEP_MS: '20' };
    const [n0, n1] = await startTwoNodes(dir, env, 2);
    await waitFor('four workers', () => workerRecords(out).size === 4);
    await waitFor('a few steps', () =>
      fs.readFileSync(path.join(dir, 'logs', 'rank-00003.log'), 'utf8').includes('step 5'),
    );
    const pids = [...workerRecords(out).values()].map((r) => r.pid);
    const victim = workerRecords(out).get(3)!.pid;

    const killedAt = Date.now();
    process.kill(victim, 'SIGKILL');
    const [r0, r1] = await Promise.all([n0.exited, n1.exited]);
    // Well within the heartbeat timeout (3 s): the agent saw the exit and the coordinator aborted.
    expect(Date.now() - killedAt).toBeLessThan(3000);
    expect(r0.code).toBe(1);
    expect(r1.code).toBe(1);
    for (const pid of [...pids, n0.proc.pid!, n1.proc.pid!]) expect(isAlive(pid), `pid ${pid}`).toBe(false);

    expect(r0.stderr).toContain('[ERR_WORKER_EXITED]');
    expect(r0.stderr).toMatch(
      new RegExp(`Root cause \\[ERR_WORKER_EXITED\\]: rank 3 \\(host [^,]+, pid ${victim}\\) was killed by SIGKILL`),
    );
    expect(r0.stderr).toMatch(/\| rank 3 step \d+/);
    expect(r1.stderr).toMatch(/\[ERR_JOB_ABORTED\].*rank 3 .* was killed by SIGKILL/);
    const report = readReport(dir);
    expect(report.rootCause).toMatchObject({ rank: 3, pid: victim, signal: 'SIGKILL', nodeRank: 1 });
    expect(report.rootCause.lastLines!.at(-1)).toMatch(/^rank 3 step \d+$/);
    // The others died of the abort, and are listed after the root cause.
    expect(report.consequences.map((f) => f.rank).sort()).toEqual([0, 1, 2]);
  });

  it("a launcher killed with SIGKILL: the other node's launcher and every worker exit", async () => {
    for (const victimNode of [0, 1]) {
      const dir = tmp(),
        out = tmp();
      const env = { FIXTURE_OUT_DIR: out, FIXTURE_STEPS: '100000' };
      const launchers = await startTwoNodes(dir, env, 1);
      await waitFor('two workers', () => workerRecords(out).size === 2);
      const pids = [...workerRecords(out).values()].map((r) => r.pid);
      launchers[victimNode].proc.kill('SIGKILL');
      const survivor = await launchers[1 - victimNode].exited;
      expect(survivor.code).toBe(1);
      if (victimNode === 0)
        expect(survivor.stderr).toMatch(/\[ERR_COORDINATOR_LOST\]: no message from the coordinator/);
      else
        expect(survivor.stderr).toMatch(/Root cause \[ERR_HEARTBEAT_TIMEOUT\]: the launcher of node 1 .* sent nothing/);
      // The dead launcher's worker notices its launcher is gone within a heartbeat interval or two.
      await waitFor('every worker to exit', () => pids.every((p) => !isAlive(p)), 5000);
      // A launcher killed by SIGKILL cannot remove its ipc directory; the test does.
      for (const r of workerRecords(out).values()) fs.rmSync(r.env.PARATRAIN_IPC_DIR, { recursive: true, force: true });
    }
  });

  it('a hung worker is caught by the heartbeat timeout and killed', async () => {
    const dir = tmp(),
      out = tmp();
    const l = startLauncher(jobArgs(dir, await freePort(), ['--nproc-per-node', '2']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '100000',
      FIXTURE_HANG_RANK: '1',
    });
    const r = await l.exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /Root cause \[ERR_HEARTBEAT_TIMEOUT\]: rank 1 \(host [^)]+\) sent nothing for [\d.]+ s in phase 'train'/,
    );
    for (const rec of workerRecords(out).values()) expect(isAlive(rec.pid)).toBe(false);
    expect(readReport(dir).rootCause.lastLines).toContain('rank 1 hangs now');
  });

  it("a worker's own failure report is the root cause", async () => {
    const dir = tmp();
    const l = startLauncher(jobArgs(dir, await freePort(), ['--nproc-per-node', '2']), {
      FIXTURE_STEPS: '100000',
      FIXTURE_FAIL_RANK: '0',
    });
    const r = await l.exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /Root cause \[ERR_COLLECTIVE_TIMEOUT\]: rank 0 \(host [^)]+\) reported: all-reduce on the dp ring timed out/,
    );
    expect(readReport(dir).rootCause).toMatchObject({ code: 'ERR_COLLECTIVE_TIMEOUT', rank: 0 });
  });

  // SIGTERM is a graceful stop (recovery.test.ts); SIGINT aborts at once, and is never restarted.
  it('SIGINT to the launcher stops its workers at once and exits non-zero', async () => {
    const dir = tmp(),
      out = tmp();
    const l = startLauncher(jobArgs(dir, await freePort(), ['--nproc-per-node', '2', '--max-restarts', '2']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '100000',
    });
    await waitFor('two workers', () => workerRecords(out).size === 2);
    const signalledAt = Date.now();
    l.proc.kill('SIGINT');
    const r = await l.exited;
    expect(Date.now() - signalledAt).toBeLessThan(3000);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[ERR_INTERRUPTED\].*received SIGINT/);
    expect(r.stdout).not.toMatch(/restarting the job/);
    for (const rec of workerRecords(out).values()) expect(isAlive(rec.pid)).toBe(false);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'status.json'), 'utf8'))).toMatchObject({
      state: 'failed',
      code: 'ERR_INTERRUPTED',
    });
  });

  it('an unreachable master ends with ERR_MASTER_UNREACHABLE naming the address', async () => {
    const port = await freePort();
    const l = startLauncher(jobArgs(tmp(), port, ['--nnodes', '2', '--node-rank', '1', '--rendezvous-timeout', '1']));
    const r = await l.exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[ERR_MASTER_UNREACHABLE]');
    expect(r.stderr).toContain(`tcp://127.0.0.1:${port}`);
    expect(r.stderr).toMatch(/--master-addr\/--master-port/);
  });
});

describe('paratrain launch refuses impossible layouts before starting anything', () => {
  it('TP that does not divide the processes of a node, or the world', async () => {
    const dir = tmp();
    const port = await freePort();
    const r = paratrain(jobArgs(dir, port, ['--nproc-per-node', '3', '--set', 'parallel.tensor=2']));
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('[ERR_PARALLEL_LAYOUT]');
    expect(r.stderr).toMatch(/parallel\.tensor = 2 does not divide the world size 3/);
    expect(r.stderr).toMatch(/does not divide --nproc-per-node 3/);
    const across = paratrain(jobArgs(dir, port, ['--nnodes', '2', '--set', 'parallel.tensor=2']));
    expect(across.stderr).toMatch(/tensor-parallel group must stay inside one node/);
    // Nothing was started: no logs, no coordinator.
    expect(fs.existsSync(path.join(dir, 'logs'))).toBe(false);
  });

  it('the launch command is part of the CLI', () => {
    const r = paratrain(['launch', '--help']);
    expect(r.code).toBe(0);
    for (const flag of ['--nnodes', '--node-rank', '--nproc-per-node', '--master-addr', '--master-port', '--host-addr'])
      expect(r.stdout).toContain(flag);
  });
});
