// params.ts — parameter counts of a model spec without building it: the engine's parameter layout
// (cpp/model/*: embeddings, blocks, stacks, heads) counted per tensor-parallel rank. Column- and
// row-parallel weights split by t, biases of row-parallel layers and LayerNorms replicated, the word
// embedding split by vocabulary rows padded to a multiple of 128·t (cpp/model/spec.h).
import type { ModelSpec, StackSpec } from '../engine/spec';

/** Rows of the word embedding one rank holds: the vocabulary, padded under tensor parallelism. */
export function vocabRowsPerRank(vocab: number, tp: number): number {
  if (tp === 1) return vocab;
  const padded = Math.ceil(vocab / (128 * tp)) * 128 * tp;
  return padded / tp;
}

/** One transformer block's parameters on one rank. */
export function blockParams(s: StackSpec, tp: number): number {
  const H = s.hidden,
    F = s.ffn;
  const norms = 2 * 2 * H;
  const qkv = (3 * H * H + 3 * H) / tp;
  const out = (H * H) / tp + H;
  const mlp = (F * H + F) / tp + (H * F) / tp + H;
  return norms + qkv + out + mlp;
}

export interface ParamCounts {
  /** Parameters one tensor-parallel rank holds (its flat buffer's length). */
  perRank: number;
  embeddings: number;
  stacks: number;
  heads: number;
  /** Parameters as used per token: a block shared by k layers counts k times (ALBERT). */
  perUse: number;
}

/** The parameters of `spec` on one of `tp` tensor-parallel ranks (every rank holds as many). */
export function countParams(spec: ModelSpec, tp = 1): ParamCounts {
  const E = spec.embeddings.dim;
  const vocabRows = vocabRowsPerRank(spec.vocabSize, tp);
  let embeddings = vocabRows * E + spec.maxPositions * E;
  if (spec.embeddings.typeVocab > 0) embeddings += spec.embeddings.typeVocab * E;
  if (spec.embeddings.norm) embeddings += 2 * E;
  let stacks = 0,
    perUseExtra = 0;
  for (const s of spec.stacks) {
    const H = s.hidden;
    if (s.projection) stacks += H * E + H;
    const block = blockParams(s, tp);
    stacks += s.groups * block;
    perUseExtra += (s.layers - s.groups) * block;
    if (s.finalNorm) stacks += 2 * H;
    if (s.pooler) stacks += H * H + H;
  }
  let heads = 0;
  for (const h of spec.heads) {
    const H = spec.stacks[h.stack].hidden;
    if (h.kind === 'masked-lm') heads += E * H + E + 2 * E + vocabRows;
    else if (h.kind === 'sentence-pair') heads += 2 * H + 2;
    else if (h.kind === 'replaced-token') heads += H * H + H + H + 1;
    // causal LM: the tied word embedding, no tensors of its own
  }
  const perRank = embeddings + stacks + heads;
  return { perRank, embeddings, stacks, heads, perUse: perRank + perUseExtra };
}

/**
 * Model FLOPs per token of one training step by PaLM's count (Chowdhery et al. 2022, appendix B),
 * 6·N + 12·layers·seq·hidden summed over the stacks — the same count `paratrain bench` reports.
 */
export function modelFlopsPerToken(spec: ModelSpec, seqLen: number): number {
  let attention = 0;
  for (const s of spec.stacks) attention += 12 * s.layers * seqLen * s.hidden;
  return 6 * countParams(spec, 1).perUse + attention;
}
