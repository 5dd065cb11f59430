/**
 * Hugging Face interop: paratrain canonical parameters (docs/contracts.md) <-> the state_dict
 * names of transformers' BertForPreTraining / GPT2LMHeadModel, plus config.json.
 */
import * as fsp from 'node:fs/promises';
import * as path from 'node:path';

import { isErrnoException } from '../checkpoint/errors';
import { atomicWriteText } from '../checkpoint/fsutil';
import { readSafetensors, SafetensorsEntry, writeSafetensors } from '../checkpoint/safetensors';
import { AnyTensor, NamedTensor, numelOf } from '../checkpoint/types';
import { canonicalParamSpecs, ModelArch, ModelDims } from './canonical';

export class HfFormatError extends Error {
  readonly code = 'ERR_HF_FORMAT' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HfFormatError';
  }
}

/** The subset of paratrain's model config that HF export needs. */
export interface HfExportModelConfig {
  layers: number;
  hidden: number;
  heads: number;
  ffn: number;
  vocab_size: number;
  /** Defaults to seq_len. */
  max_positions?: number;
  seq_len?: number;
  /** Hidden/residual/embedding dropout (HF default 0.1). */
  dropout?: number;
  /** Attention-probability dropout; defaults to `dropout`. */
  attention_dropout?: number;
  bos_token_id?: number;
  eos_token_id?: number;
  pad_token_id?: number;
}

/** Model config recovered from an HF config.json. */
export interface HfImportedModelConfig extends ModelDims {
  dropout: number;
  attention_dropout: number;
  bos_token_id?: number;
  eos_token_id?: number;
  pad_token_id?: number;
}

export interface HfExport {
  /** config.json content. */
  config: Record<string, unknown>;
  /** Tensors under HF names (may share buffers with the input params). */
  tensors: NamedTensor[];
}

export interface HfImport {
  arch: ModelArch;
  modelConfig: HfImportedModelConfig;
  /** Canonical params in canonicalParamSpecs order (may share buffers with the input tensors). */
  params: NamedTensor[];
  /** Non-fatal differences (activation, eps, ignored tensors...) worth logging. */
  warnings: string[];
}

export const BERT_EPS = 1e-12;
export const GPT_EPS = 1e-5;

// ---------------------------------------------------------------------------------------------
// Mapping table
// ---------------------------------------------------------------------------------------------

interface Mapping {
  hf: string;
  hfShape: number[];
  canonical: string[];
  toHf(src: Float32Array[]): Float32Array;
  fromHf(data: Float32Array): Float32Array[];
}

function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[base + c] as number;
  }
  return out;
}

function rename(hf: string, canonical: string, shape: number[]): Mapping {
  return { hf, hfShape: shape, canonical: [canonical], toHf: (s) => s[0] as Float32Array, fromHf: (d) => [d] };
}

/** HF Conv1D stores [in, out] where Linear (canonical) stores [out, in]. */
function conv1d(hf: string, canonical: string, out: number, inp: number): Mapping {
  return {
    hf,
    hfShape: [inp, out],
    canonical: [canonical],
    toHf: (s) => transpose(s[0] as Float32Array, out, inp),
    fromHf: (d) => [transpose(d, inp, out)],
  };
}

/** GPT-2 c_attn: Conv1D [H, 3H] with q|k|v concatenated along the output (column) axis. */
function qkvWeight(hf: string, prefix: string, H: number): Mapping {
  return {
    hf,
    hfShape: [H, 3 * H],
    canonical: [`${prefix}q.weight`, `${prefix}k.weight`, `${prefix}v.weight`],
    toHf: (src) => {
      const out = new Float32Array(3 * H * H);
      src.forEach((w, j) => {
        for (let o = 0; o < H; o++) for (let i = 0; i < H; i++) out[i * 3 * H + j * H + o] = w[o * H + i] as number;
      });
      return out;
    },
    fromHf: (d) =>
      [0, 1, 2].map((j) => {
        const w = new Float32Array(H * H);
        for (let o = 0; o < H; o++) for (let i = 0; i < H; i++) w[o * H + i] = d[i * 3 * H + j * H + o] as number;
        return w;
      }),
  };
}

function qkvBias(hf: string, prefix: string, H: number): Mapping {
  return {
    hf,
    hfShape: [3 * H],
    canonical: [`${prefix}q.bias`, `${prefix}k.bias`, `${prefix}v.bias`],
    toHf: (src) => {
      const out = new Float32Array(3 * H);
      src.forEach((b, j) => out.set(b, j * H));
      return out;
    },
    fromHf: (d) => [0, 1, 2].map((j) => d.slice(j * H, (j + 1) * H)),
  };
}

function bertMappings(d: ModelDims): Mapping[] {
  const { hidden: H, ffn: F, vocab_size: V, max_positions: P } = d;
  const m: Mapping[] = [
    rename('bert.embeddings.word_embeddings.weight', 'embeddings.word.weight', [V, H]),
    rename('bert.embeddings.position_embeddings.weight', 'embeddings.position.weight', [P, H]),
    rename('bert.embeddings.token_type_embeddings.weight', 'embeddings.segment.weight', [2, H]),
    rename('bert.embeddings.LayerNorm.weight', 'embeddings.norm.weight', [H]),
    rename('bert.embeddings.LayerNorm.bias', 'embeddings.norm.bias', [H]),
  ];
  for (let i = 0; i < d.layers; i++) {
    const h = `bert.encoder.layer.${i}.`;
    const c = `layers.${i}.`;
    m.push(
      rename(`${h}attention.self.query.weight`, `${c}attn.q.weight`, [H, H]),
      rename(`${h}attention.self.query.bias`, `${c}attn.q.bias`, [H]),
      rename(`${h}attention.self.key.weight`, `${c}attn.k.weight`, [H, H]),
      rename(`${h}attention.self.key.bias`, `${c}attn.k.bias`, [H]),
      rename(`${h}attention.self.value.weight`, `${c}attn.v.weight`, [H, H]),
      rename(`${h}attention.self.value.bias`, `${c}attn.v.bias`, [H]),
      rename(`${h}attention.output.dense.weight`, `${c}attn.out.weight`, [H, H]),
      rename(`${h}attention.output.dense.bias`, `${c}attn.out.bias`, [H]),
      rename(`${h}attention.output.LayerNorm.weight`, `${c}attn_norm.weight`, [H]),
      rename(`${h}attention.output.LayerNorm.bias`, `${c}attn_norm.bias`, [H]),
      rename(`${h}intermediate.dense.weight`, `${c}mlp.up.weight`, [F, H]),
      rename(`${h}intermediate.dense.bias`, `${c}mlp.up.bias`, [F]),
      rename(`${h}output.dense.weight`, `${c}mlp.down.weight`, [H, F]),
      rename(`${h}output.dense.bias`, `${c}mlp.down.bias`, [H]),
      rename(`${h}output.LayerNorm.weight`, `${c}mlp_norm.weight`, [H]),
      rename(`${h}output.LayerNorm.bias`, `${c}mlp_norm.bias`, [H]),
    );
  }
  m.push(
    rename('bert.pooler.dense.weight', 'pooler.weight', [H, H]),
    rename('bert.pooler.dense.bias', 'pooler.bias', [H]),
    rename('cls.predictions.bias', 'mlm.decoder.bias', [V]),
    rename('cls.predictions.transform.dense.weight', 'mlm.transform.weight', [H, H]),
    rename('cls.predictions.transform.dense.bias', 'mlm.transform.bias', [H]),
    rename('cls.predictions.transform.LayerNorm.weight', 'mlm.norm.weight', [H]),
    rename('cls.predictions.transform.LayerNorm.bias', 'mlm.norm.bias', [H]),
    rename('cls.seq_relationship.weight', 'nsp.weight', [2, H]),
    rename('cls.seq_relationship.bias', 'nsp.bias', [2]),
  );
  return m;
}

function gptMappings(d: ModelDims): Mapping[] {
  const { hidden: H, ffn: F, vocab_size: V, max_positions: P } = d;
  const m: Mapping[] = [
    rename('transformer.wte.weight', 'embeddings.word.weight', [V, H]),
    rename('transformer.wpe.weight', 'embeddings.position.weight', [P, H]),
  ];
  for (let i = 0; i < d.layers; i++) {
    const h = `transformer.h.${i}.`;
    const c = `layers.${i}.`;
    m.push(
      rename(`${h}ln_1.weight`, `${c}attn_norm.weight`, [H]),
      rename(`${h}ln_1.bias`, `${c}attn_norm.bias`, [H]),
      qkvWeight(`${h}attn.c_attn.weight`, `${c}attn.`, H),
      qkvBias(`${h}attn.c_attn.bias`, `${c}attn.`, H),
      conv1d(`${h}attn.c_proj.weight`, `${c}attn.out.weight`, H, H),
      rename(`${h}attn.c_proj.bias`, `${c}attn.out.bias`, [H]),
      rename(`${h}ln_2.weight`, `${c}mlp_norm.weight`, [H]),
      rename(`${h}ln_2.bias`, `${c}mlp_norm.bias`, [H]),
      conv1d(`${h}mlp.c_fc.weight`, `${c}mlp.up.weight`, F, H),
      rename(`${h}mlp.c_fc.bias`, `${c}mlp.up.bias`, [F]),
      conv1d(`${h}mlp.c_proj.weight`, `${c}mlp.down.weight`, H, F),
      rename(`${h}mlp.c_proj.bias`, `${c}mlp.down.bias`, [H]),
    );
  }
  m.push(
    rename('transformer.ln_f.weight', 'final_norm.weight', [H]),
    rename('transformer.ln_f.bias', 'final_norm.bias', [H]),
  );
  return m;
}

/** Tied duplicates found in HF files: [duplicate, primary]. */
const TIED: Record<ModelArch, Array<[string, string]>> = {
  bert: [
    ['cls.predictions.decoder.weight', 'bert.embeddings.word_embeddings.weight'],
    ['cls.predictions.decoder.bias', 'cls.predictions.bias'],
  ],
  gpt: [['lm_head.weight', 'transformer.wte.weight']],
};

/** Buffers that real HF exports may carry and that are not parameters. */
const IGNORED_BUFFERS: RegExp[] = [
  /(^|\.)embeddings\.(position_ids|token_type_ids)$/,
  /(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/,
];

export function isIgnoredHfBuffer(name: string): boolean {
  return IGNORED_BUFFERS.some((re) => re.test(name));
}

// ---------------------------------------------------------------------------------------------
// Export
// ---------------------------------------------------------------------------------------------

function posInt(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new HfFormatError(`${what} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  return v;
}

function dimsFromModelConfig(mc: HfExportModelConfig): ModelDims {
  const d: ModelDims = {
    layers: posInt(mc.layers, 'model.layers'),
    hidden: posInt(mc.hidden, 'model.hidden'),
    heads: posInt(mc.heads, 'model.heads'),
    ffn: posInt(mc.ffn, 'model.ffn'),
    vocab_size: posInt(mc.vocab_size, 'model.vocab_size'),
    max_positions: posInt(mc.max_positions ?? mc.seq_len, 'model.max_positions (or model.seq_len)'),
  };
  if (d.hidden % d.heads !== 0)
    throw new HfFormatError(`model.hidden ${d.hidden} is not divisible by model.heads ${d.heads}`);
  return d;
}

function shapeStr(s: readonly number[]): string {
  return `[${s.join(', ')}]`;
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function optionalIds(mc: {
  bos_token_id?: unknown;
  eos_token_id?: unknown;
  pad_token_id?: unknown;
}): Record<string, number> {
  const out: Record<string, number> = {};
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    const v = mc[k];
    if (typeof v === 'number' && Number.isSafeInteger(v)) out[k] = v;
  }
  return out;
}

/** Builds the HF config.json object for `arch`. */
export function hfConfigFor(arch: ModelArch, mc: HfExportModelConfig): Record<string, unknown> {
  const d = dimsFromModelConfig(mc);
  const dropout = typeof mc.dropout === 'number' ? mc.dropout : 0.1;
  const attnDropout = typeof mc.attention_dropout === 'number' ? mc.attention_dropout : dropout;
  if (arch === 'bert') {
    return {
      architectures: ['BertForPreTraining'],
      model_type: 'bert',
      vocab_size: d.vocab_size,
      hidden_size: d.hidden,
      num_hidden_layers: d.layers,
      num_attention_heads: d.heads,
      intermediate_size: d.ffn,
      hidden_act: 'gelu',
      hidden_dropout_prob: dropout,
      attention_probs_dropout_prob: attnDropout,
      max_position_embeddings: d.max_positions,
      type_vocab_size: 2,
      initializer_range: 0.02,
      layer_norm_eps: BERT_EPS,
      position_embedding_type: 'absolute',
      tie_word_embeddings: true,
      torch_dtype: 'float32',
      ...optionalIds(mc),
    };
  }
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: d.vocab_size,
    n_positions: d.max_positions,
    n_ctx: d.max_positions,
    n_embd: d.hidden,
    n_layer: d.layers,
    n_head: d.heads,
    n_inner: d.ffn,
    activation_function: 'gelu_new',
    resid_pdrop: dropout,
    embd_pdrop: dropout,
    attn_pdrop: attnDropout,
    layer_norm_epsilon: GPT_EPS,
    initializer_range: 0.02,
    scale_attn_weights: true,
    tie_word_embeddings: true,
    torch_dtype: 'float32',
    ...optionalIds(mc),
  };
}

/** Converts canonical params to HF names/layout and builds config.json. */
export function toHuggingFace(
  arch: ModelArch,
  params: readonly NamedTensor[],
  modelConfig: HfExportModelConfig,
): HfExport {
  if (arch !== 'bert' && arch !== 'gpt') throw new HfFormatError(`unknown arch ${JSON.stringify(arch)}`);
  const dims = dimsFromModelConfig(modelConfig);
  const byName = new Map<string, NamedTensor>();
  for (const p of params) {
    if (byName.has(p.name)) throw new HfFormatError(`duplicate parameter ${p.name}`);
    byName.set(p.name, p);
  }
  for (const spec of canonicalParamSpecs(arch, dims)) {
    const p = byName.get(spec.name);
    if (p === undefined)
      throw new HfFormatError(`missing parameter ${spec.name} (expected shape ${shapeStr(spec.shape)})`);
    if (!sameShape(p.shape, spec.shape) || p.data.length !== numelOf(spec.shape)) {
      throw new HfFormatError(
        `parameter ${spec.name} has shape ${shapeStr(p.shape)}, expected ${shapeStr(spec.shape)}`,
      );
    }
    byName.delete(spec.name);
  }
  const extra = [...byName.keys()];
  if (extra.length > 0) throw new HfFormatError(`unexpected parameter(s) for ${arch}: ${extra.join(', ')}`);

  const all = new Map(params.map((p) => [p.name, p.data]));
  const mappings = arch === 'bert' ? bertMappings(dims) : gptMappings(dims);
  const tensors = mappings.map((m) => ({
    name: m.hf,
    shape: [...m.hfShape],
    data: m.toHf(m.canonical.map((c) => all.get(c) as Float32Array)),
  }));
  return { config: hfConfigFor(arch, modelConfig), tensors };
}

// ---------------------------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------------------------

function detectArch(config: Record<string, unknown>): ModelArch {
  const mt = config['model_type'];
  if (mt === 'bert') return 'bert';
  if (mt === 'gpt2') return 'gpt';
  const archs = Array.isArray(config['architectures']) ? (config['architectures'] as unknown[]) : [];
  if (archs.some((a) => typeof a === 'string' && a.startsWith('Bert'))) return 'bert';
  if (archs.some((a) => typeof a === 'string' && a.startsWith('GPT2'))) return 'gpt';
  throw new HfFormatError(
    `config.json: unsupported model_type ${JSON.stringify(mt)} / architectures ${JSON.stringify(archs)} (expected bert or gpt2)`,
  );
}

function cfgInt(config: Record<string, unknown>, key: string, fallback?: number): number {
  const v = config[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
    throw new HfFormatError(`config.json: ${key} must be a positive integer, got ${JSON.stringify(config[key])}`);
  }
  return v;
}

function cfgNum(config: Record<string, unknown>, key: string, fallback: number): number {
  const v = config[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new HfFormatError(`config.json: ${key} must be a number, got ${JSON.stringify(v)}`);
  }
  return v;
}

function importedConfig(arch: ModelArch, config: Record<string, unknown>, warnings: string[]): HfImportedModelConfig {
  let mc: HfImportedModelConfig;
  if (arch === 'bert') {
    mc = {
      layers: cfgInt(config, 'num_hidden_layers'),
      hidden: cfgInt(config, 'hidden_size'),
      heads: cfgInt(config, 'num_attention_heads'),
      ffn: cfgInt(config, 'intermediate_size'),
      vocab_size: cfgInt(config, 'vocab_size'),
      max_positions: cfgInt(config, 'max_position_embeddings'),
      dropout: cfgNum(config, 'hidden_dropout_prob', 0.1),
      attention_dropout: cfgNum(config, 'attention_probs_dropout_prob', 0.1),
    };
    const tv = config['type_vocab_size'] ?? 2;
    if (tv !== 2)
      throw new HfFormatError(
        `config.json: type_vocab_size ${JSON.stringify(tv)} is unsupported (paratrain BERT has 2 segments)`,
      );
    const act = config['hidden_act'] ?? 'gelu';
    if (act !== 'gelu' && act !== 'gelu_python') {
      warnings.push(`hidden_act ${JSON.stringify(act)}: paratrain BERT uses erf GELU ("gelu"); outputs will differ`);
    }
    const eps = cfgNum(config, 'layer_norm_eps', BERT_EPS);
    if (eps !== BERT_EPS) warnings.push(`layer_norm_eps ${eps}: paratrain BERT uses ${BERT_EPS}`);
    const pet = config['position_embedding_type'] ?? 'absolute';
    if (pet !== 'absolute')
      warnings.push(`position_embedding_type ${JSON.stringify(pet)}: paratrain supports only "absolute"`);
  } else {
    const hidden = cfgInt(config, 'n_embd');
    const nInner = config['n_inner'];
    mc = {
      layers: cfgInt(config, 'n_layer'),
      hidden,
      heads: cfgInt(config, 'n_head'),
      // HF: n_inner null/absent means 4 * n_embd.
      ffn: nInner === null || nInner === undefined ? 4 * hidden : cfgInt(config, 'n_inner'),
      vocab_size: cfgInt(config, 'vocab_size'),
      max_positions: cfgInt(config, 'n_positions', config['n_ctx'] as number | undefined),
      dropout: cfgNum(config, 'resid_pdrop', 0.1),
      attention_dropout: cfgNum(config, 'attn_pdrop', 0.1),
    };
    const embd = cfgNum(config, 'embd_pdrop', mc.dropout);
    if (embd !== mc.dropout)
      warnings.push(`embd_pdrop ${embd} differs from resid_pdrop ${mc.dropout}; using resid_pdrop`);
    const act = config['activation_function'] ?? 'gelu_new';
    if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh' && act !== 'gelu_fast') {
      warnings.push(
        `activation_function ${JSON.stringify(act)}: paratrain GPT-2 uses tanh GELU ("gelu_new"); outputs will differ`,
      );
    }
    const eps = cfgNum(config, 'layer_norm_epsilon', GPT_EPS);
    if (eps !== GPT_EPS) warnings.push(`layer_norm_epsilon ${eps}: paratrain GPT-2 uses ${GPT_EPS}`);
    if (config['scale_attn_weights'] === false)
      warnings.push('scale_attn_weights=false: paratrain always scales by 1/sqrt(head_dim)');
    if (config['scale_attn_by_inverse_layer_idx'] === true) {
      warnings.push('scale_attn_by_inverse_layer_idx=true is not supported by paratrain; outputs will differ');
    }
  }
  if (mc.hidden % mc.heads !== 0) {
    throw new HfFormatError(`config.json: hidden size ${mc.hidden} is not divisible by ${mc.heads} heads`);
  }
  if (config['tie_word_embeddings'] === false) {
    warnings.push('tie_word_embeddings=false: paratrain ties the output projection to the word embeddings');
  }
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id'] as const) {
    const v = config[k];
    if (typeof v === 'number' && Number.isSafeInteger(v)) mc[k] = v;
  }
  return mc;
}

/** Maps a key from any supported HF layout to the BertForPreTraining / GPT2LMHeadModel key. */
function normaliseKey(arch: ModelArch, key: string): string {
  // Old TF-converted BERT checkpoints name LayerNorm parameters gamma/beta.
  let k = key.replace(/\.gamma$/, '.weight').replace(/\.beta$/, '.bias');
  if (arch === 'bert') {
    if (/^(embeddings|encoder|pooler)\./.test(k)) k = `bert.${k}`;
  } else if (/^(wte|wpe|h|ln_f)\./.test(k)) {
    // GPT2Model-style files (e.g. the original "gpt2" upload) have no "transformer." prefix.
    k = `transformer.${k}`;
  }
  return k;
}

function arraysEqual(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Converts HF config.json + tensors (any real BertForPreTraining / GPT2LMHeadModel / GPT2Model
 * export) to canonical params. Buffers are ignored, tied duplicates must equal their primary.
 */
export function fromHuggingFace(config: Record<string, unknown>, tensors: readonly AnyTensor[]): HfImport {
  if (typeof config !== 'object' || config === null) throw new HfFormatError('config.json content must be an object');
  const arch = detectArch(config);
  const warnings: string[] = [];
  const mc = importedConfig(arch, config, warnings);
  const dims: ModelDims = mc;

  // Normalised key -> tensor, remembering the original name for error messages.
  const byKey = new Map<string, { orig: string; t: AnyTensor }>();
  for (const t of tensors) {
    if (isIgnoredHfBuffer(t.name)) continue;
    const k = normaliseKey(arch, t.name);
    const prev = byKey.get(k);
    if (prev !== undefined) throw new HfFormatError(`tensors ${prev.orig} and ${t.name} both map to ${k}`);
    byKey.set(k, { orig: t.name, t });
  }

  for (const [dup, primary] of TIED[arch]) {
    const d = byKey.get(dup);
    if (d === undefined) continue;
    const p = byKey.get(primary);
    byKey.delete(dup);
    if (p === undefined) {
      byKey.set(primary, d);
      continue;
    }
    if (
      !(d.t.data instanceof Float32Array) ||
      !(p.t.data instanceof Float32Array) ||
      !sameShape(d.t.shape, p.t.shape) ||
      !arraysEqual(d.t.data, p.t.data)
    ) {
      throw new HfFormatError(
        `${d.orig} differs from ${p.orig}; paratrain ties these weights, so untied checkpoints cannot be imported`,
      );
    }
  }

  const canonical = new Map<string, Float32Array>();
  const mappings = arch === 'bert' ? bertMappings(dims) : gptMappings(dims);
  for (const m of mappings) {
    const e = byKey.get(m.hf);
    if (e === undefined) {
      throw new HfFormatError(
        `missing tensor ${m.hf} (expected shape ${shapeStr(m.hfShape)}) for ${arch} per config.json`,
      );
    }
    if (!sameShape(e.t.shape, m.hfShape)) {
      throw new HfFormatError(
        `tensor ${e.orig} has shape ${shapeStr(e.t.shape)}, expected ${shapeStr(m.hfShape)} per config.json`,
      );
    }
    if (!(e.t.data instanceof Float32Array))
      throw new HfFormatError(`tensor ${e.orig} is an integer tensor, expected floating point`);
    const parts = m.fromHf(e.t.data);
    m.canonical.forEach((c, i) => canonical.set(c, parts[i] as Float32Array));
    byKey.delete(m.hf);
  }
  for (const { orig } of byKey.values()) warnings.push(`ignored unexpected tensor ${orig}`);

  const params = canonicalParamSpecs(arch, dims).map((s) => ({
    name: s.name,
    shape: [...s.shape],
    data: canonical.get(s.name) as Float32Array,
  }));
  return { arch, modelConfig: mc, params, warnings };
}

// ---------------------------------------------------------------------------------------------
// Directories
// ---------------------------------------------------------------------------------------------

export interface HfDirContents {
  config: Record<string, unknown>;
  /** Tensors under their names in the file(s); buffers (position_ids, attn.bias...) are skipped. */
  tensors: AnyTensor[];
  tokenizerJson?: string;
}

/** Writes config.json, model.safetensors (+ tokenizer.json) in HF layout; returns the written paths. */
export async function exportHuggingFaceDir(
  outDir: string,
  arch: ModelArch,
  params: readonly NamedTensor[],
  modelConfig: HfExportModelConfig,
  options: { tokenizerJson?: string } = {},
): Promise<{ dir: string; files: string[] }> {
  const { config, tensors } = toHuggingFace(arch, params, modelConfig);
  await fsp.mkdir(outDir, { recursive: true });
  const files: string[] = [];
  // transformers refuses safetensors files whose metadata lacks format=pt.
  const model = await writeSafetensors(path.join(outDir, 'model.safetensors'), tensors, { format: 'pt' });
  files.push(model.path);
  const cfgPath = path.join(outDir, 'config.json');
  await atomicWriteText(cfgPath, `${JSON.stringify(config, null, 2)}\n`);
  files.push(cfgPath);
  if (options.tokenizerJson !== undefined) {
    const tokPath = path.join(outDir, 'tokenizer.json');
    await atomicWriteText(tokPath, options.tokenizerJson);
    files.push(tokPath);
  }
  return { dir: outDir, files };
}

async function exists(p: string): Promise<boolean> {
  try {
    await fsp.access(p);
    return true;
  } catch {
    return false;
  }
}

async function readJson(file: string): Promise<unknown> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if (isErrnoException(e) && e.code === 'ENOENT') throw new HfFormatError(`${file}: not found`, { cause: e });
    throw e;
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new HfFormatError(`${file}: invalid JSON (${(e as Error).message})`, { cause: e });
  }
}

const keepEntry = (e: SafetensorsEntry): boolean => !isIgnoredHfBuffer(e.name);

/**
 * Reads an HF model directory: config.json plus model.safetensors or a sharded
 * model.safetensors.index.json, and tokenizer.json when present.
 */
export async function readHuggingFaceDir(dir: string): Promise<HfDirContents> {
  const cfg = await readJson(path.join(dir, 'config.json'));
  if (typeof cfg !== 'object' || cfg === null || Array.isArray(cfg)) {
    throw new HfFormatError(`${path.join(dir, 'config.json')}: expected a JSON object`);
  }
  const config = cfg as Record<string, unknown>;
  let tensors: AnyTensor[];
  const single = path.join(dir, 'model.safetensors');
  const index = path.join(dir, 'model.safetensors.index.json');
  if (await exists(single)) {
    tensors = (await readSafetensors(single, { filter: keepEntry })).tensors;
  } else if (await exists(index)) {
    const idx = (await readJson(index)) as { weight_map?: unknown };
    const wm = idx.weight_map;
    if (typeof wm !== 'object' || wm === null || Array.isArray(wm))
      throw new HfFormatError(`${index}: missing weight_map`);
    const shards = new Set(Object.values(wm as Record<string, unknown>));
    tensors = [];
    for (const shard of shards) {
      if (typeof shard !== 'string' || shard !== path.basename(shard) || shard.startsWith('.')) {
        throw new HfFormatError(`${index}: invalid shard file name ${JSON.stringify(shard)}`);
      }
      tensors.push(...(await readSafetensors(path.join(dir, shard), { filter: keepEntry })).tensors);
    }
  } else {
    const other = ['pytorch_model.bin', 'pytorch_model.bin.index.json', 'tf_model.h5', 'flax_model.msgpack'];
    const found: string[] = [];
    for (const f of other) if (await exists(path.join(dir, f))) found.push(f);
    if (found.length > 0) {
      throw new HfFormatError(
        `${dir}: has ${found.join(', ')} but no model.safetensors; paratrain reads only safetensors. Convert it with ` +
          `transformers: AutoModel*.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`,
      );
    }
    throw new HfFormatError(`${dir}: no model.safetensors found`);
  }
  const out: HfDirContents = { config, tensors };
  const tok = path.join(dir, 'tokenizer.json');
  if (await exists(tok)) out.tokenizerJson = await fsp.readFile(tok, 'utf8');
  return out;
}

/** readHuggingFaceDir + fromHuggingFace. */
export async function importHuggingFaceDir(dir: string): Promise<HfImport & { tokenizerJson?: string }> {
  const { config, tensors, tokenizerJson } = await readHuggingFaceDir(dir);
  const imported = fromHuggingFace(config, tensors);
  return tokenizerJson === undefined ? imported : { ...imported, tokenizerJson };
}
