/** paratrain canonical parameter names and shapes (docs/contracts.md), in a fixed order. */

export type ModelArch = 'bert' | 'gpt';

export interface ModelDims {
  layers: number;
  hidden: number;
  heads: number;
  ffn: number;
  vocab_size: number;
  max_positions: number;
}

export interface ParamSpec {
  name: string;
  shape: number[];
}

/** The full canonical parameter list for `arch` (embeddings, layers in order, heads). */
export function canonicalParamSpecs(arch: ModelArch, d: ModelDims): ParamSpec[] {
  const { hidden: H, ffn: F, vocab_size: V, max_positions: P } = d;
  const out: ParamSpec[] = [
    { name: 'embeddings.word.weight', shape: [V, H] },
    { name: 'embeddings.position.weight', shape: [P, H] },
  ];
  if (arch === 'bert') {
    out.push(
      { name: 'embeddings.segment.weight', shape: [2, H] },
      { name: 'embeddings.norm.weight', shape: [H] },
      { name: 'embeddings.norm.bias', shape: [H] },
    );
  }
  for (let i = 0; i < d.layers; i++) {
    const p = `layers.${i}.`;
    const attn: ParamSpec[] = [];
    for (const m of ['q', 'k', 'v', 'out']) {
      attn.push({ name: `${p}attn.${m}.weight`, shape: [H, H] }, { name: `${p}attn.${m}.bias`, shape: [H] });
    }
    const attnNorm: ParamSpec[] = [
      { name: `${p}attn_norm.weight`, shape: [H] },
      { name: `${p}attn_norm.bias`, shape: [H] },
    ];
    const mlp: ParamSpec[] = [
      { name: `${p}mlp.up.weight`, shape: [F, H] },
      { name: `${p}mlp.up.bias`, shape: [F] },
      { name: `${p}mlp.down.weight`, shape: [H, F] },
      { name: `${p}mlp.down.bias`, shape: [H] },
    ];
    const mlpNorm: ParamSpec[] = [
      { name: `${p}mlp_norm.weight`, shape: [H] },
      { name: `${p}mlp_norm.bias`, shape: [H] },
    ];
    // Order follows the data flow: post-LN (BERT) norms after, pre-LN (GPT) norms before.
    if (arch === 'bert') out.push(...attn, ...attnNorm, ...mlp, ...mlpNorm);
    else out.push(...attnNorm, ...attn, ...mlpNorm, ...mlp);
  }
  if (arch === 'bert') {
    out.push(
      { name: 'pooler.weight', shape: [H, H] },
      { name: 'pooler.bias', shape: [H] },
      { name: 'mlm.transform.weight', shape: [H, H] },
      { name: 'mlm.transform.bias', shape: [H] },
      { name: 'mlm.norm.weight', shape: [H] },
      { name: 'mlm.norm.bias', shape: [H] },
      { name: 'mlm.decoder.bias', shape: [V] },
      { name: 'nsp.weight', shape: [2, H] },
      { name: 'nsp.bias', shape: [2] },
    );
  } else {
    out.push({ name: 'final_norm.weight', shape: [H] }, { name: 'final_norm.bias', shape: [H] });
  }
  return out;
}
