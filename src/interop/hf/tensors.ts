// tensors.ts — how one Hugging Face tensor relates to paratrain's tensors: a rename, a transpose
// (GPT-2's Conv1D), a fusion (GPT-2's c_attn holds q|k|v) or a row offset (RoBERTa's positions).
import type { ParamEntry } from '../../engine/native';

export class HfFormatError extends Error {
  readonly code = 'ERR_HF_FORMAT' as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HfFormatError';
  }
}

/** One tensor of an HF model and the paratrain tensors (whole, by name) it is made of. */
export interface HfTensorMap {
  hf: string;
  hfShape: number[];
  ours: string[];
  toHf(ours: Float32Array[]): Float32Array;
  fromHf(hf: Float32Array): Float32Array[];
}

export function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = src[base + c] as number;
  }
  return out;
}

export function rename(hf: string, ours: string, shape: number[]): HfTensorMap {
  return { hf, hfShape: shape, ours: [ours], toHf: (s) => s[0] as Float32Array, fromHf: (d) => [d] };
}

/** The rename of `name` that `names` (ours → HF) lists, if it lists one. */
export function renameListed(
  names: Readonly<Record<string, string>>,
  name: string,
  shape: number[],
): HfTensorMap | undefined {
  const hf = names[name];
  return hf === undefined ? undefined : rename(hf, name, shape);
}

/** HF Conv1D stores [in, out] where Linear (ours) stores [out, in]. */
export function conv1d(hf: string, ours: string, out: number, inp: number): HfTensorMap {
  return {
    hf,
    hfShape: [inp, out],
    ours: [ours],
    toHf: (s) => transpose(s[0] as Float32Array, out, inp),
    fromHf: (d) => [transpose(d, inp, out)],
  };
}

/** GPT-2 c_attn: Conv1D [H, 3H] with q|k|v concatenated along the output (column) axis. */
export function fusedQkvWeight(hf: string, prefix: string, H: number): HfTensorMap {
  return {
    hf,
    hfShape: [H, 3 * H],
    ours: [`${prefix}q.weight`, `${prefix}k.weight`, `${prefix}v.weight`],
    toHf: (src) => {
      const out = new Float32Array(3 * H * H);
      src.forEach((w, j) => {
        for (let o = 0; o < H; o++) for (let i = 0; i < H; i++) out[i * 3 * H + j * H + o] = w[o * H + i] as number;
      });
      return out;
    },
    fromHf: (d) =>
      [0, 1, 2].map((j) => {
        const w = new Float32Array(H * H);
        for (let o = 0; o < H; o++) for (let i = 0; i < H; i++) w[o * H + i] = d[i * 3 * H + j * H + o] as number;
        return w;
      }),
  };
}

export function fusedQkvBias(hf: string, prefix: string, H: number): HfTensorMap {
  return {
    hf,
    hfShape: [3 * H],
    ours: [`${prefix}q.bias`, `${prefix}k.bias`, `${prefix}v.bias`],
    toHf: (src) => {
      const out = new Float32Array(3 * H);
      src.forEach((b, j) => out.set(b, j * H));
      return out;
    },
    fromHf: (d) => [0, 1, 2].map((j) => d.slice(j * H, (j + 1) * H)),
  };
}

/**
 * RoBERTa numbers positions from padding_idx + 1: our row t is HF row t + offset. The rows before
 * the offset are never used for a real token; they export as zeros and are dropped on import.
 */
export function offsetRows(hf: string, ours: string, rows: number, width: number, offset: number): HfTensorMap {
  return {
    hf,
    hfShape: [rows + offset, width],
    ours: [ours],
    toHf: (s) => {
      const out = new Float32Array((rows + offset) * width);
      out.set(s[0] as Float32Array, offset * width);
      return out;
    },
    fromHf: (d) => [d.slice(offset * width)],
  };
}

/**
 * The HF tensors of a model, one per rule result over our parameter table: `rule` returns the HF
 * tensor an entry belongs to (several entries may share one, e.g. q|k|v), or undefined when this HF
 * model does not hold it. Every entry `required` says must be covered.
 */
export function mapTable(
  table: readonly ParamEntry[],
  rule: (name: string, shape: number[]) => HfTensorMap | undefined,
): HfTensorMap[] {
  const out: HfTensorMap[] = [];
  const covered = new Set<string>();
  for (const p of table) {
    if (covered.has(p.name)) continue;
    const m = rule(p.name, p.globalShape);
    if (!m) continue;
    for (const name of m.ours) covered.add(name);
    out.push(m);
  }
  return out;
}

/** Throws naming the parameters that no HF tensor holds. */
export function requireCovered(table: readonly ParamEntry[], maps: readonly HfTensorMap[], what: string): void {
  const covered = new Set(maps.flatMap((m) => m.ours));
  const missing = table.filter((p) => !covered.has(p.name)).map((p) => p.name);
  if (missing.length > 0)
    throw new HfFormatError(
      `${what} has no Hugging Face counterpart for ${missing.slice(0, 5).join(', ')}` +
        (missing.length > 5 ? ` and ${missing.length - 5} more` : ''),
    );
}
