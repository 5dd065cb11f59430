// Entity-level scores of token classification over IOB2 tags, with conlleval's chunk rules (the
// ones seqeval applies by default): a chunk begins at B-X, or at I-X that follows O or a tag of
// another type; it ends before O, B-*, or a tag of another type. A predicted chunk is correct when
// its type, first and last word all equal a gold chunk's.
import { harmonicMean, ratio } from './classification';

export interface Chunk {
  type: string;
  /** Word indices, inclusive. */
  start: number;
  end: number;
}

export interface EntityScores {
  precision: number;
  recall: number;
  f1: number;
  /** Gold chunks. */
  support: number;
  predicted: number;
  correct: number;
}

export interface EntityReport {
  perType: Record<string, EntityScores>;
  /** Pooled over types (conlleval's overall line). */
  micro: EntityScores;
  /** Correct tags / tags, over every word. */
  tokenAccuracy: number;
}

/** A tag's prefix ('B', 'I' or 'O') and type ('' for O; the whole tag when it has no IOB prefix). */
function parseTag(tag: string): { prefix: 'B' | 'I' | 'O'; type: string } {
  if (tag === 'O') return { prefix: 'O', type: '' };
  const match = /^([BI])-(.+)$/.exec(tag);
  if (!match) throw new RangeError(`tag '${tag}' is not IOB2 (O, B-TYPE or I-TYPE)`);
  return { prefix: match[1] as 'B' | 'I', type: match[2] };
}

/** The chunks of one sentence's tags. */
export function chunksOf(tags: readonly string[]): Chunk[] {
  const chunks: Chunk[] = [];
  let open: Chunk | null = null;
  tags.forEach((tag, i) => {
    const { prefix, type } = parseTag(tag);
    const continues = open !== null && prefix === 'I' && type === open.type;
    if (!continues) {
      if (open) chunks.push(open);
      open = prefix === 'O' ? null : { type, start: i, end: i };
    } else open!.end = i;
  });
  if (open) chunks.push(open);
  return chunks;
}

/** Whether every tag is O, B-TYPE or I-TYPE (so that entity scores mean something). */
export function isIob2(tags: Iterable<string>): boolean {
  for (const tag of tags) if (tag !== 'O' && !/^[BI]-.+$/.test(tag)) return false;
  return true;
}

/** Scores over sentences: gold[s] and predicted[s] are the tags of sentence s, word by word. */
export function entityReport(gold: readonly string[][], predicted: readonly string[][]): EntityReport {
  if (gold.length !== predicted.length)
    throw new RangeError(`${gold.length} gold sentences but ${predicted.length} predicted`);
  const counts = new Map<string, { support: number; predicted: number; correct: number }>();
  const countsOf = (type: string) => {
    let c = counts.get(type);
    if (!c) counts.set(type, (c = { support: 0, predicted: 0, correct: 0 }));
    return c;
  };
  let words = 0,
    rightTags = 0;
  gold.forEach((goldTags, s) => {
    const predictedTags = predicted[s];
    if (goldTags.length !== predictedTags.length)
      throw new RangeError(`sentence ${s}: ${goldTags.length} gold tags but ${predictedTags.length} predicted`);
    words += goldTags.length;
    goldTags.forEach((tag, i) => (rightTags += tag === predictedTags[i] ? 1 : 0));
    const key = (c: Chunk) => `${c.type}\u0000${c.start}\u0000${c.end}`;
    const goldKeys = new Set(chunksOf(goldTags).map(key));
    for (const c of chunksOf(goldTags)) countsOf(c.type).support++;
    for (const c of chunksOf(predictedTags)) {
      const entry = countsOf(c.type);
      entry.predicted++;
      if (goldKeys.has(key(c))) entry.correct++;
    }
  });
  const score = (c: { support: number; predicted: number; correct: number }): EntityScores => {
    const precision = ratio(c.correct, c.predicted);
    const recall = ratio(c.correct, c.support);
    return { precision, recall, f1: harmonicMean(precision, recall), ...c };
  };
  const perType: Record<string, EntityScores> = {};
  const total = { support: 0, predicted: 0, correct: 0 };
  for (const type of [...counts.keys()].sort()) {
    const c = counts.get(type)!;
    perType[type] = score(c);
    total.support += c.support;
    total.predicted += c.predicted;
    total.correct += c.correct;
  }
  return { perType, micro: score(total), tokenAccuracy: ratio(rightTags, words) };
}
