// Public surface of the data pipeline.
export { IGNORE_INDEX, type Split, type TrainBatch } from './batch';
export {
  DEFAULT_JSON_KEY,
  DEFAULT_MAX_DOCUMENT_CHARS,
  fingerprintDocuments,
  loadCorpus,
  type CorpusOptions,
  type Document,
  type DocumentSeparator,
  type LoadCorpusOptions,
} from './corpus';
export { splitHeldout, type HeldoutBy, type HeldoutSplit } from './heldout';
export {
  openDataset,
  type Dataset,
  type DatasetOptions,
  type DatasetSummary,
  type Objective,
  type Packing,
} from './dataset';
export { DataError, type DataErrorCode } from './errors';
export { RandomStream, randomFloat, randomUint32 } from './rng';
export { loadOrBuildTokenStore, TokenStore, type TokenStoreRequest } from './token-store';
export {
  END_OF_TEXT_TOKEN,
  ROBERTA_SPECIAL_TOKENS,
  TextTokenizer,
  WORDPIECE_SPECIAL_TOKENS,
  loadOrTrainTokenizer,
  type BpeSpecialIds,
  type MaskedLmSpecialIds,
  type TokenizerKind,
  type TokenizerRequest,
} from './tokenizer';
export type { PairTask } from './sentence-pair-dataset';
