// --bind-cores: CPU lists, slices per local rank, and a real job whose workers run on their own cores.
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';

import * as os from 'node:os';
import * as path from 'node:path';

import {
  allowedCpus,
  coreSlices,
  gpuCoreSlices,
  gpuLocalCpus,
  gpusOfWorkers,
  parseCpuList,
} from '../../src/launch/core-binding';
import { freePort, jobArgs, startLauncher, tmp, waitFor, workerRecords } from './launch-harness';

describe('core binding', () => {
  it('GPU workers: the cores of their GPU’s NUMA node, from nvidia-smi’s bus ids and sysfs', () => {
    // A two-socket node: GPUs 0-3 on NUMA node 0 (cores 0-15), 4-7 on node 1 (cores 16-31).
    const sysfs = fs.mkdtempSync(path.join(os.tmpdir(), 'pt-sysfs-'));
    const bus = (g: number) => `0000:${(0x18 + 0x10 * g).toString(16)}:00.0`;
    for (let g = 0; g < 8; g++) {
      fs.mkdirSync(path.join(sysfs, bus(g)), { recursive: true });
      fs.writeFileSync(path.join(sysfs, bus(g), 'local_cpulist'), g < 4 ? '0-15\n' : '16-31\n');
    }
    const smi = () => Array.from({ length: 8 }, (_, g) => `${g}, 0000${bus(g).toUpperCase()}`).join('\n') + '\n';
    expect(gpuLocalCpus(5, smi, sysfs)).toEqual(parseCpuList('16-31'));
    expect(gpuLocalCpus(9, smi, sysfs)).toBeUndefined(); // no such GPU
    expect(gpuLocalCpus(0, () => undefined, sysfs)).toBeUndefined(); // no nvidia-smi
    const cpus = parseCpuList('0-31');
    const local = (g: number) => gpuLocalCpus(g, smi, sysfs);
    // Eight workers, one per GPU: four share each socket's 16 cores.
    expect(gpuCoreSlices(cpus, gpusOfWorkers(8, undefined, 8)!, local)).toEqual([
      '0,1,2,3',
      '4,5,6,7',
      '8,9,10,11',
      '12,13,14,15',
      '16,17,18,19',
      '20,21,22,23',
      '24,25,26,27',
      '28,29,30,31',
    ]);
    // CUDA_VISIBLE_DEVICES=5,1: worker 0 on GPU 5 (socket 1), worker 1 on GPU 1 (socket 0).
    expect(gpusOfWorkers(2, '5,1', 8)).toEqual([5, 1]);
    expect(gpuCoreSlices(cpus, [5, 1], local)).toEqual([
      parseCpuList('16-31').join(','),
      parseCpuList('0-15').join(','),
    ]);
    // Only the cores this launcher may use count; a GPU whose node has none of them → even slices.
    expect(gpuCoreSlices(parseCpuList('0-7'), [0, 1], local)).toEqual(['0,1,2,3', '4,5,6,7']);
    expect(gpuCoreSlices(parseCpuList('0-7'), [0, 4], local)).toEqual(coreSlices(parseCpuList('0-7'), 2));
    // Device names the index cannot be read from (UUIDs) → no GPU mapping.
    expect(gpusOfWorkers(2, 'GPU-8f3c', 8)).toBeUndefined();
    fs.rmSync(sysfs, { recursive: true, force: true });
  });

  it('parses kernel CPU lists and slices them evenly and disjointly', () => {
    expect(parseCpuList('0-3,8,10-11\n')).toEqual([0, 1, 2, 3, 8, 10, 11]);
    expect(coreSlices([0, 1, 2, 3, 4, 5, 6, 7], 2)).toEqual(['0,1,2,3', '4,5,6,7']);
    expect(coreSlices([4, 5, 6, 7, 8], 2)).toEqual(['4,5', '6,7']);
    expect(() => coreSlices([0, 1], 3)).toThrow(/at least one core per worker: 3 workers but 2/);
  });

  it('each worker of a job runs on its own slice of the cores', async () => {
    const cpus = allowedCpus();
    const n = Math.min(2, cpus.length);
    const out = tmp();
    const l = startLauncher(jobArgs(tmp(), await freePort(), ['--nproc-per-node', String(n), '--bind-cores']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '40',
      FIXTURE_STEP_MS: '25',
    });
    await waitFor('the workers', () => workerRecords(out).size === n);
    const affinity = (pid: number) =>
      /^Cpus_allowed_list:\s*(.+)$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))![1].trim();
    const want = coreSlices(cpus, n);
    for (const [rank, rec] of workerRecords(out))
      expect(parseCpuList(affinity(rec.pid))).toEqual(parseCpuList(want[rank]));
    const r = await l.exited;
    expect(r.code, r.stderr).toBe(0);
  });
});
