// roberta.ts — RobertaForMaskedLM: BERT's encoder under roberta.*, one token type, lm_head.*, and
// positions numbered from padding_idx + 1 (HF's create_position_ids_from_input_ids).
import { quoted } from '../../text/quoted';
import type { HfFamily } from './family';
import { claimedBy, cfgInt, checkActivation, checkEps, checkTied, refuseSharedLayers, tokenIdEntries } from './family';
import {
  bertStyleConfig,
  bertStyleModel,
  checkPositionType,
  embeddingTensor,
  encoderLayer,
  ENCODER_BUFFERS,
} from './bert';
import { HfFormatError, mapTable, offsetRows, requireCovered, renameListed } from './tensors';

/** RoBERTa's padding id (<pad>) and so its position offset pad + 1. */
const ROBERTA_PAD = 1;

export const roberta: HfFamily = {
  arch: 'roberta',
  architectures: ['RobertaForMaskedLM'],
  claims: claimedBy('roberta', 'Roberta'),
  fromHfConfig({ main: config }, warnings) {
    const tv = config['type_vocab_size'] ?? 1;
    if (tv !== 1) throw new HfFormatError(`config.json: type_vocab_size ${quoted(tv)} is unsupported (RoBERTa has 1)`);
    checkActivation(config, 'hidden_act', ['gelu', 'gelu_python'], 'the erf GELU ("gelu")', warnings);
    checkEps(config, 'layer_norm_eps', 1e-5, warnings);
    checkPositionType(config, warnings);
    checkTied(config, warnings);
    const model = bertStyleModel(config);
    // HF keeps pad + 1 rows before the first position; paratrain's table starts at position 0.
    const offset = cfgInt(config, 'pad_token_id', ROBERTA_PAD) + 1;
    const rows = (model.max_positions as number) - offset;
    if (rows < 1)
      throw new HfFormatError(
        `config.json: max_position_embeddings ${String(model.max_positions)} leaves no position after padding_idx + 1 = ${offset}`,
      );
    return { model: { ...model, max_positions: rows }, data: { pair_task: 'none' } };
  },
  models(c, table, opts) {
    refuseSharedLayers(c, table);
    const pad = opts.pad ?? ROBERTA_PAD;
    const P = c.model.max_positions ?? c.model.seq_len;
    const heads: Record<string, string> = {
      'mlm.transform.weight': 'lm_head.dense.weight',
      'mlm.transform.bias': 'lm_head.dense.bias',
      'mlm.norm.weight': 'lm_head.layer_norm.weight',
      'mlm.norm.bias': 'lm_head.layer_norm.bias',
      'mlm.decoder.bias': 'lm_head.bias',
    };
    const tensors = mapTable(table, (name, shape) => {
      if (name === 'embeddings.position.weight')
        return offsetRows('roberta.embeddings.position_embeddings.weight', name, P, shape[1] as number, pad + 1);
      return (
        embeddingTensor(name, shape, 'roberta.embeddings.') ??
        encoderLayer(name, shape, '', 'roberta.encoder.layer.') ??
        renameListed(heads, name, shape)
      );
    });
    requireCovered(table, tensors, 'this roberta model');
    return [
      {
        subdir: '',
        config: {
          architectures: ['RobertaForMaskedLM'],
          model_type: 'roberta',
          ...bertStyleConfig(c),
          max_position_embeddings: P + pad + 1,
          hidden_act: 'gelu',
          type_vocab_size: 1,
          layer_norm_eps: 1e-5,
          bos_token_id: 0,
          eos_token_id: 2,
          ...tokenIdEntries({ ...opts, pad }),
        },
        tensors,
        tied: [
          ['lm_head.decoder.weight', 'roberta.embeddings.word_embeddings.weight'],
          ['lm_head.decoder.bias', 'lm_head.bias'],
        ],
        normaliseKey: (key) => (/^(embeddings|encoder)\./.test(key) ? `roberta.${key}` : key),
        ignored: ENCODER_BUFFERS,
      },
    ];
  },
};
