// cost.ts — the step-time model: compute at a fraction of the device's dense peak, ring all-reduces
// over the links a group spans (latency per message + bytes / bandwidth), the optimizer bound by
// memory bandwidth. Tensor-parallel all-reduces block the step (Megatron's f and g); the
// data-parallel gradient all-reduce can hide behind the last micro-batch's backward (paratrain's
// buckets), and only the rest is exposed.
import type { ModelSpec } from '../engine/spec';
import type { Device, Precision } from './devices';
import { countParams, modelFlopsPerToken } from './params';

export interface CostOptions {
  microBatch: number;
  seqLen: number;
  gradAccum: number;
  /** Masked-LM: labelled positions per micro-batch. */
  maxPredictions: number;
  tp: number;
  dp: number;
  precision: Precision;
  /** Full activation recomputation: every layer's forward runs twice. */
  recompute: boolean;
  /** Fraction of the dense peak the matrix multiplies sustain. */
  computeEfficiency: number;
  /** The data-parallel all-reduce overlaps the last micro-batch's backward. */
  overlapDp: boolean;
}

export interface CommVolume {
  /** Tensor-parallel all-reduces per step, and the bytes one rank sends for them. */
  tpAllReduces: number;
  tpBytes: number;
  /** Bytes one rank sends in the gradient all-reduce per step. */
  dpBytes: number;
}

export interface StepPrediction extends CommVolume {
  /** Model FLOPs one device does per step (without recomputation's extra forward). */
  modelFlops: number;
  computeSeconds: number;
  tpSeconds: number;
  /** The full gradient all-reduce, and the part of it the step waits for. */
  dpSeconds: number;
  dpExposedSeconds: number;
  optimizerSeconds: number;
  stepSeconds: number;
  tokensPerSecond: number;
  /** Model FLOP/s per device over the device's dense peak. */
  mfu: number;
}

/** Bytes each rank sends in a ring all-reduce of `bytes` over `k` ranks: 2·(k−1)/k · bytes. */
export function ringAllReduceBytes(bytes: number, k: number): number {
  return k <= 1 ? 0 : (2 * (k - 1) * bytes) / k;
}

/**
 * Per-direction bandwidth of one ring of `size` ranks spaced `stride` apart (TP groups: stride 1;
 * DP groups: stride t). A ring inside a node uses the device's link; one that crosses nodes shares
 * the node's network with the other rings of its kind that cross the same node.
 */
export function ringLink(device: Device, size: number, stride: number): { bandwidth: number; latency: number } {
  const perNode = device.devicesPerNode;
  if ((size - 1) * stride + 1 <= perNode)
    return { bandwidth: device.intraNodeBandwidth, latency: device.intraNodeLatency };
  const ringsPerNode = Math.min(stride, perNode);
  return {
    bandwidth: Math.min(device.intraNodeBandwidth, device.interNodeBandwidth / ringsPerNode),
    latency: device.interNodeLatency,
  };
}

function allReduceSeconds(bytes: number, k: number, link: { bandwidth: number; latency: number }): number {
  if (k <= 1) return 0;
  return 2 * (k - 1) * link.latency + ringAllReduceBytes(bytes, k) / link.bandwidth;
}

/** The all-reduces of one step: count and volume (tensor parallel), gradient bytes (data parallel). */
export function commVolume(spec: ModelSpec, o: CostOptions): CommVolume {
  const N = o.microBatch * o.seqLen,
    elem = o.precision === 'fp32' ? 4 : 2;
  let count = 0,
    elems = 0;
  for (const s of spec.stacks) {
    // Per layer: g after attention and MLP forward, f before them backward; recomputation repeats g.
    const perLayer = o.recompute ? 6 : 4;
    count += perLayer * s.layers;
    elems += perLayer * s.layers * N * s.hidden;
    count += 1; // the vocabulary-parallel embedding's forward sum
    elems += N * spec.embeddings.dim;
  }
  for (const h of spec.heads) {
    // The vocabulary-parallel output layer's input gradient (f); its loss's few scalars are ignored.
    if (h.kind === 'causal-lm') {
      count += 1;
      elems += N * spec.stacks[h.stack].hidden;
    } else if (h.kind === 'masked-lm') {
      count += 1;
      elems += o.maxPredictions * spec.embeddings.dim;
    }
  }
  const perStep = o.gradAccum;
  const tpBytes = o.tp > 1 ? ringAllReduceBytes(elems * elem, o.tp) * perStep : 0;
  const P = countParams(spec, o.tp).perRank;
  return {
    tpAllReduces: o.tp > 1 ? count * perStep : 0,
    tpBytes,
    dpBytes: ringAllReduceBytes(P * elem, o.dp),
  };
}

export function predictStep(spec: ModelSpec, device: Device, o: CostOptions): StepPrediction {
  const peak = device.peakFlops[o.precision] ?? 0;
  const tokens = o.microBatch * o.seqLen * o.gradAccum; // per replica
  const modelFlops = (modelFlopsPerToken(spec, o.seqLen) * tokens) / o.tp;
  const hardwareFlops = o.recompute ? (modelFlops * 4) / 3 : modelFlops;
  const computeSeconds = peak > 0 ? hardwareFlops / (peak * o.computeEfficiency) : NaN;
  const volume = commVolume(spec, o);
  const elem = o.precision === 'fp32' ? 4 : 2;
  // tpBytes already counts 2(t−1)/t; the time adds per-message latency for each all-reduce.
  const tpLink = ringLink(device, o.tp, 1);
  const tpSeconds =
    o.tp > 1 ? volume.tpAllReduces * 2 * (o.tp - 1) * tpLink.latency + volume.tpBytes / tpLink.bandwidth : 0;
  const P = countParams(spec, o.tp).perRank;
  const dpSeconds = allReduceSeconds(P * elem, o.dp, ringLink(device, o.dp, o.tp));
  const backwardWindow = ((computeSeconds / o.gradAccum) * 2) / (o.recompute ? 4 : 3);
  const dpExposedSeconds = o.overlapDp ? Math.max(0, dpSeconds - backwardWindow) : dpSeconds;
  // Read w, g, m, v; write w, m, v (fp32: 28 bytes; mixed: 4+2+4+4 read, 4+4+4+2 written = 28).
  const optimizerSeconds = (28 * P) / device.memoryBandwidth;
  const stepSeconds = computeSeconds + tpSeconds + dpExposedSeconds + optimizerSeconds;
  return {
    ...volume,
    modelFlops,
    computeSeconds,
    tpSeconds,
    dpSeconds,
    dpExposedSeconds,
    optimizerSeconds,
    stepSeconds,
    tokensPerSecond: (tokens * o.dp) / stepSeconds,
    mfu: peak > 0 ? modelFlops / stepSeconds / peak : NaN,
  };
}
