/**
 * The batch handed from the data pipeline to the native engine.
 * Binding contract: see docs/contracts.md ("Batches").
 */
export interface TrainBatch {
  arch: 'bert' | 'gpt';
  /** Sequences B. */
  batchSize: number;
  /** Tokens per sequence T. */
  seqLen: number;
  /** [B*T] input ids. */
  tokens: Int32Array;
  /**
   * [B*T] target id or IGNORE_INDEX. BERT: original id at masked positions;
   * GPT: the next token (already shifted).
   */
  labels: Int32Array;
  /** BERT token-type ids [B*T] (0 = segment A incl. [CLS], 1 = segment B); GPT: null. */
  segments: Int32Array | null;
  /** BERT [B*T]: 1 real token, 0 padding. GPT: null (causal, no padding). */
  attentionMask: Uint8Array | null;
  /** BERT [B]: 0 = B follows A, 1 = B is random / swapped (HF convention). GPT: null. */
  nspLabels: Int32Array | null;
}

/** Label value the loss skips (PyTorch CrossEntropyLoss ignore_index). */
export const IGNORE_INDEX = -100;
