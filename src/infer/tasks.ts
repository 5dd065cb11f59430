// tasks.ts — a fine-tuned checkpoint at work: scored on a labelled file (`paratrain evaluate`),
// predicting for new text (`paratrain predict`), and any encoder checkpoint's sentence vectors
// (`paratrain embed`). The tokenizer and the label list come from the checkpoint.
import { chunksOf, isIob2 } from '../tasks/metrics/entities';
import { scoreTask, sequenceLogits, type TaskEvaluation, type TaskScores } from '../tasks/evaluate';
import { textClassificationFeatures } from '../tasks/features';
import {
  layOutTask,
  pairLayoutOf,
  readTaskExamples,
  type TaskExamples,
  type TaskSettings,
  type TaskSplitData,
} from '../tasks/task-data';
import { isFineTuning, taskSettings } from '../tasks/task-run';
import type { SquadQuestion } from '../tasks/readers/squad';
import { InferenceError, loadModel, type LoadedModel } from './load';

/** Sequences per engine call. */
const DEFAULT_BATCH = 16;

export interface TaskModel {
  model: LoadedModel;
  settings: TaskSettings;
  labels: string[];
}

/** A fine-tuned checkpoint; a pretraining one (no task head) is refused with what to do instead. */
export async function loadTaskModel(checkpoint: string, tokenizerPath?: string): Promise<TaskModel> {
  const model = await loadModel(checkpoint, tokenizerPath);
  const c = model.config;
  if (!isFineTuning(c))
    throw new InferenceError(
      'ERR_NO_TASK_HEAD',
      `checkpoint ${model.dir} is a ${c.model.arch} pretraining checkpoint: it has no task head. Fine-tune it ` +
        `first (paratrain train --set task.name=text-classification --set task.train=FILE --set model.init=${model.dir}), ` +
        `or give a fine-tuned checkpoint`,
    );
  return { model, settings: taskSettings(c), labels: c.task.regression ? ['score'] : (c.task.labels ?? []) };
}

async function run(m: TaskModel, data: TaskSplitData, batch: number, noAnswerThreshold?: number) {
  const engine = m.model.engineFor(m.settings.seqLen, batch);
  const shape = {
    task: m.settings.name,
    regression: m.settings.regression,
    seqLen: m.settings.seqLen,
    batchSize: batch,
  };
  const logits = await sequenceLogits(engine, shape, data);
  return scoreTask(m.settings.name, data, logits, {
    labels: m.labels,
    regression: m.settings.regression,
    maxAnswerLength: m.model.config.task.max_answer_length,
    noAnswerThreshold,
  });
}

export interface EvaluationResult {
  checkpoint: string;
  file: string;
  task: TaskSettings['name'];
  examples: number;
  sequences: number;
  truncated: number;
  /** Words whose gold tag the model does not have (scored as misses). */
  unknownTags?: number;
  metrics: Record<string, number>;
  scores: TaskScores;
}

export async function evaluateCheckpoint(
  checkpoint: string,
  file: string,
  opts: { batch?: number; noAnswerThreshold?: number; tokenizer?: string } = {},
): Promise<EvaluationResult> {
  const m = await loadTaskModel(checkpoint, opts.tokenizer);
  const data = await layOutTask(
    file,
    readTaskExamples(file, m.settings.name),
    m.settings,
    m.model.tokenizer,
    'evaluate',
  );
  const evaluation = await run(m, data, opts.batch ?? DEFAULT_BATCH, opts.noAnswerThreshold);
  return {
    checkpoint: m.model.dir,
    file,
    task: m.settings.name,
    examples: evaluation.predictions.length,
    sequences: data.sequences.length,
    truncated: data.truncated,
    ...(data.unknownTags ? { unknownTags: data.unknownTags } : {}),
    metrics: evaluation.metrics,
    scores: evaluation.scores,
  };
}

/** What predict is given: texts (a tab between a pair's two texts), or questions with their contexts. */
export type PredictInput =
  { texts: string[] } | { questions: Array<{ id?: string; question: string; context: string }> };

export interface Entity {
  type: string;
  text: string;
  /** Characters [start, end) in the input text. */
  start: number;
  end: number;
}

export type Prediction =
  | { text: string; label: string; probabilities: Record<string, number> }
  | { text: string; value: number }
  | { text: string; tags: Array<{ word: string; tag: string; start: number; end: number }>; entities?: Entity[] }
  | {
      id: string;
      question: string;
      answer: string;
      /** Characters [start, end) in the context; null for "no answer". */
      start: number | null;
      end: number | null;
      score: number;
      noAnswerScore: number;
    };

export async function predict(
  checkpoint: string,
  input: PredictInput,
  opts: { batch?: number; noAnswerThreshold?: number; tokenizer?: string } = {},
): Promise<{ checkpoint: string; task: TaskSettings['name']; predictions: Prediction[] }> {
  const m = await loadTaskModel(checkpoint, opts.tokenizer);
  const task = m.settings.name;
  const dummy = m.labels[0];
  let examples: TaskExamples;
  let words: Array<Array<{ word: string; start: number; end: number }>> = [];
  if (task === 'question-answering') {
    if (!('questions' in input))
      throw new InferenceError(
        'ERR_USAGE',
        'a question-answering model needs --question and --context (or --input FILE.json)',
      );
    examples = {
      questions: input.questions.map((q, i): SquadQuestion => ({
        id: q.id ?? String(i + 1),
        question: q.question,
        context: q.context,
        answers: [],
        isImpossible: false,
        where: `question ${i + 1}`,
      })),
    };
  } else {
    if (!('texts' in input) || input.texts.length === 0)
      throw new InferenceError('ERR_USAGE', `a ${task} model needs texts: give them as arguments or with --input FILE`);
    if (task === 'text-classification')
      examples = {
        texts: input.texts.map((t, i) => {
          const [textA, textB] = t.split('\t');
          return {
            textA,
            ...(textB !== undefined ? { textB } : {}),
            label: m.settings.regression ? '0' : dummy,
            where: `text ${i + 1}`,
          };
        }),
      };
    else {
      words = input.texts.map((t) =>
        [...t.matchAll(/\S+/g)].map((w) => ({ word: w[0], start: w.index, end: w.index + w[0].length })),
      );
      examples = {
        sentences: words.map((ws, i) => {
          if (ws.length === 0) throw new InferenceError('ERR_USAGE', `text ${i + 1} is empty`);
          return { words: ws.map((w) => w.word), labels: ws.map(() => dummy), where: `text ${i + 1}` };
        }),
      };
    }
  }
  const data = await layOutTask('input', examples, m.settings, m.model.tokenizer);
  const evaluation = await run(m, data, opts.batch ?? DEFAULT_BATCH, opts.noAnswerThreshold);
  return { checkpoint: m.model.dir, task, predictions: describe(evaluation, data, words, m.labels) };
}

function describe(
  evaluation: TaskEvaluation,
  data: TaskSplitData,
  words: Array<Array<{ word: string; start: number; end: number }>>,
  labels: readonly string[],
): Prediction[] {
  return evaluation.predictions.map((p, i) => {
    if ('label' in p) return { text: joinPair(data, i), label: p.label, probabilities: p.probabilities };
    if ('value' in p) return { text: joinPair(data, i), value: p.value };
    if ('tags' in p) {
      const ws = words[i];
      const tags = ws.map((w, k) => ({ ...w, tag: p.tags[k] }));
      const text = data.sentences![i].words.join(' ');
      if (!isIob2(labels)) return { text, tags };
      const entities = chunksOf(p.tags).map((c) => ({
        type: c.type,
        text: ws
          .slice(c.start, c.end + 1)
          .map((w) => w.word)
          .join(' '),
        start: ws[c.start].start,
        end: ws[c.end].end,
      }));
      return { text, tags, entities };
    }
    const q = data.questions![i];
    return {
      id: p.id,
      question: q.question,
      answer: p.text,
      start: p.span?.[0] ?? null,
      end: p.span?.[1] ?? null,
      score: p.score,
      noAnswerScore: p.noAnswerScore,
    };
  });
}

function joinPair(data: TaskSplitData, i: number): string {
  const t = data.texts![i];
  return t.textB === undefined ? t.textA : `${t.textA}\t${t.textB}`;
}

/**
 * Sentence vectors from any encoder checkpoint (pretrained or fine-tuned): the last stack's output
 * at [CLS] ('cls') or averaged over the real tokens ('mean').
 */
export async function embed(
  checkpoint: string,
  texts: readonly string[],
  opts: { pool?: 'cls' | 'mean'; batch?: number; tokenizer?: string } = {},
): Promise<{ checkpoint: string; pool: 'cls' | 'mean'; dimension: number; vectors: number[][] }> {
  const model = await loadModel(checkpoint, opts.tokenizer);
  if (model.config.model.arch === 'gpt')
    throw new InferenceError('ERR_USAGE', 'embed reads an encoder (bert, roberta, albert, electra), not gpt');
  if (texts.length === 0)
    throw new InferenceError('ERR_USAGE', 'embed needs texts: give them as arguments or with --input FILE');
  const pool = opts.pool ?? 'cls';
  const T = model.config.model.seq_len;
  const batch = Math.min(opts.batch ?? DEFAULT_BATCH, texts.length);
  const features = await textClassificationFeatures(
    texts.map((t, i) => ({ textA: t, label: '', where: `text ${i + 1}` })),
    model.tokenizer,
    pairLayoutOf(model.tokenizer),
    T,
  );
  const engine = model.engineFor(T, batch);
  const vectors: number[][] = [];
  let H = 0;
  for (let first = 0; first < features.length; first += batch) {
    const group = features.slice(first, first + batch);
    const real = group.length;
    while (group.length < batch) group.push(group[real - 1]);
    const tokens = new Int32Array(batch * T);
    const segments = new Int32Array(batch * T);
    const attentionMask = new Uint8Array(batch * T);
    group.forEach((f, b) => {
      tokens.set(f.tokens, b * T);
      segments.set(f.segments, b * T);
      attentionMask.set(f.attentionMask, b * T);
    });
    const labels = new Int32Array(batch * T).fill(-100);
    const out = await engine.logits(
      { batchSize: batch, seqLen: T, tokens, labels, segments, attentionMask, pairLabels: null },
      { hidden: true },
    );
    const hidden = out.hidden!;
    H = hidden.length / (batch * T);
    for (let b = 0; b < real; b++) {
      const v = new Array<number>(H).fill(0);
      if (pool === 'cls') for (let h = 0; h < H; h++) v[h] = hidden[b * T * H + h];
      else {
        let n = 0;
        for (let t = 0; t < T; t++) {
          if (!attentionMask[b * T + t]) continue;
          n++;
          for (let h = 0; h < H; h++) v[h] += hidden[(b * T + t) * H + h];
        }
        for (let h = 0; h < H; h++) v[h] /= n;
      }
      vectors.push(v);
    }
  }
  return { checkpoint: model.dir, pool, dimension: H, vectors };
}
