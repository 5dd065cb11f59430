// --bind-cores: CPU lists, slices per local rank, and a real job whose workers run on their own cores.
import * as fs from 'node:fs';
import { describe, expect, it } from 'vitest';

import { allowedCpus, coreSlices, parseCpuList } from '../../src/launch/core-binding';
import { freePort, jobArgs, startLauncher, tmp, waitFor, workerRecords } from './launch-harness';

describe('core binding', () => {
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
