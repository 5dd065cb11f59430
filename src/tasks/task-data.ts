// task-data.ts — a fine-tuning run's labelled data: the task's files read, tokenized and laid out as
// fixed-length sequences, and served to the trainer as the two sample streams of a Dataset
// (train: reshuffled every epoch; eval: the dev set in file order, wrapping around).
import type { TaskName } from '../config/schema';
import { IGNORE_INDEX, type Split, type TrainBatch } from '../data/batch';
import type { Dataset } from '../data/dataset';
import { DataError } from '../data/errors';
import { SplitKey } from '../data/rng';
import { EpochShuffle } from '../data/sample-order';
import type { TextTokenizer } from '../data/tokenizer';
import { listed, named } from '../text/quoted';
import { textClassificationFeatures, tokenClassificationFeatures, type SequenceFeature } from './features';
import type { PairLayout } from './layout';
import { qaFeatures, type QaFeature } from './qa-features';
import { readSquad, type SquadQuestion } from './readers/squad';
import {
  labelIds,
  labelSet,
  readTextClassification,
  type TextClassificationExample,
} from './readers/text-classification';
import { readTokenClassification, tagSet, type TaggedSentence } from './readers/token-classification';

export type FineTuningTask = Exclude<TaskName, 'pretrain'>;

/** Stream id of the training order (src/data/rng.ts numbers the pretraining streams 1–6). */
const TASK_ORDER_STREAM = 7;

/** What the task settings say about reading its data. */
export interface TaskSettings {
  name: FineTuningTask;
  labels?: readonly string[];
  regression: boolean;
  seqLen: number;
  maxQueryLength: number;
  docStride: number;
}

/** One sequence with its training target(s). */
export interface TaskSequence extends SequenceFeature {
  /** Text classification: the class id (or, for regression, the value). */
  target?: number;
  /** Token classification: [T] tag ids at first sub-words, IGNORE_INDEX elsewhere. */
  tags?: Int32Array;
  /** Question answering: the answer's first and last token; 0 and 0 point at [CLS] (no answer here). */
  start?: number;
  end?: number;
}

/** One file of a task, read and laid out. */
export interface TaskSplitData {
  file: string;
  sequences: TaskSequence[];
  /** What the sequences came from, for metrics and predictions (one of them, per task). */
  texts?: TextClassificationExample[];
  sentences?: TaggedSentence[];
  questions?: SquadQuestion[];
  /** QA: the window features (sequence i is window i). Token classification: word positions. */
  windows?: QaFeature[];
  wordAt?: Int32Array[];
  /** Sequences whose text was cut to fit seq_len (classification: tokens; tagging: words dropped). */
  truncated: number;
  /** Token classification, evaluation data: words whose gold tag the model does not have (each a miss). */
  unknownTags?: number;
}

/** The family's pair convention, from its tokenizer. */
export function pairLayoutOf(tokenizer: TextTokenizer): PairLayout {
  const ids = tokenizer.maskedLmSpecialIds();
  return { cls: ids.cls, sep: ids.sep, pad: ids.pad, doubleSeparator: tokenizer.kind === 'roberta-bpe' };
}

/**
 * The label list of a classification task: the given one (every label of the file checked against
 * it), else the file's (see labelSet and tagSet). Question answering has none.
 */
export function taskLabels(settings: Omit<TaskSettings, 'seqLen'>, trainFile: string): string[] | undefined {
  switch (settings.name) {
    case 'text-classification':
      return labelSet(readTextClassification(trainFile), {
        given: settings.labels,
        regression: settings.regression,
      }).names;
    case 'token-classification': {
      const sentences = readTokenClassification(trainFile);
      if (!settings.labels) return tagSet(sentences);
      checkTags(sentences, settings.labels);
      return [...settings.labels];
    }
    default:
      return undefined;
  }
}

function checkTags(sentences: readonly TaggedSentence[], labels: readonly string[]): void {
  const known = new Set(labels);
  for (const s of sentences)
    for (const [i, tag] of s.labels.entries())
      if (!known.has(tag))
        throw new DataError(
          'ERR_TASK_DATA',
          `${s.where}: unknown label ${named(tag)} (word ${i + 1}, ${named(s.words[i] ?? '')}); the model's labels are ` +
            listed(labels),
        );
}

/** A task's examples, from a file or given directly (predict). */
export type TaskExamples =
  { texts: TextClassificationExample[] } | { sentences: TaggedSentence[] } | { questions: SquadQuestion[] };

/** Reads one task file (see the readers for the formats). */
export function readTaskExamples(file: string, task: FineTuningTask): TaskExamples {
  if (task === 'text-classification') return { texts: readTextClassification(file) };
  if (task === 'token-classification') return { sentences: readTokenClassification(file) };
  return { questions: readSquad(file) };
}

/** Reads one task file and lays it out as sequences (labels: the model's label list). */
export async function readTaskSplit(
  file: string,
  settings: TaskSettings,
  tokenizer: TextTokenizer,
  use: TaskDataUse = 'train',
): Promise<TaskSplitData> {
  return layOutTask(file, readTaskExamples(file, settings.name), settings, tokenizer, use);
}

/**
 * Training data must hold only the model's labels. Evaluation data may hold tags the training data
 * never had (Brown's rare compound tags): they take no loss and count as misses. A class label
 * outside the list is an error either way.
 */
export type TaskDataUse = 'train' | 'evaluate';

/** Lays examples out as the task's sequences; `source` names them in messages and reports. */
export async function layOutTask(
  source: string,
  examples: TaskExamples,
  settings: TaskSettings,
  tokenizer: TextTokenizer,
  use: TaskDataUse = 'train',
): Promise<TaskSplitData> {
  const layout = pairLayoutOf(tokenizer);
  const { seqLen } = settings;
  if ('texts' in examples) {
    const { texts } = examples;
    const labels = labelSet(texts, { given: settings.labels, regression: settings.regression });
    const targets = labelIds(texts, labels);
    const features = await textClassificationFeatures(texts, tokenizer, layout, seqLen);
    return {
      file: source,
      texts,
      sequences: features.map((f, i) => ({ ...f, target: targets[i] })),
      truncated: features.filter((f) => f.truncated > 0).length,
    };
  }
  if ('sentences' in examples) {
    const { sentences } = examples;
    const labels = settings.labels ?? tagSet(sentences);
    if (use === 'train') checkTags(sentences, labels);
    const ids = new Map(labels.map((l, i) => [l, i]));
    const features = await tokenClassificationFeatures(
      sentences,
      tokenizer,
      layout,
      seqLen,
      ids,
      use === 'train' ? 'error' : 'ignore',
    );
    return {
      file: source,
      sentences,
      sequences: features.map((f) => ({ ...f, tags: f.labels })),
      wordAt: features.map((f) => f.wordAt),
      truncated: features.filter((f) => f.droppedWords > 0).length,
      unknownTags: features.reduce((n, f) => n + f.unknownTags, 0),
    };
  }
  const { questions } = examples;
  const windows = await qaFeatures(questions, tokenizer, layout, {
    seqLen,
    maxQueryLength: settings.maxQueryLength,
    docStride: settings.docStride,
  });
  return {
    file: source,
    questions,
    windows,
    sequences: windows.map((w) => ({ ...w, start: w.startPosition, end: w.endPosition })),
    truncated: 0,
  };
}

/** Sequences [from, from + count) of `sequences` (any order) as one batch of the task. */
export function taskBatch(
  task: FineTuningTask,
  regression: boolean,
  sequences: readonly TaskSequence[],
  seqLen: number,
): TrainBatch {
  const B = sequences.length;
  const tokens = new Int32Array(B * seqLen);
  const segments = new Int32Array(B * seqLen);
  const attentionMask = new Uint8Array(B * seqLen);
  const labels = new Int32Array(B * seqLen).fill(IGNORE_INDEX);
  sequences.forEach((s, b) => {
    tokens.set(s.tokens, b * seqLen);
    segments.set(s.segments, b * seqLen);
    attentionMask.set(s.attentionMask, b * seqLen);
    if (s.tags) labels.set(s.tags, b * seqLen);
  });
  const batch: TrainBatch = { batchSize: B, seqLen, tokens, labels, segments, attentionMask, pairLabels: null };
  if (task === 'text-classification') {
    if (regression) batch.targets = Float32Array.from(sequences, (s) => s.target as number);
    else batch.classLabels = Int32Array.from(sequences, (s) => s.target as number);
  }
  if (task === 'question-answering') {
    batch.startPositions = Int32Array.from(sequences, (s) => s.start as number);
    batch.endPositions = Int32Array.from(sequences, (s) => s.end as number);
  }
  return batch;
}

/** The task's splits as the trainer's Dataset: sample i of train is sequence perm_e[i mod n]. */
export function taskDataset(
  settings: TaskSettings,
  train: TaskSplitData,
  dev: TaskSplitData | null,
  tokenizer: TextTokenizer,
  seed: number,
): Dataset {
  const order = new EpochShuffle(train.sequences.length, seed, TASK_ORDER_STREAM, SplitKey.train);
  const splits: Record<Split, TaskSplitData | null> = { train, eval: dev };
  const tokenCount = (d: TaskSplitData | null) =>
    d ? d.sequences.reduce((n, s) => n + s.attentionMask.reduce((a, x) => a + x, 0), 0) : 0;
  return {
    objective: 'masked-lm',
    seqLen: settings.seqLen,
    summary: {
      tokenizerVocabSize: tokenizer.vocabSize,
      corpusDocuments: train.sequences.length + (dev?.sequences.length ?? 0),
      corpusTokens: tokenCount(train) + tokenCount(dev),
      trainDocuments: train.sequences.length,
      evalDocuments: dev?.sequences.length ?? 0,
      heldoutBy: 'none',
      tokenStoreOrigin: 'tokenized',
      tokenStoreMillis: 0,
    },
    batch(split, firstSample, count) {
      const data = splits[split];
      if (!data)
        throw new DataError('ERR_DATA_CONFIG', `task ${settings.name} has no dev data: set task.dev to evaluate`);
      const n = data.sequences.length;
      const picked = Array.from({ length: count }, (_, r) => {
        const i = firstSample + r;
        return data.sequences[split === 'train' ? order.itemForSample(i) : i % n];
      });
      return { ...taskBatch(settings.name, settings.regression, picked, settings.seqLen), firstSample, split };
    },
    samplesPerEpoch: (split) => splits[split]?.sequences.length ?? 0,
    documentIds: (split) => (splits[split] ? [splits[split].file] : []),
  };
}
