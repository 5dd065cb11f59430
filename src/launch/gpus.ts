// gpus.ts — how many GPUs a node's launcher may give workers: `--nproc-per-node gpu` (torchrun's
// form) and the default for `device: cuda`. CUDA_VISIBLE_DEVICES, when set, is what the workers
// will see (each takes LOCAL_RANK modulo that count, cpp/napi/addon.cpp); otherwise nvidia-smi -L.
import { nvidiaSmi } from '../engine/nvidia-smi';

export interface GpuCount {
  count: number;
  /** Where the count came from, for messages. */
  source: string;
}

/** The devices CUDA_VISIBLE_DEVICES lets a process see: its entries up to the first invalid one (CUDA stops there). */
export function visibleDevices(value: string): number {
  let n = 0;
  for (const entry of value.split(',').map((s) => s.trim())) {
    if (entry === '' || entry.startsWith('-')) break;
    n++;
  }
  return n;
}

/** GPUs on this node as the workers will see them. `listGpus` runs `nvidia-smi -L` (tests replace it). */
export function countGpus(
  env: NodeJS.ProcessEnv = process.env,
  listGpus: () => string | undefined = () => nvidiaSmi(['-L']),
): GpuCount {
  const visible = env.CUDA_VISIBLE_DEVICES;
  if (visible !== undefined) return { count: visibleDevices(visible), source: `CUDA_VISIBLE_DEVICES='${visible}'` };
  const listing = listGpus();
  if (listing === undefined) return { count: 0, source: 'nvidia-smi (not found or failed)' };
  return { count: listing.split('\n').filter((l) => /^GPU \d+/.test(l)).length, source: 'nvidia-smi -L' };
}
