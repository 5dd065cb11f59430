// task-run.ts — what a fine-tuning run settles before it trains: the tokenizer (the initial
// checkpoint's, data.tokenizer, or one trained on the task's own text), the label list (from the
// config or the training file) and the steps (from train.epochs); then the data as a Dataset, and
// the initial weights (model.init) loaded into this rank's shard by name.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { readCheckpointManifest, readRankState, resolveCheckpointDir } from '../checkpoint';
import { tokenizerKind } from '../config/family';
import { validateConfig } from '../config/load';
import type { Config } from '../config/schema';
import type { Dataset } from '../data/dataset';
import { DataError } from '../data/errors';
import { fingerprintDocuments } from '../data/corpus';
import { loadOrTrainTokenizer, TextTokenizer } from '../data/tokenizer';
import type { NativeEngine } from '../engine/native';
import {
  layOutTask,
  readTaskExamples,
  readTaskSplit,
  taskDataset,
  taskLabels,
  type FineTuningTask,
  type TaskSettings,
  type TaskSplitData,
} from './task-data';
import { readSquad } from './readers/squad';
import { readTextClassification } from './readers/text-classification';
import { readTokenClassification } from './readers/token-classification';

export class TaskConfigError extends Error {
  readonly code = 'ERR_CONFIG';
}

export function isFineTuning(c: Config): c is Config & { task: { name: FineTuningTask } } {
  return c.task.name !== 'pretrain';
}

export function taskSettings(c: Config): TaskSettings {
  if (!isFineTuning(c)) throw new TaskConfigError('task.name is pretrain: no task data to read');
  return {
    name: c.task.name,
    labels: c.task.labels,
    regression: c.task.regression,
    seqLen: c.model.seq_len,
    maxQueryLength: c.task.max_query_length,
    docStride: c.task.doc_stride,
  };
}

function trainFile(c: Config): string {
  const file = c.task.train;
  if (!file)
    throw new TaskConfigError(
      `task ${c.task.name} needs its labelled training data: set task.train to a file (see docs/fine-tuning.md)`,
    );
  if (!fs.existsSync(file)) throw new TaskConfigError(`task.train ${file}: no such file`);
  return file;
}

/**
 * The tokenizer of a fine-tuning run: data.tokenizer when set, else the one saved with model.init,
 * else one trained on the task's training text (a model fine-tuned from scratch).
 */
export async function taskTokenizer(c: Config): Promise<TextTokenizer> {
  const kind = tokenizerKind(c);
  let tokenizer: TextTokenizer;
  if (c.data.tokenizer !== 'auto') tokenizer = TextTokenizer.fromFile(c.data.tokenizer);
  else if (c.model.init) {
    const dir = await resolveCheckpointDir(c.model.init);
    const manifest = await readCheckpointManifest(dir);
    if (manifest.tokenizerFile === '')
      throw new TaskConfigError(
        `model.init ${dir} carries no tokenizer.json; set data.tokenizer to the tokenizer the model was trained with`,
      );
    const file = path.join(dir, manifest.tokenizerFile);
    tokenizer = TextTokenizer.fromJSON(fs.readFileSync(file, 'utf8'), file);
  } else {
    const documents = taskTexts(c).map((text, i) => ({ id: String(i), text }));
    tokenizer = await loadOrTrainTokenizer({
      kind,
      vocabSize: c.model.vocab_size,
      corpus: documents,
      corpusKey: fingerprintDocuments(documents),
      cacheDir: c.data.cache_dir,
      lowercase: c.data.lowercase,
    });
  }
  if (tokenizer.kind !== kind)
    throw new TaskConfigError(`a ${c.model.arch} model needs a ${kind} tokenizer; this one is ${tokenizer.kind}`);
  if (tokenizer.vocabSize > c.model.vocab_size)
    throw new TaskConfigError(
      `the tokenizer has ${tokenizer.vocabSize} tokens but model.vocab_size is ${c.model.vocab_size}: ` +
        `they do not belong together`,
    );
  return tokenizer;
}

/** The training file's text, for a tokenizer trained from scratch. */
function taskTexts(c: Config): string[] {
  const file = trainFile(c);
  switch (c.task.name) {
    case 'text-classification':
      return readTextClassification(file).flatMap((e) => (e.textB === undefined ? [e.textA] : [e.textA, e.textB]));
    case 'token-classification':
      return readTokenClassification(file).map((s) => s.words.join(' '));
    default:
      return readSquad(file).flatMap((q) => [q.question, q.context]);
  }
}

/**
 * The config a fine-tuning run trains with: task.labels filled from the training data when not
 * given (the list is saved with the model: the checkpoint's config, HF's id2label), and train.steps
 * from train.epochs. Every process of a job gets this config, so all agree without reading twice.
 */
export async function resolveTask(c: Config, dataParallel = 1): Promise<Config> {
  if (!isFineTuning(c)) return c;
  const file = trainFile(c);
  if (c.model.arch === 'gpt')
    throw new TaskConfigError(`task ${c.task.name} fine-tunes an encoder (bert, roberta, albert, electra), not gpt`);
  const labels = taskLabels(taskSettings(c), file) ?? c.task.labels;
  if (labels && labels.length < 2 && !c.task.regression)
    throw new TaskConfigError(
      `task.train ${file} holds one label (${labels.map((l) => `'${l}'`).join(', ')}); classification needs ` +
        `at least 2 (or set task.regression: true for numeric targets)`,
    );
  let steps = c.train.steps;
  if (c.train.epochs !== undefined) {
    // A classification example is one sequence; only question answering's windows need the tokenizer.
    const examples = readTaskExamples(file, c.task.name);
    const sequences =
      'questions' in examples
        ? (await layOutTask(file, examples, { ...taskSettings(c), labels }, await taskTokenizer(c))).sequences.length
        : 'texts' in examples
          ? examples.texts.length
          : examples.sentences.length;
    const globalBatch = c.train.micro_batch * c.train.grad_accum * dataParallel;
    steps = Math.max(1, Math.ceil((c.train.epochs * sequences) / globalBatch));
  }
  return validateConfig({
    ...c,
    task: { ...c.task, ...(labels ? { labels } : {}) },
    train: { ...c.train, steps },
  });
}

export interface TaskRunData {
  dataset: Dataset;
  tokenizer: TextTokenizer;
  train: TaskSplitData;
  dev: TaskSplitData | null;
}

/** Reads and lays out the task's train and dev files (the config from resolveTask). */
export async function openTaskData(c: Config): Promise<TaskRunData> {
  const settings = taskSettings(c);
  if (settings.name !== 'question-answering' && !(settings.labels || settings.regression))
    throw new TaskConfigError(`task ${settings.name}: task.labels is not set (resolveTask fills it from task.train)`);
  const tokenizer = await taskTokenizer(c);
  const train = await readTaskSplit(trainFile(c), settings, tokenizer);
  let dev: TaskSplitData | null = null;
  if (c.task.dev) {
    if (!fs.existsSync(c.task.dev)) throw new TaskConfigError(`task.dev ${c.task.dev}: no such file`);
    dev = await readTaskSplit(c.task.dev, settings, tokenizer, 'evaluate');
  }
  if (train.sequences.length === 0) throw new DataError('ERR_TASK_DATA', `${train.file} gives no sequences`);
  return { dataset: taskDataset(settings, train, dev, tokenizer, c.train.seed), tokenizer, train, dev };
}

export interface InitialWeights {
  dir: string;
  /** Parameters read from the checkpoint. */
  loaded: string[];
  /** Parameters of this model the checkpoint lacks (a new head): from train.seed. */
  fresh: string[];
  /** Checkpoint tensors this model has no use for (the pretraining heads). */
  dropped: string[];
}

/**
 * Loads model.init into the engine (after initParams): every parameter the checkpoint has by name
 * and shape, for this rank's tensor-parallel shard. A head of another shape (another label count)
 * starts fresh; an encoder tensor of another shape is another model, and an error.
 */
export async function loadInitialWeights(engine: NativeEngine, c: Config): Promise<InitialWeights | null> {
  if (!c.model.init) return null;
  const dir = await resolveCheckpointDir(c.model.init);
  const manifest = await readCheckpointManifest(dir);
  const saved = new Map(manifest.tensors.filter((t) => t.role === 'parameter').map((t) => [t.name, t]));
  const table = engine.paramTable();
  const head = /^(classifier|qa_outputs)\./;
  const loadable = table.filter((e) => {
    const t = saved.get(e.name);
    if (!t) return false;
    if (t.globalShape.join(',') === e.globalShape.join(',')) return true;
    if (head.test(e.name)) return false;
    throw Object.assign(
      new Error(
        `model.init ${dir}: ${e.name} has shape [${t.globalShape.join(', ')}], this model's is ` +
          `[${e.globalShape.join(', ')}]; the checkpoint holds another model (compare its config.yaml with model.*)`,
      ),
      { code: 'ERR_CHECKPOINT_MISMATCH' },
    );
  });
  if (loadable.length === 0)
    throw Object.assign(new Error(`model.init ${dir}: none of this model's parameters are in the checkpoint`), {
      code: 'ERR_CHECKPOINT_MISMATCH',
    });
  const state = await readRankState(dir, manifest, loadable, { optimizer: false });
  const params = engine.getParams();
  for (const e of loadable) params.set(state.params.subarray(e.offset, e.offset + e.numel), e.offset);
  engine.setParams(params);
  const names = new Set(table.map((e) => e.name));
  const loaded = new Set(loadable.map((e) => e.name));
  return {
    dir,
    loaded: [...loaded],
    fresh: table.filter((e) => !loaded.has(e.name)).map((e) => e.name),
    dropped: [...saved.keys()].filter((n) => !names.has(n)),
  };
}
