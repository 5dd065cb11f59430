// Distributed training end to end: `paratrain launch` with real worker processes over real
// sockets, checked against the single-process run (`paratrain train`) on the same global batch.
// Megatron's test: per-step loss and grad norm equal within 1e-5 relative with dropout off; with
// dropout on, reruns are bitwise identical.
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { bin, freePort, root, sharedKeyFile } from './launch-harness';
import {
  checkpointTensors,
  evalLoss,
  expectSameState,
  expectClose,
  launch,
  runningWorkers,
  startLongJob,
  STEPS,
  stepLines,
  tiny,
  tmp,
  trainAlone,
  workerWithRank,
} from './train-harness';

describe.each(['bert', 'gpt'] as const)('%s: every layout trains like the single process', (arch) => {
  // The single-process reference for a layout with DP replicas is the same global batch as
  // DP micro-batches of grad accumulation (each replica's share is one micro-batch).
  const references = new Map<number, string>();
  const reference = (dp: number) => {
    if (!references.has(dp)) {
      const dir = tmp();
      trainAlone(tiny(arch, dir, { 'train.grad_accum': dp, 'train.eval_every': STEPS }));
      references.set(dp, dir);
    }
    return references.get(dp)!;
  };

  it.each([
    { tp: 2, dp: 1 },
    { tp: 1, dp: 2 },
    { tp: 2, dp: 2 },
    { tp: 4, dp: 1 },
  ])('TP=$tp × DP=$dp: 20 steps of loss and grad norm within 1e-5, same eval loss and weights', async ({ tp, dp }) => {
    const want = reference(dp);
    const dir = tmp();
    const port = await freePort();
    const r = launch([
      '--nproc-per-node',
      String(tp * dp),
      '--master-port',
      String(port),
      ...tiny(arch, dir, { 'parallel.tensor': tp, 'train.eval_every': STEPS, 'parallel.bucket_mb': 0.01 }),
    ]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expectClose(stepLines(dir), stepLines(want));
    const e1 = evalLoss(dir)!,
      e2 = evalLoss(want)!;
    expect(Math.abs(e1 - e2) / e2).toBeLessThan(1e-5);
    // The sharded checkpoint, assembled, holds the reference's weights (within float reassociation).
    const ckpt = (d: string) => path.join(d, 'checkpoints', `step-${String(STEPS).padStart(7, '0')}`);
    const [a, b] = [await checkpointTensors(ckpt(dir)), await checkpointTensors(ckpt(want))];
    expect([...a.keys()].sort()).toEqual([...b.keys()].sort());
    for (const [name, t] of a) {
      if (name.startsWith('exp_avg')) continue; // second moments amplify float differences
      const u = b.get(name)!;
      let worst = 0;
      for (let i = 0; i < t.length; i++) worst = Math.max(worst, Math.abs(t[i] - u[i]));
      expect(worst, name).toBeLessThan(1e-4);
    }
  });
});

describe.each(['roberta', 'albert', 'electra'] as const)('%s: TP=2 × DP=2 trains like the single process', (arch) => {
  it('20 steps of loss and grad norm within 1e-5, same eval loss and weights; a resume from step 10 is bitwise', async () => {
    const want = tmp();
    trainAlone(tiny(arch, want, { 'train.grad_accum': 2, 'train.eval_every': STEPS }));
    const dir = tmp();
    const layout = ['--nproc-per-node', '4', '--master-port'];
    const sets = {
      'parallel.tensor': 2,
      'train.eval_every': STEPS,
      'parallel.bucket_mb': 0.01,
      'checkpoint.every': 10,
    };
    let r = launch([...layout, String(await freePort()), ...tiny(arch, dir, sets)]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    const got = stepLines(dir);
    expectClose(got, stepLines(want));
    // Every named loss, not only their weighted sum.
    const named = (d: string) => stepLines(d).map((l) => (l as unknown as { losses: Record<string, number> }).losses);
    const [a, b] = [named(dir), named(want)];
    for (let i = 0; i < b.length; i++)
      for (const [name, v] of Object.entries(b[i]))
        expect(Math.abs(a[i][name] - v) / Math.abs(v), `${name} at step ${i + 1}`).toBeLessThan(1e-5);
    expect(Math.abs(evalLoss(dir)! - evalLoss(want)!) / evalLoss(want)!).toBeLessThan(1e-5);
    const ckpt = (d: string, step: number) => path.join(d, 'checkpoints', `step-${String(step).padStart(7, '0')}`);
    const [x, y] = [await checkpointTensors(ckpt(dir, STEPS)), await checkpointTensors(ckpt(want, STEPS))];
    expect([...x.keys()].sort()).toEqual([...y.keys()].sort());
    for (const [name, t] of x) {
      if (name.startsWith('exp_avg')) continue; // second moments amplify float differences
      const u = y.get(name)!;
      let worst = 0;
      for (let i = 0; i < t.length; i++) worst = Math.max(worst, Math.abs(t[i] - u[i]));
      expect(worst, name).toBeLessThan(1e-4);
    }
    // Resume the same layout from step 10: steps 11..20 and the final state are bitwise the same.
    const resumed = tmp();
    r = launch([...layout, String(await freePort()), ...tiny(arch, resumed, sets), '--resume', ckpt(dir, 10)]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(stepLines(resumed).map((l) => [l.step, l.loss, l.grad_norm])).toEqual(
      got.slice(10).map((l) => [l.step, l.loss, l.grad_norm]),
    );
    await expectSameState(ckpt(resumed, STEPS), ckpt(dir, STEPS));
    // Resharded: the TP=2 × DP=2 checkpoint continues in one process (the same global batch).
    const single = tmp();
    trainAlone([
      ...tiny(arch, single, { 'train.grad_accum': 2, 'train.eval_every': STEPS }),
      '--resume',
      ckpt(dir, 10),
    ]);
    expectClose(stepLines(single), got.slice(10));
  });
});

describe('determinism and failure', () => {
  it('with dropout on, two TP=2 × DP=2 runs are bitwise identical', async () => {
    const run = async () => {
      const dir = tmp();
      const r = launch([
        '--nproc-per-node',
        '4',
        '--master-port',
        String(await freePort()),
        ...tiny('bert', dir, { 'parallel.tensor': 2, 'model.dropout': 0.1, 'train.steps': 8 }),
      ]);
      expect(r.code, r.stderr).toBe(0);
      return { lines: stepLines(dir), dir };
    };
    const a = await run(),
      b = await run();
    expect(a.lines.map((l) => [l.loss, l.grad_norm])).toEqual(b.lines.map((l) => [l.loss, l.grad_norm]));
    const dir = (d: string) => path.join(d, 'checkpoints', 'step-0000008');
    await expectSameState(dir(a.dir), dir(b.dir));
  });

  it('two nodes on loopback (two launchers) train together like one process', async () => {
    const want = (() => {
      const dir = tmp();
      trainAlone(tiny('gpt', dir, { 'train.grad_accum': 2, 'train.steps': 6 }));
      return stepLines(dir);
    })();
    const dir = tmp();
    const port = await freePort();
    const args = (nodeRank: number) => [
      bin,
      'launch',
      '--nnodes',
      '2',
      '--node-rank',
      String(nodeRank),
      '--nproc-per-node',
      '2',
      '--master-port',
      String(port),
      // Over TCP, so the rings between the nodes are CURVE-authenticated with this key.
      '--auth-key-file',
      sharedKeyFile,
      ...tiny('gpt', dir, { 'parallel.tensor': 2, 'train.steps': 6 }),
    ];
    const exits = [0, 1].map(
      (n) =>
        new Promise<number | null>((resolve) => {
          const child = spawn(process.execPath, args(n), { cwd: root, stdio: ['ignore', 'ignore', 'pipe'] });
          child.on('exit', (code) => resolve(code));
        }),
    );
    expect(await Promise.all(exits)).toEqual([0, 0]);
    expectClose(stepLines(dir), want);
  });

  it('a stalled worker (SIGSTOP) makes its peers time out in a collective: the job stops with that cause', async () => {
    const dir = tmp();
    const job = await startLongJob(dir, ['--heartbeat-timeout', '60'], { 'parallel.comm_timeout_s': 2 });
    const workers = await runningWorkers(job.proc.pid!, dir, 2);
    const rank1 = workerWithRank(workers, 1);
    const stoppedAt = Date.now();
    process.kill(rank1, 'SIGSTOP');
    const r = await job.exited;
    // Well before the 60 s heartbeat timeout: the 2 s collective timeout fired.
    expect(Date.now() - stoppedAt).toBeLessThan(30_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('ERR_COLLECTIVE_TIMEOUT');
    for (const pid of workers) expect(() => process.kill(pid, 0)).toThrow();
  });

  it('kill -9 of one worker: every process exits, the launcher fails and names the rank and signal', async () => {
    const dir = tmp();
    const job = await startLongJob(dir, ['--heartbeat-interval', '0.5', '--heartbeat-timeout', '5']);
    const workers = await runningWorkers(job.proc.pid!, dir, 2);
    const rank1 = workerWithRank(workers, 1);
    const killedAt = Date.now();
    process.kill(rank1, 'SIGKILL');
    const r = await job.exited;
    expect(Date.now() - killedAt).toBeLessThan(15_000);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/rank 1/);
    expect(r.stderr).toContain('SIGKILL');
    for (const pid of workers) expect(() => process.kill(pid, 0)).toThrow();
  });
});
