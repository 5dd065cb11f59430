// Labelled examples for text classification, in the formats NeMo and Hugging Face users have:
// - TSV (NeMo): `text<TAB>label`, or `text_a<TAB>text_b<TAB>label` for sentence pairs, with an
//   optional header line whose last field is `label`;
// - JSON lines: {"text": ..., "label": ...} or {"text_a": ..., "text_b": ..., "label": ...}.
// Labels stay as written here (strings); labelSet() maps them to ids.
import { parseJsonLine, readTextFile } from '../../data/documents';
import { listed, named, quoted } from '../../text/quoted';
import { TASK_DATA_FILE, taskDataError } from './errors';

export interface TextClassificationExample {
  textA: string;
  /** The second text of a sentence pair. */
  textB?: string;
  /** The label as written in the file. */
  label: string;
  /** file:line, for messages. */
  where: string;
}

export function readTextClassification(filePath: string): TextClassificationExample[] {
  const text = readTextFile(filePath, TASK_DATA_FILE);
  const examples = /\.jsonl?$/i.test(filePath) ? fromJsonLines(text, filePath) : fromTsv(text, filePath);
  if (examples.length === 0) throw taskDataError(`${filePath} holds no examples (only a header or blank lines)`);
  const pairs = examples.filter((e) => e.textB !== undefined).length;
  if (pairs !== 0 && pairs !== examples.length) {
    const odd = examples.find((e) => (e.textB === undefined) !== (examples[0].textB === undefined))!;
    throw taskDataError(
      `${odd.where}: ${odd.textB === undefined ? 'a single text' : 'a sentence pair'} among ` +
        `${examples[0].textB === undefined ? 'single texts' : 'sentence pairs'} (as in ${examples[0].where}); ` +
        `one file holds one kind`,
    );
  }
  return examples;
}

function fromTsv(text: string, filePath: string): TextClassificationExample[] {
  const examples: TextClassificationExample[] = [];
  let columns = 0;
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${filePath}:${i + 1}`;
    const fields = line.split('\t');
    if (examples.length === 0 && columns === 0 && /^labels?$/i.test(fields[fields.length - 1].trim())) {
      columns = fields.length; // a header line
      return;
    }
    if (fields.length !== 2 && fields.length !== 3) {
      throw taskDataError(
        `${where}: expected 2 tab-separated fields (text, label) or 3 (text_a, text_b, label), got ${fields.length}`,
      );
    }
    if (columns !== 0 && fields.length !== columns) {
      throw taskDataError(`${where}: ${fields.length} tab-separated fields, but the lines before have ${columns}`);
    }
    columns = fields.length;
    const label = fields[fields.length - 1].trim();
    const texts = fields.slice(0, -1).map((f) => f.trim());
    if (label === '') throw taskDataError(`${where}: the label (the last field) is empty`);
    texts.forEach((t, k) => {
      if (t === '') throw taskDataError(`${where}: text ${k === 0 ? 'a' : 'b'} is empty`);
    });
    examples.push({ textA: texts[0], ...(texts.length === 2 ? { textB: texts[1] } : {}), label, where });
  });
  return examples;
}

function fromJsonLines(text: string, filePath: string): TextClassificationExample[] {
  const examples: TextClassificationExample[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${filePath}:${i + 1}`;
    const record = parseJsonLine(line, where, 'ERR_TASK_DATA', '"text" (or "text_a" and "text_b") and "label" fields');
    const pair = 'text_a' in record || 'text_b' in record;
    const textA = stringField(record, pair ? 'text_a' : 'text', where);
    const textB = pair ? stringField(record, 'text_b', where) : undefined;
    const label = record.label;
    if (typeof label !== 'string' && typeof label !== 'number') {
      throw taskDataError(`${where}: "label" must be a string or a number, got ${quoted(label)}`);
    }
    examples.push({ textA, ...(textB !== undefined ? { textB } : {}), label: String(label), where });
  });
  return examples;
}

function stringField(record: Record<string, unknown>, key: string, where: string): string {
  const value = record[key];
  if (typeof value !== 'string' || value.trim() === '') {
    throw taskDataError(
      `${where}: "${key}" must be a non-empty string (the object's fields: ${Object.keys(record).join(', ') || 'none'})`,
    );
  }
  return value;
}

/** How labels map to class ids; saved with the model (config.json's id2label). */
export interface LabelSet {
  /** Class names by id. */
  names: string[];
  /** One output, a real-valued score (regression, MSE loss). */
  regression: boolean;
}

/**
 * The label list for examples: `given` (from the config or a checkpoint) when there is one, every
 * label checked against it; else integers 0..K-1 as themselves (K = the largest + 1), or the
 * distinct strings in sorted order. `regression`: labels are numbers and the list is ['score'].
 */
export function labelSet(
  examples: readonly TextClassificationExample[],
  options: { given?: readonly string[]; regression?: boolean } = {},
): LabelSet {
  if (options.regression) {
    for (const e of examples)
      if (!Number.isFinite(Number(e.label)) || e.label.trim() === '')
        throw taskDataError(`${e.where}: label '${e.label}' is not a number (a regression task needs numeric labels)`);
    return { names: ['score'], regression: true };
  }
  if (options.given) {
    const known = new Set(options.given);
    for (const e of examples) {
      if (!known.has(e.label))
        throw taskDataError(
          `${e.where}: unknown label ${named(e.label)}; the model's labels are ${listed(options.given)}`,
        );
    }
    return { names: [...options.given], regression: false };
  }
  const distinct = [...new Set(examples.map((e) => e.label))];
  if (distinct.every((l) => /^(0|[1-9]\d*)$/.test(l))) {
    const count = Math.max(...distinct.map(Number)) + 1;
    return { names: Array.from({ length: count }, (_, i) => String(i)), regression: false };
  }
  return { names: distinct.sort(), regression: false };
}

/** The class id (or, for regression, the value) of each example under `labels`. */
export function labelIds(examples: readonly TextClassificationExample[], labels: LabelSet): Float64Array {
  const index = new Map(labels.names.map((name, id) => [name, id]));
  return Float64Array.from(examples, (e) => {
    if (labels.regression) return Number(e.label);
    const id = index.get(e.label);
    if (id === undefined) throw taskDataError(`${e.where}: unknown label ${named(e.label)}`);
    return id;
  });
}
