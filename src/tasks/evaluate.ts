// evaluate.ts — a task's model over a labelled file: the logits of every sequence, turned into
// predictions (a class, tags per word, an answer span) and scored with the task's metric.
import type { NativeEngine } from '../engine/native';
import {
  classificationReport,
  harmonicMean,
  pearson,
  ratio,
  spearman,
  type ClassificationReport,
} from './metrics/classification';
import { entityReport, isIob2, type EntityReport } from './metrics/entities';
import { squadReport, type SquadReport } from './metrics/squad';
import { bestAnswer, type QaAnswer } from './qa-features';
import { taskBatch, type FineTuningTask, type TaskSplitData } from './task-data';

export interface TaskModelShape {
  task: FineTuningTask;
  regression: boolean;
  seqLen: number;
  /** Sequences per engine call (the engine's micro-batch). */
  batchSize: number;
}

/**
 * Every sequence's logits: text classification [C], token classification [T·C], QA [T·2]
 * (start, end interleaved). The last call is filled up with copies of its last sequence.
 */
export async function sequenceLogits(
  engine: NativeEngine,
  shape: TaskModelShape,
  data: TaskSplitData,
): Promise<Float32Array[]> {
  const out: Float32Array[] = [];
  const { sequences } = data;
  for (let first = 0; first < sequences.length; first += shape.batchSize) {
    const group = sequences.slice(first, first + shape.batchSize);
    const real = group.length;
    while (group.length < shape.batchSize) group.push(group[real - 1]);
    const result = await engine.logits(taskBatch(shape.task, shape.regression, group, shape.seqLen));
    const logits = shape.task === 'text-classification' ? result.classLogits : result.positionLogits;
    const width = logits.length / shape.batchSize;
    for (let b = 0; b < real; b++) out.push(logits.slice(b * width, (b + 1) * width));
  }
  return out;
}

export interface TextClassificationScores {
  task: 'text-classification';
  report?: ClassificationReport;
  /** Sentence pairs with two labels (MRPC, QQP): F1 of the positive class (label id 1). */
  positiveF1?: number;
  /** Regression. */
  pearson?: number;
  spearman?: number;
  mse?: number;
}

export interface TokenClassificationScores {
  task: 'token-classification';
  /** Entity-level scores; only when every tag is IOB2. */
  entities?: EntityReport;
  tokenAccuracy: number;
  words: number;
}

export interface QuestionAnsweringScores {
  task: 'question-answering';
  squad: SquadReport;
}

export type TaskScores = TextClassificationScores | TokenClassificationScores | QuestionAnsweringScores;

export interface TaskEvaluation {
  scores: TaskScores;
  /** One number per metric name, for logs, keep_best and comparisons (accuracy, f1, exact_match, ...). */
  metrics: Record<string, number>;
  predictions: TaskPrediction[];
}

/** What the model says about one example (a text, a sentence, a question). */
export type TaskPrediction =
  | { label: string; probabilities: Record<string, number> }
  | { value: number }
  | { tags: string[] }
  | ({ id: string } & QaAnswer);

export interface ScoringOptions {
  labels: readonly string[];
  regression: boolean;
  maxAnswerLength: number;
  /** QA: "no answer" above this score difference (SQuAD v2.0's default 0); undefined: always answer. */
  noAnswerThreshold?: number;
}

/** The metric names scoreTask may report for a task (for checkpoint.keep_best's check before a run). */
export function taskMetricNames(task: FineTuningTask, regression: boolean): string[] {
  if (task === 'text-classification')
    return regression ? ['pearson', 'spearman', 'mse'] : ['accuracy', 'f1', 'positive_f1'];
  if (task === 'token-classification') return ['token_accuracy', 'precision', 'recall', 'f1'];
  return ['exact_match', 'f1', 'has_ans_f1', 'no_ans_f1', 'best_f1'];
}

export function scoreTask(
  task: FineTuningTask,
  data: TaskSplitData,
  logits: readonly Float32Array[],
  options: ScoringOptions,
): TaskEvaluation {
  if (task === 'text-classification') return scoreTextClassification(data, logits, options);
  if (task === 'token-classification') return scoreTokenClassification(data, logits, options);
  return scoreQuestionAnswering(data, logits, options);
}

function scoreTextClassification(
  data: TaskSplitData,
  logits: readonly Float32Array[],
  options: ScoringOptions,
): TaskEvaluation {
  const truth = data.sequences.map((s) => s.target as number);
  if (options.regression) {
    const values = logits.map((l) => l[0]);
    const mse = ratio(
      values.reduce((s, v, i) => s + (v - truth[i]) ** 2, 0),
      values.length,
    );
    const scores = {
      task: 'text-classification' as const,
      pearson: pearson(truth, values),
      spearman: spearman(truth, values),
      mse,
    };
    return {
      scores,
      metrics: { pearson: scores.pearson, spearman: scores.spearman, mse },
      predictions: values.map((value) => ({ value })),
    };
  }
  const probabilities = logits.map(softmax);
  const predicted = probabilities.map(argmax);
  const report = classificationReport(truth, predicted, options.labels);
  const scores: TextClassificationScores = { task: 'text-classification', report };
  const metrics: Record<string, number> = { accuracy: report.accuracy, f1: report.macro.f1 };
  if (data.texts?.[0]?.textB !== undefined && options.labels.length === 2) {
    const positive = report.perClass[1];
    scores.positiveF1 = harmonicMean(positive.precision, positive.recall);
    metrics.positive_f1 = scores.positiveF1;
  }
  return {
    scores,
    metrics,
    predictions: probabilities.map((p, i) => ({
      label: options.labels[predicted[i]],
      probabilities: Object.fromEntries(options.labels.map((l, k) => [l, p[k]])),
    })),
  };
}

function scoreTokenClassification(
  data: TaskSplitData,
  logits: readonly Float32Array[],
  options: ScoringOptions,
): TaskEvaluation {
  const C = options.labels.length;
  const sentences = data.sentences ?? [];
  const predicted = sentences.map((sentence, s) => {
    // Words that did not fit seq_len keep the first label (O in an IOB2 list).
    const tags = sentence.words.map(() => options.labels[0]);
    const wordAt = data.wordAt![s];
    for (let t = 0; t < wordAt.length; t++) {
      const w = wordAt[t];
      if (w < 0) continue;
      tags[w] = options.labels[argmax(logits[s].subarray(t * C, (t + 1) * C))];
    }
    return tags;
  });
  const gold = sentences.map((s) => s.labels);
  const words = gold.reduce((n, g) => n + g.length, 0);
  let right = 0;
  gold.forEach((g, s) => g.forEach((tag, i) => (right += tag === predicted[s][i] ? 1 : 0)));
  const scores: TokenClassificationScores = { task: 'token-classification', tokenAccuracy: ratio(right, words), words };
  const metrics: Record<string, number> = { token_accuracy: scores.tokenAccuracy };
  if (isIob2(options.labels)) {
    scores.entities = entityReport(gold, predicted);
    Object.assign(metrics, {
      precision: scores.entities.micro.precision,
      recall: scores.entities.micro.recall,
      f1: scores.entities.micro.f1,
    });
  }
  return { scores, metrics, predictions: predicted.map((tags) => ({ tags })) };
}

function scoreQuestionAnswering(
  data: TaskSplitData,
  logits: readonly Float32Array[],
  options: ScoringOptions,
): TaskEvaluation {
  const questions = data.questions ?? [];
  const windows = data.windows ?? [];
  const byQuestion = questions.map(() => [] as number[]);
  windows.forEach((w, i) => byQuestion[w.question].push(i));
  const v2 = questions.some((q) => q.isImpossible);
  const threshold = options.noAnswerThreshold ?? (v2 ? 0 : undefined);
  const predictions = questions.map((q, k) => {
    const answer = bestAnswer(
      q.context,
      byQuestion[k].map((i) => {
        const l = logits[i];
        return {
          feature: windows[i],
          startLogits: l.filter((_, j) => j % 2 === 0),
          endLogits: l.filter((_, j) => j % 2 === 1),
        };
      }),
      { maxAnswerLength: options.maxAnswerLength, nBest: 20, noAnswerThreshold: threshold },
    );
    return { id: q.id, ...answer };
  });
  const squad = squadReport(
    questions.map((q, k) => ({
      id: q.id,
      answers: q.answers.map((a) => a.text),
      prediction: predictions[k].text,
      ...(v2 ? { noAnswerScore: predictions[k].noAnswerScore } : {}),
    })),
  );
  const metrics: Record<string, number> = { exact_match: squad.exact, f1: squad.f1 };
  if (squad.hasAns) metrics.has_ans_f1 = squad.hasAns.f1;
  if (squad.noAns) metrics.no_ans_f1 = squad.noAns.f1;
  if (squad.bestF1 !== undefined) metrics.best_f1 = squad.bestF1;
  return { scores: { task: 'question-answering', squad }, metrics, predictions };
}

export function softmax(row: ArrayLike<number>): number[] {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]);
  const out = Array.from({ length: row.length }, (_, i) => Math.exp(row[i] - max));
  const sum = out.reduce((s, x) => s + x, 0);
  return out.map((x) => x / sum);
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i] > row[best]) best = i;
  return best;
}
