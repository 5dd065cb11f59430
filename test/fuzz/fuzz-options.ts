// fuzz-options.ts — how many cases each property of test/fuzz runs, and which seed: a bounded run by
// default (CI), PARATRAIN_FUZZ_SCALE times more for a longer hunt, PARATRAIN_FUZZ_SEED to replay the
// seed a failure printed.
import fc from 'fast-check';

function positiveNumberFromEnv(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name}=${text}: expected a positive number`);
  return n;
}

/** fast-check's parameters for a property that runs `runs` cases in the bounded run. */
export function fuzzOptions(runs: number): { numRuns: number; seed?: number } {
  const scale = positiveNumberFromEnv('PARATRAIN_FUZZ_SCALE') ?? 1;
  const seed = process.env.PARATRAIN_FUZZ_SEED;
  return {
    numRuns: Math.max(1, Math.round(runs * scale)),
    ...(seed !== undefined && seed !== '' ? { seed: Number(seed) } : {}),
  };
}

/** One change to a valid frame: a flipped bit, a cut, bytes appended, inserted or overwritten. */
export type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'append'; bytes: Uint8Array }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'overwrite'; at: number; bytes: Uint8Array };

// Positions are fractions of the frame's length, so one mutation applies to a frame of any size.
const position = fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true });
const someBytes = fc.uint8Array({ minLength: 1, maxLength: 16 });

export const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: position, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: position }),
  fc.record({ kind: fc.constant('append' as const), bytes: someBytes }),
  fc.record({ kind: fc.constant('insert' as const), at: position, bytes: someBytes }),
  fc.record({ kind: fc.constant('overwrite' as const), at: position, bytes: someBytes }),
);

export function mutate(frame: Buffer, m: Mutation): Buffer {
  const at = 'at' in m ? Math.floor(m.at * frame.length) : 0;
  switch (m.kind) {
    case 'flip': {
      if (frame.length === 0) return Buffer.from([1 << m.bit]);
      const out = Buffer.from(frame);
      out[at] ^= 1 << m.bit;
      return out;
    }
    case 'truncate':
      return frame.subarray(0, at);
    case 'append':
      return Buffer.concat([frame, m.bytes]);
    case 'insert':
      return Buffer.concat([frame.subarray(0, at), m.bytes, frame.subarray(at)]);
    case 'overwrite': {
      const out = Buffer.from(frame);
      Buffer.from(m.bytes).copy(out, at);
      return out;
    }
  }
}

/** Applies mutations in order. */
export function mutateAll(frame: Buffer, ms: readonly Mutation[]): Buffer {
  return ms.reduce((f, m) => mutate(f, m), frame);
}
