// `paratrain plan` as a user runs it: a real process over the built CLI (npm run build:ts). Its
// figures against the model's arithmetic, its table, and bad input ending in a coded message, exit 1.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { cpuPeak } from '../../src/engine/peak';

const root = path.join(__dirname, '..', '..');

function plan(args: string[], threads = 2) {
  const r = spawnSync(process.execPath, [path.join(root, 'bin', 'paratrain.js'), 'plan', ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, PARATRAIN_NUM_THREADS: String(threads) },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('paratrain plan', () => {
  it('bert-mini on this CPU: the fp32 engine, 16 bytes per parameter before activations', () => {
    const r = plan(['--config', 'bert-mini', '--json']);
    expect(r.code).toBe(0);
    const p = JSON.parse(r.stdout);
    expect(p.params).toBe(11_267_900); // what `paratrain bench` reports from the engine
    expect(p.precision).toBe('fp32');
    expect(p.device.name).toBe('cpu');
    expect(p.layouts).toHaveLength(1);
    const [l] = p.layouts;
    expect([l.tp, l.dp, l.fits]).toEqual([1, 1, 'yes']);
    expect(l.memory.params + l.memory.grads + l.memory.optimizer).toBe(16 * p.params);
    // 80 MiB of runtime and 32 MiB of OpenBLAS buffer for each of the 2 threads.
    expect(l.memory.runtime).toBe((80 + 2 * 32) * 2 ** 20);
    // The trainer's save copy (weights, m, v) is the worker's own memory on a CPU …
    expect(l.memory.saveCopy).toBe(12 * p.params);
    expect(l.totalBytes).toBeGreaterThan(l.totalBytesRecompute);
  });

  it('a CPU plan takes the peak training measured here, and then predicts the step', async () => {
    const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-plan-'));
    const args = ['--config', 'bert-mini', '--set', `data.cache_dir=${cacheDir}`, '--json'];
    const before = JSON.parse(plan(args, 1).stdout);
    expect(before.device.peakFlops).toBe(0); // nothing measured yet: memory only
    expect(before.layouts[0].step.stepSeconds).toBeNull(); // NaN in JSON
    const peak = await cpuPeak(cacheDir, 1);
    const after = JSON.parse(plan(args, 1).stdout);
    expect(after.device.peakFlops).toBe(peak.flops);
    const step = after.layouts[0].step;
    expect(step.computeSeconds).toBeCloseTo(step.modelFlops / peak.flops, 9);
    expect(step.stepSeconds).toBeCloseTo(step.computeSeconds + step.optimizerSeconds, 9);
    // Another thread count has no measurement of its own.
    expect(JSON.parse(plan(args, 2).stdout).device.peakFlops).toBe(0);
  });

  it('GPT-2 1.5B on 5 H100s: the table of parts, layouts and predicted steps', () => {
    const r = plan(['--config', 'gpt2-1558m', '--gpus', '5']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('gpt L48 H1600 A25 F6400 V50257: 1557.61M parameters');
    expect(r.stdout).toContain('5 × h100');
    expect(r.stdout).toMatch(/\| 1×5 \|.*\| with recompute \|/);
    expect(r.stdout).toMatch(/\| 5×1 \|.*\| yes \|/);
    expect(r.stdout).toMatch(/\| 1×5 \(rc\) \| 0 \|/); // no TP all-reduces at TP 1
    expect(r.stdout).toMatch(/\| 5×1 \| 194 \|/); // 4·48 layers + embedding + output layer
  });

  it('--micro-batch, --seq-len, --gpu-memory and --precision change what is planned', () => {
    const r = plan([
      ...['--config', 'bert-large', '--gpus', '8', '--device', 'v100', '--gpu-memory', '16GB'],
      ...['--micro-batch', '64', '--seq-len', '512', '--json'],
    ]);
    expect(r.code).toBe(0);
    const p = JSON.parse(r.stdout);
    expect([p.microBatch, p.seqLen, p.precision, p.device.memoryBytes]).toEqual([64, 512, 'fp16', 16e9]);
    expect(p.layouts.map((l: { tp: number }) => l.tp)).toEqual([1, 2, 4, 8]);
    // Splitting the layers shrinks the memory per device and adds TP traffic.
    const totals = p.layouts.map((l: { totalBytes: number }) => l.totalBytes);
    expect([...totals].sort((a, b) => b - a)).toEqual(totals);
    expect(p.layouts[0].fits).toBe('recompute');
    // … and host memory, not the device's, on a GPU.
    for (const l of p.layouts) expect(l.memory.saveCopy).toBe(0);
    expect(p.layouts[3].step.tpBytes).toBeGreaterThan(p.layouts[1].step.tpBytes);
    for (const l of p.layouts) expect(l.step.mfu).toBeGreaterThan(0);
  });

  it('says so when no layout fits', () => {
    const r = plan(['--config', 'gpt2-1558m', '--gpus', '1', '--gpu-memory', '16GB']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\| 1×1 \|.*\| no \|/);
    expect(r.stdout).toContain('no layout fits');
  });
});

describe('paratrain plan: bad input is a clear message and exit 1', () => {
  it.each([
    [['--gpus', '0'], "[ERR_PLAN]: --gpus: '0' is not a positive whole number"],
    [['--gpus', 'four'], "--gpus: 'four' is not a positive whole number"],
    [['--micro-batch', '1.5'], "--micro-batch: '1.5' is not a positive whole number"],
    [['--gpus', '8', '--gpu-memory', '80XB'], "--gpu-memory: '80XB' is not a memory size; write it like 80GB"],
    [['--device', 'tpu'], "unknown device 'tpu': known are v100, a100, h100, h200"],
    [['--device', 'v100', '--precision', 'bf16'], 'v100 has no dense bf16 peak (it supports fp16, fp32)'],
    [['--precision', 'bf16'], '--precision bf16: the CPU engine trains in fp32 only'],
    [['--gpus', '2', '--compute-efficiency', '2'], "--compute-efficiency: '2' is not a number in (0, 1]"],
    [['--config', 'no-such-model'], "[ERR_CONFIG]: config 'no-such-model' is neither a file nor a preset"],
    [['--seq-len', '1024'], 'model.max_positions: 512 is below model.seq_len 1024'],
    [['--precision', 'int8'], "argument 'int8' is invalid. Allowed choices are fp32, bf16, fp16"],
  ])('%j', (args, message) => {
    const r = plan(args);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(message);
    expect(r.stdout).toBe('');
  });
});
