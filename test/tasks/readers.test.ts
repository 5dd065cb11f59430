// The fine-tuning data readers: the formats NeMo and Hugging Face users have, and a clear
// file:line message for each malformed input.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DataError } from '../../src/data/errors';
import { readSquad } from '../../src/tasks/readers/squad';
import { labelIds, labelSet, readTextClassification } from '../../src/tasks/readers/text-classification';
import { readTokenClassification, tagSet } from '../../src/tasks/readers/token-classification';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-task-readers-'));
afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));

function write(name: string, content: string): string {
  const file = path.join(scratch, name);
  fs.writeFileSync(file, content);
  return file;
}

function messageOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(DataError);
    expect((error as DataError).code).toBe('ERR_TASK_DATA');
    return (error as DataError).message;
  }
  throw new Error('expected a DataError');
}

describe('text classification', () => {
  it("reads NeMo's TSV with a header, integer labels as ids", () => {
    const file = write('train.tsv', 'sentence\tlabel\na fine film\t1\nawful\t0\n\nquite good\t1\n');
    const examples = readTextClassification(file);
    expect(examples.map((e) => [e.textA, e.label, e.where])).toEqual([
      ['a fine film', '1', `${file}:2`],
      ['awful', '0', `${file}:3`],
      ['quite good', '1', `${file}:5`],
    ]);
    const labels = labelSet(examples);
    expect(labels).toEqual({ names: ['0', '1'], regression: false });
    expect(Array.from(labelIds(examples, labels))).toEqual([1, 0, 1]);
  });

  it('reads sentence pairs from TSV and JSON lines, string labels in sorted order or a given list', () => {
    const tsv = write(
      'pairs.tsv',
      'A man sleeps.\tA person rests.\tentailment\nIt rains.\tIt is dry.\tcontradiction\n',
    );
    expect(readTextClassification(tsv).map((e) => [e.textA, e.textB])).toEqual([
      ['A man sleeps.', 'A person rests.'],
      ['It rains.', 'It is dry.'],
    ]);
    const jsonl = write(
      'pairs.jsonl',
      '{"text_a": "a", "text_b": "b", "label": "yes"}\n{"text_a": "c", "text_b": "d", "label": "no"}\n',
    );
    const examples = readTextClassification(jsonl);
    expect(labelSet(examples).names).toEqual(['no', 'yes']);
    const given = labelSet(examples, { given: ['yes', 'no'] });
    expect(Array.from(labelIds(examples, given))).toEqual([0, 1]);
    expect(messageOf(() => labelSet(examples, { given: ['yes', 'maybe'] }))).toBe(
      `${jsonl}:2: unknown label 'no'; the model's labels are 'yes', 'maybe'`,
    );
  });

  it('regression takes numeric labels', () => {
    const file = write(
      'sts.jsonl',
      '{"text_a": "x", "text_b": "y", "label": 3.8}\n{"text_a": "u", "text_b": "v", "label": 0.5}\n',
    );
    const examples = readTextClassification(file);
    expect(Array.from(labelIds(examples, labelSet(examples, { regression: true })))).toEqual([3.8, 0.5]);
    const words = write('words.tsv', 'x\thigh\n');
    expect(messageOf(() => labelSet(readTextClassification(words), { regression: true }))).toContain(
      `${words}:1: label 'high' is not a number`,
    );
  });

  it('names the file and line of a malformed example', () => {
    const fields = write('fields.tsv', 'good\t1\nno label here\n');
    expect(messageOf(() => readTextClassification(fields))).toBe(
      `${fields}:2: expected 2 tab-separated fields (text, label) or 3 (text_a, text_b, label), got 1`,
    );
    const mixed = write('mixed.tsv', 'good\t1\na\tb\t0\n');
    expect(messageOf(() => readTextClassification(mixed))).toContain(`${mixed}:2: 3 tab-separated fields`);
    const badJson = write('bad.jsonl', '{"text": "ok", "label": 1}\n{"text": "no label"}\n');
    expect(messageOf(() => readTextClassification(badJson))).toContain(
      `${badJson}:2: "label" must be a string or a number`,
    );
    const empty = write('empty.tsv', '');
    expect(messageOf(() => readTextClassification(empty))).toBe(
      `data file ${empty} is empty; put labelled examples in it`,
    );
    const header = write('header-only.tsv', 'sentence\tlabel\n');
    expect(messageOf(() => readTextClassification(header))).toContain('holds no examples');
  });

  it('keeps a message short and whole when the bad value is huge or nested past the recursion limit', () => {
    // JSON.parse reads 100,000 nested lists; JSON.stringify of them would throw RangeError.
    const deep = write('deep.jsonl', `{"text": "ok", "label": ${'['.repeat(100_000)}${']'.repeat(100_000)}}\n`);
    expect(messageOf(() => readTextClassification(deep))).toBe(
      `${deep}:1: "label" must be a string or a number, got a list nested too deeply to show`,
    );
    const wide = write('wide.jsonl', `{"text": "ok", "label": [${'1,'.repeat(500_000)}1]}\n`);
    const message = messageOf(() => readTextClassification(wide));
    expect(message.length).toBeLessThan(400);
    expect(message).toMatch(/got \[1,1,1,.*… \(\d+ more characters\)$/);
    const examples = readTextClassification(write('long-label.tsv', `good\t${'x'.repeat(1_000_000)}\n`));
    const unknown = messageOf(() => labelSet(examples, { given: ['ham', 'spam'] }));
    expect(unknown.length).toBeLessThan(500);
    expect(unknown).toContain("… (999800 more characters)'; the model's labels are 'ham', 'spam'");
  });
});

describe('token classification', () => {
  it("reads NeMo's text_*.txt with labels_*.txt beside it", () => {
    const text = write('text_train.txt', 'John lives in New York\nHello\n');
    write('labels_train.txt', 'B-PER O O B-LOC I-LOC\nO\n');
    const sentences = readTokenClassification(text);
    expect(sentences.map((s) => [s.words, s.labels])).toEqual([
      [
        ['John', 'lives', 'in', 'New', 'York'],
        ['B-PER', 'O', 'O', 'B-LOC', 'I-LOC'],
      ],
      [['Hello'], ['O']],
    ]);
    expect(tagSet(sentences)).toEqual(['O', 'B-LOC', 'B-PER', 'I-LOC']);
  });

  it('a word count that differs from the label count names both lines', () => {
    const text = write('text_dev.txt', 'one two\nthree\n');
    const labels = write('labels_dev.txt', 'O O\nO O\n');
    expect(messageOf(() => readTokenClassification(text))).toBe(
      `${text}:2: 1 words but 2 labels at ${labels}:2; one label per word`,
    );
  });

  it('reads CoNLL columns: the first is the word, the last the label, blank lines between sentences', () => {
    const file = write(
      'train.conll',
      '-DOCSTART- -X- O O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n\n\n',
    );
    expect(readTokenClassification(file).map((s) => [s.words, s.labels, s.where])).toEqual([
      [['EU', 'rejects'], ['B-ORG', 'O'], `${file}:3`],
      [['Peter'], ['B-PER'], `${file}:6`],
    ]);
    const oneColumn = write('broken.conll', 'EU B-ORG\nrejects\n');
    expect(messageOf(() => readTokenClassification(oneColumn))).toContain(`${oneColumn}:2: one column ('rejects')`);
  });
});

describe('SQuAD', () => {
  const squad = (qas: unknown[], context = 'The Broncos won Super Bowl 50 in Santa Clara.') =>
    JSON.stringify({ version: 'v2.0', data: [{ title: 't', paragraphs: [{ context, qas }] }] }, null, 1);

  it('reads answerable and unanswerable questions', () => {
    const file = write(
      'dev.json',
      squad([
        { id: 'q1', question: 'Who won?', answers: [{ text: 'The Broncos', answer_start: 0 }] },
        { id: 'q2', question: 'Where?', answers: [{ text: 'Santa Clara', answer_start: 33 }] },
        { id: 'q3', question: 'Who lost?', answers: [], is_impossible: true },
      ]),
    );
    const questions = readSquad(file);
    expect(questions.map((q) => [q.id, q.answers, q.isImpossible])).toEqual([
      ['q1', [{ text: 'The Broncos', start: 0 }], false],
      ['q2', [{ text: 'Santa Clara', start: 33 }], false],
      ['q3', [], true],
    ]);
    expect(questions[1].where).toMatch(new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+$`));
  });

  it('an answer_start that does not match its text, a duplicate id and a missing answer are named', () => {
    const off = write(
      'off.json',
      squad([{ id: 'q1', question: 'Where?', answers: [{ text: 'Santa Clara', answer_start: 30 }] }]),
    );
    expect(messageOf(() => readSquad(off))).toMatch(
      /off\.json:\d+: question 'q1' answer 0: the context at answer_start 30 reads "in Santa Cl", not the answer "Santa Clara" \(the text occurs at 33\)/,
    );
    const twice = write(
      'twice.json',
      squad([
        { id: 'q1', question: 'A?', answers: [{ text: 'The', answer_start: 0 }] },
        { id: 'q1', question: 'B?', answers: [{ text: 'The', answer_start: 0 }] },
      ]),
    );
    expect(messageOf(() => readSquad(twice))).toContain("question id 'q1' appears twice");
    const none = write('none.json', squad([{ id: 'q9', question: 'A?', answers: [] }]));
    expect(messageOf(() => readSquad(none))).toContain(`question 'q9' has no answers; mark an unanswerable question`);
    const notSquad = write('not-squad.json', '{"rows": []}');
    expect(messageOf(() => readSquad(notSquad))).toContain('expected SQuAD\'s {"version": ..., "data": [...]}');
  });
});

describe('the cloze QA example set (scripts/finetune/prepare-squad-cloze.mjs)', () => {
  it('is SQuAD v2.0 that the reader accepts: every answer at its answer_start, unanswerable contexts without it', () => {
    const out = path.join(scratch, 'squad-cloze');
    const script = path.join(__dirname, '..', '..', 'scripts', 'finetune', 'prepare-squad-cloze.mjs');
    const run = spawnSync(process.execPath, [script, '--out', out, '--json'], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const summary = JSON.parse(run.stdout);
    for (const split of ['train', 'dev', 'test']) {
      const questions = readSquad(path.join(out, `${split}.json`));
      const answerable = questions.filter((q) => !q.isImpossible);
      expect(answerable.length).toBe(summary.questions[split].answerable);
      expect(answerable.length).toBeGreaterThan(50);
      const byId = new Map(answerable.map((q) => [q.id, q]));
      for (const q of questions.filter((x) => x.isImpossible)) {
        const twin = byId.get(q.id.replace(/\/unanswerable$/, ''))!;
        expect(q.question).toBe(twin.question);
        expect(q.context.toLowerCase()).not.toContain(twin.answers[0].text.toLowerCase());
      }
      for (const q of answerable) expect(q.question).toContain('___');
    }
  });
});
