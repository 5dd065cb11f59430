import type { TrainBatch } from './batch';
import { BertPairDataset, type PairTask } from './bert-dataset';
import { fingerprintDocuments, loadCorpus } from './corpus';
import { DataError } from './errors';
import { GptWindowDataset } from './gpt-dataset';
import { loadOrBuildTokenStore } from './token-store';
import { loadOrTrainTokenizer, type TextTokenizer } from './tokenizer';

export type Split = 'train' | 'eval';

export interface DatasetOptions {
  arch: 'bert' | 'gpt';
  /** 'bundled' or a .txt file / directory of .txt files (see loadCorpus). */
  corpus: 'bundled' | string;
  /** Use this tokenizer.json instead of training one. */
  tokenizerPath?: string;
  /** Where trained tokenizers and token stores are cached (shared safely between processes). */
  cacheDir: string;
  /** model.vocab_size: the tokenizer may be smaller, never larger. */
  vocabSize: number;
  seqLen: number;
  seed: number;
  /** Fraction of documents, taken from the end of the corpus order, held out for evaluation. */
  heldoutFraction: number;
  /** BERT only. */
  maskProb: number;
  /** BERT only. */
  pairTask: PairTask;
  maxDocuments?: number;
  /** BERT only: optional cap on masked positions per sequence. */
  maxPredictionsPerSeq?: number;
}

export interface DatasetSummary {
  tokenizerVocabSize: number;
  corpusDocuments: number;
  corpusTokens: number;
  trainDocuments: number;
  evalDocuments: number;
  tokenStoreOrigin: 'cache' | 'tokenized';
  tokenStoreMillis: number;
}

/**
 * Two deterministic, infinite sample streams (train and eval). Sample i of a
 * split depends only on (options, i), so data-parallel ranks can each read
 * their own slice of a global batch: rank r of R takes
 * batch(split, step * globalBatch + r * (globalBatch / R), globalBatch / R).
 */
export interface Dataset {
  readonly arch: 'bert' | 'gpt';
  readonly seqLen: number;
  readonly summary: DatasetSummary;
  /** Samples [firstSample, firstSample + count) of the split's stream. */
  batch(split: Split, firstSample: number, count: number): TrainBatch;
  /** Samples after which the stream starts its next (reshuffled) pass. 0 for an empty eval split. */
  samplesPerEpoch(split: Split): number;
  /** Ids of the documents feeding the split. */
  documentIds(split: Split): readonly string[];
}

// Part of every random key, so train and eval streams never share draws.
const SPLIT_TAG: Record<Split, number> = { train: 0, eval: 1 };

export async function openDataset(opts: DatasetOptions): Promise<{ dataset: Dataset; tokenizer: TextTokenizer }> {
  validateOptions(opts);
  const documents = loadCorpus(opts.corpus, { maxDocuments: opts.maxDocuments });
  const heldoutCount = heldoutDocumentCount(documents.length, opts.heldoutFraction);
  const trainCount = documents.length - heldoutCount;

  // The tokenizer learns from training documents only, so nothing about eval text leaks into it.
  const trainDocuments = documents.slice(0, trainCount);
  const tokenizer = await loadOrTrainTokenizer({
    kind: opts.arch === 'bert' ? 'wordpiece' : 'bpe',
    vocabSize: opts.vocabSize,
    corpus: trainDocuments,
    corpusKey: fingerprintDocuments(trainDocuments),
    cacheDir: opts.cacheDir,
    path: opts.tokenizerPath,
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

  type SampleSource = { samplesPerEpoch: number; batch(firstSample: number, count: number): TrainBatch };
  const makeSource = (split: Split): SampleSource | null => {
    if (splitDocuments[split].length === 0) return null;
    if (opts.arch === 'bert') {
      const special = tokenizer.wordPieceSpecialIds();
      return new BertPairDataset(
        store,
        splitDocuments[split],
        { size: tokenizer.vocabSize, special, isSpecialId: (id) => tokenizer.isSpecialId(id) },
        {
          seqLen: opts.seqLen,
          seed: opts.seed,
          maskProb: opts.maskProb,
          pairTask: opts.pairTask,
          maxPredictionsPerSeq: opts.maxPredictionsPerSeq,
        },
        SPLIT_TAG[split],
      );
    }
    return new GptWindowDataset(
      store,
      splitDocuments[split],
      tokenizer.endOfTextId(),
      { seqLen: opts.seqLen, seed: opts.seed },
      SPLIT_TAG[split],
    );
  };
  const sources: Record<Split, SampleSource | null> = { train: makeSource('train'), eval: makeSource('eval') };

  const dataset: Dataset = {
    arch: opts.arch,
    seqLen: opts.seqLen,
    summary: {
      tokenizerVocabSize: tokenizer.vocabSize,
      corpusDocuments: documents.length,
      corpusTokens: store.tokens.length,
      trainDocuments: trainCount,
      evalDocuments: heldoutCount,
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
          `the ${split} split has no documents (heldoutFraction ${opts.heldoutFraction}, ${documents.length} documents)`,
        );
      }
      return source.batch(firstSample, count);
    },
    samplesPerEpoch: (split) => sources[split]?.samplesPerEpoch ?? 0,
    documentIds: (split) => splitDocuments[split].map((d) => store.documentIds[d]),
  };
  return { dataset, tokenizer };
}

/**
 * round(n * fraction) documents, but at least one when a fraction is asked
 * for, so that small test corpora still get an eval split.
 */
function heldoutDocumentCount(documentCount: number, heldoutFraction: number): number {
  if (heldoutFraction === 0) return 0;
  const heldout = Math.max(1, Math.round(documentCount * heldoutFraction));
  if (heldout >= documentCount) {
    throw new DataError(
      'ERR_DATA_CONFIG',
      `heldoutFraction ${heldoutFraction} of ${documentCount} document(s) leaves none for training`,
    );
  }
  return heldout;
}

function validateOptions(opts: DatasetOptions): void {
  const problems: string[] = [];
  if (opts.arch !== 'bert' && opts.arch !== 'gpt')
    problems.push(`arch must be 'bert' or 'gpt', got ${String(opts.arch)}`);
  if (!Number.isInteger(opts.vocabSize) || opts.vocabSize < 1)
    problems.push(`vocabSize must be a positive integer, got ${opts.vocabSize}`);
  if (!Number.isInteger(opts.seqLen) || opts.seqLen < (opts.arch === 'bert' ? 5 : 1)) {
    problems.push(`seqLen must be an integer >= ${opts.arch === 'bert' ? 5 : 1}, got ${opts.seqLen}`);
  }
  if (!Number.isSafeInteger(opts.seed)) problems.push(`seed must be an integer, got ${opts.seed}`);
  if (!(opts.heldoutFraction >= 0 && opts.heldoutFraction < 1)) {
    problems.push(`heldoutFraction must be in [0, 1), got ${opts.heldoutFraction}`);
  }
  if (opts.arch === 'bert') {
    if (!(opts.maskProb > 0 && opts.maskProb < 1)) problems.push(`maskProb must be in (0, 1), got ${opts.maskProb}`);
    if (opts.pairTask !== 'nsp' && opts.pairTask !== 'sop')
      problems.push(`pairTask must be 'nsp' or 'sop', got ${String(opts.pairTask)}`);
    const cap = opts.maxPredictionsPerSeq;
    if (cap !== undefined && (!Number.isInteger(cap) || cap < 1))
      problems.push(`maxPredictionsPerSeq must be a positive integer, got ${cap}`);
  }
  if (problems.length > 0) throw new DataError('ERR_DATA_CONFIG', `invalid data options: ${problems.join('; ')}`);
}

function range(start: number, end: number): number[] {
  return Array.from({ length: end - start }, (_, i) => start + i);
}
