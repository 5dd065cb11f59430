// albert.ts — AlbertForPreTraining (MLM + SOP) and AlbertForMaskedLM: factorised embeddings (E < H)
// projected by embedding_hidden_mapping_in, and layer groups whose one layer every hidden layer of
// the group reuses.
import { layerGroups, pairTask } from '../../config/family';
import { quoted } from '../../text/quoted';
import type { HfFamily } from './family';
import { architectures, claimedBy, cfgInt, checkActivation, checkEps, checkTied, tokenIdEntries } from './family';
import {
  bertStyleConfig,
  bertStyleModel,
  checkPositionType,
  embeddingTensor,
  encoderLayer,
  ENCODER_BUFFERS,
} from './bert';
import { HfFormatError, mapTable, requireCovered, renameListed } from './tensors';

/** paratrain's sublayer names → ALBERT's (`albert_layer_groups.G.albert_layers.0.` + …). */
const ALBERT_LAYER: Record<string, string> = {
  'attn.q': 'attention.query',
  'attn.k': 'attention.key',
  'attn.v': 'attention.value',
  'attn.out': 'attention.dense',
  attn_norm: 'attention.LayerNorm',
  'mlp.up': 'ffn',
  'mlp.down': 'ffn_output',
  mlp_norm: 'full_layer_layer_norm',
};

export const albert: HfFamily = {
  arch: 'albert',
  architectures: ['AlbertForPreTraining', 'AlbertForMaskedLM'],
  claims: claimedBy('albert', 'Albert'),
  fromHfConfig({ main: config }, warnings) {
    const layers = cfgInt(config, 'num_hidden_layers');
    const groups = cfgInt(config, 'num_hidden_groups', 1);
    const inner = cfgInt(config, 'inner_group_num', 1);
    if (inner !== 1)
      throw new HfFormatError(
        `config.json: inner_group_num ${inner} is unsupported: paratrain's ALBERT has one layer per group ` +
          `(inner_group_num 1, as every released ALBERT)`,
      );
    if (layers % groups !== 0)
      throw new HfFormatError(
        `config.json: num_hidden_groups ${groups} must divide num_hidden_layers ${layers} ` +
          `(paratrain shares each group's layer across consecutive hidden layers)`,
      );
    const tv = config['type_vocab_size'] ?? 2;
    if (tv !== 2) throw new HfFormatError(`config.json: type_vocab_size ${quoted(tv)} is unsupported (ALBERT has 2)`);
    checkActivation(
      config,
      'hidden_act',
      ['gelu_new', 'gelu_pytorch_tanh', 'gelu_fast'],
      'the tanh GELU ("gelu_new")',
      warnings,
    );
    checkEps(config, 'layer_norm_eps', 1e-12, warnings);
    checkPositionType(config, warnings);
    checkTied(config, warnings);
    const masked = architectures(config).includes('AlbertForMaskedLM');
    return {
      model: { ...bertStyleModel(config), embedding_size: cfgInt(config, 'embedding_size', 128), layer_groups: groups },
      data: { pair_task: masked ? 'none' : 'sop' },
    };
  },
  models(c, table, opts) {
    const pair = pairTask(c) !== 'none';
    const heads: Record<string, string> = {
      'projection.weight': 'albert.encoder.embedding_hidden_mapping_in.weight',
      'projection.bias': 'albert.encoder.embedding_hidden_mapping_in.bias',
      'pooler.weight': 'albert.pooler.weight',
      'pooler.bias': 'albert.pooler.bias',
      'mlm.transform.weight': 'predictions.dense.weight',
      'mlm.transform.bias': 'predictions.dense.bias',
      'mlm.norm.weight': 'predictions.LayerNorm.weight',
      'mlm.norm.bias': 'predictions.LayerNorm.bias',
      'mlm.decoder.bias': 'predictions.bias',
      'sop.weight': 'sop_classifier.classifier.weight',
      'sop.bias': 'sop_classifier.classifier.bias',
    };
    const tensors = mapTable(
      table,
      (name, shape) =>
        embeddingTensor(name, shape, 'albert.embeddings.') ??
        encoderLayer(name, shape, '', 'albert.encoder.albert_layer_groups.', layerNames()) ??
        renameListed(heads, name, shape),
    );
    requireCovered(table, tensors, 'this albert model');
    return [
      {
        subdir: '',
        config: {
          architectures: [pair ? 'AlbertForPreTraining' : 'AlbertForMaskedLM'],
          model_type: 'albert',
          ...bertStyleConfig(c),
          embedding_size: c.model.embedding_size ?? c.model.hidden,
          num_hidden_groups: layerGroups(c),
          inner_group_num: 1,
          hidden_act: 'gelu_new',
          classifier_dropout_prob: 0.1,
          type_vocab_size: 2,
          layer_norm_eps: 1e-12,
          ...tokenIdEntries(opts),
        },
        tensors,
        tied: [
          ['predictions.decoder.weight', 'albert.embeddings.word_embeddings.weight'],
          ['predictions.decoder.bias', 'predictions.bias'],
        ],
        normaliseKey: (key) => (/^(embeddings|encoder|pooler)\./.test(key) ? `albert.${key}` : key),
        ignored: ENCODER_BUFFERS,
      },
    ];
  },
};

/** The group's single layer: `G.albert_layers.0.<ALBERT name>`. */
function layerNames(): Record<string, string> {
  return Object.fromEntries(Object.entries(ALBERT_LAYER).map(([ours, hf]) => [ours, `albert_layers.0.${hf}`]));
}
