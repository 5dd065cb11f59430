// memory.ts — what the engine of a config will hold in memory, estimated before anything is
// allocated, so that a model this machine cannot hold is refused up front with the keys to change
// instead of ending in std::bad_alloc or the kernel's OOM killer. The parameter count is exact (the
// engine's own parameter table, built without buffers); activations follow the buffers the C++
// parts allocate (cpp/model/block.h, stack.h, heads/), in fp32.
import * as os from 'node:os';

import { embeddingSize, generatorShape } from '../config/family';
import { ConfigError, maxPredictionsPerSequence } from '../config/load';
import type { Config } from '../config/schema';
import { GPU_RUNTIME_BYTES } from '../plan/devices';
import { paramTableFor, resolveThreads } from './engine';
import { nvidiaSmi } from './nvidia-smi';

const F32 = 4;

export interface MemoryEstimate {
  /** Bytes per process, by what holds them. */
  parameters: number;
  gradients: number;
  /** The optimizer's two moments (LAMB and AdamW alike). */
  optimizerState: number;
  /** The host copy every checkpoint save writes from: parameters and both moments. */
  checkpointCopy: number;
  /** Activations of one micro-batch and the backward pass's scratch. */
  activations: number;
  /** Per process. */
  total: number;
}

interface StackShape {
  layers: number;
  hidden: number;
  heads: number;
  ffn: number;
}

/** One stack's activations and scratch, in elements, for N = batch·seq rows at tensor-parallel size `tp`. */
function stackElements(s: StackShape, tp: number, batch: number, seq: number, embed: number, threads: number): number {
  const n = batch * seq;
  const hl = s.hidden / tp,
    fl = s.ffn / tp,
    al = s.heads / tp;
  // LayerActivations: qkv, ctx, six [N, H] buffers, up and gelu, four [N] statistics; probs [B, heads, T, T].
  const perLayer = n * (4 * hl + 6 * s.hidden + 2 * fl + 4) + batch * al * seq * seq;
  // The residual stream (L+1 × [N, H]), the final norm and the walking gradients; the embeddings' output.
  const stream = (s.layers + 1) * n * s.hidden + 4 * n * s.hidden + 2 * n * embed;
  // BlockScratch: d_h1, d_h2, d_qkv, d_ffn, and per-thread attention rows.
  const scratch = n * (2 * s.hidden + 3 * hl + fl) + threads * 2 * seq * seq;
  return s.layers * perLayer + stream + scratch;
}

/** The engine's memory per process for `c` at tensor-parallel size `tp` (each rank holds 1/tp of each layer). */
export function estimateEngineMemory(c: Config, tp = c.parallel.tensor): MemoryEstimate {
  const params = paramTableFor(c, 0, tp).reduce((n, p) => n + p.numel, 0);
  const m = c.model;
  const batch = c.train.micro_batch,
    seq = m.seq_len,
    n = batch * seq;
  const threads = resolveThreads(c.train.threads);
  const e = embeddingSize(c);
  // The vocabulary is padded to a multiple of 128·tp and split over the tensor-parallel ranks.
  const vocabLocal = Math.ceil(m.vocab_size / (128 * tp)) * 128;
  let elements = 2 * n * e; // the embeddings' sum and its gradient
  const main = { layers: m.layers, hidden: m.hidden, heads: m.heads, ffn: m.ffn };
  elements += stackElements(main, tp, batch, seq, e, threads);
  if (m.arch === 'electra') elements += stackElements(generatorShape(c), tp, batch, seq, e, threads);
  if (m.arch === 'gpt') {
    elements += n * vocabLocal + n * m.hidden; // logits over every position
  } else {
    const rows = batch * maxPredictionsPerSequence(c); // the masked positions
    const width = Math.max(m.hidden, e);
    elements += rows * (m.hidden + 3 * e + 2 * width + vocabLocal);
    if (m.arch === 'electra') elements += 3 * n * m.hidden + 2 * n;
  }
  const p = params * F32;
  const est = {
    parameters: p,
    gradients: p,
    optimizerState: 2 * p,
    checkpointCopy: 3 * p,
    activations: elements * F32,
  };
  return { ...est, total: Object.values(est).reduce((a, b) => a + b, 0) };
}

function size(bytes: number): string {
  if (bytes >= 1e12) return `${(bytes / 1e12).toFixed(1)} TB`;
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

/**
 * Refuses (ERR_CONFIG, naming the keys to lower) a config whose engine, `processes` times on this
 * machine (the workers of one node), would not fit: the CPU engine in `machineBytes` (default:
 * os.totalmem()), the CUDA engine in one GPU's memory (default: the smallest card nvidia-smi lists;
 * no check where it lists none), with the workers beyond one per GPU sharing cards.
 */
/** The smallest GPU's memory on this node and the card count (nvidia-smi), or undefined where it cannot say. */
export function smallestGpuBytes(): { bytes: number; count: number } | undefined {
  const listing = nvidiaSmi(['--query-gpu=memory.total', '--format=csv,noheader,nounits']);
  if (listing === undefined) return undefined;
  const mib = listing
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => Number.isFinite(n) && n > 0);
  return mib.length > 0 ? { bytes: Math.min(...mib) * 2 ** 20, count: mib.length } : undefined;
}

export function checkEngineMemory(
  c: Config,
  opts: {
    processes?: number;
    tp?: number;
    machineBytes?: number;
    /** device: cuda — memory of one GPU and how many there are (default: nvidia-smi; unknown: no check). */
    gpu?: { bytes: number; count: number };
  } = {},
): MemoryEstimate {
  const est = estimateEngineMemory(c, opts.tp);
  const processes = opts.processes ?? 1;
  const m = c.model;
  const modelKeys =
    `model.layers (${m.layers}), model.hidden (${m.hidden}), model.ffn (${m.ffn}) or model.vocab_size ` +
    `(${m.vocab_size}) for the parameters, or split them over more ranks (parallel.tensor: ${c.parallel.tensor})`;
  const batchKeys =
    `train.micro_batch (${c.train.micro_batch}) or model.seq_len (${m.seq_len}) for the activations ` +
    `(train.grad_accum keeps the global batch)`;
  if (c.device === 'cuda') {
    // On the GPU: the state and activations, plus the CUDA context and libraries' workspace; the
    // checkpoint copy stays in host memory. Workers beyond one per GPU share cards (LOCAL_RANK modulo).
    const gpu = opts.gpu ?? smallestGpuBytes();
    if (!gpu) return est;
    const perWorker = est.parameters + est.gradients + est.optimizerState + est.activations + GPU_RUNTIME_BYTES;
    const sharing = Math.ceil(processes / gpu.count);
    if (perWorker * sharing <= gpu.bytes) return est;
    const device = est.parameters + est.gradients + est.optimizerState;
    throw new ConfigError(
      `${sharing === 1 ? 'each GPU' : `each GPU, shared by ${sharing} workers,`} would need about ` +
        `${size(perWorker * sharing)}, and it has ${size(gpu.bytes)}:`,
      [
        `per worker: parameters ${size(est.parameters)}, gradients ${size(est.gradients)}, optimizer state ` +
          `${size(est.optimizerState)}, activations ${size(est.activations)}, CUDA runtime ${size(GPU_RUNTIME_BYTES)}`,
        `lower ${device >= est.activations ? `${modelKeys}; or ${batchKeys}` : `${batchKeys}; or ${modelKeys}`}`,
      ],
    );
  }
  const machine = opts.machineBytes ?? os.totalmem();
  const needed = est.total * processes;
  if (needed <= machine) return est;
  const state = est.parameters + est.gradients + est.optimizerState + est.checkpointCopy;
  const who = processes === 1 ? 'the engine' : `${processes} workers on this machine`;
  throw new ConfigError(`${who} would need about ${size(needed)} of memory, and this machine has ${size(machine)}:`, [
    `per process: parameters ${size(est.parameters)}, gradients ${size(est.gradients)}, optimizer state ` +
      `${size(est.optimizerState)}, checkpoint copy ${size(est.checkpointCopy)}, activations ${size(est.activations)}`,
    `lower ${state >= est.activations ? `${modelKeys}; or ${batchKeys}` : `${batchKeys}; or ${modelKeys}`}`,
  ]);
}
