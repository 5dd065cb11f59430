// Which masked-LM dataset cuts a split's samples, as data.packing and data.pair_task say: one place
// for the text corpus (a TokenStore) and for preprocessed sentence-split data (IndexedSentences).
import type { Split } from './batch';
import type { DatasetOptions } from './dataset';
import { FullSentenceDataset, type FullSentencePacking } from './full-sentence-dataset';
import type { MaskedLmVocabulary } from './masking';
import { SentencePairDataset, type PairChunkColumns, type PairChunks, type PairTask } from './sentence-pair-dataset';
import type { SentenceSource } from './sentence-source';

/** The masked-LM samples of one split's documents, as opts.packing and opts.pairTask say. */
export function maskedLmStream(
  source: SentenceSource,
  documents: readonly number[],
  vocabulary: MaskedLmVocabulary,
  opts: DatasetOptions,
  split: Split,
  /** The split's index (cutPairChunks or packFullSentences of these documents), when read from its cache. */
  index?: PairChunks | PairChunkColumns | FullSentencePacking,
): FullSentenceDataset | SentencePairDataset {
  // validateOptions has checked maskProb and, for sentence pairs, pairTask.
  const sampling = {
    seqLen: opts.seqLen,
    seed: opts.seed,
    maskProb: opts.maskProb as number,
    maxPredictionsPerSeq: opts.maxPredictionsPerSeq,
    wholeWordMask: opts.wholeWordMask === true,
  };
  if (opts.packing === 'full-sentences')
    return new FullSentenceDataset(source, documents, vocabulary, sampling, split, index as FullSentencePacking);
  const pairTask = opts.pairTask as PairTask;
  const options = { ...sampling, pairTask };
  return new SentencePairDataset(source, documents, vocabulary, options, split, index as PairChunkColumns | undefined);
}
