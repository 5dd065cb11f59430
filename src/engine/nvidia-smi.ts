// nvidia-smi.ts — what the GPU tools report about this node's cards (counts, memory, PCI bus ids),
// for the launcher and the memory check. Undefined where nvidia-smi is missing or fails: a node
// without GPUs, or a container without the driver's tools.
import { spawnSync } from 'node:child_process';

export function nvidiaSmi(args: string[]): string | undefined {
  const r = spawnSync('nvidia-smi', args, { encoding: 'utf8', timeout: 10_000 });
  return r.status === 0 ? r.stdout : undefined;
}
