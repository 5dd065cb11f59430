// train-harness.ts — helpers for tests that train for real through `paratrain train` and
// `paratrain launch`: a tiny model, the step lines of a run's log, and the job's worker processes.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { expect } from 'vitest';

import { loadCheckpoint } from '../../src/checkpoint';
import type { ModelFamily } from '../../src/config/schema';
import { bin, freePort, root, startLauncher } from './launch-harness';

export const cacheDir = path.join(os.tmpdir(), 'paratrain-test-cache');
export const STEPS = 20;

export const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-dist-'));

/** Per family, what a tiny model sets beyond the common sizes (ALBERT's and ELECTRA's widths). */
const TINY_FAMILY: Record<ModelFamily, Record<string, string | number>> = {
  bert: {},
  gpt: {},
  roberta: {},
  albert: { 'model.embedding_size': 16 },
  electra: { 'model.embedding_size': 16, 'model.generator.hidden_fraction': 0.5, 'model.generator.heads': 2 },
};

/**
 * A tiny model: 2 layers, hidden 32, 4 heads (TP up to 4; ELECTRA's generator 2), vocabulary 800
 * (padded under TP), from the family's preset.
 */
export function tiny(arch: ModelFamily, dir: string, extra: Record<string, string | number> = {}): string[] {
  const sets: Record<string, string | number> = {
    ...TINY_FAMILY[arch],
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
  return ['--config', `${arch}-mini`, ...Object.entries(sets).flatMap(([k, v]) => ['--set', `${k}=${v}`])];
}

export interface StepLine {
  step: number;
  loss: number;
  grad_norm: number;
}

export function stepLines(runDir: string): StepLine[] {
  return fs
    .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as StepLine & { event?: string })
    .filter((r) => typeof r.step === 'number' && typeof r.grad_norm === 'number');
}

export function evalLoss(runDir: string): number | undefined {
  const evals = fs
    .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.includes('"event":"eval"'))
    .map((l) => JSON.parse(l) as { eval_loss: number });
  return evals.at(-1)?.eval_loss;
}

/** Any paratrain command, run to completion from the repository root. */
export function paratrain(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', timeout: 240_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** paratrain(args), which must exit 0; its stdout. */
export function paratrainOk(args: string[]): string {
  const r = paratrain(args);
  expect(r.code, r.stderr + r.stdout).toBe(0);
  return r.stdout;
}

export function trainAlone(args: string[]) {
  const r = spawnSync(process.execPath, [bin, 'train', ...args], { cwd: root, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
}

export function launch(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [bin, 'launch', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, ...env },
    timeout: 240_000,
  });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** A 2-rank TP=2 GPT job that would run for a very long time, started in the background. */
export async function startLongJob(dir: string, flags: string[], sets: Record<string, string | number> = {}) {
  const args = ['launch', '--nproc-per-node', '2', '--master-port', String(await freePort()), ...flags];
  return startLauncher(
    [...args, ...tiny('gpt', dir, { 'parallel.tensor': 2, 'train.steps': 100000, ...sets })],
    {},
    bin,
  );
}

/** Waits until rank 0 has logged two steps, then returns the launcher's worker pids. */
export async function runningWorkers(launcherPid: number, runDir: string, count: number): Promise<number[]> {
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

export function workerWithRank(pids: number[], rank: number): number {
  const pid = pids.find((p) => fs.readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(`RANK=${rank}`));
  if (pid === undefined) throw new Error(`no worker with RANK=${rank}`);
  return pid;
}

export function expectClose(got: StepLine[], want: StepLine[], tol = 1e-5) {
  expect(got.length).toBe(want.length);
  for (let i = 0; i < want.length; i++) {
    expect(got[i].step).toBe(want[i].step);
    const rel = (a: number, b: number) => Math.abs(a - b) / Math.max(Math.abs(b), 1e-12);
    expect(rel(got[i].loss, want[i].loss), `loss at step ${want[i].step}`).toBeLessThan(tol);
    expect(rel(got[i].grad_norm, want[i].grad_norm), `grad norm at step ${want[i].step}`).toBeLessThan(tol);
  }
}

/** Every tensor of a committed checkpoint (any layout), whole, by name. */
export async function checkpointTensors(dirOrRoot: string): Promise<Map<string, Float32Array>> {
  const ckpt = await loadCheckpoint(dirOrRoot);
  return new Map([...ckpt.params, ...ckpt.optimizer.state].map((t) => [t.name, t.data]));
}

/** Asserts two checkpoints hold bitwise-identical parameters and optimizer state. */
export async function expectSameState(a: string, b: string): Promise<void> {
  const [x, y] = [await checkpointTensors(a), await checkpointTensors(b)];
  expect([...x.keys()].sort()).toEqual([...y.keys()].sort());
  for (const [name, data] of x) {
    const other = y.get(name)!;
    expect(
      Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(
        Buffer.from(other.buffer, other.byteOffset, other.byteLength),
      ),
      name,
    ).toBe(true);
  }
}
