// engine.ts — builds a native engine from a validated config and names its parameters.
import * as os from 'node:os';

import { maxPredictionsPerSequence } from '../config/load';
import type { NamedTensor } from '../checkpoint';
import type { Config } from '../config/schema';
import {
  loadNative,
  NativeLoadError,
  type NativeAddon,
  type DataPlaneOptions,
  type NativeDataPlane,
  type NativeEngine,
  type NativeEngineOptions,
  type NativeNcclPlane,
  type ParamEntry,
} from './native';
import { modelSpec } from './spec';

/**
 * Threading policy: one engine per process uses `train.threads` threads, else PARATRAIN_NUM_THREADS,
 * else every core. OpenMP loops and OpenBLAS share that one team (see docs/threading.md).
 */
export function resolveThreads(configured: number): number {
  if (configured > 0) return configured;
  const env = Number(process.env.PARATRAIN_NUM_THREADS);
  if (Number.isInteger(env) && env > 0) return env;
  return os.availableParallelism();
}

export interface EngineShape {
  microBatch?: number;
  seqLen?: number;
  gradAccum?: number;
  /** Inference: predict at every position. */
  allPositions?: boolean;
}

export function engineOptions(c: Config, shape: EngineShape = {}): NativeEngineOptions {
  const microBatch = shape.microBatch ?? c.train.micro_batch;
  const seqLen = shape.seqLen ?? c.model.seq_len;
  return {
    spec: modelSpec(c),
    microBatch,
    seqLen,
    gradAccum: shape.gradAccum ?? c.train.grad_accum,
    maxPredictions: shape.allPositions ? 0 : microBatch * maxPredictionsPerSequence(c),
    threads: resolveThreads(c.train.threads),
    seed: c.train.seed,
    precision: c.precision,
    bucketElems: Math.max(1, Math.round((c.parallel.bucket_mb * 1024 * 1024) / 4)),
    optimizer: {
      name: c.optimizer.name,
      beta1: c.optimizer.beta1,
      beta2: c.optimizer.beta2,
      eps: c.optimizer.eps,
      weightDecay: c.optimizer.weight_decay,
      variant: c.optimizer.variant,
      maxGradNorm: c.optimizer.max_grad_norm,
    },
  };
}

/** A rank's place in a distributed job: its groups, and the data plane joined to both rings. */
export interface EngineRank {
  tpRank: number;
  tpSize: number;
  dpRank: number;
  dpSize: number;
  /** The connected groups: libzmq rings, or NCCL communicators (parallel.comm nccl). */
  dataPlane: NativeDataPlane | NativeNcclPlane;
}

/** The engine for `c`: alone (its collectives are identities), or as `rank` of a distributed job. */
export function createEngine(c: Config, shape: EngineShape = {}, rank?: EngineRank): NativeEngine {
  const addon = loadNative(c.device);
  if (!rank) return new addon.Engine(engineOptions(c, shape));
  return new addon.Engine(
    {
      ...engineOptions(c, shape),
      tensorParallelRank: rank.tpRank,
      tensorParallelSize: rank.tpSize,
      dataParallelRank: rank.dpRank,
      dataParallelSize: rank.dpSize,
    },
    rank.dataPlane,
  );
}

/**
 * A worker's data plane: its ring sockets bound (ipc:// in `ipcDir`, tcp:// on `hostAddr`), every
 * wait bounded by the config's parallel.comm_timeout_s.
 */
export function createDataPlane(c: Config, where: Omit<DataPlaneOptions, 'timeoutMs'>): NativeDataPlane {
  const addon = loadNative(c.device);
  return new addon.DataPlane({ ...where, timeoutMs: Math.round(c.parallel.comm_timeout_s * 1000) });
}

/**
 * Connections to this process's ring sockets refused since the last call (failed handshakes), by
 * ring and peer address; the trainer logs them (src/control/refusal-log.ts).
 */
export function takeRefusedHandshakes(c: Config): { ring: string; address: string; count: number }[] {
  return loadNative(c.device).takeRefusedHandshakes();
}

/**
 * parallel.comm nccl: the CUDA addon's NCCL entry points, or a clear error when this addon has none
 * (the CPU addon; the config check refuses nccl without device: cuda before anything runs).
 */
export function ncclAddon(c: Config): Required<Pick<NativeAddon, 'ncclUniqueId' | 'NcclPlane'>> {
  const addon = loadNative(c.device);
  if (!addon.ncclUniqueId || !addon.NcclPlane)
    throw new NativeLoadError(
      `the ${addon.backend} engine has no NCCL data plane; parallel.comm: nccl needs device: cuda`,
    );
  return { ncclUniqueId: addon.ncclUniqueId, NcclPlane: addon.NcclPlane };
}

/**
 * The parameter table of `c`'s model at tensor-parallel rank `tpRank` of `tpSize` (names, global
 * and local shapes, split axes): the one source of tensor names, built by the engine's parts.
 */
export function paramTableFor(c: Config, tpRank = 0, tpSize = 1): ParamEntry[] {
  const addon = loadNative('cpu');
  return addon.paramTable({ ...engineOptions(c), tensorParallelRank: tpRank, tensorParallelSize: tpSize });
}

/** Views of a flat buffer as named tensors (no copy). */
export function splitFlat(table: ParamEntry[], flat: Float32Array, prefix = ''): NamedTensor[] {
  return table.map((p) => ({
    name: prefix + p.name,
    shape: p.shape,
    data: flat.subarray(p.offset, p.offset + p.numel),
  }));
}

/** Assembles a flat buffer from named tensors; every parameter must be present with its shape. */
export function joinFlat(
  table: ParamEntry[],
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
  prefix = '',
  what = 'checkpoint',
): Float32Array {
  const total = table.reduce((n, p) => n + p.numel, 0);
  const flat = new Float32Array(total);
  for (const p of table) {
    const t = tensors.get(prefix + p.name);
    if (!t)
      throw Object.assign(new Error(`${what} has no tensor '${prefix + p.name}'`), { code: 'ERR_CHECKPOINT_MISMATCH' });
    if (t.shape.join(',') !== p.shape.join(','))
      throw Object.assign(
        new Error(`${what}: '${prefix + p.name}' has shape [${t.shape}], the model expects [${p.shape}]`),
        { code: 'ERR_CHECKPOINT_MISMATCH' },
      );
    flat.set(t.data, p.offset);
  }
  return flat;
}
