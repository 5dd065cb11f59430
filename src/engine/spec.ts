// spec.ts — each model family as a composition of the engine's parts (docs/models.md): the shared
// embeddings, one or two stacks of transformer blocks, and heads with named, weighted losses. The
// engine builds whatever a spec names; BERT and GPT-2 are two specs among five.
import { embeddingSize, generatorShape, layerGroups, lossWeight, pairTask } from '../config/family';
import { attentionDropout, maxPositions } from '../config/load';
import type { Config } from '../config/schema';

export type HeadKind =
  | 'masked-lm'
  | 'sentence-pair'
  | 'causal-lm'
  | 'replaced-token'
  | 'sequence-classification'
  | 'token-classification'
  | 'question-answering';

export interface StackSpec {
  /** Parameter-name prefix: '' for the main stack, 'generator.' for ELECTRA's generator. */
  prefix: string;
  layers: number;
  /** Distinct blocks; consecutive layers share one. */
  groups: number;
  hidden: number;
  heads: number;
  ffn: number;
  /** LayerNorm after each residual sum (BERT) or before each sublayer (GPT-2). */
  norm: 'post' | 'pre';
  causal: boolean;
  /** Linear E→H between the embeddings and the first block. */
  projection: boolean;
  finalNorm: boolean;
  /** tanh(Linear) over the first token of each sequence, for sentence-pair heads. */
  pooler: boolean;
  scaledResidualInit: boolean;
  /** The sampling head whose tokens this stack reads (ELECTRA's discriminator); -1: the batch's tokens. */
  inputFrom: number;
}

export interface HeadSpec {
  kind: HeadKind;
  stack: number;
  /** Parameter-name prefix (unused by the causal LM, which has no tensors of its own). */
  prefix: string;
  /** The loss's name in logs, metrics and control messages. */
  loss: string;
  weight: number;
  /** Masked LM: draw a token at every masked position for a later stack. */
  sample: boolean;
  /** Sequence/token classification: the labels (sequence classification with 1: regression). */
  classes?: number;
  /** Sequence classification: its own dense layer over the first token (RoBERTa, ELECTRA), not the stack's pooler. */
  dense?: boolean;
  denseActivation?: 'tanh' | 'gelu';
}

export interface ModelSpec {
  vocabSize: number;
  maxPositions: number;
  layernormEps: number;
  gelu: 'erf' | 'tanh';
  hiddenDropout: number;
  attentionDropout: number;
  initStd: number;
  embeddings: { dim: number; typeVocab: number; norm: boolean };
  stacks: StackSpec[];
  heads: HeadSpec[];
}

function stack(c: Config, fields: Partial<StackSpec>): StackSpec {
  return {
    prefix: '',
    layers: c.model.layers,
    groups: layerGroups(c),
    hidden: c.model.hidden,
    heads: c.model.heads,
    ffn: c.model.ffn,
    norm: 'post',
    causal: false,
    projection: false,
    finalNorm: false,
    pooler: false,
    scaledResidualInit: false,
    inputFrom: -1,
    ...fields,
  };
}

function head(c: Config, kind: HeadKind, prefix: string, loss: string, fields: Partial<HeadSpec> = {}): HeadSpec {
  return { kind, stack: 0, prefix, loss, weight: lossWeight(c, loss), sample: false, ...fields };
}

/** The masked-LM head, plus a sentence-pair head on the pooled [CLS] when the data has a pair task. */
function maskedLmHeads(c: Config, pairPrefix: string): HeadSpec[] {
  const task = pairTask(c);
  const heads = [head(c, 'masked-lm', 'mlm', 'mlm')];
  if (task !== 'none') heads.push(head(c, 'sentence-pair', pairPrefix, task));
  return heads;
}

/** The loss name each fine-tuning task reports (`class` becomes `mse` for regression). */
export function taskLoss(c: Config): string {
  switch (c.task.name) {
    case 'text-classification':
      return c.task.regression ? 'mse' : 'class';
    case 'token-classification':
      return 'tag';
    case 'question-answering':
      return 'span';
    default:
      return '';
  }
}

function taskClasses(c: Config): number {
  if (c.task.name === 'text-classification' && c.task.regression) return 1;
  const labels = c.task.labels;
  if (!labels || labels.length < 2)
    throw Object.assign(
      new Error(`task ${c.task.name} needs task.labels with at least 2 labels (read from task.train when it is given)`),
      { code: 'ERR_CONFIG' },
    );
  return labels.length;
}

/**
 * A fine-tuning task's head, with Hugging Face's structure for the family: BERT and ALBERT classify
 * the pooled [CLS], RoBERTa (tanh) and ELECTRA (GELU) put a dense layer over the first token; every
 * family tags tokens with one `classifier` and scores answer spans with `qa_outputs`.
 */
function taskHead(c: Config): HeadSpec {
  const base = { stack: 0, weight: 1, sample: false, loss: taskLoss(c) };
  switch (c.task.name) {
    case 'text-classification': {
      const dense = c.model.arch === 'roberta' || c.model.arch === 'electra';
      return {
        ...base,
        kind: 'sequence-classification',
        prefix: 'classifier',
        classes: taskClasses(c),
        dense,
        ...(dense ? { denseActivation: c.model.arch === 'electra' ? ('gelu' as const) : ('tanh' as const) } : {}),
      };
    }
    case 'token-classification':
      return { ...base, kind: 'token-classification', prefix: 'classifier', classes: taskClasses(c) };
    default:
      return { ...base, kind: 'question-answering', prefix: 'qa_outputs' };
  }
}

/**
 * A fine-tuning model: the family's encoder (ELECTRA: the discriminator alone) with the task's head
 * instead of the pretraining heads. Parameter names are those of pretraining, so a pretrained
 * checkpoint's encoder loads by name.
 */
function fineTuningSpec(c: Config, pretraining: ModelSpec): ModelSpec {
  if (c.model.arch === 'gpt')
    throw Object.assign(
      new Error(
        `task ${c.task.name} fine-tunes an encoder (bert, roberta, albert, electra); model.arch gpt has none of its heads`,
      ),
      { code: 'ERR_CONFIG' },
    );
  const head = taskHead(c);
  const encoder = pretraining.stacks[pretraining.stacks.length - 1];
  const pooler = head.kind === 'sequence-classification' && !head.dense;
  return { ...pretraining, stacks: [{ ...encoder, inputFrom: -1, pooler }], heads: [head] };
}

export function modelSpec(c: Config): ModelSpec {
  const pretraining = pretrainingSpec(c);
  return c.task.name === 'pretrain' ? pretraining : fineTuningSpec(c, pretraining);
}

function pretrainingSpec(c: Config): ModelSpec {
  const common = {
    vocabSize: c.model.vocab_size,
    maxPositions: maxPositions(c),
    hiddenDropout: c.model.dropout,
    attentionDropout: attentionDropout(c),
    initStd: 0.02,
  };
  const H = c.model.hidden;
  const pooled = pairTask(c) !== 'none';
  switch (c.model.arch) {
    case 'bert': // Devlin et al. 2019: post-LN, erf GELU, two segments, MLM + NSP (or SOP)
      return {
        ...common,
        layernormEps: 1e-12,
        gelu: 'erf',
        embeddings: { dim: H, typeVocab: 2, norm: true },
        stacks: [stack(c, { pooler: pooled })],
        heads: maskedLmHeads(c, 'nsp'),
      };
    case 'gpt': // Radford et al. 2019: pre-LN, tanh GELU, final LayerNorm, tied causal-LM head
      return {
        ...common,
        layernormEps: 1e-5,
        gelu: 'tanh',
        embeddings: { dim: H, typeVocab: 0, norm: false },
        stacks: [stack(c, { norm: 'pre', causal: true, finalNorm: true, scaledResidualInit: true })],
        heads: [head(c, 'causal-lm', 'lm', 'lm')],
      };
    case 'roberta': // Liu et al. 2019: BERT's layers, one segment, MLM only, LayerNorm ε 1e-5
      return {
        ...common,
        layernormEps: 1e-5,
        gelu: 'erf',
        embeddings: { dim: H, typeVocab: 1, norm: true },
        stacks: [stack(c, {})],
        heads: [head(c, 'masked-lm', 'mlm', 'mlm')],
      };
    case 'albert': // Lan et al. 2020: factorised embeddings E→H, layers sharing one block, MLM + SOP
      return {
        ...common,
        layernormEps: 1e-12,
        gelu: 'tanh',
        embeddings: { dim: embeddingSize(c), typeVocab: 2, norm: true },
        stacks: [stack(c, { projection: true, pooler: pooled })],
        heads: maskedLmHeads(c, 'sop'),
      };
    case 'electra': {
      // Clark et al. 2020: a small generator (MLM, sampling) and the discriminator (replaced-token
      // detection over every position), sharing the embeddings; loss = mlm + 50·rtd.
      const E = embeddingSize(c);
      const g = generatorShape(c);
      return {
        ...common,
        layernormEps: 1e-12,
        gelu: 'erf',
        embeddings: { dim: E, typeVocab: 2, norm: true },
        stacks: [
          stack(c, {
            prefix: 'generator.',
            layers: g.layers,
            groups: g.layers,
            hidden: g.hidden,
            heads: g.heads,
            ffn: g.ffn,
            projection: E !== g.hidden,
          }),
          stack(c, { projection: E !== H, inputFrom: 0 }),
        ],
        heads: [
          head(c, 'masked-lm', 'generator.mlm', 'mlm', { sample: true }),
          head(c, 'replaced-token', 'rtd', 'rtd', { stack: 1 }),
        ],
      };
    }
  }
}
