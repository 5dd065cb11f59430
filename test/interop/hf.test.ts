// Hugging Face interop for every family: the exported keys and shapes (written here from the HF
// model classes, independently of src/interop/hf/), the round trip to paratrain's tensors, the
// layouts that differ (GPT-2's Conv1D, RoBERTa's position offset, ALBERT's shared layer, ELECTRA's
// two models) and the refusals that name the field and the value.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { readSafetensors, writeSafetensors } from '../../src/checkpoint';
import { AnyTensor, NamedTensor } from '../../src/checkpoint';
import { validateConfig } from '../../src/config/load';
import type { Config, ModelFamily } from '../../src/config/schema';
import { paramTableFor } from '../../src/engine/engine';
import {
  exportHuggingFace,
  fromHuggingFace,
  importHuggingFace,
  readHuggingFaceDir,
  toHuggingFace,
  type HfDirContents,
  type HfModelFiles,
} from '../../src/interop/hf';

let tmp: string;
beforeEach(() => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-hf-'));
});
afterEach(() => {
  fs.rmSync(tmp, { recursive: true, force: true });
});

const L = 2;
const H = 8;
const NH = 2;
const F = 12;
const V = 11;
const P = 9;
const E = 6; // ALBERT / ELECTRA embedding width
const GH = 4; // ELECTRA generator hidden (fraction 0.5)
const GF = 16; // 4 × GH

function configOf(arch: ModelFamily, model: Record<string, unknown> = {}, data: Record<string, unknown> = {}): Config {
  const extra =
    arch === 'albert'
      ? { embedding_size: E }
      : arch === 'electra'
        ? { embedding_size: E, generator: { hidden_fraction: 0.5, heads: 2 } }
        : {};
  return validateConfig({
    model: {
      arch,
      layers: L,
      hidden: H,
      heads: NH,
      ffn: F,
      vocab_size: V,
      seq_len: 8,
      max_positions: P,
      ...extra,
      ...model,
    },
    train: { steps: 1, micro_batch: 1, lr: 1e-3 },
    data,
  });
}

function filled(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    out[i] = s / 2 ** 32 - 0.5;
  }
  return out;
}

function byName<T extends { name: string }>(ts: readonly T[]): Map<string, T> {
  return new Map(ts.map((t) => [t.name, t]));
}

function sortedSpecs(ts: ReadonlyArray<{ name: string; shape: number[] }>): Array<[string, number[]]> {
  return ts.map((t) => [t.name, t.shape] as [string, number[]]).sort((a, b) => a[0].localeCompare(b[0]));
}

function expectIdentity(a: readonly NamedTensor[], b: readonly NamedTensor[]): void {
  expect(sortedSpecs(a)).toEqual(sortedSpecs(b));
  const mb = byName(b);
  for (const t of a) expect(Array.from(t.data)).toEqual(Array.from(mb.get(t.name)?.data ?? []));
}

function errorOf(fn: () => unknown): Error & { code?: string } {
  try {
    fn();
  } catch (e) {
    return e as Error & { code?: string };
  }
  throw new Error('expected an error');
}

/** IEEE half bits for values that are exactly representable (tests only use multiples of 1/4 in [-2, 2]). */
function f16Bits(v: number): number {
  if (v === 0) return Object.is(v, -0) ? 0x8000 : 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  const mant = Math.round((a / 2 ** e - 1) * 1024);
  return sign | ((e + 15) << 10) | mant;
}

/** Every parameter of `c`'s model, whole, with pseudo-random values. */
function paramsOf(c: Config): NamedTensor[] {
  return paramTableFor(c).map((p, i) => ({
    name: p.name,
    shape: p.globalShape,
    data: filled(
      p.globalShape.reduce((a, b) => a * b, 1),
      i * 7919 + 3,
    ),
  }));
}

/** In-memory HF directory contents of exported models (the main one and ELECTRA's generator). */
function contentsOf(models: HfModelFiles[]): { main: HfDirContents; generator?: HfDirContents } {
  const dir = (m: HfModelFiles): HfDirContents => ({ dir: `/mem/${m.subdir}`, config: m.config, tensors: m.tensors });
  const main = models.find((m) => m.subdir === '')!;
  const generator = models.find((m) => m.subdir === 'generator');
  return generator ? { main: dir(main), generator: dir(generator) } : { main: dir(main) };
}

// paratrain's BERT and GPT-2 names, written from docs/models.md (independent of the engine's table).
function bertNames(): Array<[string, number[]]> {
  const out: Array<[string, number[]]> = [
    ['embeddings.word.weight', [V, H]],
    ['embeddings.position.weight', [P, H]],
    ['embeddings.segment.weight', [2, H]],
    ['embeddings.norm.weight', [H]],
    ['embeddings.norm.bias', [H]],
  ];
  for (let i = 0; i < L; i++)
    for (const [n, s] of [
      ['attn.q.weight', [H, H]],
      ['attn.k.weight', [H, H]],
      ['attn.v.weight', [H, H]],
      ['attn.q.bias', [H]],
      ['attn.k.bias', [H]],
      ['attn.v.bias', [H]],
      ['attn.out.weight', [H, H]],
      ['attn.out.bias', [H]],
      ['attn_norm.weight', [H]],
      ['attn_norm.bias', [H]],
      ['mlp.up.weight', [F, H]],
      ['mlp.up.bias', [F]],
      ['mlp.down.weight', [H, F]],
      ['mlp.down.bias', [H]],
      ['mlp_norm.weight', [H]],
      ['mlp_norm.bias', [H]],
    ] as Array<[string, number[]]>)
      out.push([`layers.${i}.${n}`, s]);
  out.push(
    ['pooler.weight', [H, H]],
    ['pooler.bias', [H]],
    ['mlm.transform.weight', [H, H]],
    ['mlm.transform.bias', [H]],
    ['mlm.norm.weight', [H]],
    ['mlm.norm.bias', [H]],
    ['mlm.decoder.bias', [V]],
    ['nsp.weight', [2, H]],
    ['nsp.bias', [2]],
  );
  return out;
}

function gptNames(): Array<[string, number[]]> {
  const out: Array<[string, number[]]> = [
    ['embeddings.word.weight', [V, H]],
    ['embeddings.position.weight', [P, H]],
  ];
  for (let i = 0; i < L; i++)
    for (const [n, s] of [
      ['attn_norm.weight', [H]],
      ['attn_norm.bias', [H]],
      ['attn.q.weight', [H, H]],
      ['attn.k.weight', [H, H]],
      ['attn.v.weight', [H, H]],
      ['attn.q.bias', [H]],
      ['attn.k.bias', [H]],
      ['attn.v.bias', [H]],
      ['attn.out.weight', [H, H]],
      ['attn.out.bias', [H]],
      ['mlp_norm.weight', [H]],
      ['mlp_norm.bias', [H]],
      ['mlp.up.weight', [F, H]],
      ['mlp.up.bias', [F]],
      ['mlp.down.weight', [H, F]],
      ['mlp.down.bias', [H]],
    ] as Array<[string, number[]]>)
      out.push([`layers.${i}.${n}`, s]);
  out.push(['final_norm.weight', [H]], ['final_norm.bias', [H]]);
  return out;
}

/** BERT's encoder-layer keys under `p` (layer index appended), for BERT, RoBERTa and ELECTRA. */
function bertLayers(p: string, layers: number, hidden: number, ffn: number): Array<[string, number[]]> {
  const out: Array<[string, number[]]> = [];
  for (let i = 0; i < layers; i++) {
    const l = `${p}${i}`;
    out.push(
      [`${l}.attention.self.query.weight`, [hidden, hidden]],
      [`${l}.attention.self.query.bias`, [hidden]],
      [`${l}.attention.self.key.weight`, [hidden, hidden]],
      [`${l}.attention.self.key.bias`, [hidden]],
      [`${l}.attention.self.value.weight`, [hidden, hidden]],
      [`${l}.attention.self.value.bias`, [hidden]],
      [`${l}.attention.output.dense.weight`, [hidden, hidden]],
      [`${l}.attention.output.dense.bias`, [hidden]],
      [`${l}.attention.output.LayerNorm.weight`, [hidden]],
      [`${l}.attention.output.LayerNorm.bias`, [hidden]],
      [`${l}.intermediate.dense.weight`, [ffn, hidden]],
      [`${l}.intermediate.dense.bias`, [ffn]],
      [`${l}.output.dense.weight`, [hidden, ffn]],
      [`${l}.output.dense.bias`, [hidden]],
      [`${l}.output.LayerNorm.weight`, [hidden]],
      [`${l}.output.LayerNorm.bias`, [hidden]],
    );
  }
  return out;
}

function embeddings(p: string, width: number, types: number): Array<[string, number[]]> {
  return [
    [`${p}word_embeddings.weight`, [V, width]],
    [`${p}position_embeddings.weight`, [P, width]],
    [`${p}token_type_embeddings.weight`, [types, width]],
    [`${p}LayerNorm.weight`, [width]],
    [`${p}LayerNorm.bias`, [width]],
  ];
}

// HF state_dict keys (tied duplicates excluded), from the transformers model classes.
const EXPECTED_HF: Record<ModelFamily, () => Record<string, Array<[string, number[]]>>> = {
  bert: () => ({
    '': [
      ...embeddings('bert.embeddings.', H, 2),
      ...bertLayers('bert.encoder.layer.', L, H, F),
      ['bert.pooler.dense.weight', [H, H]],
      ['bert.pooler.dense.bias', [H]],
      ['cls.predictions.bias', [V]],
      ['cls.predictions.transform.dense.weight', [H, H]],
      ['cls.predictions.transform.dense.bias', [H]],
      ['cls.predictions.transform.LayerNorm.weight', [H]],
      ['cls.predictions.transform.LayerNorm.bias', [H]],
      ['cls.seq_relationship.weight', [2, H]],
      ['cls.seq_relationship.bias', [2]],
    ],
  }),
  gpt: () => {
    const out: Array<[string, number[]]> = [
      ['transformer.wte.weight', [V, H]],
      ['transformer.wpe.weight', [P, H]],
    ];
    for (let i = 0; i < L; i++) {
      const p = `transformer.h.${i}`;
      out.push(
        [`${p}.ln_1.weight`, [H]],
        [`${p}.ln_1.bias`, [H]],
        [`${p}.attn.c_attn.weight`, [H, 3 * H]],
        [`${p}.attn.c_attn.bias`, [3 * H]],
        [`${p}.attn.c_proj.weight`, [H, H]],
        [`${p}.attn.c_proj.bias`, [H]],
        [`${p}.ln_2.weight`, [H]],
        [`${p}.ln_2.bias`, [H]],
        [`${p}.mlp.c_fc.weight`, [H, F]],
        [`${p}.mlp.c_fc.bias`, [F]],
        [`${p}.mlp.c_proj.weight`, [F, H]],
        [`${p}.mlp.c_proj.bias`, [H]],
      );
    }
    out.push(['transformer.ln_f.weight', [H]], ['transformer.ln_f.bias', [H]]);
    return { '': out };
  },
  roberta: () => ({
    '': [
      ['roberta.embeddings.word_embeddings.weight', [V, H]],
      // padding_idx + 1 = 2 rows before the first position.
      ['roberta.embeddings.position_embeddings.weight', [P + 2, H]],
      ['roberta.embeddings.token_type_embeddings.weight', [1, H]],
      ['roberta.embeddings.LayerNorm.weight', [H]],
      ['roberta.embeddings.LayerNorm.bias', [H]],
      ...bertLayers('roberta.encoder.layer.', L, H, F),
      ['lm_head.dense.weight', [H, H]],
      ['lm_head.dense.bias', [H]],
      ['lm_head.layer_norm.weight', [H]],
      ['lm_head.layer_norm.bias', [H]],
      ['lm_head.bias', [V]],
    ],
  }),
  albert: () => {
    const g = 'albert.encoder.albert_layer_groups.0.albert_layers.0';
    return {
      '': [
        ...embeddings('albert.embeddings.', E, 2),
        ['albert.encoder.embedding_hidden_mapping_in.weight', [H, E]],
        ['albert.encoder.embedding_hidden_mapping_in.bias', [H]],
        [`${g}.attention.query.weight`, [H, H]],
        [`${g}.attention.query.bias`, [H]],
        [`${g}.attention.key.weight`, [H, H]],
        [`${g}.attention.key.bias`, [H]],
        [`${g}.attention.value.weight`, [H, H]],
        [`${g}.attention.value.bias`, [H]],
        [`${g}.attention.dense.weight`, [H, H]],
        [`${g}.attention.dense.bias`, [H]],
        [`${g}.attention.LayerNorm.weight`, [H]],
        [`${g}.attention.LayerNorm.bias`, [H]],
        [`${g}.ffn.weight`, [F, H]],
        [`${g}.ffn.bias`, [F]],
        [`${g}.ffn_output.weight`, [H, F]],
        [`${g}.ffn_output.bias`, [H]],
        [`${g}.full_layer_layer_norm.weight`, [H]],
        [`${g}.full_layer_layer_norm.bias`, [H]],
        ['albert.pooler.weight', [H, H]],
        ['albert.pooler.bias', [H]],
        ['predictions.dense.weight', [E, H]],
        ['predictions.dense.bias', [E]],
        ['predictions.LayerNorm.weight', [E]],
        ['predictions.LayerNorm.bias', [E]],
        ['predictions.bias', [V]],
        ['sop_classifier.classifier.weight', [2, H]],
        ['sop_classifier.classifier.bias', [2]],
      ],
    };
  },
  electra: () => ({
    '': [
      ...embeddings('electra.embeddings.', E, 2),
      ['electra.embeddings_project.weight', [H, E]],
      ['electra.embeddings_project.bias', [H]],
      ...bertLayers('electra.encoder.layer.', L, H, F),
      ['discriminator_predictions.dense.weight', [H, H]],
      ['discriminator_predictions.dense.bias', [H]],
      ['discriminator_predictions.dense_prediction.weight', [1, H]],
      ['discriminator_predictions.dense_prediction.bias', [1]],
    ],
    generator: [
      ...embeddings('electra.embeddings.', E, 2),
      ['electra.embeddings_project.weight', [GH, E]],
      ['electra.embeddings_project.bias', [GH]],
      ...bertLayers('electra.encoder.layer.', L, GH, GF),
      ['generator_predictions.dense.weight', [E, GH]],
      ['generator_predictions.dense.bias', [E]],
      ['generator_predictions.LayerNorm.weight', [E]],
      ['generator_predictions.LayerNorm.bias', [E]],
      ['generator_lm_head.bias', [V]],
    ],
  }),
};

const ARCHITECTURES: Record<ModelFamily, Record<string, string>> = {
  bert: { '': 'BertForPreTraining' },
  gpt: { '': 'GPT2LMHeadModel' },
  roberta: { '': 'RobertaForMaskedLM' },
  albert: { '': 'AlbertForPreTraining' },
  electra: { '': 'ElectraForPreTraining', generator: 'ElectraForMaskedLM' },
};

const FAMILIES = ['bert', 'gpt', 'roberta', 'albert', 'electra'] as const;

describe.each(FAMILIES)('%s <-> HF', (arch) => {
  it('exports exactly the HF keys and shapes, with a config of the right class', () => {
    const c = configOf(arch);
    const models = toHuggingFace(c, paramsOf(c));
    const expected = EXPECTED_HF[arch]();
    expect(models.map((m) => m.subdir).sort()).toEqual(Object.keys(expected).sort());
    for (const m of models) {
      expect(sortedSpecs(m.tensors), m.subdir).toEqual(
        sortedSpecs(expected[m.subdir].map(([name, shape]) => ({ name, shape }))),
      );
      expect(m.config.architectures).toEqual([ARCHITECTURES[arch][m.subdir]]);
    }
  });

  it('paratrain -> HF -> paratrain is the identity, with the same model config and no warnings', () => {
    const c = configOf(arch);
    const params = paramsOf(c);
    const back = fromHuggingFace(contentsOf(toHuggingFace(c, params)));
    expect(back.warnings).toEqual([]);
    expect(back.config.model).toMatchObject({ arch, layers: L, hidden: H, heads: NH, ffn: F, vocab_size: V });
    expect(paramTableFor(back.config)).toEqual(paramTableFor(c));
    if (arch === 'roberta')
      expect(back.params.find((p) => p.name === 'embeddings.position.weight')!.shape).toEqual([P, H]);
    expectIdentity(back.params, params);
  });
});

describe('the parameter table is the documented one', () => {
  it('BERT and GPT-2 name their tensors as docs/models.md lists them', () => {
    const names = (arch: ModelFamily) => paramTableFor(configOf(arch)).map((p) => [p.name, p.globalShape]);
    expect(names('bert')).toEqual(bertNames());
    expect(names('gpt')).toEqual(gptNames());
  });
});

describe('BERT <-> HF', () => {
  it('a config of the right sizes; renamed tensors carry identical values', () => {
    const c = configOf('bert');
    const params = paramsOf(c);
    const [m] = toHuggingFace(c, params, { pad: 0, bos: 2, eos: 3 });
    expect(m.config).toMatchObject({
      model_type: 'bert',
      vocab_size: V,
      hidden_size: H,
      num_hidden_layers: L,
      num_attention_heads: NH,
      intermediate_size: F,
      max_position_embeddings: P,
      hidden_act: 'gelu',
      layer_norm_eps: 1e-12,
      type_vocab_size: 2,
      initializer_range: 0.02,
      hidden_dropout_prob: 0.1,
      attention_probs_dropout_prob: 0.1,
      pad_token_id: 0,
    });
    const hf = byName(m.tensors);
    const ours = byName(params);
    expect(hf.get('bert.encoder.layer.1.intermediate.dense.weight')?.data).toEqual(
      ours.get('layers.1.mlp.up.weight')?.data,
    );
    expect(hf.get('cls.predictions.bias')?.data).toEqual(ours.get('mlm.decoder.bias')?.data);
  });

  it('without a pair task it is a BertForMaskedLM (no pooler, no NSP), and imports back as MLM only', () => {
    const c = configOf('bert', {}, { pair_task: 'none' });
    const [m] = toHuggingFace(c, paramsOf(c));
    expect(m.config.architectures).toEqual(['BertForMaskedLM']);
    expect(m.tensors.some((t) => t.name.startsWith('bert.pooler') || t.name.startsWith('cls.seq_relationship'))).toBe(
      false,
    );
    expect(fromHuggingFace(contentsOf([m])).config.data.pair_task).toBe('none');
  });

  it('accepts buffers, tied duplicates, legacy gamma/beta and BertModel-style prefixes', () => {
    const c = configOf('bert');
    const params = paramsOf(c);
    const [m] = toHuggingFace(c, params);
    const hf = byName(m.tensors);
    const variant: AnyTensor[] = m.tensors
      .filter((t) => t.name !== 'cls.predictions.bias')
      .map((t) => {
        let name = t.name
          .replace(/LayerNorm\.weight$/, 'LayerNorm.gamma')
          .replace(/LayerNorm\.bias$/, 'LayerNorm.beta');
        if (name.startsWith('bert.')) name = name.slice('bert.'.length);
        return { ...t, name };
      });
    variant.push(
      { name: 'bert.embeddings.position_ids', shape: [1, P], data: Int32Array.from({ length: P }, (_, i) => i) },
      {
        name: 'cls.predictions.decoder.weight',
        shape: [V, H],
        data: hf.get('bert.embeddings.word_embeddings.weight')?.data as Float32Array,
      },
      // Only the decoder's copy of the bias, as some transformers versions save it.
      { name: 'cls.predictions.decoder.bias', shape: [V], data: hf.get('cls.predictions.bias')?.data as Float32Array },
    );
    const back = fromHuggingFace({ main: { dir: '/mem', config: m.config, tensors: variant } });
    expectIdentity(back.params, params);
    expect(back.warnings).toEqual([]);
  });

  it('rejects an untied decoder, a missing tensor, a shape mismatch and an unknown architecture with ERR_HF_FORMAT', () => {
    const c = configOf('bert');
    const [m] = toHuggingFace(c, paramsOf(c));
    const load = (tensors: AnyTensor[], config = m.config) =>
      fromHuggingFace({ main: { dir: '/mem', config, tensors } });
    let err = errorOf(() =>
      load([...m.tensors, { name: 'cls.predictions.decoder.weight', shape: [V, H], data: new Float32Array(V * H) }]),
    );
    expect(err.code).toBe('ERR_HF_FORMAT');
    expect(err.message).toContain('cls.predictions.decoder.weight');
    err = errorOf(() => load(m.tensors.filter((t) => t.name !== 'bert.encoder.layer.1.output.dense.bias')));
    expect(err.code).toBe('ERR_HF_FORMAT');
    expect(err.message).toContain('missing tensor bert.encoder.layer.1.output.dense.bias');
    err = errorOf(() =>
      load(m.tensors.map((t) => (t.name === 'bert.pooler.dense.weight' ? { ...t, shape: [H * 2, H / 2] } : t))),
    );
    expect(err.message).toMatch(/bert\.pooler\.dense\.weight has shape \[16, 4\], expected \[8, 8\]/);
    err = errorOf(() => load(m.tensors, { ...m.config, model_type: 't5', architectures: ['T5Model'] }));
    expect(err.code).toBe('ERR_HF_FORMAT');
    expect(err.message).toMatch(/unsupported model_type "t5".*BertForPreTraining.*ElectraForPreTraining/);
    err = errorOf(() => load(m.tensors, { ...m.config, type_vocab_size: 3 }));
    expect(err.message).toContain('type_vocab_size 3');
  });

  it('export checks the parameter set against the table, and refuses layers that share blocks', () => {
    const c = configOf('bert');
    const params = paramsOf(c);
    let err = errorOf(() =>
      toHuggingFace(
        c,
        params.filter((p) => p.name !== 'nsp.bias'),
      ),
    );
    expect(err.code).toBe('ERR_HF_FORMAT');
    expect(err.message).toContain('nsp.bias');
    err = errorOf(() => toHuggingFace(c, [...params, { name: 'bogus', shape: [1], data: new Float32Array(1) }]));
    expect(err.message).toContain('bogus');
    const shared = configOf('bert', { layer_groups: 1 });
    err = errorOf(() => toHuggingFace(shared, paramsOf(shared)));
    expect(err.code).toBe('ERR_HF_FORMAT');
    expect(err.message).toMatch(/layer_groups = 1.*only albert/);
  });
});

describe('GPT-2 <-> HF', () => {
  it('a config of the right sizes, with the tokenizer ids', () => {
    const c = configOf('gpt');
    const [m] = toHuggingFace(c, paramsOf(c), { bos: 1, eos: 2 });
    expect(m.tensors.some((t) => t.name === 'lm_head.weight')).toBe(false);
    expect(m.config).toMatchObject({
      model_type: 'gpt2',
      vocab_size: V,
      n_embd: H,
      n_layer: L,
      n_head: NH,
      n_inner: F,
      n_positions: P,
      n_ctx: P,
      activation_function: 'gelu_new',
      layer_norm_epsilon: 1e-5,
      resid_pdrop: 0.1,
      embd_pdrop: 0.1,
      attn_pdrop: 0.1,
      bos_token_id: 1,
      eos_token_id: 2,
    });
  });

  it('Conv1D tensors compute the same function as the Linear tensors', () => {
    const c = configOf('gpt');
    const params = paramsOf(c);
    const ours = byName(params);
    const hf = byName(toHuggingFace(c, params)[0].tensors);
    const x = filled(H, 99);
    // Linear: y[o] = sum_i W[o, i] x[i] + b[o]; Conv1D: y[o] = sum_i W[i, o] x[i] + b[o].
    const linear = (w: Float32Array, b: Float32Array, out: number, inp: number): number[] =>
      Array.from({ length: out }, (_, o) => {
        let s = b[o] as number;
        for (let i = 0; i < inp; i++) s += (w[o * inp + i] as number) * (x[i] as number);
        return s;
      });
    const conv1d = (w: Float32Array, b: Float32Array, inp: number, out: number): number[] =>
      Array.from({ length: out }, (_, o) => {
        let s = b[o] as number;
        for (let i = 0; i < inp; i++) s += (w[i * out + o] as number) * (x[i] as number);
        return s;
      });
    const g = (m: Map<string, NamedTensor>, n: string): Float32Array => (m.get(n) as NamedTensor).data;
    const qkv = conv1d(
      g(hf, 'transformer.h.1.attn.c_attn.weight'),
      g(hf, 'transformer.h.1.attn.c_attn.bias'),
      H,
      3 * H,
    );
    const q = linear(g(ours, 'layers.1.attn.q.weight'), g(ours, 'layers.1.attn.q.bias'), H, H);
    const k = linear(g(ours, 'layers.1.attn.k.weight'), g(ours, 'layers.1.attn.k.bias'), H, H);
    const v = linear(g(ours, 'layers.1.attn.v.weight'), g(ours, 'layers.1.attn.v.bias'), H, H);
    const close = (a: number[], b: number[]): void => a.forEach((ai, i) => expect(ai).toBeCloseTo(b[i] as number, 5));
    close(qkv, [...q, ...k, ...v]);
    close(
      conv1d(g(hf, 'transformer.h.0.attn.c_proj.weight'), g(hf, 'transformer.h.0.attn.c_proj.bias'), H, H),
      linear(g(ours, 'layers.0.attn.out.weight'), g(ours, 'layers.0.attn.out.bias'), H, H),
    );
    close(
      conv1d(g(hf, 'transformer.h.0.mlp.c_fc.weight'), g(hf, 'transformer.h.0.mlp.c_fc.bias'), H, F),
      linear(g(ours, 'layers.0.mlp.up.weight'), g(ours, 'layers.0.mlp.up.bias'), F, H),
    );
  });

  it('accepts GPT2Model-style keys, buffers, lm_head, and n_inner null', () => {
    const c = configOf('gpt', { ffn: 4 * H });
    const params = paramsOf(c);
    const [m] = toHuggingFace(c, params);
    const cfg = { ...m.config, n_inner: null } as Record<string, unknown>;
    delete cfg['n_positions'];
    const wte = byName(m.tensors).get('transformer.wte.weight')?.data as Float32Array;
    const variant: AnyTensor[] = m.tensors.map((t) => ({ ...t, name: t.name.replace(/^transformer\./, '') }));
    for (let i = 0; i < L; i++)
      variant.push(
        { name: `h.${i}.attn.bias`, shape: [1, 1, P, P], data: new Float32Array(P * P).fill(1) },
        { name: `h.${i}.attn.masked_bias`, shape: [], data: new Float32Array([-1e4]) },
      );
    variant.push({ name: 'lm_head.weight', shape: [V, H], data: wte });
    const back = fromHuggingFace({ main: { dir: '/mem', config: cfg, tensors: variant } });
    expect(back.config.model.ffn).toBe(4 * H);
    expect(back.config.model.max_positions).toBe(P); // from n_ctx
    expect(back.warnings).toEqual([]);
    expectIdentity(back.params, params);
  });

  it('reports missing tensors and shape mismatches by HF name; warns about activation, eps and extra tensors', () => {
    const c = configOf('gpt');
    const [m] = toHuggingFace(c, paramsOf(c));
    const load = (tensors: AnyTensor[], config: Record<string, unknown> = m.config) =>
      fromHuggingFace({ main: { dir: '/mem', config, tensors } });
    let err = errorOf(() => load(m.tensors.filter((t) => t.name !== 'transformer.h.1.attn.c_attn.weight')));
    expect(err.message).toContain('transformer.h.1.attn.c_attn.weight');
    err = errorOf(() => load(m.tensors, { ...m.config, n_inner: F + 1 }));
    expect(err.message).toMatch(/transformer\.h\.0\.mlp\.c_fc\.weight has shape \[8, 12\], expected \[8, 13\]/);
    err = errorOf(() => load(m.tensors, { ...m.config, n_embd: 'x' }));
    expect(err.message).toContain('n_embd');
    const back = load([...m.tensors, { name: 'score.weight', shape: [2, H], data: new Float32Array(2 * H) }], {
      ...m.config,
      activation_function: 'relu',
      layer_norm_epsilon: 1e-6,
    });
    expect(back.warnings.join('\n')).toMatch(/relu/);
    expect(back.warnings.join('\n')).toMatch(/layer_norm_epsilon/);
    expect(back.warnings.join('\n')).toMatch(/score\.weight/);
  });
});

describe('RoBERTa <-> HF', () => {
  it('positions are numbered from padding_idx + 1: our row t is HF row t + 2, the two rows before are zero', () => {
    const c = configOf('roberta');
    const params = paramsOf(c);
    const [m] = toHuggingFace(c, params, { pad: 1, bos: 0, eos: 2 });
    expect(m.config).toMatchObject({
      model_type: 'roberta',
      max_position_embeddings: P + 2,
      type_vocab_size: 1,
      layer_norm_eps: 1e-5,
      pad_token_id: 1,
      bos_token_id: 0,
      eos_token_id: 2,
    });
    const hf = byName(m.tensors).get('roberta.embeddings.position_embeddings.weight')!.data;
    const ours = byName(params).get('embeddings.position.weight')!.data;
    expect(Array.from(hf.subarray(0, 2 * H))).toEqual(new Array(2 * H).fill(0));
    expect(Array.from(hf.subarray(2 * H))).toEqual(Array.from(ours));
  });

  it('imports a RobertaModel-style export (no "roberta." prefix) and refuses a second token type', () => {
    const c = configOf('roberta');
    const params = paramsOf(c);
    const [m] = toHuggingFace(c, params);
    const bare = m.tensors.map((t) => ({ ...t, name: t.name.replace(/^roberta\./, '') }));
    expectIdentity(fromHuggingFace({ main: { dir: '/mem', config: m.config, tensors: bare } }).params, params);
    const err = errorOf(() =>
      fromHuggingFace({ main: { dir: '/mem', config: { ...m.config, type_vocab_size: 2 }, tensors: m.tensors } }),
    );
    expect(err.code).toBe('ERR_HF_FORMAT');
    expect(err.message).toContain('type_vocab_size 2');
  });
});

describe('ALBERT <-> HF', () => {
  it('layer groups: 4 layers in 2 groups import as two shared blocks', () => {
    const c = configOf('albert', { layers: 4, layer_groups: 2 });
    const params = paramsOf(c);
    const models = toHuggingFace(c, params);
    expect(models[0].config).toMatchObject({ num_hidden_layers: 4, num_hidden_groups: 2, inner_group_num: 1 });
    expect(models[0].tensors.filter((t) => t.name.endsWith('.ffn.weight')).map((t) => t.name)).toEqual([
      'albert.encoder.albert_layer_groups.0.albert_layers.0.ffn.weight',
      'albert.encoder.albert_layer_groups.1.albert_layers.0.ffn.weight',
    ]);
    const back = fromHuggingFace(contentsOf(models));
    expect(back.config.model.layer_groups).toBe(2);
    expectIdentity(back.params, params);
  });

  it('refuses what its layers cannot express, naming the field and the value', () => {
    const c = configOf('albert');
    const [m] = toHuggingFace(c, paramsOf(c));
    const load = (config: Record<string, unknown>) => () =>
      fromHuggingFace({ main: { dir: '/mem', config: { ...m.config, ...config }, tensors: m.tensors } });
    expect(errorOf(load({ inner_group_num: 2 })).message).toMatch(/inner_group_num 2 is unsupported/);
    expect(errorOf(load({ num_hidden_layers: 3, num_hidden_groups: 2 })).message).toMatch(
      /num_hidden_groups 2 must divide num_hidden_layers 3/,
    );
  });
});

describe('ELECTRA <-> HF', () => {
  it('the generator is a second model with the same embeddings; both come back as one model', () => {
    const c = configOf('electra');
    const models = toHuggingFace(c, paramsOf(c));
    const gen = models.find((m) => m.subdir === 'generator')!;
    const disc = models.find((m) => m.subdir === '')!;
    expect(gen.config).toMatchObject({
      hidden_size: GH,
      num_attention_heads: 2,
      intermediate_size: GF,
      embedding_size: E,
    });
    expect(disc.config).toMatchObject({ hidden_size: H, embedding_size: E });
    expect(byName(gen.tensors).get('electra.embeddings.word_embeddings.weight')!.data).toEqual(
      byName(disc.tensors).get('electra.embeddings.word_embeddings.weight')!.data,
    );
    const back = fromHuggingFace(contentsOf(models));
    expect(back.config.model.generator).toMatchObject({ hidden_fraction: 0.5, heads: 2, ffn: GF, layers: L });
  });

  it('refuses a discriminator without its generator, and a generator given as the model', () => {
    const c = configOf('electra');
    const models = contentsOf(toHuggingFace(c, paramsOf(c)));
    let err = errorOf(() => fromHuggingFace({ main: models.main }));
    expect(err.code).toBe('ERR_HF_FORMAT');
    expect(err.message).toMatch(/ELECTRA without a generator.*--generator/);
    err = errorOf(() => fromHuggingFace({ main: models.generator! }));
    expect(err.message).toMatch(/ElectraForMaskedLM.*is an ELECTRA generator/);
  });

  it('a generator whose embeddings differ from the discriminator’s imports with a warning; the discriminator’s are kept', () => {
    const c = configOf('electra');
    const params = paramsOf(c);
    const models = contentsOf(toHuggingFace(c, params));
    const gen = models.generator!;
    const changed = gen.tensors.map((t) =>
      t.name === 'electra.embeddings.LayerNorm.bias' ? { ...t, data: new Float32Array(t.data.length) } : t,
    );
    const back = fromHuggingFace({ main: models.main, generator: { ...gen, tensors: changed } });
    expect(back.warnings.join('\n')).toMatch(/electra\.embeddings\.LayerNorm\.bias differs/);
    expectIdentity(back.params, params);
  });
});

describe('HF directories', () => {
  it('export + read + import round-trips with tokenizer and format=pt metadata (ELECTRA: two directories)', async () => {
    for (const arch of ['gpt', 'electra'] as const) {
      const c = configOf(arch);
      const params = paramsOf(c);
      const out = path.join(tmp, `${arch}-hf`);
      const tok = '{"version":"1.0"}';
      const written = await exportHuggingFace(out, c, params, { tokenizerJson: tok });
      expect(written.dirs).toEqual(arch === 'electra' ? [out, path.join(out, 'generator')] : [out]);
      for (const dir of written.dirs) {
        expect(
          fs
            .readdirSync(dir)
            .filter((f) => f !== 'generator')
            .sort(),
        ).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
        expect((await readSafetensors(path.join(dir, 'model.safetensors'))).metadata).toEqual({ format: 'pt' });
      }
      const imp = await importHuggingFace(out);
      expect(imp.tokenizerJson).toBe(tok);
      expectIdentity(imp.params, params);
    }
  });

  it('ELECTRA: --generator names another directory; a generator for another family is refused', async () => {
    const c = configOf('electra');
    const params = paramsOf(c);
    const out = path.join(tmp, 'electra');
    await exportHuggingFace(out, c, params);
    const elsewhere = path.join(tmp, 'gen-elsewhere');
    fs.renameSync(path.join(out, 'generator'), elsewhere);
    await expect(importHuggingFace(out)).rejects.toMatchObject({
      message: expect.stringMatching(/without a generator/),
    });
    expectIdentity((await importHuggingFace(out, { generator: elsewhere })).params, params);
    const gpt = configOf('gpt');
    await exportHuggingFace(path.join(tmp, 'gpt'), gpt, paramsOf(gpt));
    await expect(importHuggingFace(path.join(tmp, 'gpt'), { generator: elsewhere })).rejects.toMatchObject({
      code: 'ERR_HF_FORMAT',
      message: expect.stringMatching(/only electra has one/),
    });
  });

  it('reads sharded safetensors via model.safetensors.index.json', async () => {
    const c = configOf('bert');
    const params = paramsOf(c);
    const [m] = toHuggingFace(c, params);
    const out = path.join(tmp, 'sharded');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(m.config));
    const half = Math.floor(m.tensors.length / 2);
    const weightMap: Record<string, string> = {};
    for (const [i, shard] of [m.tensors.slice(0, half), m.tensors.slice(half)].entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(path.join(out, file), shard, { format: 'pt' });
      for (const t of shard) weightMap[t.name] = file;
    }
    fs.writeFileSync(
      path.join(out, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    expectIdentity((await importHuggingFace(out)).params, params);
  });

  it('imports F64/F16 files and skips buffers of any dtype', async () => {
    const c = configOf('gpt');
    const params = paramsOf(c);
    const [m] = toHuggingFace(c, params);
    const out = path.join(tmp, 'f64');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(m.config));
    // Hand-written file: parameters as F64 (wte as F16 of exactly representable values), buffers as BOOL.
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    const blobs: Buffer[] = [];
    let off = 0;
    const add = (name: string, dtype: string, shape: number[], bytes: Buffer): void => {
      header[name] = { dtype, shape, data_offsets: [off, off + bytes.length] };
      blobs.push(bytes);
      off += bytes.length;
    };
    const wte = Float32Array.from({ length: V * H }, (_, i) => ((i % 17) - 8) / 4);
    for (const t of m.tensors) {
      if (t.name === 'transformer.wte.weight')
        add(t.name, 'F16', t.shape, Buffer.from(Uint16Array.from(wte, f16Bits).buffer));
      else add(t.name, 'F64', t.shape, Buffer.from(Float64Array.from(t.data).buffer));
    }
    for (let i = 0; i < L; i++) add(`transformer.h.${i}.attn.bias`, 'BOOL', [1, 1, P, P], Buffer.alloc(P * P, 1));
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(path.join(out, 'model.safetensors'), Buffer.concat([len, json, ...blobs]));
    const imp = await importHuggingFace(out);
    expectIdentity(
      imp.params,
      params.map((p) => (p.name === 'embeddings.word.weight' ? { ...p, data: wte } : p)),
    );
  });

  it('refuses a pytorch_model.bin-only directory with a conversion hint', async () => {
    const out = path.join(tmp, 'pt');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify({ model_type: 'gpt2' }));
    fs.writeFileSync(path.join(out, 'pytorch_model.bin'), 'PK');
    await expect(readHuggingFaceDir(out)).rejects.toMatchObject({
      code: 'ERR_HF_FORMAT',
      message: expect.stringMatching(/pytorch_model\.bin.*safetensors.*save_pretrained/s),
    });
    fs.rmSync(path.join(out, 'pytorch_model.bin'));
    await expect(readHuggingFaceDir(out)).rejects.toMatchObject({
      message: expect.stringMatching(/no model\.safetensors/),
    });
    await expect(readHuggingFaceDir(path.join(tmp, 'missing'))).rejects.toMatchObject({ code: 'ERR_HF_FORMAT' });
  });
});

// The PyTorch-made golden fixtures of every family: they import, and export back to the same tensors.
const GOLDEN = path.resolve(__dirname, '..', 'fixtures', 'golden');
describe.each(FAMILIES)('golden %s fixture', (arch) => {
  it('imports into the parameter table and exports back to the same tensors', async () => {
    const dir = path.join(GOLDEN, arch);
    const imp = await importHuggingFace(dir);
    expect(imp.config.model.arch).toBe(arch);
    expect(imp.params.map((p) => p.name)).toEqual(paramTableFor(imp.config).map((p) => p.name));
    for (const p of imp.params) expect(p.data.every((x) => Number.isFinite(x))).toBe(true);
    for (const m of toHuggingFace(imp.config, imp.params)) {
      const orig = byName((await readHuggingFaceDir(path.join(dir, m.subdir))).tensors);
      for (const t of m.tensors) {
        // RoBERTa: rows 0 and 1 of the positions are never used by a real token; they export as zero.
        const skip =
          arch === 'roberta' && t.name === 'roberta.embeddings.position_embeddings.weight' ? 2 * t.shape[1] : 0;
        expect(Array.from(t.data.subarray(skip)), t.name).toEqual(Array.from(orig.get(t.name)!.data.subarray(skip)));
      }
    }
  });
});
