import type { Document } from './corpus';
import { DataError } from './errors';

/**
 * How the evaluation split was taken: whole documents from the end of the corpus order, the last
 * share of the text (one document cut in two), or nothing (heldout fraction 0).
 */
export type HeldoutBy = 'documents' | 'text' | 'none';

export interface HeldoutSplit {
  train: Document[];
  heldout: Document[];
  by: HeldoutBy;
}

/** The id of the held-out tail of a document cut by splitHeldout. */
export const HELDOUT_TAIL_SUFFIX = '@heldout';

/**
 * Splits the corpus into training and held-out documents.
 *
 * With enough documents (n · fraction ≥ 0.5, so that one held-out document is at most twice the
 * asked share by count) the last max(1, round(n · fraction)) documents are held out. With fewer —
 * one big file is the common case — the last `fraction` of the text is held out instead: the
 * document where that share begins is cut at the line break nearest after the point (else the
 * one before it), its tail becoming the first held-out document. The share is measured in
 * characters, not tokens, because the tokenizer is trained on the training text only and so
 * cannot exist before the split.
 */
export function splitHeldout(documents: readonly Document[], fraction: number, corpus: string): HeldoutSplit {
  if (fraction === 0) return { train: [...documents], heldout: [], by: 'none' };
  const n = documents.length;
  if (n * fraction >= 0.5) {
    const heldout = Math.max(1, Math.round(n * fraction));
    if (heldout >= n) {
      throw new DataError(
        'ERR_DATA_CONFIG',
        `data.heldout_fraction ${fraction} of the ${n} documents of ${corpus} leaves none for training; ` +
          `lower data.heldout_fraction`,
      );
    }
    return { train: documents.slice(0, n - heldout), heldout: documents.slice(n - heldout), by: 'documents' };
  }

  const total = documents.reduce((sum, doc) => sum + doc.text.length, 0);
  let point = Math.floor(total * (1 - fraction));
  let k = 0;
  while (point >= documents[k].text.length) point -= documents[k++].text.length;
  const { id, text } = documents[k];
  const cut = lineBreakNear(text, point);
  const head = text.slice(0, cut);
  const tail = text.slice(cut);
  if (tail.trim() === '' || (head.trim() === '' && k === 0)) {
    throw new DataError(
      'ERR_CORPUS',
      `corpus ${corpus} is too short to hold out ${fraction} of its text for evaluation; add text, ` +
        `raise data.heldout_fraction, or set data.heldout_fraction: 0 to train without evaluation`,
    );
  }
  const train = documents.slice(0, k);
  if (head.trim() !== '') train.push({ id, text: head });
  return { train, heldout: [{ id: id + HELDOUT_TAIL_SUFFIX, text: tail }, ...documents.slice(k + 1)], by: 'text' };
}

/**
 * The offset just after the first line break at or after `point`, else after the last one before
 * it; in text without line breaks the same with spaces; else `point` itself.
 */
function lineBreakNear(text: string, point: number): number {
  for (const breakChar of ['\n', ' ']) {
    const after = text.indexOf(breakChar, point);
    if (after >= 0 && after + 1 < text.length) return after + 1;
    const before = text.lastIndexOf(breakChar, point - 1);
    if (before >= 0) return before + 1;
  }
  return point;
}
