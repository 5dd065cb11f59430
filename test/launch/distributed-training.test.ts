// Distributed training end to end: `paratrain launch` with real worker processes over real
// sockets, checked against the single-process run (`paratrain train`) on the same global batch.
// Megatron's test: per-step loss and grad norm equal within 1e-5 relative with dropout off; with
// dropout on, reruns are bitwise identical.
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { readSafetensors } from '../../src/checkpoint';
import { bin, freePort, root, startLauncher } from './launch-harness';

const cacheDir = path.join(os.tmpdir(), 'paratrain-test-cache');
const STEPS = 20;

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-dist-'));

/** A tiny model: 2 layers, hidden 32, 4 heads (TP up to 4), vocabulary 800 (padded under TP). */
function tiny(arch: 'bert' | 'gpt', dir: string, extra: Record<string, string | number> = {}): string[] {
  const sets: Record<string, string | number> = {
    'model.layers': 2,
    'model.hidden': 32,
    'model.heads': 4,
    'model.ffn': 64,
    'model.vocab_size': 800,
    'model.seq_len': 32,
    'model.dropout': 0,
    'train.micro_batch': 4,
    'train.grad_accum': 1,
    'train.steps': STEPS,
    'train.log_every': 1,
    'train.eval_every': 0,
    'train.eval_batches': 3,
    'train.threads': 1,
    'checkpoint.every': 0,
    'data.max_documents': 30,
    'data.cache_dir': cacheDir,
    'run.dir': dir,
    ...extra,
  };
  return [
    '--config',
    arch === 'bert' ? 'bert-mini' : 'gpt-mini',
    ...Object.entries(sets).flatMap(([k, v]) => ['--set', `${k}=${v}`]),
  ];
}

interface StepLine {
  step: number;
  loss: number;
  grad_norm: number;
}

function stepLines(runDir: string): StepLine[] {
  return fs
    .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as StepLine & { event?: string })
    .filter((r) => typeof r.step === 'number' && typeof r.grad_norm === 'number');
}

function evalLoss(runDir: string): number | undefined {
  const evals = fs
    .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"event":"eval"'))
    .map((l) => JSON.parse(l) as { eval_loss: number });
  return evals.at(-1)?.eval_loss;
}

function trainAlone(args: string[]) {
  const r = spawnSync(process.execPath, [bin, 'train', ...args], { cwd: root, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}

function launch(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [bin, 'launch', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 240_000,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** A 2-rank TP=2 GPT job that would run for a very long time, started in the background. */
async function startLongJob(dir: string, flags: string[], sets: Record<string, string | number> = {}) {
  const args = ['launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), ...flags];
  return startLauncher(
    [...args, ...tiny('gpt', dir, { 'parallel.tensor': 2, 'train.steps': 100000, ...sets })],
    {},
    bin,
  );
}

/** Waits until rank 0 has logged two steps, then returns the launcher's worker pids. */
async function runningWorkers(launcherPid: number, runDir: string, count: number): Promise<number[]> {
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 300));
    if (!fs.existsSync(path.join(runDir, 'log.jsonl')) || stepLines(runDir).length < 2) continue;
    const pids = spawnSync('pgrep', ['-P', String(launcherPid)], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean)
      .map(Number);
    if (pids.length === count) return pids;
  }
  throw new Error('the job did not start training in time');
}

function workerWithRank(pids: number[], rank: number): number {
  const pid = pids.find((p) => fs.readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(`RANK=${rank}`));
  if (pid === undefined) throw new Error(`no worker with RANK=${rank}`);
  return pid;
}

function expectClose(got: StepLine[], want: StepLine[], tol = 1e-5) {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    expect(got[i].step).toBe(want[i].step);
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
    expect(rel(got[i].loss, want[i].loss), `loss at step ${want[i].step}`).toBeLessThan(tol);
    expect(rel(got[i].grad_norm, want[i].grad_norm), `grad norm at step ${want[i].step}`).toBeLessThan(tol);
  }
}

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
    // The checkpoint holds the whole model (gathered from the shards), close to the reference's.
    const ckpt = (d: string) =>
      path.join(d, 'checkpoints', `step-${String(STEPS).padStart(7, '0')}`, 'model-tp00-dp00.safetensors');
    const [a, b] = [await readSafetensors(ckpt(dir)), await readSafetensors(ckpt(want))];
    const bByName = new Map(b.tensors.map((t) => [t.name, t]));
    for (const t of a.tensors) {
      const u = bByName.get(t.name)!;
      expect(t.shape, t.name).toEqual(u.shape);
      let worst = 0;
      for (let i = 0; i < t.data.length; i++) worst = Math.max(worst, Math.abs(t.data[i] - u.data[i]));
      expect(worst, t.name).toBeLessThan(1e-4);
    }
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
    const file = (d: string) => path.join(d, 'checkpoints', 'step-0000008', 'model-tp00-dp00.safetensors');
    expect(fs.readFileSync(file(a.dir)).equals(fs.readFileSync(file(b.dir)))).toBe(true);
  });

  it('a TP=2 × DP=2 job resumes from its checkpoint bitwise; the checkpoint also resumes at TP=4 and alone', async () => {
    const sets = { 'parallel.tensor': 2, 'model.dropout': 0.1, 'train.steps': 8, 'checkpoint.every': 4 };
    const go = async (dir: string, extra: Record<string, string | number>, more: string[] = [], procs = 4) => {
      const r = launch([
        '--nproc-per-node',
        String(procs),
        '--master-port',
        String(await freePort()),
        ...more,
        ...tiny('bert', dir, { ...sets, ...extra }),
      ]);
      expect(r.code, r.stderr).toBe(0);
    };
    const whole = tmp();
    await go(whole, {});
    // Continue from the step-4 checkpoint in a fresh run directory.
    const ckpt = path.join(whole, 'checkpoints', 'step-0000004');
    const resumed = tmp();
    await go(resumed, {}, ['--resume', ckpt]);
    const tail = (d: string) => stepLines(d).filter((l) => l.step > 4);
    expect(tail(resumed).length).toBe(4);
    expect(tail(resumed).map((l) => [l.loss, l.grad_norm])).toEqual(tail(whole).map((l) => [l.loss, l.grad_norm]));
    // The checkpoint holds the whole model: another layout continues it (dropout off so that the
    // per-rank attention streams do not matter) with the same losses.
    const tp4 = tmp();
    await go(tp4, { 'model.dropout': 0, 'parallel.tensor': 4, 'train.grad_accum': 1 }, ['--resume', ckpt]);
    const alone = tmp();
    trainAlone([...tiny('bert', alone, { ...sets, 'model.dropout': 0, 'parallel.tensor': 1 }), '--resume', ckpt]);
    expectClose(tail(tp4), tail(alone));
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
