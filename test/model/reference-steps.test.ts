// Bit-for-bit reference: the per-step loss, named losses and gradient norm of 20 steps of bert-mini
// and gpt-mini (dropout on) in one process, and of bert-mini as a TP=2 × DP=2 launch, as recorded by
// an earlier build (test/fixtures/reference-steps.json says which). A change that reorganises the
// model without meaning to change its arithmetic must keep every number identical.
//
// The numbers depend on the floating-point order of the kernels, so the runs pin what decides it:
// OpenBLAS's Haswell kernels (any AVX2 machine), the thread count, the seed and the data.
// Re-record deliberately (a change that is meant to alter the numbers) with
//   PARATRAIN_RECORD_REFERENCE=1 npx vitest run test/model/reference-steps.test.ts
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(__dirname, '..', '..');
const bin = path.join(root, 'bin', 'paratrain.js');
const fixture = path.join(root, 'test', 'fixtures', 'reference-steps.json');
const cacheDir = path.join(os.tmpdir(), 'paratrain-test-cache');
const record = process.env.PARATRAIN_RECORD_REFERENCE === '1';

interface StepNumbers {
  step: number;
  loss: number;
  losses: Record<string, number>;
  grad_norm: number;
}
interface RunNumbers {
  command: string[];
  steps: StepNumbers[];
  eval_loss: number;
}
interface Reference {
  recorded_with: string;
  blas_core: string;
  runs: Record<string, RunNumbers>;
}

const RUNS: Record<string, string[]> = {
  'bert-mini': ['train', '--config', 'bert-mini', '--set', 'train.steps=20', '--set', 'train.threads=2'],
  'gpt-mini': ['train', '--config', 'gpt-mini', '--set', 'train.steps=20', '--set', 'train.threads=2'],
  'bert-mini TP=2 x DP=2': [
    'launch',
    '--nproc-per-node',
    '4',
    '--config',
    'bert-mini',
    '--set',
    'parallel.tensor=2',
    '--set',
    'train.steps=20',
    '--set',
    'train.threads=1',
  ],
};

/** The step records of a run's log, with its named losses in one object. */
function readRun(runDir: string): Omit<RunNumbers, 'command'> {
  const records = fs
    .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const steps = records
    .filter((r) => typeof r.step === 'number' && typeof r.grad_norm === 'number')
    .map((r) => ({
      step: r.step as number,
      loss: r.loss as number,
      losses: r.losses as Record<string, number>,
      grad_norm: r.grad_norm as number,
    }));
  const evals = records.filter((r) => r.event === 'eval');
  return { steps, eval_loss: evals.at(-1)?.eval_loss as number };
}

function run(command: string[]): Omit<RunNumbers, 'command'> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-reference-'));
  const args = [...command, '--set', `run.dir=${dir}`, '--set', `data.cache_dir=${cacheDir}`];
  const r = spawnSync(process.execPath, [bin, ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, OPENBLAS_CORETYPE: 'Haswell' },
    timeout: 300_000,
  });
  expect(r.status, r.stderr.slice(-4000)).toBe(0);
  const numbers = readRun(dir);
  fs.rmSync(dir, { recursive: true, force: true });
  return numbers;
}

describe('today’s models are bit-for-bit what they were', () => {
  const reference: Reference = record
    ? { recorded_with: process.env.PARATRAIN_RECORD_NOTE ?? 'unnamed build', blas_core: 'Haswell', runs: {} }
    : (JSON.parse(fs.readFileSync(fixture, 'utf8')) as Reference);

  it.each(Object.keys(RUNS))('%s: 20 steps of loss, named losses and grad norm', (name) => {
    const got = run(RUNS[name]);
    if (record) {
      reference.runs[name] = { command: RUNS[name], ...got };
      fs.writeFileSync(fixture, JSON.stringify(reference, null, 1) + '\n');
      return;
    }
    const want = reference.runs[name];
    expect(want, `no reference recorded for ${name}`).toBeDefined();
    expect(got.steps.length).toBe(20);
    expect(got.steps).toEqual(want.steps);
    expect(got.eval_loss).toBe(want.eval_loss);
  });
});
