// Types of downsample.js (plain JavaScript, shared by the page and `paratrain plot`).
export function minMaxIndices(ys: ArrayLike<number | null | undefined>, maxPoints: number): number[];
export function downsampleColumns<T extends ArrayLike<unknown>[]>(data: T, maxPoints: number): T;
