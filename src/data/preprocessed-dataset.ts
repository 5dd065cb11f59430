// `data.path`: a Dataset over a Megatron indexed dataset made by `paratrain preprocess` (or
// Megatron's tools/preprocess_data.py), with the tokenizer.json beside it. GPT (causal-lm) only.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Dataset, DatasetOptions } from './dataset';
import { DataError } from './errors';
import { IndexedCausalLmDataset, splitDocuments } from './indexed-causal-lm-dataset';
import { IndexedDataset } from './indexed-dataset';
import { TextTokenizer } from './tokenizer';
import type { Split } from './batch';

/** The split used when data.split is not given: Megatron's default. */
export const DEFAULT_SPLIT = '969,30,1';

/**
 * Where `paratrain preprocess` wrote the tokenizer for PREFIX: it names the data
 * OUT_<key>_document (or _sentence) and the tokenizer OUT_tokenizer.json, and a key may hold
 * underscores, so every cut at an underscore is tried, longest OUT first.
 */
export function tokenizerBeside(prefix: string): { found?: string; tried: string[] } {
  const stem = prefix.replace(/_(document|sentence)$/, '');
  const tried: string[] = [];
  for (let cut = stem.lastIndexOf('_'); cut > path.dirname(stem).length; cut = stem.lastIndexOf('_', cut - 1)) {
    const candidate = `${stem.slice(0, cut)}_tokenizer.json`;
    tried.push(candidate);
    if (fs.existsSync(candidate)) return { found: candidate, tried };
  }
  return { tried };
}

export async function openPreprocessedDataset(
  opts: DatasetOptions,
): Promise<{ dataset: Dataset; tokenizer: TextTokenizer }> {
  const started = Date.now();
  const prefix = path.resolve(opts.path as string);
  let tokenizerPath = opts.tokenizerPath;
  if (tokenizerPath === undefined) {
    const beside = tokenizerBeside(prefix);
    if (!beside.found)
      throw new DataError(
        'ERR_DATA_NOT_FOUND',
        `data.path ${prefix} has no tokenizer.json beside it (looked for ${
          beside.tried.join(', ') || 'nothing: the ' + 'prefix does not end in _<key>_document'
        }); set data.tokenizer to the tokenizer.json the dataset was made with`,
      );
    tokenizerPath = beside.found;
  }
  const tokenizer = TextTokenizer.fromFile(tokenizerPath);
  const endOfText = tokenizer.endOfTextId();
  if (tokenizer.vocabSize > opts.vocabSize)
    throw new DataError(
      'ERR_TOKENIZER',
      `the tokenizer of data.path ${prefix} (${tokenizerPath}) has ${tokenizer.vocabSize} tokens but ` +
        `model.vocab_size is ${opts.vocabSize}: the dataset was tokenized with a larger vocabulary than the ` +
        `model's; set model.vocab_size to at least ${tokenizer.vocabSize}, or preprocess the text again with a ` +
        `tokenizer of at most ${opts.vocabSize} tokens`,
    );

  const data = IndexedDataset.open(prefix);
  const ranges = splitDocuments(opts.split ?? DEFAULT_SPLIT, data.documentCount);
  const sources: Record<Split, IndexedCausalLmDataset | null> = { train: null, eval: null };
  for (const split of ['train', 'eval'] as const) {
    const [first, end] = ranges[split];
    if (end <= first) {
      if (split === 'train')
        throw new DataError(
          'ERR_CORPUS',
          `data.path ${prefix} has ${data.documentCount} documents: data.split ${opts.split ?? DEFAULT_SPLIT} ` +
            `gives training none; preprocess more text or give training a larger share`,
        );
      continue;
    }
    try {
      sources[split] = new IndexedCausalLmDataset(
        data,
        [first, end],
        endOfText,
        tokenizer.vocabSize,
        { seqLen: opts.seqLen, seed: opts.seed },
        split,
      );
    } catch (error) {
      if (!(error instanceof RangeError)) throw error;
      throw new DataError(
        'ERR_CORPUS',
        `data.path ${prefix} has too little text: its ${split === 'train' ? 'training' : 'validation'} split ` +
          `(documents ${first} to ${end - 1}) cannot fill one sequence of model.seq_len ${opts.seqLen} ` +
          `(${error.message}); preprocess more text, lower model.seq_len or change data.split`,
        { cause: error },
      );
    }
  }
  let corpusTokens = 0;
  for (const length of data.sequenceLengths) corpusTokens += length;

  const dataset: Dataset = {
    objective: 'causal-lm',
    seqLen: opts.seqLen,
    summary: {
      tokenizerVocabSize: tokenizer.vocabSize,
      corpusDocuments: data.documentCount,
      corpusTokens,
      trainDocuments: ranges.train[1] - ranges.train[0],
      evalDocuments: Math.max(0, ranges.eval[1] - ranges.eval[0]),
      heldoutBy: sources.eval ? 'documents' : 'none',
      tokenStoreOrigin: 'preprocessed',
      tokenStoreMillis: Date.now() - started,
    },
    batch(split, firstSample, count) {
      if (!Number.isSafeInteger(firstSample) || firstSample < 0)
        throw new RangeError(`firstSample must be a non-negative integer, got ${firstSample}`);
      if (!Number.isSafeInteger(count) || count < 1)
        throw new RangeError(`count must be a positive integer, got ${count}`);
      const source = sources[split];
      if (!source)
        throw new DataError(
          'ERR_DATA_CONFIG',
          `the ${split} split of ${prefix} is empty (data.split ${opts.split ?? DEFAULT_SPLIT}, ` +
            `${data.documentCount} documents)`,
        );
      return source.batch(firstSample, count);
    },
    samplesPerEpoch: (split) => sources[split]?.samplesPerEpoch ?? 0,
    documentIds: (split) => {
      const [first, end] = ranges[split];
      return Array.from({ length: Math.max(0, end - first) }, (_, i) => `${path.basename(prefix)}#${first + i}`);
    },
  };
  return { dataset, tokenizer };
}
