// plan.ts — `paratrain plan`'s answer for a config on a set of devices: the model's size, memory
// per device by part for every tensor × data layout the model can split into, which layouts fit
// (as they are, or only with activation recomputation), and each one's communication volume,
// predicted step time and MFU.
import { maxPredictionsPerSequence } from '../config/load';
import type { Config } from '../config/schema';
import { modelSpec, type ModelSpec } from '../engine/spec';
import { predictStep, type StepPrediction } from './cost';
import { PlanError, type Device, type Precision } from './devices';
import { memoryFor, totalBytes, type MemoryParts } from './memory';
import { countParams, modelFlopsPerToken } from './params';

export interface PlanOptions {
  devices: number;
  device: Device;
  precision: Precision;
  /** Engine threads per worker (CPU: each thread's attention scratch). */
  threads: number;
  computeEfficiency: number;
}

export interface LayoutPlan {
  tp: number;
  dp: number;
  memory: MemoryParts;
  totalBytes: number;
  totalBytesRecompute: number;
  /** 'yes': fits as it is; 'recompute': only with full activation recomputation; 'no'. */
  fits: 'yes' | 'recompute' | 'no';
  /** The step as it would run: without recomputation where it fits so, else with it. */
  step: StepPrediction & { recompute: boolean };
}

export interface Plan {
  config: { arch: string; layers: number; hidden: number; heads: number; ffn: number; vocab: number };
  params: number;
  flopsPerToken: number;
  device: { name: string; description: string; memoryBytes: number; peakFlops: number };
  precision: Precision;
  devices: number;
  microBatch: number;
  seqLen: number;
  gradAccum: number;
  layouts: LayoutPlan[];
}

/** Tensor-parallel sizes the model splits into: t divides every stack's heads, hidden and ffn. */
export function tensorParallelSizes(spec: ModelSpec, devices: number): number[] {
  const sizes: number[] = [];
  for (let t = 1; t <= devices; t++) {
    if (devices % t !== 0) continue;
    if (spec.stacks.every((s) => s.heads % t === 0 && s.hidden % t === 0 && s.ffn % t === 0)) sizes.push(t);
  }
  return sizes;
}

export function planRun(c: Config, o: PlanOptions): Plan {
  if (!Number.isInteger(o.devices) || o.devices < 1)
    throw new PlanError(`--gpus: ${o.devices} is not a positive whole number of devices`);
  const peak = o.device.peakFlops[o.precision];
  if (o.device.name !== 'cpu' && !peak)
    throw new PlanError(
      `--precision ${o.precision}: ${o.device.name} has no dense ${o.precision} peak (it supports ` +
        `${Object.keys(o.device.peakFlops).join(', ')})`,
    );
  const spec = modelSpec(c);
  const B = c.train.micro_batch,
    T = c.model.seq_len,
    gradAccum = c.train.grad_accum;
  const maxPredictions = B * maxPredictionsPerSequence(c);
  const layouts: LayoutPlan[] = [];
  for (const tp of tensorParallelSizes(spec, o.devices)) {
    const dp = o.devices / tp;
    const shape = { microBatch: B, seqLen: T, gradAccum, maxPredictions, threads: o.threads, tp };
    const memory = memoryFor(spec, shape, o.precision, o.device.runtimeBytes, o.device.name === 'cpu');
    const plain = totalBytes(memory, false),
      recomputed = totalBytes(memory, true);
    const fits = plain <= o.device.memoryBytes ? 'yes' : recomputed <= o.device.memoryBytes ? 'recompute' : 'no';
    const recompute = fits === 'recompute';
    const step = predictStep(spec, o.device, {
      microBatch: B,
      seqLen: T,
      gradAccum,
      maxPredictions,
      tp,
      dp,
      precision: o.precision,
      recompute,
      computeEfficiency: o.computeEfficiency,
      overlapDp: true,
    });
    layouts.push({
      tp,
      dp,
      memory,
      totalBytes: plain,
      totalBytesRecompute: recomputed,
      fits,
      step: { ...step, recompute },
    });
  }
  return {
    config: {
      arch: c.model.arch,
      layers: c.model.layers,
      hidden: c.model.hidden,
      heads: c.model.heads,
      ffn: c.model.ffn,
      vocab: c.model.vocab_size,
    },
    params: countParams(spec, 1).perRank,
    flopsPerToken: modelFlopsPerToken(spec, T),
    device: {
      name: o.device.name,
      description: o.device.description,
      memoryBytes: o.device.memoryBytes,
      peakFlops: peak ?? 0,
    },
    precision: o.precision,
    devices: o.devices,
    microBatch: B,
    seqLen: T,
    gradAccum,
    layouts,
  };
}

const gib = (b: number) => (b / 2 ** 30).toFixed(b < 2 ** 30 ? 3 : 2);
const ms = (s: number) => (Number.isFinite(s) ? (s * 1e3).toFixed(s < 0.01 ? 3 : 1) : '–');

/** The plan as a terminal table. */
export function formatPlan(p: Plan): string {
  const c = p.config;
  const lines = [
    `${c.arch} L${c.layers} H${c.hidden} A${c.heads} F${c.ffn} V${c.vocab}: ${(p.params / 1e6).toFixed(2)}M parameters, ` +
      `${(p.flopsPerToken / 1e9).toFixed(3)} GFLOP per token (6N + 12·L·s·h)`,
    `${p.devices} × ${p.device.name}: ${p.device.description}; ${gib(p.device.memoryBytes)} GiB each, ` +
      (p.device.peakFlops > 0
        ? `${(p.device.peakFlops / 1e12).toPrecision(3)} TFLOP/s ${p.precision} peak`
        : 'no peak given') +
      `; micro-batch ${p.microBatch} × seq ${p.seqLen}, ${p.gradAccum} per step, ${p.precision}`,
    '',
    'memory per device, GiB:',
    '| TP×DP | params | grads | optimizer | activations | (recompute) | workspace | runtime | save copy | total | (recompute) | fits |',
    '|---|---|---|---|---|---|---|---|---|---|---|---|',
  ];
  for (const l of p.layouts) {
    const m = l.memory;
    lines.push(
      `| ${l.tp}×${l.dp} | ${gib(m.params)} | ${gib(m.grads)} | ${gib(m.optimizer)} | ${gib(m.activations)} | ` +
        `${gib(m.activationsRecompute)} | ${gib(m.workspace)} | ${gib(m.runtime)} | ${gib(m.saveCopy)} | ${gib(l.totalBytes)} | ` +
        `${gib(l.totalBytesRecompute)} | ${l.fits === 'recompute' ? 'with recompute' : l.fits} |`,
    );
  }
  lines.push(
    '',
    'per step (recomputation only where the layout needs it):',
    '| TP×DP | TP all-reduces | TP MB sent | DP MB sent | compute ms | TP ms | DP ms (exposed) | optimizer ms | step ms | tokens/s | MFU |',
    '|---|---|---|---|---|---|---|---|---|---|---|',
  );
  for (const l of p.layouts) {
    const s = l.step;
    lines.push(
      `| ${l.tp}×${l.dp}${s.recompute ? ' (rc)' : ''} | ${s.tpAllReduces} | ${(s.tpBytes / 1e6).toFixed(1)} | ` +
        `${(s.dpBytes / 1e6).toFixed(1)} | ${ms(s.computeSeconds)} | ${ms(s.tpSeconds)} | ${ms(s.dpSeconds)} ` +
        `(${ms(s.dpExposedSeconds)}) | ${ms(s.optimizerSeconds)} | ${ms(s.stepSeconds)} | ` +
        `${Number.isFinite(s.tokensPerSecond) ? Math.round(s.tokensPerSecond) : '–'} | ` +
        `${Number.isFinite(s.mfu) ? (100 * s.mfu).toFixed(1) + '%' : '–'} |`,
    );
  }
  if (!p.layouts.some((l) => l.fits !== 'no'))
    lines.push('', 'no layout fits: add devices, lower --micro-batch or --seq-len, or use more memory per device');
  return lines.join('\n') + '\n';
}
