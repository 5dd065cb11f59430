// core-binding.ts — `--bind-cores`: each worker of a node runs on its own slice of the cores this
// launcher may use (like DeepSpeed's --bind_cores_to_rank), so the OpenMP/OpenBLAS teams of
// different ranks never share a core and their caches stay warm. Applied with `taskset` at spawn,
// so every thread the worker ever creates inherits it.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';

import { LaunchError } from './errors';

/** Parses a kernel CPU list such as "0-3,8,10-11". */
export function parseCpuList(list: string): number[] {
  const cpus: number[] = [];
  for (const part of list.trim().split(',')) {
    if (!part) continue;
    const [a, b] = part.split('-').map(Number);
    for (let c = a; c <= (b ?? a); c++) cpus.push(c);
  }
  return cpus;
}

/** The CPUs this process may run on (its affinity mask), in order. */
export function allowedCpus(): number[] {
  try {
    const m = /^Cpus_allowed_list:\s*(.+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    if (m) return parseCpuList(m[1]);
  } catch {
    // not Linux
  }
  return Array.from({ length: os.availableParallelism() }, (_, i) => i);
}

/** Consecutive, equal, disjoint slices of `cpus`, one per local rank ("2,3" for rank 1 of 2 on 4). */
export function coreSlices(cpus: number[], nprocPerNode: number): string[] {
  if (cpus.length < nprocPerNode)
    throw new LaunchError(
      'ERR_LAUNCH_OPTION',
      `--bind-cores needs at least one core per worker: ${nprocPerNode} workers but ${cpus.length} usable ` +
        `core(s) (${cpus.join(',')}); drop --bind-cores or start fewer workers`,
    );
  const per = Math.floor(cpus.length / nprocPerNode);
  return Array.from({ length: nprocPerNode }, (_, r) => cpus.slice(r * per, (r + 1) * per).join(','));
}

/** Fails early when taskset (util-linux) is missing. */
export function requireTaskset(): void {
  const r = spawnSync('taskset', ['--version'], { encoding: 'utf8' });
  if (r.error)
    throw new LaunchError(
      'ERR_LAUNCH_OPTION',
      '--bind-cores starts workers through `taskset`, which is not installed: `apt-get install util-linux`',
    );
}
