// MFU in the step log: the arithmetic, the CPU peak's probe and its cache, and a real training run's
// log lines carrying both (a real process, real files).
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

import { cpuPeak, gpuPeak } from '../../src/engine/peak';
import { stepMfu } from '../../src/train/mfu';

const root = path.join(__dirname, '..', '..');
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-mfu-'));

/** A 3-step tiny GPT run in `dir` with its peak cached in `cacheDir`; the records of its log.jsonl. */
function trainTiny(dir: string, cacheDir: string) {
  const set = [
    ...['model.layers=1', 'model.hidden=32', 'model.heads=2', 'model.ffn=64', 'model.vocab_size=800'],
    ...['model.seq_len=32', 'train.micro_batch=4', 'train.steps=3', 'train.eval_every=0'],
    ...['checkpoint.every=0', 'data.max_documents=30', `data.cache_dir=${cacheDir}`, `run.dir=${dir}`],
  ];
  const r = spawnSync(
    process.execPath,
    [path.join(root, 'bin', 'paratrain.js'), 'train', '--config', 'gpt-mini', ...set.flatMap((s) => ['--set', s])],
    { cwd: root, encoding: 'utf8', env: { ...process.env, PARATRAIN_NUM_THREADS: '2' } },
  );
  expect(r.status, r.stderr).toBe(0);
  return fs
    .readFileSync(path.join(dir, 'log.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
}

describe('MFU', () => {
  it('on a GPU: the card’s datasheet dense peak for the run’s precision, found by its name', () => {
    const h100 = 'cuBLASLt on NVIDIA H100 80GB HBM3 (sm_90), device 0 of 8';
    expect(gpuPeak(h100, 'fp32')).toEqual({ flops: 67e12, source: 'datasheet: h100 fp32' });
    expect(gpuPeak(h100, 'bf16')?.flops).toBe(989e12);
    expect(gpuPeak('cuBLASLt on NVIDIA H200 (sm_90), device 0 of 1', 'bf16')?.source).toBe('datasheet: h200 bf16');
    expect(gpuPeak('cuBLASLt on NVIDIA A100-SXM4-80GB (sm_80), device 0 of 1', 'fp32')?.flops).toBe(19.5e12);
    expect(gpuPeak('cuBLASLt on Tesla T4 (sm_75), device 0 of 1', 'fp32')).toBeUndefined();
    expect(gpuPeak('cuBLASLt on NVIDIA V100 (sm_70), device 0 of 1', 'bf16')).toBeUndefined(); // no bf16 there
  });

  it("is the job's model FLOPs per rank per second over the rank's peak", () => {
    // 1 GFLOP per token, 4096 tokens in 0.5 s over 4 ranks of 4 TFLOP/s: 2048 GFLOP/s each, 51.2%.
    expect(stepMfu({ flopsPerToken: 1e9, tokens: 4096, seconds: 0.5, world: 4, peakFlops: 4e12 })).toBeCloseTo(
      0.512,
      12,
    );
    expect(stepMfu({ flopsPerToken: 1e9, tokens: 4096, seconds: 0, world: 1, peakFlops: 4e12 })).toBe(0);
  });

  it('the CPU peak is measured once per thread count, then read from the cache', async () => {
    const cacheDir = tmp();
    const first = await cpuPeak(cacheDir, 1);
    expect(first.source).toBe('measured');
    expect(first.flops).toBeGreaterThan(1e9); // any machine this runs on does more than 1 GFLOP/s
    const cached = JSON.parse(fs.readFileSync(path.join(cacheDir, 'cpu-peak.json'), 'utf8'));
    const [key] = Object.keys(cached);
    expect(key).toContain('| 1 threads |');
    expect(cached[key].flops).toBe(first.flops);
    const again = await cpuPeak(cacheDir, 1);
    expect(again).toEqual({ flops: first.flops, threads: 1, source: 'cached' });
  });

  it('a cached CPU peak that a run outruns (MFU above 1) is warned about once and measured again next time', async () => {
    const cacheDir = tmp();
    await cpuPeak(cacheDir, 2);
    const file = path.join(cacheDir, 'cpu-peak.json');
    const cache = JSON.parse(fs.readFileSync(file, 'utf8'));
    for (const k of Object.keys(cache)) cache[k].flops = 1e6; // as if measured on a swamped machine
    fs.writeFileSync(file, JSON.stringify(cache));
    const dir = tmp();
    const lines = trainTiny(dir, cacheDir);
    const warned = lines.filter((l) => l.event === 'cpu-peak-low');
    expect(warned).toHaveLength(1);
    expect(warned[0].msg).toMatch(
      /of the cached CPU peak \(0\.0 GFLOP\/s\), which was measured while the machine was busy/,
    );
    expect(Object.keys(JSON.parse(fs.readFileSync(file, 'utf8')))).toEqual([]);
  });

  it('paratrain train logs the peak at the start and the MFU of every step', () => {
    const dir = tmp();
    const cacheDir = path.join(os.tmpdir(), 'paratrain-test-cache');
    const lines = trainTiny(dir, cacheDir);
    const start = lines.find((l) => l.event === 'start');
    expect(start.peak_gflops).toBeGreaterThan(1);
    expect(['measured', 'cached']).toContain(start.peak_source);
    const cached = JSON.parse(fs.readFileSync(path.join(cacheDir, 'cpu-peak.json'), 'utf8'));
    expect(Object.keys(cached).some((k) => k.includes('| 2 threads |'))).toBe(true);
    const steps = lines.filter((l) => typeof l.step === 'number' && l.loss !== undefined);
    expect(steps).toHaveLength(3);
    for (const s of steps) {
      expect(s.mfu).toBeGreaterThan(0);
      // A shared machine's load moves both the probe and the step, so no tight bound; a unit slip would show.
      expect(s.mfu).toBeLessThan(10);
      // The same figure from the logged rate: FLOPs per token × tokens/s over the peak (rounding apart).
      const expected = (start.flops_per_token * s.tokens_per_s) / (start.peak_gflops * 1e9);
      expect(Math.abs(s.mfu - expected)).toBeLessThan(0.01 * expected + 1e-3);
    }
  });
});
