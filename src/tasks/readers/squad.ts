// Question answering examples in SQuAD's JSON (v1.1 and v2.0):
// data[].paragraphs[].{context, qas[].{id, question, answers[{text, answer_start}], is_impossible}}.
// Every answer must sit in its context at answer_start; a v2.0 unanswerable question has
// is_impossible true and no answers.
import { readTextFile } from '../../data/documents';
import { named, quoted } from '../../text/quoted';
import { TASK_DATA_FILE, taskDataError } from './errors';

export interface SquadAnswer {
  text: string;
  /** Character offset into the context. */
  start: number;
}

export interface SquadQuestion {
  id: string;
  question: string;
  context: string;
  /** Empty for an unanswerable question. */
  answers: SquadAnswer[];
  isImpossible: boolean;
  /** file:line of the question's id, for messages. */
  where: string;
}

export function readSquad(filePath: string): SquadQuestion[] {
  const raw = readTextFile(filePath, TASK_DATA_FILE);
  let root: unknown;
  try {
    root = JSON.parse(raw);
  } catch (error) {
    throw taskDataError(`${filePath}: not JSON (${(error as Error).message}); expected SQuAD's {"data": [...]}`);
  }
  const lineOf = lineFinder(raw);
  const data = (root as { data?: unknown })?.data;
  if (!Array.isArray(data)) throw taskDataError(`${filePath}: expected SQuAD's {"version": ..., "data": [...]}`);
  const questions: SquadQuestion[] = [];
  const seen = new Set<string>();
  data.forEach((article, a) => {
    const paragraphs = (article as { paragraphs?: unknown })?.paragraphs;
    if (!Array.isArray(paragraphs)) throw taskDataError(`${filePath}: data[${a}] has no "paragraphs" list`);
    paragraphs.forEach((paragraph, p) => {
      const at = `data[${a}].paragraphs[${p}]`;
      const { context, qas } = (paragraph ?? {}) as { context?: unknown; qas?: unknown };
      if (typeof context !== 'string') throw taskDataError(`${filePath}: ${at} has no "context" string`);
      if (!Array.isArray(qas)) throw taskDataError(`${filePath}: ${at} has no "qas" list`);
      qas.forEach((qa, q) => {
        const { id, question, answers, is_impossible } = (qa ?? {}) as Record<string, unknown>;
        if (typeof id !== 'string' || id === '') throw taskDataError(`${filePath}: ${at}.qas[${q}] has no "id" string`);
        const where = `${filePath}:${lineOf(JSON.stringify(id))}`;
        const idShown = named(id);
        if (seen.has(id)) throw taskDataError(`${where}: question id ${idShown} appears twice`);
        seen.add(id);
        if (typeof question !== 'string' || question.trim() === '')
          throw taskDataError(`${where}: question ${idShown} has no "question" text`);
        const isImpossible = is_impossible === true;
        const list = answers === undefined ? [] : answers;
        if (!Array.isArray(list)) throw taskDataError(`${where}: question ${idShown}: "answers" must be a list`);
        if (isImpossible && list.length > 0)
          throw taskDataError(`${where}: question ${idShown} is_impossible but lists ${list.length} answers`);
        if (!isImpossible && list.length === 0)
          throw taskDataError(
            `${where}: question ${idShown} has no answers; mark an unanswerable question with "is_impossible": true`,
          );
        const checked = list.map((answer: unknown, k: number) => checkAnswer(answer, context, idShown, k, where));
        questions.push({ id, question, context, answers: checked, isImpossible, where });
      });
    });
  });
  if (questions.length === 0) throw taskDataError(`${filePath} holds no questions`);
  return questions;
}

function checkAnswer(answer: unknown, context: string, idShown: string, k: number, where: string): SquadAnswer {
  const { text, answer_start } = (answer ?? {}) as { text?: unknown; answer_start?: unknown };
  const name = `question ${idShown} answer ${k}`;
  if (typeof text !== 'string' || text === '') throw taskDataError(`${where}: ${name} has no "text"`);
  if (typeof answer_start !== 'number' || !Number.isInteger(answer_start) || answer_start < 0)
    throw taskDataError(`${where}: ${name}: "answer_start" must be a non-negative integer`);
  const found = context.slice(answer_start, answer_start + text.length);
  if (found !== text) {
    const elsewhere = context.indexOf(text);
    throw taskDataError(
      `${where}: ${name}: the context at answer_start ${answer_start} reads ${quoted(found)}, ` +
        `not the answer ${quoted(text)}` +
        (elsewhere >= 0 ? ` (the text occurs at ${elsewhere})` : ' (the text is not in the context)'),
    );
  }
  return { text, start: answer_start };
}

/**
 * The 1-based line of each needle's next occurrence after the previous one's (questions are
 * looked up in file order, so the whole file is scanned once); the last line found when absent.
 */
function lineFinder(raw: string): (needle: string) => number {
  let cursor = 0;
  let line = 1;
  return (needle) => {
    const at = raw.indexOf(needle, cursor);
    if (at < 0) return line;
    for (let i = raw.indexOf('\n', cursor); i >= 0 && i < at; i = raw.indexOf('\n', i + 1)) line++;
    cursor = at;
    return line;
  };
}
