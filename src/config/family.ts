// family.ts — what a model family implies beyond its explicit keys: the defaults of the keys it
// leaves open, the objective and tokenizer its data needs, and the names of the losses it reports.
// The parts the engine composes for each family are in src/engine/spec.ts.
import type { Packing, PairTask, TokenizerKind } from '../data';
import type { Config, ModelFamily } from './schema';

/** Families trained with a masked-LM objective (the rest: GPT-2's causal LM). */
export function isMaskedLm(arch: ModelFamily): boolean {
  return arch !== 'gpt';
}

export function objective(c: Config): 'masked-lm' | 'causal-lm' {
  return isMaskedLm(c.model.arch) ? 'masked-lm' : 'causal-lm';
}

const DEFAULT_PAIR_TASK: Record<ModelFamily, PairTask> = {
  bert: 'nsp',
  albert: 'sop',
  roberta: 'none',
  electra: 'none',
  gpt: 'none',
};

export function pairTask(c: Config): PairTask {
  return c.data.pair_task ?? DEFAULT_PAIR_TASK[c.model.arch];
}

export function packing(c: Config): Packing {
  return c.data.packing ?? (c.model.arch === 'roberta' ? 'full-sentences' : 'sentence-pairs');
}

export function tokenizerKind(c: Config): TokenizerKind {
  if (c.model.arch === 'gpt') return 'bpe';
  return c.model.arch === 'roberta' ? 'roberta-bpe' : 'wordpiece';
}

/** E: the width of the embedding rows. */
export function embeddingSize(c: Config): number {
  return c.model.embedding_size ?? c.model.hidden;
}

/** Distinct transformer blocks (consecutive layers share one). */
export function layerGroups(c: Config): number {
  return c.model.layer_groups ?? (c.model.arch === 'albert' ? 1 : c.model.layers);
}

export interface GeneratorShape {
  hidden: number;
  layers: number;
  heads: number;
  ffn: number;
}

/** ELECTRA's generator (google-research/electra: hidden = fraction·H, heads = hidden/64, ffn = 4·hidden). */
export function generatorShape(c: Config): GeneratorShape {
  const g = c.model.generator ?? { hidden_fraction: 0.25 };
  const hidden = Math.max(1, Math.round(c.model.hidden * g.hidden_fraction));
  return {
    hidden,
    layers: g.layers ?? c.model.layers,
    heads: g.heads ?? Math.max(1, Math.floor(hidden / 64)),
    ffn: g.ffn ?? 4 * hidden,
  };
}

/** The losses the family's heads report, in head order. */
export function lossNames(c: Config): string[] {
  switch (c.model.arch) {
    case 'gpt':
      return ['lm'];
    case 'electra':
      return ['mlm', 'rtd'];
    default: {
      const task = pairTask(c);
      return task === 'none' ? ['mlm'] : ['mlm', task];
    }
  }
}

const DEFAULT_LOSS_WEIGHTS: Record<string, number> = { rtd: 50 };

export function lossWeight(c: Config, name: string): number {
  return c.model.loss_weights?.[name] ?? DEFAULT_LOSS_WEIGHTS[name] ?? 1;
}
