// native.ts — the whole surface of the native addon, typed once, and the one loader for it.
// Only src/engine/ touches the raw binding; everything else imports these types.
import * as fs from 'node:fs';

import type { ShardTensor } from '../checkpoint';
import type { TrainBatch } from '../data/batch';
import { addonCandidates, BUILD_COMMAND, BUILD_PREREQUISITES, fixForLoadError, prebuiltTag } from './prebuilt';
import type { ModelSpec } from './spec';

export interface NativeEngineOptions {
  /** What the model is made of (spec.ts). */
  spec: ModelSpec;
  tensorParallelRank?: number;
  tensorParallelSize?: number;
  dataParallelRank?: number;
  dataParallelSize?: number;
  /** Data-parallel gradient all-reduce bucket, in elements. */
  bucketElems?: number;
  microBatch: number;
  seqLen: number;
  gradAccum: number;
  /** Masked LM: most masked positions in one micro-batch (0 = every position). */
  maxPredictions: number;
  threads: number;
  /** Key of the dropout streams. */
  seed: number;
  /** What the GEMMs compute in (storage is fp32 throughout); the CPU addon takes fp32 only. */
  precision?: 'fp32' | 'bf16' | 'fp16';
  optimizer: {
    name: 'lamb' | 'adamw';
    beta1: number;
    beta2: number;
    eps: number;
    weightDecay: number;
    variant: 'nvlamb' | 'apex';
    maxGradNorm: number;
  };
}

/**
 * One tensor of the rank's flat buffers: the checkpoint package's ShardTensor (name, local and
 * global shape, split axis, the shard's range and rows of vocabulary padding, offset, numel) and
 * whether weight decay applies to it.
 */
export interface ParamEntry extends ShardTensor {
  decay: boolean;
}

export interface StepMetrics {
  /** The objective: Σ weight·loss over the heads, mean over micro-batches. */
  loss: number;
  /** Each head's loss by name (mlm, nsp, sop, lm, rtd, ...), mean over micro-batches. */
  losses: Record<string, number>;
  /** Targets behind each named loss, summed. */
  counts: Record<string, number>;
  /** Other figures heads report (e.g. rtd_accuracy), pooled over the step. */
  metrics: Record<string, number>;
  gradNorm: number;
  tokens: number;
  /** Micro-batches behind the means (summed over data-parallel replicas). */
  batches: number;
  /** Data parallelism: ms the step waited for gradient all-reduces after backward (not overlapped). */
  dpWaitMs: number;
  /** Non-finite loss or gradients: the update was not applied. */
  skipped: boolean;
  /** Save/stop requests (REQUEST_SAVE | REQUEST_STOP) raised by any rank for this step: the same on every rank. */
  requests: number;
}

/** Bits of trainStep's `requests`: a rank asks the whole job to save (and stop) after this step. */
export const REQUEST_SAVE = 1;
export const REQUEST_STOP = 2;

export interface LogitsResult {
  /** [rows.length, vocab] of the first masked- or causal-LM head (ELECTRA: the generator's). */
  logits: Float32Array;
  /** Flat position (b·T + t) of each logits row: masked LM the labelled positions, causal LM every position. */
  rows: Int32Array;
  /** [B, classes] of the sentence-pair or sequence-classification head; empty without one. */
  classLogits: Float32Array;
  /** [B·T, classes] of the replaced-token (1), token-classification (C) or question-answering (2: start, end) head. */
  positionLogits: Float32Array;
  /** [B·T, H] the last stack's output, when asked for. */
  hidden?: Float32Array;
  loss: number;
  losses: Record<string, number>;
}

/** What the engine's state took when it was made, in bytes (device figures only from the CUDA addon). */
export interface EngineMemoryReport {
  params: number;
  grads: number;
  optimizer: number;
  /** Activations, gradient scratch, workspaces and staged batches. */
  activations: number;
  /** CUDA: device memory in use after the engine was made minus before (cudaMemGetInfo). */
  deviceUsed?: number;
  deviceTotal?: number;
}

export interface OptimizerState {
  step: number;
  m: Float32Array;
  v: Float32Array;
}

/** One rank's engine. Async methods run off the JS thread; one call at a time. */
export interface NativeEngine {
  paramTable(): ParamEntry[];
  numParams(): number;
  memoryReport(): EngineMemoryReport;
  initParams(seed: number): void;
  getParams(): Float32Array;
  setParams(params: Float32Array): void;
  getGrads(): Float32Array;
  getOptimizerState(): OptimizerState;
  /** This rank's own optimizer state, in the paramTable() layout. */
  setOptimizerState(state: OptimizerState): void;
  /** Copies parameters and moments into the caller's buffers (numParams() each); returns the update count. */
  copyStateInto(into: { params: Float32Array; m: Float32Array; v: Float32Array }): number;
  /** Sets the gradients and applies one optimizer update (synchronous; for tests and tools). */
  optimizerStep(grads: Float32Array, lr: number): { gradNorm: number; skipped: boolean };
  /** `requests`: this rank's pending REQUEST_* bits, OR-ed over the whole job into the result's `requests`. */
  /**
   * `lossScale` (a power of two from 1 to 2^127, default 1) multiplies the loss gradient and is
   * divided out in the update; a step whose loss or gradients are not finite is `skipped`.
   */
  trainStep(
    batches: TrainBatch[],
    opts: { step: number; lr: number; requests?: number; lossScale?: number },
  ): Promise<StepMetrics>;
  /** Leaves the gradients (scaled by `lossScale`) for getGrads(). */
  forwardBackward(
    batches: TrainBatch[],
    opts: { step: number; requests?: number; lossScale?: number },
  ): Promise<StepMetrics>;
  evaluate(batches: TrainBatch[]): Promise<StepMetrics>;
  /** Forward without dropout; `hidden`: also the last stack's output (parallel.tensor = 1). */
  logits(batch: TrainBatch, opts?: { hidden?: boolean }): Promise<LogitsResult>;
}

/** Where one ring's receive socket listens ('' = that transport is not bound). */
export interface RingEndpoints {
  ipc: string;
  tcp: string;
  /** parallel.comm nccl: the group's NCCL unique id, from its first member (empty otherwise). */
  ncclId?: Uint8Array;
}

export interface RingPosition {
  rank: number;
  size: number;
  /** Endpoint of rank (rank + 1) % size: ipc:// on the same host, tcp:// otherwise. */
  next: string;
}

/**
 * A worker's two data-plane rings (tensor-parallel and data-parallel group) over libzmq. Bound at
 * creation so the endpoints can be registered at rendezvous; connected once the groups are known;
 * then handed to `new Engine(options, dataPlane)`, which owns it from there on.
 */
export interface NativeDataPlane {
  endpoints(): { tp: RingEndpoints; dp: RingEndpoints };
  /** Joins both rings; rejects with ERR_COMM_CONNECT when a neighbour does not answer in time. */
  connect(rings: { tp: RingPosition; dp: RingPosition }): Promise<void>;
}

/** One group's place in an NCCL communicator: the group's unique id comes from its first member. */
export interface NcclGroup {
  rank: number;
  size: number;
  /** 128 bytes from ncclUniqueId() on the group's first member. */
  id: Uint8Array;
}

/**
 * A worker's two groups over NCCL (the CUDA addon only, parallel.comm nccl): both communicators are
 * made when it is constructed (every member of a group must construct at about the same time; a
 * member that never comes fails it with ERR_COLLECTIVE_TIMEOUT); handed to `new Engine(options,
 * plane)` like a DataPlane.
 */
export interface NativeNcclPlane {
  readonly kind: 'nccl';
  /** Makes both communicators; rejects with ERR_COLLECTIVE_TIMEOUT when a member never comes, ERR_NCCL_LOAD without libnccl. */
  connect(): Promise<void>;
}

export interface DataPlaneOptions {
  /** Directory for ipc:// sockets ('' = tcp only). */
  ipcDir: string;
  /**
   * Address to bind tcp:// sockets to ('' = ipc only). With an ipcDir only the data-parallel ring
   * listens on it: a tensor-parallel group never leaves its node.
   */
  hostAddr: string;
  /** Bound on every data-plane wait; a collective that waits longer fails with ERR_COLLECTIVE_TIMEOUT. */
  timeoutMs: number;
  /** Distinguishes the socket files of the workers of one node. */
  localRank: number;
  /**
   * The rings' CURVE keys (deriveDataPlaneKeys of the job's secret, Z85): every socket is then
   * CURVE-authenticated, and a peer without the secret never delivers a frame. Absent: none.
   */
  curve?: { serverPublic: string; serverSecret: string; clientPublic: string; clientSecret: string };
}

export interface NativeAddon {
  Engine: new (options: NativeEngineOptions, dataPlane?: NativeDataPlane | NativeNcclPlane) => NativeEngine;
  /** The parameter table of the model `options` describe, without building an engine. */
  paramTable(options: NativeEngineOptions): ParamEntry[];
  DataPlane: new (options: DataPlaneOptions) => NativeDataPlane;
  /**
   * Connections to this process's ring sockets that failed their handshake (no CURVE, another job's
   * key, not ZMTP) since the last call, by ring name and peer IP ("unknown" when the connection was
   * gone before its address could be read; "other addresses" past 64 of them).
   */
  takeRefusedHandshakes(): { ring: string; address: string; count: number }[];
  /** The CUDA addon: a fresh NCCL unique id (128 bytes), for a group this worker leads. */
  ncclUniqueId?: () => Uint8Array;
  /** The CUDA addon: the two groups over NCCL. */
  NcclPlane?: new (options: { tp: NcclGroup; dp: NcclGroup; timeoutMs: number }) => NativeNcclPlane;
  backend: 'cpu' | 'cuda';
  abiVersion: number;
  /** The kernel family OpenBLAS runs (openblas_get_corename). */
  blasCore: string;
}

export const ADDON_ABI_VERSION = 5;

export class NativeLoadError extends Error {
  readonly code = 'ERR_NATIVE_LOAD';
}

let cached: NativeAddon | undefined;
let cachedFile: string | undefined;

/** The file the addon was loaded from (after loadNative). */
export function loadedAddonFile(): string | undefined {
  return cachedFile;
}

/**
 * OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons (e.g. Sapphire/Emerald Rapids) and
 * falls back to its SSE3 "Prescott" kernels, about 4× slower. Unless the user chose a core type,
 * pick the newest kernel family the CPU's flags support. Must run before the addon (and so
 * libopenblas) is loaded: OpenBLAS reads the variable once, at load.
 */
export function chooseBlasCoreType(cpuFlags: string | undefined = readCpuFlags()): string | undefined {
  if (process.env.OPENBLAS_CORETYPE || !cpuFlags) return process.env.OPENBLAS_CORETYPE;
  const has = (f: string) => new RegExp(`\\b${f}\\b`).test(cpuFlags);
  let core: string | undefined;
  if (['avx512f', 'avx512bw', 'avx512vl', 'avx512dq'].every(has)) core = 'SkylakeX';
  else if (has('avx2') && has('fma')) core = 'Haswell';
  if (core) process.env.OPENBLAS_CORETYPE = core;
  return core;
}

function readCpuFlags(): string | undefined {
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8');
    return /^flags\s*:(.*)$/m.exec(info)?.[1];
  } catch {
    return undefined; // not Linux: leave OpenBLAS's own detection alone
  }
}

/** Loads the addon, or throws one error that lists what was tried and how to fix it. */
export function loadNative(variant: 'cpu' | 'cuda' = 'cpu'): NativeAddon {
  if (cached && cached.backend === variant) return cached;
  const problems: string[] = [];
  const fixes = new Set<string>();
  chooseBlasCoreType();
  for (const file of addonCandidates(variant)) {
    if (!fs.existsSync(file)) {
      problems.push(`${file}: not built`);
      continue;
    }
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      const addon = require(file) as NativeAddon;
      if (addon.abiVersion !== ADDON_ABI_VERSION)
        throw new Error(`ABI version ${addon.abiVersion}, this package expects ${ADDON_ABI_VERSION} (stale build)`);
      if (addon.backend !== variant) throw new Error(`is a ${addon.backend} build, not ${variant}`);
      cached = addon;
      cachedFile = file;
      return addon;
    } catch (err) {
      const message = (err as Error).message.split('\n')[0];
      problems.push(`${file}: ${message}`);
      const fix = fixForLoadError(message);
      if (fix) fixes.add(fix);
    }
  }
  const platform = prebuiltTag();
  if (variant === 'cpu' && !process.env.PARATRAIN_ADDON && 'unsupported' in platform)
    problems.push(platform.unsupported);
  if (variant === 'cuda')
    fixes.add(
      'The CUDA engine is not built yet (docs/cuda.md: its kernels exist, the engine on the GPU does not); ' +
        'train on the CPU with `--set device=cpu` (the default).',
    );
  else {
    const build = `the engine from source with \`${BUILD_COMMAND}\` (needs cmake, g++, OpenBLAS and libzmq: \`${BUILD_PREREQUISITES}\`).`;
    fixes.add(fixes.size ? `Or build ${build}` : `Build ${build}`);
  }
  throw new NativeLoadError(
    `cannot load the paratrain ${variant} engine.\n  ${problems.join('\n  ')}\n${[...fixes].join('\n')}`,
  );
}
