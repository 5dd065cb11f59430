// mfu.ts — model FLOPs utilisation of a step for the step log: the job's model FLOPs (PaLM's
// 6·N + 12·L·s·h per token, src/plan/params.ts, the count `paratrain bench` and `paratrain plan`
// use) shared equally by its ranks, each rank's share per second over that rank's peak.
import type { Config } from '../config/schema';
import { modelSpec } from '../engine/spec';
import { modelFlopsPerToken } from '../plan/params';

export function flopsPerToken(c: Config): number {
  return modelFlopsPerToken(modelSpec(c), c.model.seq_len);
}

/**
 * One rank's MFU for a step of the whole job: `tokens` trained by all replicas in `seconds`, the
 * work split over `world` ranks, each with `peakFlops`. With equal peaks it is also the job's.
 */
export function stepMfu(o: {
  flopsPerToken: number;
  tokens: number;
  seconds: number;
  world: number;
  peakFlops: number;
}): number {
  if (!(o.seconds > 0) || !(o.peakFlops > 0)) return 0;
  return (o.flopsPerToken * o.tokens) / o.world / o.seconds / o.peakFlops;
}
