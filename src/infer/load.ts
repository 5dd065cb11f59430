// load.ts — a checkpoint made ready for inference: its config, its tokenizer and an engine shaped
// for one sequence of the needed length.
import * as fs from 'node:fs';

import { loadCheckpoint } from '../checkpoint';
import { validateConfig } from '../config/load';
import { objective } from '../config/family';
import type { Config } from '../config/schema';
import { TextTokenizer } from '../data/tokenizer';
import { createEngine, joinFlat } from '../engine/engine';
import type { NativeEngine } from '../engine/native';

export class InferenceError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface LoadedModel {
  config: Config;
  tokenizer: TextTokenizer;
  dir: string;
  /** An engine for `microBatch` sequences (default 1) of up to seqLen tokens, with these parameters. */
  engineFor(seqLen: number, microBatch?: number): NativeEngine;
}

export async function loadModel(checkpoint: string, tokenizerPath?: string): Promise<LoadedModel> {
  if (!fs.existsSync(checkpoint))
    throw new InferenceError('ERR_CHECKPOINT_NOT_FOUND', `--checkpoint ${checkpoint}: no such file or directory`);
  const ckpt = await loadCheckpoint(checkpoint, { loadOptimizer: false });
  const config = validateConfig(ckpt.config, `config stored in ${ckpt.dir}`);
  let tokenizer: TextTokenizer;
  if (tokenizerPath) tokenizer = TextTokenizer.fromFile(tokenizerPath);
  else if (ckpt.tokenizerJson) tokenizer = TextTokenizer.fromJSON(ckpt.tokenizerJson, `${ckpt.dir}/tokenizer.json`);
  else
    throw new InferenceError(
      'ERR_TOKENIZER',
      `checkpoint ${ckpt.dir} carries no tokenizer.json; pass --tokenizer PATH to a tokenizer.json`,
    );
  if (tokenizer.vocabSize > config.model.vocab_size)
    throw new InferenceError(
      'ERR_TOKENIZER_MISMATCH',
      `the tokenizer has ${tokenizer.vocabSize} tokens but the checkpoint's model has a vocabulary of ` +
        `${config.model.vocab_size}: they do not belong together; use the tokenizer the model was trained with`,
    );
  const masked = objective(config) === 'masked-lm';
  if (masked === (tokenizer.kind === 'bpe'))
    throw new InferenceError(
      'ERR_TOKENIZER_MISMATCH',
      masked
        ? `a ${config.model.arch} checkpoint needs a tokenizer with masked-LM special tokens ([MASK] or <mask>), ` +
            `got a GPT byte-level BPE one`
        : `a ${config.model.arch} checkpoint needs a byte-level BPE tokenizer with <|endoftext|>, got a ${tokenizer.kind} one`,
    );
  const byName = new Map(ckpt.params.map((t) => [t.name, t]));
  let params: Float32Array | undefined;
  return {
    config,
    tokenizer,
    dir: ckpt.dir,
    engineFor(seqLen: number, microBatch = 1) {
      const engine = createEngine(config, { microBatch, seqLen, gradAccum: 1, allPositions: true });
      params ??= joinFlat(engine.paramTable(), byName, '', ckpt.dir);
      engine.setParams(params);
      return engine;
    },
  };
}

export function softmax(row: Float32Array): Float64Array {
  let max = -Infinity;
  for (const x of row) max = Math.max(max, x);
  const out = new Float64Array(row.length);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += out[i] = Math.exp(row[i] - max);
  for (let i = 0; i < row.length; i++) out[i] /= sum;
  return out;
}

export function topK(probs: Float64Array, k: number): number[] {
  const idx = Array.from(probs.keys());
  idx.sort((a, b) => probs[b] - probs[a]);
  return idx.slice(0, k);
}
