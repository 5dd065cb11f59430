// core-binding.ts — `--bind-cores`: each worker of a node runs on its own slice of the cores this
// launcher may use (like DeepSpeed's --bind_cores_to_rank), so the OpenMP/OpenBLAS teams of
// different ranks never share a core and their caches stay warm. Applied with `taskset` at spawn,
// so every thread the worker ever creates inherits it.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';

import { nvidiaSmi } from '../engine/nvidia-smi';
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

/**
 * `--bind-cores` on a GPU node: each worker on the cores of its GPU's NUMA node (the CPUs the
 * kernel lists as local to the card's PCI device), shared evenly by the workers whose GPUs sit on
 * that node. `gpuOfWorker[r]` is worker r's physical GPU index; `localCpus(gpu)` the card's local
 * CPUs, or undefined when the machine does not say — then every worker falls back to an even slice
 * of `cpus`, as on CPU nodes.
 */
export function gpuCoreSlices(
  cpus: number[],
  gpuOfWorker: number[],
  localCpus: (gpu: number) => number[] | undefined,
): string[] {
  const allowed = new Set(cpus);
  const local = gpuOfWorker.map((g) => localCpus(g)?.filter((c) => allowed.has(c)));
  if (local.some((l) => !l || l.length === 0)) return coreSlices(cpus, gpuOfWorker.length);
  // Workers whose GPUs share a set of local CPUs split that set in local-rank order.
  const groups = new Map<string, number[]>();
  local.forEach((l, r) => {
    const key = l!.join(',');
    groups.set(key, [...(groups.get(key) ?? []), r]);
  });
  const out: string[] = new Array<string>(gpuOfWorker.length);
  for (const [key, workers] of groups) {
    const node = key.split(',').map(Number);
    const slices = coreSlices(node, workers.length);
    workers.forEach((r, i) => (out[r] = slices[i]));
  }
  return out;
}

/** The physical GPU each of `workers` local ranks uses: LOCAL_RANK modulo the visible devices (as the engine picks). */
export function gpusOfWorkers(workers: number, visible: string | undefined, gpuCount: number): number[] | undefined {
  const ids =
    visible === undefined
      ? Array.from({ length: gpuCount }, (_, i) => i)
      : visible
          .split(',')
          .map((s) => s.trim())
          .filter((s, i, all) => all.slice(0, i + 1).every((x) => /^\d+$/.test(x)))
          .map(Number);
  if (ids.length === 0) return undefined; // UUIDs or MIG names: the index is not known here
  return Array.from({ length: workers }, (_, r) => ids[r % ids.length]);
}

/**
 * The CPUs local to physical GPU `gpu`, from nvidia-smi's PCI bus id and the kernel's
 * /sys/bus/pci/devices/<id>/local_cpulist; undefined where either is missing. `sysfs` and `busIds`
 * are parameters for the tests.
 */
export function gpuLocalCpus(
  gpu: number,
  busIds: () => string | undefined = () => nvidiaSmi(['--query-gpu=index,pci.bus_id', '--format=csv,noheader']),
  sysfs = '/sys/bus/pci/devices',
): number[] | undefined {
  const listing = busIds();
  if (!listing) return undefined;
  for (const line of listing.split('\n')) {
    const m = /^\s*(\d+)\s*,\s*([0-9A-Fa-f]+):([0-9A-Fa-f]{2}):([0-9A-Fa-f]{2})\.([0-7])\s*$/.exec(line);
    if (!m || Number(m[1]) !== gpu) continue;
    // nvidia-smi prints an 8-digit PCI domain; sysfs names it with 4, in lower case.
    const id = `${m[2].slice(-4)}:${m[3]}:${m[4]}.${m[5]}`.toLowerCase();
    try {
      const cpus = parseCpuList(fs.readFileSync(`${sysfs}/${id}/local_cpulist`, 'utf8'));
      return cpus.length > 0 ? cpus : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}
