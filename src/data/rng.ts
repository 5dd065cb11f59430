/**
 * Counter-based random numbers: every value is a pure function of its key
 * (seed, stream id, counters...). Any process can therefore recompute the
 * randomness of sample k without replaying samples 0..k-1, and there is no
 * hidden global state that could drift between data-parallel ranks.
 *
 * Construction: each key number is split into two 32-bit words; words are
 * absorbed one at a time through murmur3's 32-bit finalizer (a bijection with
 * full avalanche), each pre-mixed with its position so that reordered keys
 * differ; the word count is folded in at the end. This is not cryptographic,
 * but is plenty for shuffling, pair choice and masking.
 */
import type { Split } from './batch';

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;
const GOLDEN_RATIO_32 = 0x9e3779b9;
const INITIAL_STATE = 0x243f6a88;

/**
 * Stream ids: one per use so that, say, the masking draws of sample k never
 * coincide with its pairing draws. Append new ids; never renumber (that
 * would change every batch produced with a given seed). The names may
 * change; the numbers are what the batches depend on.
 */
export const StreamId = {
  sentencePairOrder: 1,
  sentencePairing: 2,
  sentencePairMasking: 3,
  causalWindowOrder: 4,
  fullSentenceOrder: 5,
  fullSentenceMasking: 6,
} as const;

/** Part of every random key, so train and eval streams never share draws. Never renumber either. */
export const SplitKey: Readonly<Record<Split, number>> = { train: 0, eval: 1 };

function avalanche(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

function absorbWord(state: number, word: number, position: number): number {
  const positioned = avalanche((word ^ Math.imul(position + 1, GOLDEN_RATIO_32)) >>> 0);
  return avalanche((state ^ positioned) >>> 0);
}

function finalize(state: number, wordCount: number): number {
  return avalanche((state + Math.imul(wordCount, GOLDEN_RATIO_32)) >>> 0);
}

function assertKeyNumber(value: number): void {
  if (!Number.isSafeInteger(value)) {
    throw new RangeError(`random key parts must be safe integers, got ${value}`);
  }
}

/** Low and high 32-bit words of a safe integer (two's complement for negatives). */
function lowWord(value: number): number {
  return value >>> 0;
}
function highWord(value: number): number {
  return Math.floor(value / TWO_POW_32) >>> 0;
}

interface AbsorbedKey {
  state: number;
  wordCount: number;
}

function absorbKey(key: readonly number[]): AbsorbedKey {
  let state = INITIAL_STATE;
  let wordCount = 0;
  for (const part of key) {
    assertKeyNumber(part);
    state = absorbWord(state, lowWord(part), wordCount++);
    state = absorbWord(state, highWord(part), wordCount++);
  }
  return { state, wordCount };
}

/** Uniform 32-bit unsigned integer determined by the key. */
export function randomUint32(...key: number[]): number {
  const { state, wordCount } = absorbKey(key);
  return finalize(state, wordCount);
}

/** Uniform float in [0, 1) with 32 bits of resolution, determined by the key. */
export function randomFloat(...key: number[]): number {
  return randomUint32(...key) / TWO_POW_32;
}

/**
 * A sequence of draws under one key prefix, e.g. (seed, stream id, sample
 * index). Draw n equals randomUint32(...prefix, n), so the stream is just a
 * convenient cursor over the pure function, not extra state.
 */
export class RandomStream {
  private readonly prefixState: number;
  private readonly prefixWords: number;
  private drawIndex = 0;

  constructor(...keyPrefix: number[]) {
    const { state, wordCount } = absorbKey(keyPrefix);
    this.prefixState = state;
    this.prefixWords = wordCount;
  }

  nextUint32(): number {
    const counter = this.drawIndex++;
    let state = absorbWord(this.prefixState, lowWord(counter), this.prefixWords);
    state = absorbWord(state, highWord(counter), this.prefixWords + 1);
    return finalize(state, this.prefixWords + 2);
  }

  /** Uniform float in [0, 1) with 53 bits (two draws), so nextInt is unbiased for any practical bound. */
  nextFloat(): number {
    const high = this.nextUint32() >>> 5; // 27 bits
    const low = this.nextUint32() >>> 6; // 26 bits
    return (high * 67108864 + low) / TWO_POW_53;
  }

  /** Uniform integer in [0, bound). */
  nextInt(bound: number): number {
    if (!Number.isSafeInteger(bound) || bound <= 0) {
      throw new RangeError(`nextInt bound must be a positive integer, got ${bound}`);
    }
    return Math.floor(this.nextFloat() * bound);
  }
}
