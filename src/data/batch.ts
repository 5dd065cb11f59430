/** The two sample streams of a dataset. */
export type Split = 'train' | 'eval';

/**
 * The batch handed from the data pipeline to the native engine. Model-neutral:
 * which arrays are present says which objective and pair task produced it.
 * Binding contract: see docs/contracts.md ("Batches").
 */
export interface TrainBatch {
  /** Sequences B. */
  batchSize: number;
  /** Tokens per sequence T. */
  seqLen: number;
  /** [B*T] input ids. */
  tokens: Int32Array;
  /**
   * [B*T] target id or IGNORE_INDEX. Masked LM: the original id at masked
   * positions; causal LM: the next token (already shifted).
   */
  labels: Int32Array;
  /** Masked LM token-type ids [B*T] (0 = segment A incl. the leading cls, 1 = segment B); causal LM: null. */
  segments: Int32Array | null;
  /** Masked LM [B*T]: 1 real token, 0 padding. Causal LM: null (causal, no padding). */
  attentionMask: Uint8Array | null;
  /**
   * [B] sentence-pair label for NSP or SOP: 0 = B follows A / in order,
   * 1 = random B / swapped (HF convention). null when the batch has no pair task.
   */
  pairLabels: Int32Array | null;
  /**
   * Index of the batch's first sequence in its split's sample stream: row r is
   * sample firstSample + r. Set on every batch a dataset produces; batches built
   * by hand (inference, benchmarks) may leave it out.
   */
  firstSample?: number;
  /** The stream the batch came from; set together with firstSample. */
  split?: Split;
  /**
   * [B*T] the tokens a sampling head (ELECTRA's generator) takes at the masked positions instead of
   * drawing them: for tests against a reference with fixed samples. Absent in training.
   */
  sampledTokens?: Int32Array;
  /** Fine-tuning, text classification: [B] class ids (or IGNORE_INDEX). */
  classLabels?: Int32Array;
  /** Fine-tuning, regression: [B] target values. */
  targets?: Float32Array;
  /** Fine-tuning, question answering: [B] the answer's first and last token (both 0, [CLS]: no answer here). */
  startPositions?: Int32Array;
  endPositions?: Int32Array;
}

/** Label value the loss skips (PyTorch CrossEntropyLoss ignore_index). */
export const IGNORE_INDEX = -100;
