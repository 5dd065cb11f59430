// The seam between where masked-LM tokens live and how samples are cut from them: the sentence-pair
// and full-sentence datasets read a SentenceSource. Two implementations: TokenStore (a text corpus
// tokenized into memory, data.corpus) and IndexedSentences (a sentence-split .bin/.idx read from disk
// on demand, data.path).

/**
 * Tokens with sentence and document bounds. Sentence s is tokens [sentenceStarts[s],
 * sentenceStarts[s + 1]) of the source; document d is sentences [documentSentenceStarts[d],
 * documentSentenceStarts[d + 1]). The sentences of a document are contiguous.
 */
export interface SentenceSource {
  readonly sentenceStarts: ArrayLike<number>;
  readonly documentSentenceStarts: ArrayLike<number>;
  documentTokenStart(document: number): number;
  documentTokenEnd(document: number): number;
  /** Tokens [start, end): a view or a copy, to be used before the next call. */
  readTokens(start: number, end: number): Int32Array;
}
