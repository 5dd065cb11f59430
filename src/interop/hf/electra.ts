// electra.ts — ELECTRA as two HF models: ElectraForPreTraining (the discriminator, the model to
// fine-tune) in the directory itself and ElectraForMaskedLM (the generator) in its generator/
// subdirectory, each with its own copy of the embeddings paratrain shares between them.
import { generatorShape } from '../../config/family';
import { quoted } from '../../text/quoted';
import type { HfConfig, HfFamily, HfModel } from './family';
import {
  architectures,
  claimedBy,
  cfgInt,
  checkActivation,
  checkEps,
  checkTied,
  refuseSharedLayers,
  tokenIdEntries,
} from './family';
import {
  bertStyleConfig,
  bertStyleModel,
  checkPositionType,
  embeddingTensor,
  encoderLayer,
  ENCODER_BUFFERS,
} from './bert';
import { taskOfHfConfig } from './tasks';
import { HfFormatError, mapTable, requireCovered, type HfTensorMap, renameListed } from './tensors';

const normaliseKey = (key: string) => (/^(embeddings|embeddings_project|encoder)\./.test(key) ? `electra.${key}` : key);

function checkConfig(config: HfConfig, what: string, warnings: string[]): void {
  const tv = config['type_vocab_size'] ?? 2;
  if (tv !== 2) throw new HfFormatError(`${what}: type_vocab_size ${quoted(tv)} is unsupported (ELECTRA has 2)`);
  checkActivation(config, 'hidden_act', ['gelu', 'gelu_python'], 'the erf GELU ("gelu")', warnings);
  checkEps(config, 'layer_norm_eps', 1e-12, warnings);
  checkPositionType(config, warnings);
  checkTied(config, warnings);
}

export const electra: HfFamily = {
  arch: 'electra',
  architectures: ['ElectraForPreTraining', 'ElectraForMaskedLM'],
  needsGenerator: true,
  claims: claimedBy('electra', 'Electra'),
  fromHfConfig({ main, generator }, warnings) {
    if (architectures(main).includes('ElectraForMaskedLM'))
      throw new HfFormatError(
        'config.json: architectures ["ElectraForMaskedLM"] is an ELECTRA generator; import the discriminator ' +
          '(ElectraForPreTraining) with --from and give the generator with --generator',
      );
    // A fine-tuned ELECTRA is the discriminator alone.
    const fineTuned = taskOfHfConfig(main, 'config.json') !== null;
    if (!generator && !fineTuned)
      throw new HfFormatError(
        'ELECTRA without a generator: paratrain trains the generator and the discriminator together; put the ' +
          'ElectraForMaskedLM directory at <dir>/generator or pass --generator DIR',
      );
    checkConfig(main, 'config.json', warnings);
    const model = bertStyleModel(main);
    const E = cfgInt(main, 'embedding_size', model.hidden as number);
    if (!generator || fineTuned) return { model: { ...model, embedding_size: E }, data: { pair_task: 'none' } };
    checkConfig(generator, 'generator/config.json', warnings);
    const g = bertStyleModel(generator);
    for (const key of ['vocab_size', 'max_positions'] as const)
      if (g[key] !== model[key])
        throw new HfFormatError(
          `generator/config.json: ${key} ${String(g[key])} differs from the discriminator's ${String(model[key])}`,
        );
    const gE = cfgInt(generator, 'embedding_size', g.hidden as number);
    if (gE !== E)
      throw new HfFormatError(
        `generator/config.json: embedding_size ${gE} differs from the discriminator's ${E} (paratrain shares the embeddings)`,
      );
    return {
      model: {
        ...model,
        embedding_size: E,
        generator: {
          hidden_fraction: (g.hidden as number) / (model.hidden as number),
          layers: g.layers,
          heads: g.heads,
          ffn: g.ffn,
        },
      },
      data: { pair_task: 'none' },
    };
  },
  models(c, table, opts) {
    refuseSharedLayers(c, table);
    const E = c.model.embedding_size ?? c.model.hidden;
    const g = generatorShape(c);
    // Each HF model holds the shared embeddings, its own stack (`ours` prefix) and its head.
    const mapModel = (ours: string, heads: Record<string, string>) =>
      mapTable(
        table,
        (name, shape) =>
          embeddingTensor(name, shape, 'electra.embeddings.') ??
          encoderLayer(name, shape, ours, 'electra.encoder.layer.') ??
          renameListed(heads, name, shape),
      );
    const discriminator = mapModel('', {
      'projection.weight': 'electra.embeddings_project.weight',
      'projection.bias': 'electra.embeddings_project.bias',
      'rtd.dense.weight': 'discriminator_predictions.dense.weight',
      'rtd.dense.bias': 'discriminator_predictions.dense.bias',
      'rtd.out.weight': 'discriminator_predictions.dense_prediction.weight',
      'rtd.out.bias': 'discriminator_predictions.dense_prediction.bias',
    });
    const generator = mapModel('generator.', {
      'generator.projection.weight': 'electra.embeddings_project.weight',
      'generator.projection.bias': 'electra.embeddings_project.bias',
      'generator.mlm.transform.weight': 'generator_predictions.dense.weight',
      'generator.mlm.transform.bias': 'generator_predictions.dense.bias',
      'generator.mlm.norm.weight': 'generator_predictions.LayerNorm.weight',
      'generator.mlm.norm.bias': 'generator_predictions.LayerNorm.bias',
      'generator.mlm.decoder.bias': 'generator_lm_head.bias',
    });
    requireCovered(table, [...discriminator, ...generator], 'this electra model');
    const common = (hidden: number, layers: number, heads: number, ffn: number, arch: string) => ({
      architectures: [arch],
      model_type: 'electra',
      ...bertStyleConfig(c, hidden),
      num_hidden_layers: layers,
      num_attention_heads: heads,
      intermediate_size: ffn,
      embedding_size: E,
      hidden_act: 'gelu',
      type_vocab_size: 2,
      layer_norm_eps: 1e-12,
      ...tokenIdEntries(opts),
    });
    const model = (
      subdir: string,
      config: HfConfig,
      tensors: HfTensorMap[],
      tied: Array<[string, string]>,
    ): HfModel => ({
      subdir,
      config,
      tensors,
      tied,
      normaliseKey,
      ignored: ENCODER_BUFFERS,
    });
    return [
      model(
        '',
        common(c.model.hidden, c.model.layers, c.model.heads, c.model.ffn, 'ElectraForPreTraining'),
        discriminator,
        [],
      ),
      model('generator', common(g.hidden, g.layers, g.heads, g.ffn, 'ElectraForMaskedLM'), generator, [
        ['generator_lm_head.weight', 'electra.embeddings.word_embeddings.weight'],
      ]),
    ];
  },
};
