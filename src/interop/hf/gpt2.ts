// gpt2.ts — GPT2LMHeadModel: Conv1D tensors ([in, out]) and c_attn holding q|k|v.
import type { HfFamily } from './family';
import {
  claimedBy,
  cfgInt,
  cfgNum,
  checkActivation,
  checkEps,
  checkTied,
  refuseSharedLayers,
  tokenIdEntries,
} from './family';
import { conv1d, fusedQkvBias, fusedQkvWeight, mapTable, rename, requireCovered, type HfTensorMap } from './tensors';

export const gpt2: HfFamily = {
  arch: 'gpt',
  architectures: ['GPT2LMHeadModel'],
  claims: claimedBy('gpt2', 'GPT2'),
  fromHfConfig({ main: config }, warnings) {
    const hidden = cfgInt(config, 'n_embd');
    const nInner = config['n_inner'];
    const dropout = cfgNum(config, 'resid_pdrop', 0.1);
    const embd = cfgNum(config, 'embd_pdrop', dropout);
    if (embd !== dropout) warnings.push(`embd_pdrop ${embd} differs from resid_pdrop ${dropout}; using resid_pdrop`);
    checkActivation(
      config,
      'activation_function',
      ['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'],
      'the tanh GELU ("gelu_new")',
      warnings,
    );
    checkEps(config, 'layer_norm_epsilon', 1e-5, warnings);
    if (config['scale_attn_weights'] === false)
      warnings.push('scale_attn_weights=false: paratrain always scales by 1/sqrt(head_dim)');
    if (config['scale_attn_by_inverse_layer_idx'] === true)
      warnings.push('scale_attn_by_inverse_layer_idx=true is not supported by paratrain; outputs will differ');
    checkTied(config, warnings);
    return {
      model: {
        layers: cfgInt(config, 'n_layer'),
        hidden,
        heads: cfgInt(config, 'n_head'),
        // HF: n_inner null/absent means 4 * n_embd.
        ffn: nInner === null || nInner === undefined ? 4 * hidden : cfgInt(config, 'n_inner'),
        vocab_size: cfgInt(config, 'vocab_size'),
        max_positions: cfgInt(config, 'n_positions', config['n_ctx'] as number | undefined),
        dropout,
        attention_dropout: cfgNum(config, 'attn_pdrop', 0.1),
      },
    };
  },
  models(c, table, opts) {
    refuseSharedLayers(c, table);
    const H = c.model.hidden,
      F = c.model.ffn;
    const tensors = mapTable(table, (name, shape): HfTensorMap | undefined => {
      if (name === 'embeddings.word.weight') return rename('transformer.wte.weight', name, shape);
      if (name === 'embeddings.position.weight') return rename('transformer.wpe.weight', name, shape);
      if (name === 'final_norm.weight') return rename('transformer.ln_f.weight', name, shape);
      if (name === 'final_norm.bias') return rename('transformer.ln_f.bias', name, shape);
      const m = /^layers\.(\d+)\.(.+)$/.exec(name);
      if (!m) return undefined;
      const h = `transformer.h.${m[1]}.`;
      const c0 = `layers.${m[1]}.`;
      switch (m[2]) {
        case 'attn_norm.weight':
          return rename(`${h}ln_1.weight`, name, shape);
        case 'attn_norm.bias':
          return rename(`${h}ln_1.bias`, name, shape);
        case 'attn.q.weight':
          return fusedQkvWeight(`${h}attn.c_attn.weight`, `${c0}attn.`, H);
        case 'attn.q.bias':
          return fusedQkvBias(`${h}attn.c_attn.bias`, `${c0}attn.`, H);
        case 'attn.out.weight':
          return conv1d(`${h}attn.c_proj.weight`, name, H, H);
        case 'attn.out.bias':
          return rename(`${h}attn.c_proj.bias`, name, shape);
        case 'mlp_norm.weight':
          return rename(`${h}ln_2.weight`, name, shape);
        case 'mlp_norm.bias':
          return rename(`${h}ln_2.bias`, name, shape);
        case 'mlp.up.weight':
          return conv1d(`${h}mlp.c_fc.weight`, name, F, H);
        case 'mlp.up.bias':
          return rename(`${h}mlp.c_fc.bias`, name, shape);
        case 'mlp.down.weight':
          return conv1d(`${h}mlp.c_proj.weight`, name, H, F);
        case 'mlp.down.bias':
          return rename(`${h}mlp.c_proj.bias`, name, shape);
      }
      return undefined;
    });
    requireCovered(table, tensors, 'this gpt model');
    const dropout = c.model.dropout;
    const P = c.model.max_positions ?? c.model.seq_len;
    return [
      {
        subdir: '',
        config: {
          architectures: ['GPT2LMHeadModel'],
          model_type: 'gpt2',
          vocab_size: c.model.vocab_size,
          n_positions: P,
          n_ctx: P,
          n_embd: H,
          n_layer: c.model.layers,
          n_head: c.model.heads,
          n_inner: F,
          activation_function: 'gelu_new',
          resid_pdrop: dropout,
          embd_pdrop: dropout,
          attn_pdrop: c.model.attention_dropout ?? dropout,
          layer_norm_epsilon: 1e-5,
          initializer_range: 0.02,
          scale_attn_weights: true,
          tie_word_embeddings: true,
          torch_dtype: 'float32',
          ...tokenIdEntries(opts),
        },
        tensors,
        tied: [['lm_head.weight', 'transformer.wte.weight']],
        // GPT2Model-style files (e.g. the original "gpt2" upload) have no "transformer." prefix.
        normaliseKey: (key) => (/^(wte|wpe|h|ln_f)\./.test(key) ? `transformer.${key}` : key),
        ignored: [/(^|\.)h\.\d+\.attn\.(bias|masked_bias)$/],
      },
    ];
  },
};
