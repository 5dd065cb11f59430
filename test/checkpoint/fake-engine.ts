// A stand-in for the engine's parameter tables: the same kinds of tensors (vocabulary-parallel with
// padding, column- and row-split, replicated) laid out and sliced per tensor-parallel rank the way
// cpp/model/params.cpp does, with whole tensors of random values to slice from.
import type { CheckpointHeader, NamedTensor, RankShard, ShardTensor } from '../../src/checkpoint';

export const VOCAB = 11;
export const HIDDEN = 6;
export const FFN = 8;
/** The engine pads the vocabulary to a multiple of 128·tp; 4·tp keeps the tensors small. */
const VOCAB_PAD = 4;

export interface TensorSpec {
  name: string;
  globalShape: number[];
  splitDim: number;
  /** Vocabulary-parallel: padded per rank, and the last ranks may hold only padding. */
  vocab?: boolean;
}

export const SPECS: TensorSpec[] = [
  { name: 'embeddings.word.weight', globalShape: [VOCAB, HIDDEN], splitDim: 0, vocab: true },
  { name: 'layers.0.mlp.up.weight', globalShape: [FFN, HIDDEN], splitDim: 0 },
  { name: 'layers.0.mlp.up.bias', globalShape: [FFN], splitDim: 0 },
  { name: 'layers.0.mlp.down.weight', globalShape: [HIDDEN, FFN], splitDim: 1 },
  { name: 'layers.0.mlp.down.bias', globalShape: [HIDDEN], splitDim: -1 },
  // A vocabulary axis that is not the leading one: padding inside every row.
  { name: 'head.weight', globalShape: [HIDDEN, VOCAB], splitDim: 1, vocab: true },
  { name: 'mlm.decoder.bias', globalShape: [VOCAB], splitDim: 0, vocab: true },
  { name: 'final_norm.weight', globalShape: [HIDDEN], splitDim: -1 },
  { name: 'logit_scale', globalShape: [], splitDim: -1 },
];

/**
 * Tensors big enough for the writer plan to cut into row ranges (pieces of at least 1 MiB):
 * one of each kind, with vocabulary padding on the leading and on a later dim.
 */
export const BIG_SPECS: TensorSpec[] = [
  { name: 'embeddings.word.weight', globalShape: [2050, 1024], splitDim: 0, vocab: true },
  { name: 'embeddings.position.weight', globalShape: [1024, 1024], splitDim: -1 },
  { name: 'layers.0.mlp.up.weight', globalShape: [1024, 512], splitDim: 0 },
  { name: 'layers.0.mlp.down.bias', globalShape: [512], splitDim: -1 },
  { name: 'head.weight', globalShape: [1024, 2050], splitDim: 1, vocab: true },
  { name: 'logit_scale', globalShape: [], splitDim: -1 },
];

const numel = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** The table of TP rank `tpRank` of `tp` (the same for every data-parallel replica). */
export function tableFor(tp: number, tpRank: number, specs: TensorSpec[] = SPECS): ShardTensor[] {
  let offset = 0;
  return specs.map((s) => {
    const shape = [...s.globalShape];
    let shardStart = 0;
    let shardValid = 0;
    if (s.splitDim >= 0) {
      const global = s.globalShape[s.splitDim] as number;
      if (s.vocab && tp > 1) {
        const local = Math.ceil(global / (VOCAB_PAD * tp)) * VOCAB_PAD;
        shardStart = tpRank * local;
        shardValid = Math.max(0, Math.min(local, global - shardStart));
        shape[s.splitDim] = local;
      } else {
        const local = global / tp;
        shardStart = tpRank * local;
        shardValid = local;
        shape[s.splitDim] = local;
      }
    }
    const t: ShardTensor = {
      name: s.name,
      shape,
      globalShape: [...s.globalShape],
      splitDim: s.splitDim,
      shardStart,
      shardValid,
      offset,
      numel: numel(shape),
    };
    offset += t.numel;
    return t;
  });
}

/** Deterministic pseudo-random values (LCG) in [-0.5, 0.5). */
export function randomValues(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

export interface WholeModel {
  params: Map<string, Float32Array>;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

export function wholeModel(seed: number, specs: TensorSpec[] = SPECS): WholeModel {
  const make = (k: number) =>
    new Map(specs.map((s, i) => [s.name, randomValues(numel(s.globalShape), seed * 1000 + k * 100 + i + 1)]));
  return { params: make(0), m: make(1), v: make(2) };
}

/** Writes the local (padded) slice of `whole` for table entry `t` into `flat`; padding stays zero. */
/** The whole model as named tensors: parameters, and the moments under their checkpoint names. */
export function namedTensors(
  model: WholeModel,
  specs: TensorSpec[] = SPECS,
): { params: NamedTensor[]; state: NamedTensor[] } {
  const named = (prefix: string, of: Map<string, Float32Array>) =>
    specs.map((s) => ({ name: `${prefix}${s.name}`, shape: s.globalShape, data: of.get(s.name) as Float32Array }));
  return { params: named('', model.params), state: [...named('exp_avg.', model.m), ...named('exp_avg_sq.', model.v)] };
}

export function sliceInto(flat: Float32Array, t: ShardTensor, whole: Float32Array): void {
  const rank = t.shape.length;
  if (rank === 0) {
    flat[t.offset] = whole[0] as number;
    return;
  }
  // One copy per row of the last dim.
  const gStrides = t.globalShape.map((_, d) => numel(t.globalShape.slice(d + 1)));
  const last = rank - 1;
  const rowLen = t.shape[last] as number;
  const copyLen = t.splitDim === last ? t.shardValid : rowLen;
  const rows = rowLen === 0 ? 0 : t.numel / rowLen;
  for (let r = 0; r < rows; r++) {
    let rest = r;
    let g = t.splitDim === last ? t.shardStart : 0;
    let padding = false;
    for (let d = last - 1; d >= 0; d--) {
      const i = rest % (t.shape[d] as number);
      rest = Math.floor(rest / (t.shape[d] as number));
      if (d === t.splitDim && i >= t.shardValid) padding = true;
      g += (i + (d === t.splitDim ? t.shardStart : 0)) * (gStrides[d] as number);
    }
    if (!padding) flat.set(whole.subarray(g, g + copyLen), t.offset + r * rowLen);
  }
}

/** The flat buffer a rank with `table` holds for `whole` tensors (an engine's getParams()). */
export function flatFor(table: ShardTensor[], whole: Map<string, Float32Array>): Float32Array {
  const total = table.reduce((n, t) => Math.max(n, t.offset + t.numel), 0);
  const flat = new Float32Array(total);
  for (const t of table) sliceInto(flat, t, whole.get(t.name) as Float32Array);
  return flat;
}

export const TRAINING = {
  rng: { seed: 42, scheme: 'philox(seed, step, rank)' },
  schedule: { kind: 'poly', lr: 1e-4, minLr: 0, steps: 1000, warmupSteps: 100, power: 0.5, nextLr: 9.5e-5 },
  lossScale: { enabled: false, scale: 1, growthTracker: 0, skippedSteps: 0 },
};

export function headerFor(step: number, tp: number, dp: number): CheckpointHeader {
  return {
    step,
    consumedSamples: step * 32,
    config: { model: { arch: 'gpt', hidden: HIDDEN, layers: 1 }, train: { steps: 1000, lr: 1e-4 }, name: 'fake' },
    arch: 'gpt',
    optimizer: { name: 'adamw', step },
    layout: { tensorParallel: tp, dataParallel: dp },
    training: TRAINING,
    extra: { note: 'fake engine' },
  };
}

/** What rank (tpRank, dpRank) of a TP×DP job hands to writeShard. */
export function rankShard(
  model: WholeModel,
  step: number,
  tp: number,
  dp: number,
  tpRank: number,
  dpRank: number,
  specs: TensorSpec[] = SPECS,
): RankShard {
  const table = tableFor(tp, tpRank, specs);
  const shard: RankShard = {
    step,
    rank: dpRank * tp + tpRank,
    tpRank,
    tpSize: tp,
    dpRank,
    dpSize: dp,
    table,
    params: flatFor(table, model.params),
    optimizer: { name: 'adamw', step, m: flatFor(table, model.m), v: flatFor(table, model.v) },
  };
  if (tpRank === 0 && dpRank === 0) shard.tokenizerJson = JSON.stringify({ version: '1.0', model: { type: 'BPE' } });
  return shard;
}

export function bytesOf(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Model sizes for engineTable. */
export interface EngineModelSize {
  arch: 'bert' | 'gpt';
  layers: number;
  hidden: number;
  ffn: number;
  vocab: number;
  maxPositions: number;
}

export const BERT_MINI: EngineModelSize = {
  arch: 'bert',
  layers: 4,
  hidden: 256,
  ffn: 1024,
  vocab: 30522,
  maxPositions: 512,
};

/**
 * The table (names, shapes, splits, vocabulary padding to a multiple of 128·tp) that
 * cpp/model/params.cpp lays out for TP rank `tpRank` of `tp`, without data: for writer-plan tests
 * at real sizes.
 */
export function engineTable(m: EngineModelSize, tp: number, tpRank: number): ShardTensor[] {
  const { hidden: H, ffn: F, vocab: V } = m;
  const bert = m.arch === 'bert';
  const table: ShardTensor[] = [];
  let offset = 0;
  const add = (name: string, globalShape: number[], splitDim: number, vocab = false) => {
    const d = tp > 1 ? splitDim : -1;
    const shape = [...globalShape];
    let [shardStart, shardValid] = [0, 0];
    if (d >= 0) {
      const local = vocab ? Math.ceil(V / (128 * tp)) * 128 : (globalShape[d] as number) / tp;
      shape[d] = local;
      shardStart = tpRank * local;
      shardValid = vocab ? Math.max(0, Math.min(local, V - shardStart)) : local;
    }
    table.push({ name, shape, globalShape, splitDim: d, shardStart, shardValid, offset, numel: numel(shape) });
    offset += numel(shape);
  };
  add('embeddings.word.weight', [V, H], 0, true);
  add('embeddings.position.weight', [m.maxPositions, H], -1);
  if (bert) {
    add('embeddings.segment.weight', [2, H], -1);
    add('embeddings.norm.weight', [H], -1);
    add('embeddings.norm.bias', [H], -1);
  }
  for (let l = 0; l < m.layers; l++) {
    const p = `layers.${l}.`;
    if (!bert) {
      add(`${p}attn_norm.weight`, [H], -1);
      add(`${p}attn_norm.bias`, [H], -1);
    }
    for (const x of ['q', 'k', 'v']) add(`${p}attn.${x}.weight`, [H, H], 0);
    for (const x of ['q', 'k', 'v']) add(`${p}attn.${x}.bias`, [H], 0);
    add(`${p}attn.out.weight`, [H, H], 1);
    add(`${p}attn.out.bias`, [H], -1);
    add(`${p}${bert ? 'attn_norm' : 'mlp_norm'}.weight`, [H], -1);
    add(`${p}${bert ? 'attn_norm' : 'mlp_norm'}.bias`, [H], -1);
    add(`${p}mlp.up.weight`, [F, H], 0);
    add(`${p}mlp.up.bias`, [F], 0);
    add(`${p}mlp.down.weight`, [H, F], 1);
    add(`${p}mlp.down.bias`, [H], -1);
    if (bert) {
      add(`${p}mlp_norm.weight`, [H], -1);
      add(`${p}mlp_norm.bias`, [H], -1);
    }
  }
  if (bert) {
    add('pooler.weight', [H, H], -1);
    add('pooler.bias', [H], -1);
    add('mlm.transform.weight', [H, H], -1);
    add('mlm.transform.bias', [H], -1);
    add('mlm.norm.weight', [H], -1);
    add('mlm.norm.bias', [H], -1);
    add('mlm.decoder.bias', [V], 0, true);
    add('nsp.weight', [2, H], -1);
    add('nsp.bias', [2], -1);
  } else {
    add('final_norm.weight', [H], -1);
    add('final_norm.bias', [H], -1);
  }
  return table;
}
