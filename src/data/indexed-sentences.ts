// A sentence-split Megatron indexed dataset (`paratrain preprocess --split-sentences`: each sequence a
// sentence, documents from the document index) as a SentenceSource for the masked-LM datasets. The
// bounds are the dataset's own arrays (sequence starts, document indices), not copies: nothing here
// grows with the sentence count. Tokens are read from .bin when a sample asks for them.
import { DataError } from './errors';
import type { IndexedDataset } from './indexed-dataset';
import type { SentenceSource } from './sentence-source';

export class IndexedSentences implements SentenceSource {
  readonly sentenceStarts: Float64Array;
  readonly documentSentenceStarts: Float64Array;

  constructor(
    private readonly data: IndexedDataset,
    private readonly vocabSize: number,
  ) {
    this.sentenceStarts = data.sequenceStarts;
    this.documentSentenceStarts = data.documentIndices;
  }

  documentTokenStart(document: number): number {
    return this.sentenceStarts[this.documentSentenceStarts[document]];
  }

  documentTokenEnd(document: number): number {
    return this.sentenceStarts[this.documentSentenceStarts[document + 1]];
  }

  readTokens(start: number, end: number): Int32Array {
    const ids = this.data.tokens(start, end);
    for (let i = 0; i < ids.length; i++) if (ids[i] < 0 || ids[i] >= this.vocabSize) this.refuseId(ids[i], start + i);
    return ids;
  }

  private refuseId(id: number, position: number): never {
    let low = 0;
    let high = this.data.sequenceCount - 1;
    while (low < high) {
      const middle = (low + high + 1) >> 1;
      if (this.sentenceStarts[middle] <= position) low = middle;
      else high = middle - 1;
    }
    throw new DataError(
      'ERR_TOKENIZER',
      `${this.data.prefix}.bin holds token id ${id} in sequence ${low}, but the tokenizer has ` +
        `${this.vocabSize} tokens: the dataset was tokenized with another vocabulary; point data.tokenizer at ` +
        `the tokenizer.json it was made with, or preprocess it again with this one`,
    );
  }
}
