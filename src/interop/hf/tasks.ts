// tasks.ts — fine-tuned models as Hugging Face has them: the family's encoder (its pretraining
// model without the pretraining heads) plus the task's head, under the *For{SequenceClassification,
// TokenClassification,QuestionAnswering} architectures, with the label list in config.json.
import type { Config, TaskName } from '../../config/schema';
import type { ParamEntry } from '../../engine/native';
import { quoted } from '../../text/quoted';
import { architectures, type ExportOptions, type HfConfig, type HfFamily, type HfModel } from './family';
import { HfFormatError, mapTable, rename, requireCovered } from './tensors';

/** The class-name prefix of each family's models (BertFor…, RobertaFor…). */
const CLASS_PREFIX: Partial<Record<Config['model']['arch'], string>> = {
  bert: 'Bert',
  roberta: 'Roberta',
  albert: 'Albert',
  electra: 'Electra',
};

const ARCHITECTURE_SUFFIX: Record<Exclude<TaskName, 'pretrain'>, string> = {
  'text-classification': 'ForSequenceClassification',
  'token-classification': 'ForTokenClassification',
  'question-answering': 'ForQuestionAnswering',
};

/** What a fine-tuned HF config says about its task. */
export interface HfTask {
  name: Exclude<TaskName, 'pretrain'>;
  /** Class names by id (id2label); absent for question answering. */
  labels?: string[];
  regression: boolean;
}

/** The task of an HF config whose architecture is a fine-tuning one, else null. */
export function taskOfHfConfig(config: HfConfig, where: string): HfTask | null {
  const arch = architectures(config)[0] ?? '';
  const entry = Object.entries(ARCHITECTURE_SUFFIX).find(([, suffix]) => arch.endsWith(suffix));
  if (!entry) return null;
  const name = entry[0] as HfTask['name'];
  if (name === 'question-answering') return { name, regression: false };
  const labels = labelList(config, where);
  const regression = name === 'text-classification' && (config['problem_type'] === 'regression' || labels.length === 1);
  if (!regression && labels.length < 2)
    throw new HfFormatError(`${where}: ${arch} with ${labels.length} label; give id2label with at least 2 labels`);
  return { name, labels, regression };
}

/** id2label as a list (ids 0..n-1), or LABEL_i for num_labels when id2label is absent. */
function labelList(config: HfConfig, where: string): string[] {
  const id2label = config['id2label'];
  if (id2label && typeof id2label === 'object') {
    const entries = Object.entries(id2label as Record<string, unknown>);
    const labels: string[] = [];
    for (const [id, label] of entries) {
      const i = Number(id);
      if (!Number.isInteger(i) || i < 0 || i >= entries.length || typeof label !== 'string' || label === '')
        throw new HfFormatError(
          `${where}: id2label must map the ids 0..${entries.length - 1} to label names, got ${quoted(id)}: ${quoted(label)}`,
        );
      labels[i] = label;
    }
    return labels;
  }
  const n = config['num_labels'] ?? 2;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1)
    throw new HfFormatError(`${where}: num_labels must be a positive integer, got ${quoted(n)}`);
  return Array.from({ length: n }, (_, i) => `LABEL_${i}`);
}

/** The head's prefix in paratrain's parameter table (see src/engine/spec.ts taskHead). */
function headPrefix(c: Config): string {
  return c.task.name === 'question-answering' ? 'qa_outputs.' : 'classifier.';
}

/** The config.json entries of the task: the label maps and the problem type. */
function taskConfig(c: Config): HfConfig {
  if (c.task.name === 'question-answering') return {};
  const labels = c.task.regression ? ['LABEL_0'] : (c.task.labels ?? []);
  return {
    num_labels: labels.length,
    id2label: Object.fromEntries(labels.map((l, i) => [String(i), l])),
    label2id: Object.fromEntries(labels.map((l, i) => [l, i])),
    ...(c.task.name === 'text-classification'
      ? { problem_type: c.task.regression ? 'regression' : 'single_label_classification' }
      : {}),
  };
}

/**
 * The HF model of a fine-tuning config: the family's encoder tensors (from its own mapping of the
 * table without the head) and the head's, which HF names as we do except RoBERTa's and ELECTRA's
 * `classifier.out_proj` (ours: `classifier.out`).
 */
export function taskModel(family: HfFamily, c: Config, table: readonly ParamEntry[], opts: ExportOptions): HfModel {
  const prefix = CLASS_PREFIX[c.model.arch];
  if (prefix === undefined || c.task.name === 'pretrain')
    throw new HfFormatError(`no Hugging Face ${c.task.name} model for model.arch ${c.model.arch}`);
  const head = headPrefix(c);
  const encoderTable = table.filter((e) => !e.name.startsWith(head));
  const encoder = family.models(c, encoderTable, opts).find((m) => m.subdir === '');
  if (!encoder) throw new HfFormatError(`the ${c.model.arch} mapping has no main model`);
  const headTensors = mapTable(
    table.filter((e) => e.name.startsWith(head)),
    (name, shape) => rename(name.replace(/^classifier\.out\./, 'classifier.out_proj.'), name, shape),
  );
  const tensors = [...encoder.tensors, ...headTensors];
  requireCovered(table, tensors, `this ${c.model.arch} ${c.task.name} model`);
  return {
    ...encoder,
    config: { ...encoder.config, architectures: [prefix + ARCHITECTURE_SUFFIX[c.task.name]], ...taskConfig(c) },
    tensors,
    // The pretraining heads' tied copies (decoder weights) are not in a fine-tuned model.
    tied: [],
  };
}
