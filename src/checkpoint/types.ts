/** A named fp32 tensor in row-major (C) order. The engine's flat parameter table is converted to/from this. */
export interface NamedTensor {
  name: string;
  shape: number[];
  data: Float32Array;
}

/** Like NamedTensor but also admits int32 data (token ids, labels in test fixtures). */
export interface AnyTensor {
  name: string;
  shape: number[];
  data: Float32Array | Int32Array;
}

export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
