// One sequence of a fine-tuning task: `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` (BERT, ALBERT,
// ELECTRA: segment ids 0 then 1) or RoBERTa's `<s> a </s></s> b </s>` (segment ids all 0), padded
// to seqLen, with the attention mask over the real tokens.

/** A tokenizer that reports each token's [start, end) in the text (TextTokenizer.encodeWithOffsets). */
export interface OffsetTokenizer {
  encodeWithOffsets(text: string): Promise<{ ids: number[]; offsets: Array<[number, number]> }>;
}

/** A family's pair convention and its special ids. */
export interface PairLayout {
  cls: number;
  sep: number;
  pad: number;
  /** RoBERTa: two separators between the texts, and every segment id 0. */
  doubleSeparator: boolean;
}

export interface LaidOut {
  tokens: Int32Array;
  segments: Int32Array;
  attentionMask: Int32Array;
  /** Positions of a's first token and, with b, of b's first token. */
  aStart: number;
  bStart: number;
}

/** Special tokens a sequence of one text (pair: false) or two adds. */
export function specialTokenCount(layout: PairLayout, pair: boolean): number {
  return pair ? (layout.doubleSeparator ? 4 : 3) : 2;
}

export function layOut(a: readonly number[], b: readonly number[] | null, layout: PairLayout, seqLen: number): LaidOut {
  const length = a.length + (b?.length ?? 0) + specialTokenCount(layout, b !== null);
  if (length > seqLen) throw new RangeError(`${length} tokens do not fit seq_len ${seqLen}`);
  const tokens = new Int32Array(seqLen).fill(layout.pad);
  const segments = new Int32Array(seqLen);
  const attentionMask = new Int32Array(seqLen);
  let p = 0;
  const put = (id: number, segment: number) => {
    tokens[p] = id;
    segments[p] = layout.doubleSeparator ? 0 : segment;
    attentionMask[p] = 1;
    p++;
  };
  put(layout.cls, 0);
  const aStart = p;
  for (const id of a) put(id, 0);
  put(layout.sep, 0);
  let bStart = -1;
  if (b !== null) {
    if (layout.doubleSeparator) put(layout.sep, 0);
    bStart = p;
    for (const id of b) put(id, 1);
    put(layout.sep, 1);
  }
  return { tokens, segments, attentionMask, aStart, bStart };
}

/**
 * Cuts a pair to at most `budget` tokens, one token at a time from the end of the longer (b on
 * ties), as BERT's run_classifier does; a single text is cut at the end.
 */
export function truncateLongestFirst(a: number[], b: number[] | null, budget: number): [number[], number[] | null] {
  let [na, nb] = [a.length, b?.length ?? 0];
  while (na + nb > budget) {
    if (na > nb) na--;
    else nb--;
  }
  return [a.slice(0, na), b ? b.slice(0, nb) : null];
}
