// generate.ts — GPT text continuation, greedy or sampled (temperature, top-k, seeded).
import type { TrainBatch } from '../data/batch';
import { randomFloat } from '../data/rng';
import { InferenceError, softmax, topK, type LoadedModel } from './load';

export interface GenerateOptions {
  prompt: string;
  maxNewTokens: number;
  greedy: boolean;
  temperature: number;
  topK: number;
  seed: number;
}

export interface GenerateResult {
  prompt: string;
  text: string;
  tokens: Array<{ id: number; text: string; logprob: number }>;
}

export async function generate(model: LoadedModel, o: GenerateOptions): Promise<GenerateResult> {
  if (model.config.model.arch !== 'gpt')
    throw new InferenceError('ERR_ARGUMENT', 'generate needs a GPT checkpoint; use fill-mask for BERT');
  const tok = model.tokenizer;
  const ids = await tok.encode(o.prompt);
  if (ids.length === 0) ids.push(tok.endOfTextId());
  const maxPos = model.config.model.max_positions ?? model.config.model.seq_len;
  const window = Math.min(maxPos, ids.length + o.maxNewTokens);
  const engine = model.engineFor(window);
  const V = model.config.model.vocab_size;
  const out: GenerateResult['tokens'] = [];
  for (let i = 0; i < o.maxNewTokens; i++) {
    const context = ids.slice(-window);
    const T = context.length;
    const batch: TrainBatch = {
      batchSize: 1,
      seqLen: T,
      tokens: Int32Array.from(context),
      labels: new Int32Array(T).fill(-100),
      segments: null,
      attentionMask: null,
      pairLabels: null,
    };
    const { logits } = await engine.logits(batch);
    const last = logits.subarray((T - 1) * V, T * V);
    const probs = softmax(last);
    let next: number;
    if (o.greedy) next = topK(probs, 1)[0];
    else {
      const scaled = softmax(last.map((x) => x / o.temperature));
      const candidates = topK(scaled, o.topK > 0 ? o.topK : V);
      const mass = candidates.reduce((s, id) => s + scaled[id], 0);
      let u = randomFloat(o.seed, i) * mass;
      next = candidates[candidates.length - 1];
      for (const id of candidates)
        if ((u -= scaled[id]) <= 0) {
          next = id;
          break;
        }
    }
    ids.push(next);
    out.push({ id: next, text: await tok.decode([next]), logprob: Math.log(probs[next]) });
  }
  return { prompt: o.prompt, text: await tok.decode(out.map((t) => t.id)), tokens: out };
}
