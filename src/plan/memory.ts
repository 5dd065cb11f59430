// memory.ts — memory per device by part. Two models:
// - fp32: the engine's own buffers, counted as cpp/ allocates them (engine.cpp, model/*.cpp): fp32
//   parameters, gradients, Adam/LAMB m and v, every activation buffer of every layer, the gradient
//   scratch. This is what a CPU run holds, and what the plan checks against measured peak RSS.
// - bf16/fp16 mixed precision: the seed's 16 bytes per parameter (2 weights + 2 gradients + 12 for the
//   fp32 master copy, m and v) and Korthikanti et al. 2022's per-layer activations (section 4.1:
//   s·b·h·(34 + 5·a·s/h) bytes, the tensor-parallel parts divided by t).
import type { ModelSpec, StackSpec } from '../engine/spec';
import type { Precision } from './devices';
import { countParams, vocabRowsPerRank } from './params';

export interface RunShape {
  /** Sequences per micro-batch (b) and tokens per sequence (s). */
  microBatch: number;
  seqLen: number;
  gradAccum: number;
  /** Masked-LM: labelled positions per micro-batch the engine makes room for. */
  maxPredictions: number;
  /** Engine threads (each has its own attention scratch). */
  threads: number;
  tp: number;
}

export interface MemoryParts {
  params: number;
  grads: number;
  optimizer: number;
  /** What forward keeps for backward, without recomputation. */
  activations: number;
  /** The same with full recomputation: each layer's input kept, one layer's activations rebuilt at a time. */
  activationsRecompute: number;
  /** Gradient scratch, attention scratch, staged batches: buffers every step needs besides the above. */
  workspace: number;
  /** Bytes per device before the model (CPU: Node.js, the addon and its libraries; GPU: CUDA context, cuBLAS, NCCL). */
  runtime: number;
  /**
   * The trainer's copy of weights, m and v that every checkpoint save writes from (12 bytes per
   * parameter, allocated when training starts): a CPU worker's own memory; on a GPU host memory, 0 here.
   */
  saveCopy: number;
}

export function totalBytes(m: MemoryParts, recompute = false): number {
  return (
    m.params +
    m.grads +
    m.optimizer +
    (recompute ? m.activationsRecompute : m.activations) +
    m.workspace +
    m.runtime +
    m.saveCopy
  );
}

const F32 = 4,
  I32 = 4,
  U64 = 8;

/** One layer's activation buffers in the engine (cpp/model/block.cpp LayerActivations), floats. */
export function engineLayerFloats(s: StackSpec, tp: number, b: number, t: number): number {
  const N = b * t,
    H = s.hidden,
    Hl = s.hidden / tp,
    Fl = s.ffn / tp;
  // qkv 3Hl, ctx Hl, attn_proj/resid1/norm1/down/(resid2 | norm2) 5H, up and gelu 2Fl, 2 × (mean, rstd)
  return N * (4 * Hl + 5 * H + 2 * Fl + 4) + b * (s.heads / tp) * t * t;
}

/** Bytes of everything the fp32 engine allocates for `spec` on one rank (parameters to scratch). */
export function engineMemory(spec: ModelSpec, shape: RunShape, runtime: number, saveCopyOnDevice = false): MemoryParts {
  const { microBatch: B, seqLen: T, tp } = shape;
  const N = B * T,
    E = spec.embeddings.dim;
  const P = countParams(spec, tp).perRank;
  let act = 0,
    actRecompute = 0,
    ws = 0; // floats, except where bytes are added directly
  let wsBytes = 0,
    actBytes = 0;
  for (const s of spec.stacks) {
    const H = s.hidden,
      Hl = H / tp,
      Fl = s.ffn / tp;
    // Embeddings (each stack keeps its own), the projection E→H, the residual stream.
    let shared = N * E + (spec.embeddings.norm ? 2 * N : 0);
    if (spec.embeddings.norm) ws += N * E;
    if (s.projection) {
      shared += N * E;
      ws += N * E;
    }
    shared += (s.layers + 1) * N * H;
    if (s.finalNorm) {
      shared += N * H + 2 * N;
      ws += N * H;
    }
    if (s.pooler) {
      shared += 2 * B * H;
      actBytes += B * I32;
      ws += 2 * B * H;
    }
    const layer = engineLayerFloats(s, tp, B, T);
    act += shared + s.layers * layer;
    actRecompute += shared + layer;
    // d_x, d_h1, d_h2, d_qkv, d_ffn, and per thread two T×T attention rows.
    ws += N * H + 2 * N * H + 3 * N * Hl + N * Fl + Math.max(1, shape.threads) * 2 * T * T;
  }
  const M = shape.maxPredictions;
  let sampling = false;
  for (const h of spec.heads) {
    const H = spec.stacks[h.stack].hidden;
    const Vl = vocabRowsPerRank(spec.vocabSize, tp);
    let headAct: number;
    if (h.kind === 'masked-lm') {
      headAct = M * H + 3 * M * E + 2 * M + M * Vl;
      actBytes += 2 * M * I32 + (h.sample ? M * I32 : 0);
      ws += (tp > 1 || h.sample ? 3 * M : 0) + 2 * M * Math.max(H, E);
      if (h.sample) wsBytes += 2 * M * U64;
      sampling = sampling || h.sample;
    } else if (h.kind === 'causal-lm') {
      headAct = N * Vl;
      ws += tp > 1 ? 3 * N : 0;
    } else if (h.kind === 'sentence-pair') {
      headAct = 2 * B;
    } else {
      headAct = 2 * N * H + N;
      ws += N * H + N;
    }
    act += headAct;
    actRecompute += headAct;
  }
  if (sampling) actBytes += N * I32 + N; // the sampled tokens and their replaced flags
  // Staged micro-batches: tokens, labels, segments (ints) and the key mask (bytes) per slot.
  wsBytes += shape.gradAccum * N * (3 * I32 + 1);
  return {
    params: P * F32,
    grads: P * F32,
    optimizer: 2 * P * F32,
    activations: act * F32 + actBytes,
    activationsRecompute: actRecompute * F32 + actBytes,
    workspace: ws * F32 + wsBytes,
    runtime,
    saveCopy: saveCopyOnDevice ? 3 * P * F32 : 0,
  };
}

/**
 * Korthikanti et al. 2022 (eq. 2, section 4.2.2), one layer's 16-bit activations with t-way tensor
 * parallelism and no sequence parallelism: s·b·(10·h + (8·h + 4·f)/t) + 5·a·s²·b/t bytes. With
 * f = 4h this is their s·b·h·(10 + 24/t + 5·a·s/(h·t)), and at t = 1 the seed's s·b·h·(34 + 5·a·s/h).
 */
export function korthikantiLayerBytes(s: StackSpec, tp: number, b: number, t: number): number {
  const h = s.hidden,
    f = s.ffn;
  return t * b * (10 * h + (8 * h + 4 * f) / tp) + (5 * s.heads * t * t * b) / tp;
}

/** Mixed precision (bf16 or fp16 weights and gradients, fp32 master weights and moments). */
export function mixedPrecisionMemory(
  spec: ModelSpec,
  shape: RunShape,
  runtime: number,
  saveCopyOnDevice = false,
): MemoryParts {
  const { microBatch: B, seqLen: T, tp } = shape;
  const N = B * T,
    E = spec.embeddings.dim;
  const P = countParams(spec, tp).perRank;
  let act = 0,
    actRecompute = 0,
    ws = 0;
  for (const s of spec.stacks) {
    const H = s.hidden;
    const layer = korthikantiLayerBytes(s, tp, B, T);
    // The embeddings' dropout mask (1 byte) and output (2 bytes), the final LayerNorm's input.
    const shared = 3 * N * E + (s.finalNorm ? 2 * N * H : 0);
    act += shared + s.layers * layer;
    actRecompute += shared + s.layers * 2 * N * H + layer;
    // One layer's gradients in flight: two residual-width buffers, QKV and the MLP's inner width per
    // rank, and the attention probabilities' gradient.
    ws = Math.max(ws, 2 * (2 * N * H + (3 * N * H) / tp + (N * s.ffn) / tp + (B * s.heads * T * T) / tp));
  }
  for (const h of spec.heads) {
    const H = spec.stacks[h.stack].hidden;
    const Vl = vocabRowsPerRank(spec.vocabSize, tp);
    const rows = h.kind === 'masked-lm' ? shape.maxPredictions : h.kind === 'causal-lm' ? N : 0;
    // Logits in fp32 for the cross-entropy (Korthikanti's 4·s·b·v/t), and the head's 16-bit input.
    const headAct = rows * (4 * Vl + 2 * H) + (h.kind === 'replaced-token' ? 4 * N * H : 0);
    act += headAct;
    actRecompute += headAct;
  }
  return {
    params: 2 * P,
    grads: 2 * P,
    optimizer: 12 * P,
    activations: act,
    activationsRecompute: actRecompute,
    workspace: ws,
    runtime,
    saveCopy: saveCopyOnDevice ? 3 * P * F32 : 0,
  };
}

/** `saveCopyOnDevice`: the trainer's save copy lives in the device's memory (CPU workers). */
export function memoryFor(
  spec: ModelSpec,
  shape: RunShape,
  precision: Precision,
  runtime: number,
  saveCopyOnDevice: boolean,
): MemoryParts {
  return precision === 'fp32'
    ? engineMemory(spec, shape, runtime, saveCopyOnDevice)
    : mixedPrecisionMemory(spec, shape, runtime, saveCopyOnDevice);
}
