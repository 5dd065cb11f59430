import * as path from 'node:path';
import type { Split, TrainBatch } from './batch';
import type { DataPath } from './blend';
import { CausalLmWindowDataset } from './causal-lm-dataset';
import { fingerprintDocuments, loadCorpus, type CorpusOptions } from './corpus';
import { DataError } from './errors';
import { openPreprocessedDataset } from './preprocessed-dataset';
import { splitHeldout, type HeldoutBy } from './heldout';
import { maskedLmStream } from './masked-lm-samples';
import { maskedLmVocabulary, type MaskedLmVocabulary } from './masking';
import type { PairTask } from './sentence-pair-dataset';
import { loadOrBuildTokenStore } from './token-store';
import { loadOrTrainTokenizer, type TextTokenizer, type TokenizerKind } from './tokenizer';

export type { Split } from './batch';

/** 'masked-lm': BERT-style targets at masked positions; 'causal-lm': GPT-style next-token targets. */
export type Objective = 'masked-lm' | 'causal-lm';

/**
 * How masked-LM sequences are built. 'sentence-pairs': [CLS] A [SEP] B [SEP]
 * from one document (BERT, ALBERT, ELECTRA); 'full-sentences': contiguous
 * sentences packed across document boundaries (RoBERTa's FULL-SENTENCES).
 */
export type Packing = 'sentence-pairs' | 'full-sentences';

/**
 * What each pretraining family picks (the trainer maps a family to these):
 * BERT (masked-lm, sentence-pairs, nsp, wordpiece); ALBERT (..., sop, wordpiece);
 * ELECTRA (..., none, wordpiece); RoBERTa (masked-lm, full-sentences, roberta-bpe);
 * GPT-2 (causal-lm, bpe).
 */
export interface DatasetOptions {
  objective: Objective;
  /** masked-lm only. */
  packing?: Packing;
  /** masked-lm with sentence-pairs only. */
  pairTask?: PairTask;
  /**
   * The tokenizer convention: what is trained when tokenizerPath is not given,
   * and what a given tokenizer.json must be. masked-lm takes 'wordpiece' or
   * 'roberta-bpe'; causal-lm takes 'bpe'.
   */
  tokenizerKind: TokenizerKind;
  /** 'bundled', a text or JSON-lines file, or a directory of them (see loadCorpus). */
  corpus: 'bundled' | string;
  /**
   * Train from this Megatron indexed dataset (PREFIX.bin/.idx, e.g. made by `paratrain preprocess`;
   * sentence-split for masked-lm), or a weighted blend of several, instead of `corpus`; see
   * openPreprocessedDataset and parseDataPath.
   */
  path?: DataPath;
  /** With `path`: train,valid,test document weights, e.g. "969,30,1". */
  split?: string;
  /** How a user's files become documents (see loadCorpus). */
  corpusOptions?: CorpusOptions;
  /** Use this tokenizer.json instead of training one. */
  tokenizerPath?: string;
  /** WordPiece that is trained: lower-case first (the default), or keep case (see TokenizerRequest). */
  lowercase?: boolean;
  /** Where trained tokenizers and token stores are cached (shared safely between processes). */
  cacheDir: string;
  /** model.vocab_size: the tokenizer may be smaller, never larger. */
  vocabSize: number;
  seqLen: number;
  seed: number;
  /** Share of the corpus held out for evaluation, from the end of its order (see splitHeldout); 0 = none. */
  heldoutFraction: number;
  /** masked-lm only: probability that a real, non-special token is selected for prediction. */
  maskProb?: number;
  maxDocuments?: number;
  /** masked-lm only: optional cap on masked positions per sequence. */
  maxPredictionsPerSeq?: number;
  /** masked-lm only: select whole words, all their sub-tokens together (see maskWholeWords). Default false. */
  wholeWordMask?: boolean;
}

export interface DatasetSummary {
  tokenizerVocabSize: number;
  corpusDocuments: number;
  corpusTokens: number;
  trainDocuments: number;
  evalDocuments: number;
  heldoutBy: HeldoutBy;
  /** 'preprocessed': read from a .bin/.idx pair (data.path), nothing tokenized. */
  tokenStoreOrigin: 'cache' | 'tokenized' | 'preprocessed';
  tokenStoreMillis: number;
  /** data.path: the sample indices the dataset uses, and whether each was read from its cache file. */
  sampleIndices?: SampleIndexUse[];
  /** data.path with several prefixes: each with its normalised weight. */
  blend?: { prefix: string; weight: number }[];
  /** What the run should warn about the data (e.g. sentence data preprocessed with --append-eod). */
  warnings?: string[];
}

export interface SampleIndexUse {
  kind: 'gpt-stream' | 'sentence-pairs' | 'full-sentences' | 'blend';
  split: Split;
  /** null when neither the data's folder nor data.cache_dir was writable. */
  file: string | null;
  origin: 'cache' | 'built';
}

/**
 * Two deterministic, infinite sample streams (train and eval). Sample i of a
 * split depends only on (options, i), so data-parallel ranks can each read
 * their own slice of a global batch: rank r of R takes
 * batch(split, step * globalBatch + r * (globalBatch / R), globalBatch / R).
 */
export interface Dataset {
  readonly objective: Objective;
  readonly seqLen: number;
  readonly summary: DatasetSummary;
  /** Samples [firstSample, firstSample + count) of the split's stream; the batch records both and the split. */
  batch(split: Split, firstSample: number, count: number): TrainBatch;
  /** Samples after which the stream starts its next (reshuffled) pass. 0 for an empty eval split. */
  samplesPerEpoch(split: Split): number;
  /** Ids of the documents feeding the split. */
  documentIds(split: Split): readonly string[];
}

export async function openDataset(opts: DatasetOptions): Promise<{ dataset: Dataset; tokenizer: TextTokenizer }> {
  validateOptions(opts);
  if (opts.path !== undefined) return openPreprocessedDataset(opts);
  const corpusName = opts.corpus === 'bundled' ? 'bundled' : path.resolve(opts.corpus);
  const corpus = loadCorpus(opts.corpus, { ...opts.corpusOptions, maxDocuments: opts.maxDocuments });
  const parts = splitHeldout(corpus, opts.heldoutFraction, corpusName);
  const documents = [...parts.train, ...parts.heldout];
  const trainCount = parts.train.length;
  const heldoutCount = parts.heldout.length;

  // The tokenizer learns from training documents only, so nothing about eval text leaks into it.
  const trainDocuments = parts.train;
  const tokenizer = await loadOrTrainTokenizer({
    kind: opts.tokenizerKind,
    vocabSize: opts.vocabSize,
    corpus: trainDocuments,
    corpusKey: fingerprintDocuments(trainDocuments),
    cacheDir: opts.cacheDir,
    path: opts.tokenizerPath,
    lowercase: opts.lowercase,
  });
  if (tokenizer.vocabSize > opts.vocabSize) {
    throw new DataError(
      'ERR_TOKENIZER',
      `the tokenizer has ${tokenizer.vocabSize} tokens but model.vocab_size is ${opts.vocabSize}; ` +
        `set model.vocab_size to at least ${tokenizer.vocabSize}, or use a tokenizer with at most ` +
        `${opts.vocabSize} tokens (omit the tokenizer path to train one of that size)`,
    );
  }

  const store = await loadOrBuildTokenStore({
    documents,
    corpusKey: fingerprintDocuments(documents),
    tokenizer,
    cacheDir: opts.cacheDir,
  });
  const splitDocuments: Record<Split, number[]> = {
    train: range(0, trainCount),
    eval: range(trainCount, documents.length),
  };

  // Built once for both splits: whole-word masking makes one idToToken call per vocabulary entry.
  const vocabulary =
    opts.objective === 'masked-lm' ? maskedLmVocabulary(tokenizer, opts.wholeWordMask === true) : undefined;
  type SampleSource = { samplesPerEpoch: number; batch(firstSample: number, count: number): TrainBatch };
  const makeSource = (split: Split): SampleSource | null => {
    if (splitDocuments[split].length === 0) return null;
    if (opts.objective === 'causal-lm') {
      return new CausalLmWindowDataset(
        store,
        splitDocuments[split],
        tokenizer.endOfTextId(),
        { seqLen: opts.seqLen, seed: opts.seed },
        split,
      );
    }
    return maskedLmStream(store, splitDocuments[split], vocabulary as MaskedLmVocabulary, opts, split);
  };
  // The split datasets refuse text too short for one sample: say which split of which corpus, and what helps.
  const sourceOrExplain = (split: Split): SampleSource | null => {
    try {
      return makeSource(split);
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      let tokens = 0;
      for (const d of splitDocuments[split]) tokens += store.documentTokenEnd(d) - store.documentTokenStart(d);
      const [name, fixes] =
        split === 'train'
          ? ['training', 'add text to the corpus or lower model.seq_len']
          : [
              'held-out',
              'raise data.heldout_fraction, add text, lower model.seq_len, or set data.heldout_fraction: 0 ' +
                'to train without evaluation',
            ];
      throw new DataError(
        'ERR_CORPUS',
        `corpus ${corpusName} has too little text: its ${name} split (${splitDocuments[split].length} ` +
          `documents, ${tokens} tokens) cannot fill one sequence of model.seq_len ${opts.seqLen} ` +
          `(${error.message}); ${fixes}`,
        { cause: error },
      );
    }
  };
  const sources: Record<Split, SampleSource | null> = {
    train: sourceOrExplain('train'),
    eval: sourceOrExplain('eval'),
  };

  const dataset: Dataset = {
    objective: opts.objective,
    seqLen: opts.seqLen,
    summary: {
      tokenizerVocabSize: tokenizer.vocabSize,
      corpusDocuments: documents.length,
      corpusTokens: store.tokens.length,
      trainDocuments: trainCount,
      evalDocuments: heldoutCount,
      heldoutBy: parts.by,
      tokenStoreOrigin: store.origin,
      tokenStoreMillis: store.elapsedMillis,
    },
    batch(split, firstSample, count) {
      if (!Number.isSafeInteger(firstSample) || firstSample < 0) {
        throw new RangeError(`firstSample must be a non-negative integer, got ${firstSample}`);
      }
      if (!Number.isSafeInteger(count) || count < 1) {
        throw new RangeError(`count must be a positive integer, got ${count}`);
      }
      const source = sources[split];
      if (!source) {
        throw new DataError(
          'ERR_DATA_CONFIG',
          `the ${split} split of ${corpusName} is empty (data.heldout_fraction ${opts.heldoutFraction}, ` +
            `${documents.length} documents)`,
        );
      }
      return source.batch(firstSample, count);
    },
    samplesPerEpoch: (split) => sources[split]?.samplesPerEpoch ?? 0,
    documentIds: (split) => splitDocuments[split].map((d) => store.documentIds[d]),
  };
  return { dataset, tokenizer };
}

const OBJECTIVES: readonly Objective[] = ['masked-lm', 'causal-lm'];
const PACKINGS: readonly Packing[] = ['sentence-pairs', 'full-sentences'];
const PAIR_TASKS: readonly PairTask[] = ['nsp', 'sop', 'none'];
/** The tokenizer kinds each objective can lay its sequences out with. */
const TOKENIZER_KINDS: Readonly<Record<Objective, readonly TokenizerKind[]>> = {
  'masked-lm': ['wordpiece', 'roberta-bpe'],
  'causal-lm': ['bpe'],
};

/** Smallest seqLen: [CLS] A [SEP] B [SEP] needs 5, [CLS] x [SEP] needs 3, a causal window 1. */
function minimumSeqLen(opts: DatasetOptions): number {
  if (opts.objective !== 'masked-lm') return 1;
  return opts.packing === 'full-sentences' ? 3 : 5;
}

function validateOptions(opts: DatasetOptions): void {
  const problems: string[] = [];
  if (!isOneOf(OBJECTIVES, opts.objective)) {
    problems.push(`objective must be one of ${oneOf(OBJECTIVES)}, got ${String(opts.objective)}`);
  } else if (!isOneOf(TOKENIZER_KINDS[opts.objective], opts.tokenizerKind)) {
    problems.push(
      `tokenizerKind must be one of ${oneOf(TOKENIZER_KINDS[opts.objective])} for objective '${opts.objective}', ` +
        `got ${String(opts.tokenizerKind)}`,
    );
  }
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < 1)
    problems.push(`vocabSize must be a positive integer, got ${opts.vocabSize}`);
  const minimum = minimumSeqLen(opts);
  if (!Number.isInteger(opts.seqLen) || opts.seqLen < minimum) {
    problems.push(`seqLen must be an integer >= ${minimum}, got ${opts.seqLen}`);
  }
  if (!Number.isSafeInteger(opts.seed)) problems.push(`seed must be an integer, got ${opts.seed}`);
  if (!(opts.heldoutFraction >= 0 && opts.heldoutFraction < 1)) {
    problems.push(`heldoutFraction must be in [0, 1), got ${opts.heldoutFraction}`);
  }
  if (opts.objective === 'masked-lm') {
    if (!isOneOf(PACKINGS, opts.packing))
      problems.push(`packing must be one of ${oneOf(PACKINGS)} for objective 'masked-lm', got ${String(opts.packing)}`);
    if (opts.packing === 'sentence-pairs' && !isOneOf(PAIR_TASKS, opts.pairTask))
      problems.push(
        `pairTask must be one of ${oneOf(PAIR_TASKS)} for packing 'sentence-pairs', got ${String(opts.pairTask)}`,
      );
    const { maskProb } = opts;
    if (maskProb === undefined || !(maskProb > 0 && maskProb < 1))
      problems.push(`maskProb must be in (0, 1), got ${maskProb}`);
    const cap = opts.maxPredictionsPerSeq;
    if (cap !== undefined && (!Number.isInteger(cap) || cap < 1))
      problems.push(`maxPredictionsPerSeq must be a positive integer, got ${cap}`);
  }
  if (problems.length > 0) throw new DataError('ERR_DATA_CONFIG', `invalid data options: ${problems.join('; ')}`);
}

function isOneOf<T extends string>(values: readonly T[], value: unknown): value is T {
  return (values as readonly unknown[]).includes(value);
}

function oneOf(values: readonly string[]): string {
  return values.map((value) => `'${value}'`).join(', ');
}

function range(start: number, end: number): number[] {
  return Array.from({ length: end - start }, (_, i) => start + i);
}
