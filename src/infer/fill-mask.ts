// fill-mask.ts — masked-token prediction (BERT, RoBERTa, ALBERT, ELECTRA's generator): the top-k
// candidates for every mask token ([MASK] or <mask>, whichever the tokenizer has) in a text.
import { objective } from '../config/family';
import type { TrainBatch } from '../data/batch';
import { InferenceError, softmax, topK, type LoadedModel } from './load';

export interface FillMaskResult {
  text: string;
  masks: Array<{
    position: number;
    candidates: Array<{ id: number; token: string; probability: number }>;
  }>;
}

export async function fillMask(model: LoadedModel, text: string, k: number): Promise<FillMaskResult> {
  if (objective(model.config) !== 'masked-lm')
    throw new InferenceError(
      'ERR_ARGUMENT',
      `fill-mask needs a masked-LM checkpoint (bert, roberta, albert, electra); this one is ${model.config.model.arch}: use generate`,
    );
  const tok = model.tokenizer;
  const ids = tok.maskedLmSpecialIds();
  const maskToken = tok.idToToken(ids.mask) ?? '[MASK]';
  const body = await tok.encode(text);
  const input = [ids.cls, ...body, ids.sep];
  const T = input.length;
  if (T > (model.config.model.max_positions ?? model.config.model.seq_len))
    throw new InferenceError('ERR_ARGUMENT', `the text is ${T} tokens long, above the model's maximum of positions`);
  const maskPositions = input.flatMap((id, i) => (id === ids.mask ? [i] : []));
  if (maskPositions.length === 0)
    throw new InferenceError('ERR_ARGUMENT', `the text has no ${maskToken} token; write e.g. "the ${maskToken} sea"`);
  const labels = new Int32Array(T).fill(-100);
  for (const p of maskPositions) labels[p] = 0; // any id: marks the rows to predict
  const batch: TrainBatch = {
    batchSize: 1,
    seqLen: T,
    tokens: Int32Array.from(input),
    labels,
    segments: null,
    attentionMask: new Uint8Array(T).fill(1),
    pairLabels: null,
  };
  const out = await model.engineFor(T).logits(batch);
  const V = model.config.model.vocab_size;
  return {
    text,
    masks: maskPositions.map((position, r) => {
      const probs = softmax(out.logits.subarray(r * V, (r + 1) * V));
      return {
        position,
        candidates: topK(probs, k).map((id) => ({ id, token: tok.idToToken(id) ?? '', probability: probs[id] })),
      };
    }),
  };
}
