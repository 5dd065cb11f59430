/**
 * Rule-based sentence splitting for building BERT sentence pairs.
 *
 * The pieces tile the text exactly (joined they give the input back): each
 * cut sits where a non-space character is followed by whitespace, and the
 * whitespace goes to the next piece. Both BERT's and byte-level BPE's
 * pre-tokenizers always break at such a point, so tokenizing the pieces one
 * by one yields the same ids as tokenizing the whole document; the GPT stream
 * relies on that.
 */

// Words that end in a period without ending a sentence.
const ABBREVIATIONS = new Set([
  'mr',
  'mrs',
  'ms',
  'dr',
  'st',
  'jr',
  'sr',
  'messrs',
  'mme',
  'prof',
  'rev',
  'hon',
  'gen',
  'gov',
  'col',
  'capt',
  'lt',
  'sgt',
  'maj',
  'adm',
  'sen',
  'rep',
  'pres',
  'vs',
  'etc',
  'no',
  'nos',
  'vol',
  'viz',
  'cf',
  'inc',
  'co',
  'corp',
  'ltd',
  'dept',
  'jan',
  'feb',
  'mar',
  'apr',
  'jun',
  'jul',
  'aug',
  'sep',
  'sept',
  'oct',
  'nov',
  'dec',
]);

const SENTENCE_END_CHARACTERS = new Set(['.', '!', '?', '"', "'", '”', '’', ')', ']']);
const SENTENCE_END = /[.!?][.!?]*["'”’)\]]*$/;
const SENTENCE_START = /^["'“‘([]*[\p{Lu}\p{N}]/u;

/** Offsets where each piece after the first starts. */
export function sentenceStartOffsets(text: string): number[] {
  const starts: number[] = [];
  const whitespaceRun = /\s+/g;
  for (let match = whitespaceRun.exec(text); match !== null; match = whitespaceRun.exec(text)) {
    const runStart = match.index;
    const runEnd = runStart + match[0].length;
    if (runStart === 0 || runEnd === text.length) continue;
    const isParagraphBreak = match[0].length > 1 && /\n[^\S\n]*\n/.test(match[0]);
    // Cheap pre-check on the preceding character: most whitespace follows a plain word.
    const mayEndSentence = SENTENCE_END_CHARACTERS.has(text[runStart - 1]);
    if (isParagraphBreak || (mayEndSentence && endsSentence(text, runStart, runEnd))) starts.push(runStart);
  }
  return starts;
}

export function splitSentences(text: string): string[] {
  const pieces: string[] = [];
  let pieceStart = 0;
  for (const start of sentenceStartOffsets(text)) {
    pieces.push(text.slice(pieceStart, start));
    pieceStart = start;
  }
  if (pieceStart < text.length || pieces.length === 0) pieces.push(text.slice(pieceStart));
  return pieces;
}

function endsSentence(text: string, runStart: number, runEnd: number): boolean {
  // Only the tail of the preceding word matters, so a bounded look-back suffices.
  const wordBefore = /\S+$/.exec(text.slice(Math.max(0, runStart - 32), runStart))?.[0] ?? '';
  if (!SENTENCE_END.test(wordBefore)) return false;
  if (!SENTENCE_START.test(text.slice(runEnd, runEnd + 8))) return false;
  if (wordBefore.endsWith('.')) {
    const stem = wordBefore.replace(/^["'“‘([]+/, '').slice(0, -1);
    // Initials ("J.") and dotted abbreviations ("U.S.") rarely end a sentence.
    if (/^\p{L}$/u.test(stem) || stem.includes('.')) return false;
    if (ABBREVIATIONS.has(stem.toLowerCase())) return false;
  }
  return true;
}
