import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';

import { readSafetensors, writeSafetensors } from '../../src/checkpoint/safetensors';
import { AnyTensor, NamedTensor } from '../../src/checkpoint/types';
import {
  exportHuggingFaceDir,
  fromHuggingFace,
  importHuggingFaceDir,
  readHuggingFaceDir,
  toHuggingFace,
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
const P = 7;
const MODEL = { layers: L, hidden: H, heads: NH, ffn: F, vocab_size: V, max_positions: P, dropout: 0.1 };

// Canonical names, written from docs/contracts.md (independent of src/interop/canonical.ts).
function canonicalBert(): Array<[string, number[]]> {
  const out: Array<[string, number[]]> = [
    ['embeddings.word.weight', [V, H]],
    ['embeddings.position.weight', [P, H]],
    ['embeddings.segment.weight', [2, H]],
    ['embeddings.norm.weight', [H]],
    ['embeddings.norm.bias', [H]],
  ];
  for (let i = 0; i < L; i++) {
    out.push(
      [`layers.${i}.attn.q.weight`, [H, H]],
      [`layers.${i}.attn.k.weight`, [H, H]],
      [`layers.${i}.attn.v.weight`, [H, H]],
      [`layers.${i}.attn.q.bias`, [H]],
      [`layers.${i}.attn.k.bias`, [H]],
      [`layers.${i}.attn.v.bias`, [H]],
      [`layers.${i}.attn.out.weight`, [H, H]],
      [`layers.${i}.attn.out.bias`, [H]],
      [`layers.${i}.attn_norm.weight`, [H]],
      [`layers.${i}.attn_norm.bias`, [H]],
      [`layers.${i}.mlp.up.weight`, [F, H]],
      [`layers.${i}.mlp.up.bias`, [F]],
      [`layers.${i}.mlp.down.weight`, [H, F]],
      [`layers.${i}.mlp.down.bias`, [H]],
      [`layers.${i}.mlp_norm.weight`, [H]],
      [`layers.${i}.mlp_norm.bias`, [H]],
    );
  }
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

function canonicalGpt(): Array<[string, number[]]> {
  const out: Array<[string, number[]]> = [
    ['embeddings.word.weight', [V, H]],
    ['embeddings.position.weight', [P, H]],
  ];
  for (let i = 0; i < L; i++) {
    out.push(
      [`layers.${i}.attn_norm.weight`, [H]],
      [`layers.${i}.attn_norm.bias`, [H]],
      [`layers.${i}.attn.q.weight`, [H, H]],
      [`layers.${i}.attn.k.weight`, [H, H]],
      [`layers.${i}.attn.v.weight`, [H, H]],
      [`layers.${i}.attn.q.bias`, [H]],
      [`layers.${i}.attn.k.bias`, [H]],
      [`layers.${i}.attn.v.bias`, [H]],
      [`layers.${i}.attn.out.weight`, [H, H]],
      [`layers.${i}.attn.out.bias`, [H]],
      [`layers.${i}.mlp_norm.weight`, [H]],
      [`layers.${i}.mlp_norm.bias`, [H]],
      [`layers.${i}.mlp.up.weight`, [F, H]],
      [`layers.${i}.mlp.up.bias`, [F]],
      [`layers.${i}.mlp.down.weight`, [H, F]],
      [`layers.${i}.mlp.down.bias`, [H]],
    );
  }
  out.push(['final_norm.weight', [H]], ['final_norm.bias', [H]]);
  return out;
}

// Expected HF state_dict keys (BertForPreTraining / GPT2LMHeadModel, tied duplicates excluded).
function expectedBertHf(): Array<[string, number[]]> {
  const out: Array<[string, number[]]> = [
    ['bert.embeddings.word_embeddings.weight', [V, H]],
    ['bert.embeddings.position_embeddings.weight', [P, H]],
    ['bert.embeddings.token_type_embeddings.weight', [2, H]],
    ['bert.embeddings.LayerNorm.weight', [H]],
    ['bert.embeddings.LayerNorm.bias', [H]],
  ];
  for (let i = 0; i < L; i++) {
    const p = `bert.encoder.layer.${i}`;
    out.push(
      [`${p}.attention.self.query.weight`, [H, H]],
      [`${p}.attention.self.query.bias`, [H]],
      [`${p}.attention.self.key.weight`, [H, H]],
      [`${p}.attention.self.key.bias`, [H]],
      [`${p}.attention.self.value.weight`, [H, H]],
      [`${p}.attention.self.value.bias`, [H]],
      [`${p}.attention.output.dense.weight`, [H, H]],
      [`${p}.attention.output.dense.bias`, [H]],
      [`${p}.attention.output.LayerNorm.weight`, [H]],
      [`${p}.attention.output.LayerNorm.bias`, [H]],
      [`${p}.intermediate.dense.weight`, [F, H]],
      [`${p}.intermediate.dense.bias`, [F]],
      [`${p}.output.dense.weight`, [H, F]],
      [`${p}.output.dense.bias`, [H]],
      [`${p}.output.LayerNorm.weight`, [H]],
      [`${p}.output.LayerNorm.bias`, [H]],
    );
  }
  out.push(
    ['bert.pooler.dense.weight', [H, H]],
    ['bert.pooler.dense.bias', [H]],
    ['cls.predictions.bias', [V]],
    ['cls.predictions.transform.dense.weight', [H, H]],
    ['cls.predictions.transform.dense.bias', [H]],
    ['cls.predictions.transform.LayerNorm.weight', [H]],
    ['cls.predictions.transform.LayerNorm.bias', [H]],
    ['cls.seq_relationship.weight', [2, H]],
    ['cls.seq_relationship.bias', [2]],
  );
  return out;
}

function expectedGptHf(): Array<[string, number[]]> {
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
  return out;
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

function makeParams(specs: Array<[string, number[]]>): NamedTensor[] {
  return specs.map(([name, shape], i) => ({
    name,
    shape,
    data: filled(
      shape.reduce((a, b) => a * b, 1),
      i * 7919 + 3,
    ),
  }));
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

describe('BERT <-> HF', () => {
  it('exports exactly the BertForPreTraining keys and shapes, and a matching config', () => {
    const params = makeParams(canonicalBert());
    const { config, tensors } = toHuggingFace('bert', params, MODEL);
    expect(sortedSpecs(tensors)).toEqual(sortedSpecs(expectedBertHf().map(([name, shape]) => ({ name, shape }))));
    expect(tensors.some((t) => t.name.startsWith('cls.predictions.decoder'))).toBe(false);
    expect(config).toMatchObject({
      architectures: ['BertForPreTraining'],
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
    });
    // Linear layout is shared: renamed tensors carry identical values.
    const hf = byName(tensors);
    const can = byName(params);
    expect(hf.get('bert.encoder.layer.1.intermediate.dense.weight')?.data).toEqual(
      can.get('layers.1.mlp.up.weight')?.data,
    );
    expect(hf.get('cls.predictions.bias')?.data).toEqual(can.get('mlm.decoder.bias')?.data);
  });

  it('canonical -> HF -> canonical is the identity', () => {
    const params = makeParams(canonicalBert());
    const { config, tensors } = toHuggingFace('bert', params, MODEL);
    const back = fromHuggingFace(config, tensors);
    expect(back.arch).toBe('bert');
    expect(back.modelConfig).toMatchObject({
      layers: L,
      hidden: H,
      heads: NH,
      ffn: F,
      vocab_size: V,
      max_positions: P,
    });
    expect(back.warnings).toEqual([]);
    expectIdentity(back.params, params);
  });

  it('accepts buffers, tied duplicates, legacy gamma/beta and BertModel-style prefixes', () => {
    const params = makeParams(canonicalBert());
    const { config, tensors } = toHuggingFace('bert', params, MODEL);
    const hf = byName(tensors);
    const variant: AnyTensor[] = tensors
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
    const back = fromHuggingFace(config, variant);
    expectIdentity(back.params, params);
    expect(back.warnings).toEqual([]);
  });

  it('rejects an untied decoder, a missing tensor and a shape mismatch with ERR_HF_FORMAT', () => {
    const params = makeParams(canonicalBert());
    const { config, tensors } = toHuggingFace('bert', params, MODEL);
    const untied = [
      ...tensors,
      { name: 'cls.predictions.decoder.weight', shape: [V, H], data: new Float32Array(V * H) },
    ];
    let err = errorOf(() => fromHuggingFace(config, untied));
    expect(err.code).toBe('ERR_HF_FORMAT');
    expect(err.message).toContain('cls.predictions.decoder.weight');

    err = errorOf(() =>
      fromHuggingFace(
        config,
        tensors.filter((t) => t.name !== 'bert.encoder.layer.1.output.dense.bias'),
      ),
    );
    expect(err.code).toBe('ERR_HF_FORMAT');
    expect(err.message).toContain('missing tensor bert.encoder.layer.1.output.dense.bias');

    const wrong = tensors.map((t) => (t.name === 'bert.pooler.dense.weight' ? { ...t, shape: [H * 2, H / 2] } : t));
    err = errorOf(() => fromHuggingFace(config, wrong));
    expect(err.code).toBe('ERR_HF_FORMAT');
    expect(err.message).toMatch(/bert\.pooler\.dense\.weight has shape \[16, 4\], expected \[8, 8\]/);

    err = errorOf(() => fromHuggingFace({ ...config, model_type: 't5', architectures: ['T5Model'] }, tensors));
    expect(err.code).toBe('ERR_HF_FORMAT');
  });

  it('export validates the canonical parameter set', () => {
    const params = makeParams(canonicalBert());
    let err = errorOf(() =>
      toHuggingFace(
        'bert',
        params.filter((p) => p.name !== 'nsp.bias'),
        MODEL,
      ),
    );
    expect(err.code).toBe('ERR_HF_FORMAT');
    expect(err.message).toContain('nsp.bias');
    err = errorOf(() =>
      toHuggingFace('bert', [...params, { name: 'bogus', shape: [1], data: new Float32Array(1) }], MODEL),
    );
    expect(err.message).toContain('bogus');
  });
});

/** IEEE half bits for values that are exactly representable (tests only use multiples of 1/4 in [-2, 2]). */
function f16Bits(v: number): number {
  if (v === 0) return Object.is(v, -0) ? 0x8000 : 0;
  const sign = v < 0 ? 0x8000 : 0;
  const a = Math.abs(v);
  const e = Math.floor(Math.log2(a));
  const mant = Math.round((a / 2 ** e - 1) * 1024);
  return sign | ((e + 15) << 10) | mant;
}

describe('GPT-2 <-> HF', () => {
  it('exports exactly the GPT2LMHeadModel keys and shapes, and a matching config', () => {
    const params = makeParams(canonicalGpt());
    const { config, tensors } = toHuggingFace('gpt', params, { ...MODEL, bos_token_id: 1, eos_token_id: 2 });
    expect(sortedSpecs(tensors)).toEqual(sortedSpecs(expectedGptHf().map(([name, shape]) => ({ name, shape }))));
    expect(tensors.some((t) => t.name === 'lm_head.weight')).toBe(false);
    expect(config).toMatchObject({
      architectures: ['GPT2LMHeadModel'],
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
      initializer_range: 0.02,
      resid_pdrop: 0.1,
      embd_pdrop: 0.1,
      attn_pdrop: 0.1,
      bos_token_id: 1,
      eos_token_id: 2,
    });
  });

  it('Conv1D tensors compute the same function as the canonical Linear tensors', () => {
    const params = makeParams(canonicalGpt());
    const can = byName(params);
    const hf = byName(toHuggingFace('gpt', params, MODEL).tensors);
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
    const q = linear(g(can, 'layers.1.attn.q.weight'), g(can, 'layers.1.attn.q.bias'), H, H);
    const k = linear(g(can, 'layers.1.attn.k.weight'), g(can, 'layers.1.attn.k.bias'), H, H);
    const v = linear(g(can, 'layers.1.attn.v.weight'), g(can, 'layers.1.attn.v.bias'), H, H);
    const close = (a: number[], b: number[]): void => a.forEach((ai, i) => expect(ai).toBeCloseTo(b[i] as number, 5));
    close(qkv, [...q, ...k, ...v]);
    close(
      conv1d(g(hf, 'transformer.h.0.attn.c_proj.weight'), g(hf, 'transformer.h.0.attn.c_proj.bias'), H, H),
      linear(g(can, 'layers.0.attn.out.weight'), g(can, 'layers.0.attn.out.bias'), H, H),
    );
    close(
      conv1d(g(hf, 'transformer.h.0.mlp.c_fc.weight'), g(hf, 'transformer.h.0.mlp.c_fc.bias'), H, F),
      linear(g(can, 'layers.0.mlp.up.weight'), g(can, 'layers.0.mlp.up.bias'), F, H),
    );
  });

  it('canonical -> HF -> canonical is the identity', () => {
    const params = makeParams(canonicalGpt());
    const { config, tensors } = toHuggingFace('gpt', params, MODEL);
    const back = fromHuggingFace(config, tensors);
    expect(back.arch).toBe('gpt');
    expect(back.modelConfig).toMatchObject({
      layers: L,
      hidden: H,
      heads: NH,
      ffn: F,
      vocab_size: V,
      max_positions: P,
    });
    expect(back.warnings).toEqual([]);
    expectIdentity(back.params, params);
  });

  it('accepts GPT2Model-style keys, buffers, lm_head, and n_inner null', () => {
    const params = makeParams(canonicalGpt()).map((p) => {
      // 4*H ffn so that n_inner: null is consistent.
      if (p.name.endsWith('mlp.up.weight')) return { ...p, shape: [4 * H, H], data: filled(4 * H * H, 5) };
      if (p.name.endsWith('mlp.up.bias')) return { ...p, shape: [4 * H], data: filled(4 * H, 6) };
      if (p.name.endsWith('mlp.down.weight')) return { ...p, shape: [H, 4 * H], data: filled(4 * H * H, 7) };
      return p;
    });
    const { config, tensors } = toHuggingFace('gpt', params, { ...MODEL, ffn: 4 * H });
    const cfg = { ...config, n_inner: null };
    delete (cfg as Record<string, unknown>)['n_positions'];
    const wte = byName(tensors).get('transformer.wte.weight')?.data as Float32Array;
    const variant: AnyTensor[] = tensors.map((t) => ({ ...t, name: t.name.replace(/^transformer\./, '') }));
    for (let i = 0; i < L; i++) {
      variant.push(
        { name: `h.${i}.attn.bias`, shape: [1, 1, P, P], data: new Float32Array(P * P).fill(1) },
        { name: `h.${i}.attn.masked_bias`, shape: [], data: new Float32Array([-1e4]) },
      );
    }
    variant.push({ name: 'lm_head.weight', shape: [V, H], data: wte });
    const back = fromHuggingFace(cfg, variant);
    expect(back.modelConfig.ffn).toBe(4 * H);
    expect(back.modelConfig.max_positions).toBe(P); // from n_ctx
    expect(back.warnings).toEqual([]);
    expectIdentity(back.params, params);
  });

  it('reports missing tensors and shape mismatches by HF name', () => {
    const params = makeParams(canonicalGpt());
    const { config, tensors } = toHuggingFace('gpt', params, MODEL);
    let err = errorOf(() =>
      fromHuggingFace(
        config,
        tensors.filter((t) => t.name !== 'transformer.h.1.attn.c_attn.weight'),
      ),
    );
    expect(err.code).toBe('ERR_HF_FORMAT');
    expect(err.message).toContain('transformer.h.1.attn.c_attn.weight');
    err = errorOf(() => fromHuggingFace({ ...config, n_inner: F + 1 }, tensors));
    expect(err.code).toBe('ERR_HF_FORMAT');
    expect(err.message).toMatch(/transformer\.h\.0\.mlp\.c_fc\.weight has shape \[8, 12\], expected \[8, 13\]/);
    err = errorOf(() => fromHuggingFace({ ...config, n_embd: 'x' }, tensors));
    expect(err.code).toBe('ERR_HF_FORMAT');
    expect(err.message).toContain('n_embd');
  });

  it('warns about activation/eps differences and unexpected tensors instead of failing', () => {
    const params = makeParams(canonicalGpt());
    const { config, tensors } = toHuggingFace('gpt', params, MODEL);
    const back = fromHuggingFace({ ...config, activation_function: 'relu', layer_norm_epsilon: 1e-6 }, [
      ...tensors,
      { name: 'score.weight', shape: [2, H], data: new Float32Array(2 * H) },
    ]);
    expect(back.warnings.join('\n')).toMatch(/relu/);
    expect(back.warnings.join('\n')).toMatch(/layer_norm_epsilon/);
    expect(back.warnings.join('\n')).toMatch(/score\.weight/);
  });
});

describe('HF directories', () => {
  it('export + read + import round-trips with tokenizer and format=pt metadata', async () => {
    const params = makeParams(canonicalGpt());
    const out = path.join(tmp, 'gpt-hf');
    const tok = '{"version":"1.0"}';
    await exportHuggingFaceDir(out, 'gpt', params, MODEL, { tokenizerJson: tok });
    expect(fs.readdirSync(out).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
    const st = await readSafetensors(path.join(out, 'model.safetensors'));
    expect(st.metadata).toEqual({ format: 'pt' });
    const dir = await readHuggingFaceDir(out);
    expect(dir.tokenizerJson).toBe(tok);
    expect((dir.config as { model_type?: string }).model_type).toBe('gpt2');
    const imp = await importHuggingFaceDir(out);
    expect(imp.tokenizerJson).toBe(tok);
    expectIdentity(imp.params, params);
  });

  it('reads sharded safetensors via model.safetensors.index.json', async () => {
    const params = makeParams(canonicalBert());
    const { config, tensors } = toHuggingFace('bert', params, MODEL);
    const out = path.join(tmp, 'sharded');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(config));
    const half = Math.floor(tensors.length / 2);
    const shards = [tensors.slice(0, half), tensors.slice(half)];
    const weightMap: Record<string, string> = {};
    for (const [i, shard] of shards.entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(path.join(out, file), shard, { format: 'pt' });
      for (const t of shard) weightMap[t.name] = file;
    }
    fs.writeFileSync(
      path.join(out, 'model.safetensors.index.json'),
      JSON.stringify({ metadata: {}, weight_map: weightMap }),
    );
    const imp = await importHuggingFaceDir(out);
    expectIdentity(imp.params, params);
  });

  it('imports F64/F16 files and skips buffers of any dtype', async () => {
    const params = makeParams(canonicalGpt());
    const { config, tensors } = toHuggingFace('gpt', params, MODEL);
    const out = path.join(tmp, 'f64');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'config.json'), JSON.stringify(config));
    // Hand-written file: parameters as F64 (wte as F16 of exactly representable values), buffers as BOOL / F32.
    const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
    const blobs: Buffer[] = [];
    let off = 0;
    const add = (name: string, dtype: string, shape: number[], bytes: Buffer): void => {
      header[name] = { dtype, shape, data_offsets: [off, off + bytes.length] };
      blobs.push(bytes);
      off += bytes.length;
    };
    const halfOf = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => ((i % 17) - 8) / 4);
    const wte = halfOf(V * H);
    for (const t of tensors) {
      if (t.name === 'transformer.wte.weight') {
        // f16 bit patterns of k/4 for k in [-8, 8]: encode via sign/exponent/mantissa.
        const u16 = Uint16Array.from(wte, (v) => f16Bits(v));
        add(t.name, 'F16', t.shape, Buffer.from(u16.buffer));
      } else {
        add(t.name, 'F64', t.shape, Buffer.from(Float64Array.from(t.data).buffer));
      }
    }
    for (let i = 0; i < L; i++) add(`transformer.h.${i}.attn.bias`, 'BOOL', [1, 1, P, P], Buffer.alloc(P * P, 1));
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    fs.writeFileSync(path.join(out, 'model.safetensors'), Buffer.concat([len, json, ...blobs]));

    const imp = await importHuggingFaceDir(out);
    const expected = params.map((p) => (p.name === 'embeddings.word.weight' ? { ...p, data: wte } : p));
    expectIdentity(imp.params, expected);
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
      code: 'ERR_HF_FORMAT',
      message: expect.stringMatching(/no model\.safetensors/),
    });
    await expect(readHuggingFaceDir(path.join(tmp, 'missing'))).rejects.toMatchObject({ code: 'ERR_HF_FORMAT' });
  });
});

// Golden fixtures generated with PyTorch (scripts/torch_models.py); present only once generated.
const GOLDEN = path.resolve(__dirname, '..', 'fixtures', 'golden');
for (const arch of ['bert', 'gpt'] as const) {
  const dir = path.join(GOLDEN, arch);
  const present = fs.existsSync(path.join(dir, 'config.json')) && fs.existsSync(path.join(dir, 'model.safetensors'));
  describe.skipIf(!present)(`golden ${arch} fixture`, () => {
    it('loads via readHuggingFaceDir + fromHuggingFace into canonical names', async () => {
      const { config, tensors } = await readHuggingFaceDir(dir);
      const imp = fromHuggingFace(config, tensors);
      expect(imp.arch).toBe(arch);
      const mc = imp.modelConfig;
      const expected: string[] = ['embeddings.word.weight', 'embeddings.position.weight'];
      if (arch === 'bert') expected.push('embeddings.segment.weight', 'embeddings.norm.weight', 'embeddings.norm.bias');
      for (let i = 0; i < mc.layers; i++) {
        for (const m of ['q', 'k', 'v', 'out'])
          expected.push(`layers.${i}.attn.${m}.weight`, `layers.${i}.attn.${m}.bias`);
        for (const n of ['attn_norm', 'mlp_norm', 'mlp.up', 'mlp.down'])
          expected.push(`layers.${i}.${n}.weight`, `layers.${i}.${n}.bias`);
      }
      if (arch === 'bert') {
        for (const n of ['pooler', 'mlm.transform', 'mlm.norm', 'nsp']) expected.push(`${n}.weight`, `${n}.bias`);
        expected.push('mlm.decoder.bias');
      } else {
        expected.push('final_norm.weight', 'final_norm.bias');
      }
      expect(imp.params.map((p) => p.name).sort()).toEqual(expected.sort());
      const shapes = byName(imp.params);
      expect(shapes.get('embeddings.word.weight')?.shape).toEqual([mc.vocab_size, mc.hidden]);
      expect(shapes.get('layers.0.mlp.up.weight')?.shape).toEqual([mc.ffn, mc.hidden]);
      for (const p of imp.params) expect(p.data.every((x) => Number.isFinite(x))).toBe(true);
      // And back: HF export reproduces the fixture's parameter tensors exactly (after dtype conversion).
      const again = toHuggingFace(arch, imp.params, mc);
      const orig = byName(tensors);
      for (const t of again.tensors) expect(Array.from(t.data)).toEqual(Array.from(orig.get(t.name)?.data ?? []));
    });

    it('reads every safetensors file of the fixture (inputs carry I32/I64)', async () => {
      for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.safetensors'))) {
        const { tensors } = await readSafetensors(path.join(dir, f));
        expect(tensors.length).toBeGreaterThan(0);
      }
    });
  });
}
