// bert.ts — BertForPreTraining (masked LM + NSP/SOP) and BertForMaskedLM (no pair task), and the
// encoder-layer names that RoBERTa and ELECTRA share with BERT.
import { pairTask } from '../../config/family';
import type { Config } from '../../config/schema';
import { quoted } from '../../text/quoted';
import {
  architectures,
  claimedBy,
  checkActivation,
  checkEps,
  checkTied,
  refuseSharedLayers,
  tokenIdEntries,
  cfgInt,
  cfgNum,
  type HfConfig,
  type HfFamily,
} from './family';
import { HfFormatError, mapTable, rename, requireCovered, type HfTensorMap, renameListed } from './tensors';

/** paratrain's sublayer names → BERT's (`bert.encoder.layer.N.` + …). */
const BERT_LAYER: Record<string, string> = {
  'attn.q': 'attention.self.query',
  'attn.k': 'attention.self.key',
  'attn.v': 'attention.self.value',
  'attn.out': 'attention.output.dense',
  attn_norm: 'attention.output.LayerNorm',
  'mlp.up': 'intermediate.dense',
  'mlp.down': 'output.dense',
  mlp_norm: 'output.LayerNorm',
};

/**
 * `<ours>layers.N.<part>.<weight|bias>` → `<hf>N.<BERT name>.<weight|bias>` for a BERT-style
 * encoder (BERT, RoBERTa, ELECTRA), `layers` mapping paratrain's sublayer names.
 */
export function encoderLayer(
  name: string,
  shape: number[],
  ours: string,
  hf: string,
  layers: Record<string, string> = BERT_LAYER,
): HfTensorMap | undefined {
  const m = new RegExp(`^${ours.replace(/\./g, '\\.')}layers\\.(\\d+)\\.(.+)\\.(weight|bias)$`).exec(name);
  if (!m) return undefined;
  const part = layers[m[2]];
  if (!part) return undefined;
  return rename(`${hf}${m[1]}.${part}.${m[3]}`, name, shape);
}

/** `embeddings.*` → `<hf>{word,position,token_type}_embeddings`, `<hf>LayerNorm`. */
export function embeddingTensor(name: string, shape: number[], hf: string): HfTensorMap | undefined {
  const m = /^embeddings\.(word|position|segment|norm)\.(weight|bias)$/.exec(name);
  if (!m) return undefined;
  const part = {
    word: 'word_embeddings',
    position: 'position_embeddings',
    segment: 'token_type_embeddings',
    norm: 'LayerNorm',
  }[m[1] as 'word'];
  return rename(`${hf}${part}.${m[2]}`, name, shape);
}

/** BERT-style configs: layer sizes, dropout and positions. */
export function bertStyleModel(config: HfConfig): Record<string, unknown> {
  return {
    layers: cfgInt(config, 'num_hidden_layers'),
    hidden: cfgInt(config, 'hidden_size'),
    heads: cfgInt(config, 'num_attention_heads'),
    ffn: cfgInt(config, 'intermediate_size'),
    vocab_size: cfgInt(config, 'vocab_size'),
    max_positions: cfgInt(config, 'max_position_embeddings'),
    dropout: cfgNum(config, 'hidden_dropout_prob', 0.1),
    attention_dropout: cfgNum(config, 'attention_probs_dropout_prob', 0.1),
  };
}

/** The BERT-style config.json keys every encoder family writes. */
export function bertStyleConfig(c: Config, hidden = c.model.hidden) {
  const dropout = c.model.dropout;
  return {
    vocab_size: c.model.vocab_size,
    hidden_size: hidden,
    num_hidden_layers: c.model.layers,
    num_attention_heads: c.model.heads,
    intermediate_size: c.model.ffn,
    hidden_dropout_prob: dropout,
    attention_probs_dropout_prob: c.model.attention_dropout ?? dropout,
    max_position_embeddings: c.model.max_positions ?? c.model.seq_len,
    initializer_range: 0.02,
    position_embedding_type: 'absolute',
    tie_word_embeddings: true,
    torch_dtype: 'float32',
  };
}

export function checkPositionType(config: HfConfig, warnings: string[]): void {
  const pet = config['position_embedding_type'] ?? 'absolute';
  if (pet !== 'absolute') warnings.push(`position_embedding_type ${quoted(pet)}: paratrain supports only "absolute"`);
}

/** Buffers HF models carry that are not parameters. */
export const ENCODER_BUFFERS = [/(^|\.)embeddings\.(position_ids|token_type_ids)$/];

export const bert: HfFamily = {
  arch: 'bert',
  architectures: ['BertForPreTraining', 'BertForMaskedLM'],
  claims: claimedBy('bert', 'Bert'),
  fromHfConfig({ main: config }, warnings) {
    const tv = config['type_vocab_size'] ?? 2;
    if (tv !== 2)
      throw new HfFormatError(
        `config.json: type_vocab_size ${quoted(tv)} is unsupported (paratrain BERT has 2 segments)`,
      );
    checkActivation(config, 'hidden_act', ['gelu', 'gelu_python'], 'the erf GELU ("gelu")', warnings);
    checkEps(config, 'layer_norm_eps', 1e-12, warnings);
    checkPositionType(config, warnings);
    checkTied(config, warnings);
    // BertForMaskedLM has no pooler and no pair head: MLM only.
    const masked = architectures(config).includes('BertForMaskedLM');
    return { model: bertStyleModel(config), data: { pair_task: masked ? 'none' : 'nsp' } };
  },
  models(c, table, opts) {
    refuseSharedLayers(c, table);
    const pair = pairTask(c) !== 'none';
    const tensors = mapTable(table, (name, shape) => {
      const t =
        embeddingTensor(name, shape, 'bert.embeddings.') ?? encoderLayer(name, shape, '', 'bert.encoder.layer.');
      if (t) return t;
      const heads: Record<string, string> = {
        'pooler.weight': 'bert.pooler.dense.weight',
        'pooler.bias': 'bert.pooler.dense.bias',
        'mlm.decoder.bias': 'cls.predictions.bias',
        'mlm.transform.weight': 'cls.predictions.transform.dense.weight',
        'mlm.transform.bias': 'cls.predictions.transform.dense.bias',
        'mlm.norm.weight': 'cls.predictions.transform.LayerNorm.weight',
        'mlm.norm.bias': 'cls.predictions.transform.LayerNorm.bias',
        'nsp.weight': 'cls.seq_relationship.weight',
        'nsp.bias': 'cls.seq_relationship.bias',
      };
      return renameListed(heads, name, shape);
    });
    requireCovered(table, tensors, 'this bert model');
    return [
      {
        subdir: '',
        config: {
          architectures: [pair ? 'BertForPreTraining' : 'BertForMaskedLM'],
          model_type: 'bert',
          ...bertStyleConfig(c),
          hidden_act: 'gelu',
          type_vocab_size: 2,
          layer_norm_eps: 1e-12,
          ...tokenIdEntries(opts),
        },
        tensors,
        tied: [
          ['cls.predictions.decoder.weight', 'bert.embeddings.word_embeddings.weight'],
          ['cls.predictions.decoder.bias', 'cls.predictions.bias'],
        ],
        // Old TF-converted checkpoints name LayerNorm parameters gamma/beta; BertModel files lack "bert.".
        normaliseKey: (key) => {
          const k = key.replace(/\.gamma$/, '.weight').replace(/\.beta$/, '.bias');
          return /^(embeddings|encoder|pooler)\./.test(k) ? `bert.${k}` : k;
        },
        ignored: ENCODER_BUFFERS,
      },
    ];
  },
};
