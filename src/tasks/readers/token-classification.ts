// Labelled sentences for token classification (NER, part-of-speech tagging): a label per word.
// - NeMo: text_*.txt (a sentence per line, words separated by spaces) with labels_*.txt beside it
//   (the same lines, a label per word);
// - CoNLL-style columns: `word ... label` per line (the first and the last column), a blank line
//   between sentences, -DOCSTART- lines skipped.
import * as path from 'node:path';
import { readTextFile } from '../../data/documents';
import { TASK_DATA_FILE, taskDataError } from './errors';

export interface TaggedSentence {
  words: string[];
  labels: string[];
  /** file:line of its first word, for messages. */
  where: string;
}

/** A NeMo text_X.txt file's labels file: labels_X.txt in the same folder. */
export function nemoLabelsFile(textFile: string): string | null {
  const name = path.basename(textFile);
  return /^text_.*\.txt$/.test(name) ? path.join(path.dirname(textFile), name.replace(/^text_/, 'labels_')) : null;
}

/** NeMo's pair when `filePath` is a text_*.txt file, CoNLL columns otherwise. */
export function readTokenClassification(filePath: string): TaggedSentence[] {
  const labelsFile = nemoLabelsFile(filePath);
  const sentences = labelsFile ? fromNemo(filePath, labelsFile) : fromConll(filePath);
  if (sentences.length === 0) throw taskDataError(`${filePath} holds no sentences`);
  return sentences;
}

function fromNemo(textFile: string, labelsFile: string): TaggedSentence[] {
  const lines = (file: string) => readTextFile(file, TASK_DATA_FILE).replace(/\n$/, '').split('\n');
  const texts = lines(textFile);
  const labels = lines(labelsFile);
  if (texts.length !== labels.length) {
    throw taskDataError(
      `${textFile} has ${texts.length} lines but ${labelsFile} has ${labels.length}; one line each per sentence`,
    );
  }
  const sentences: TaggedSentence[] = [];
  texts.forEach((line, i) => {
    const words = line.split(/\s+/).filter((w) => w !== '');
    const tags = labels[i].split(/\s+/).filter((w) => w !== '');
    if (words.length === 0 && tags.length === 0) return;
    if (words.length !== tags.length) {
      throw taskDataError(
        `${textFile}:${i + 1}: ${words.length} words but ${tags.length} labels at ${labelsFile}:${i + 1}; one label per word`,
      );
    }
    sentences.push({ words, labels: tags, where: `${textFile}:${i + 1}` });
  });
  return sentences;
}

function fromConll(filePath: string): TaggedSentence[] {
  const sentences: TaggedSentence[] = [];
  let current: TaggedSentence | null = null;
  readTextFile(filePath, TASK_DATA_FILE)
    .split('\n')
    .forEach((line, i) => {
      const columns = line
        .trim()
        .split(/\s+/)
        .filter((c) => c !== '');
      if (columns.length === 0 || columns[0] === '-DOCSTART-') {
        if (current) sentences.push(current);
        current = null;
        return;
      }
      if (columns.length < 2) {
        throw taskDataError(
          `${filePath}:${i + 1}: one column ('${columns[0]}'); expected a word and its label (word ... label), ` +
            `and a blank line between sentences`,
        );
      }
      current ??= { words: [], labels: [], where: `${filePath}:${i + 1}` };
      current.words.push(columns[0]);
      current.labels.push(columns[columns.length - 1]);
    });
  if (current) sentences.push(current);
  return sentences;
}

/** Distinct labels, O first when present, then sorted: a stable id order for a label list. */
export function tagSet(sentences: readonly TaggedSentence[]): string[] {
  const distinct = new Set<string>();
  for (const s of sentences) for (const label of s.labels) distinct.add(label);
  const sorted = [...distinct].filter((l) => l !== 'O').sort();
  return distinct.has('O') ? ['O', ...sorted] : sorted;
}
