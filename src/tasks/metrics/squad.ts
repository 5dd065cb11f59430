// SQuAD's scores (v1.1 and v2.0): exact match and token F1 between normalised answers, the best
// over a question's gold answers; for v2.0 also the answerable / unanswerable halves and the
// no-answer threshold that would have scored best. An unanswerable question's only gold answer is
// the empty string, so predicting "no answer" ('') scores 1 on it and 0 elsewhere.
import { ratio } from './classification';

/** ASCII punctuation, the set SQuAD's normalisation removes. */
const PUNCTUATION = new Set('!"#$%&\'()*+,-./:;<=>?@[\\]^_`{|}~');

/** Lower case, no punctuation, no articles (a, an, the), words joined by single spaces. */
export function normalizeAnswer(text: string): string {
  const lower = text.toLowerCase();
  let withoutPunctuation = '';
  for (const ch of lower) if (!PUNCTUATION.has(ch)) withoutPunctuation += ch;
  return withoutPunctuation
    .replace(/\b(a|an|the)\b/g, ' ')
    .split(/\s+/)
    .filter((word) => word !== '')
    .join(' ');
}

function answerTokens(text: string): string[] {
  const normalized = normalizeAnswer(text);
  return normalized === '' ? [] : normalized.split(' ');
}

export function exactMatch(prediction: string, gold: string): number {
  return normalizeAnswer(prediction) === normalizeAnswer(gold) ? 1 : 0;
}

/** F1 over the multiset of normalised words; when either side is empty, 1 only if both are. */
export function tokenF1(prediction: string, gold: string): number {
  const predicted = answerTokens(prediction);
  const expected = answerTokens(gold);
  if (predicted.length === 0 || expected.length === 0) return predicted.length === expected.length ? 1 : 0;
  const left = new Map<string, number>();
  for (const word of expected) left.set(word, (left.get(word) ?? 0) + 1);
  let shared = 0;
  for (const word of predicted) {
    const n = left.get(word) ?? 0;
    if (n > 0) {
      shared++;
      left.set(word, n - 1);
    }
  }
  if (shared === 0) return 0;
  const precision = shared / predicted.length;
  const recall = shared / expected.length;
  return (2 * precision * recall) / (precision + recall);
}

export interface SquadQuestionResult {
  id: string;
  /** Gold answer texts; empty for an unanswerable question. */
  answers: readonly string[];
  /** The predicted answer, '' for "no answer". */
  prediction: string;
  /** v2.0: how strongly the model prefers "no answer" (null score minus best span score). */
  noAnswerScore?: number;
}

export interface SquadReport {
  questions: number;
  /** Percentages, as SQuAD's script reports them. */
  exact: number;
  f1: number;
  hasAns?: { questions: number; exact: number; f1: number };
  noAns?: { questions: number; exact: number; f1: number };
  /** v2.0 with noAnswerScore: the scores had "no answer" been predicted wherever noAnswerScore > threshold. */
  bestExact?: number;
  bestExactThreshold?: number;
  bestF1?: number;
  bestF1Threshold?: number;
}

export function squadReport(results: readonly SquadQuestionResult[]): SquadReport {
  const scored = results.map((r) => {
    const golds = r.answers.length > 0 ? r.answers : [''];
    return {
      ...r,
      hasAnswer: r.answers.length > 0,
      exact: Math.max(...golds.map((g) => exactMatch(r.prediction, g))),
      f1: Math.max(...golds.map((g) => tokenF1(r.prediction, g))),
    };
  });
  const summary = (items: typeof scored) => ({
    questions: items.length,
    exact: 100 * ratio(sum(items.map((x) => x.exact)), items.length),
    f1: 100 * ratio(sum(items.map((x) => x.f1)), items.length),
  });
  const all = summary(scored);
  const report: SquadReport = { questions: all.questions, exact: all.exact, f1: all.f1 };
  const answerable = scored.filter((x) => x.hasAnswer);
  if (answerable.length === scored.length) return report; // v1.1: every question has an answer
  report.hasAns = summary(answerable);
  report.noAns = summary(scored.filter((x) => !x.hasAnswer));
  if (scored.every((x) => x.noAnswerScore !== undefined)) {
    const exact = bestThreshold(scored, (x) => x.exact);
    const f1 = bestThreshold(scored, (x) => x.f1);
    Object.assign(report, {
      bestExact: exact.score,
      bestExactThreshold: exact.threshold,
      bestF1: f1.score,
      bestF1Threshold: f1.threshold,
    });
  }
  return report;
}

/**
 * The threshold t on noAnswerScore that maximises the score when "no answer" replaces every
 * prediction with noAnswerScore > t. Starting from "no answer everywhere" (each unanswerable
 * question right), questions are admitted in ascending noAnswerScore: an answerable one gains its
 * score, an unanswerable one loses 1 if its prediction was an answer.
 */
function bestThreshold<T extends { hasAnswer: boolean; prediction: string; noAnswerScore?: number }>(
  items: readonly T[],
  scoreOf: (item: T) => number,
): { score: number; threshold: number } {
  let current = items.filter((x) => !x.hasAnswer).length;
  let best = current;
  let threshold = 0;
  const ordered = [...items].sort((a, b) => a.noAnswerScore! - b.noAnswerScore!);
  for (const item of ordered) {
    current += item.hasAnswer ? scoreOf(item) : item.prediction === '' ? 0 : -1;
    if (current > best) {
      best = current;
      threshold = item.noAnswerScore!;
    }
  }
  return { score: (100 * best) / items.length, threshold };
}

function sum(values: readonly number[]): number {
  return values.reduce((s, x) => s + x, 0);
}
