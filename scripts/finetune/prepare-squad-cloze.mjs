#!/usr/bin/env node
// prepare-squad-cloze.mjs — the question-answering example's data: there is no SQuAD on the
// registries here, so this builds a small set in SQuAD v2.0's format from the bundled public-domain
// text (Moby-Dick and the State of the Union addresses). It tests the machinery (windows, labels,
// span decoding, no-answer scores, EM/F1), not reading comprehension: the questions are cloze
// sentences, and simple string matching answers most of them (its score is reported beside).
//
//   node scripts/finetune/prepare-squad-cloze.mjs [--out data/squad-cloze] [--json]
//
// How: documents are cut into paragraphs at line breaks; from every paragraph of 200 to 2,000
// characters, one sentence of 8+ words is taken (chosen by a stable hash), and in it one answer: a
// capitalised word that is not the sentence's first, or a number, occurring exactly once in the
// paragraph. The question is that sentence with the answer replaced by "___". Answerable: the
// question with its own paragraph. Unanswerable (is_impossible): the same question with the
// paragraph taken for the next question, from another document, where the answer's text does not
// occur at all (in any case, not even inside a word).
// Split by paragraph (a stable hash of its id: 70% train, 15% dev, 15% test); a paragraph and its
// question are in one split only.
import * as fs from 'node:fs';
import * as path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { hashUnit } from './fetch-package.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: o } = parseArgs({
  options: {
    out: { type: 'string', default: path.join(root, 'data', 'squad-cloze') },
    json: { type: 'boolean', default: false },
  },
});
const { loadCorpus } = await import(path.join(root, 'dist', 'data', 'index.js'));
const { splitSentences } = await import(path.join(root, 'dist', 'data', 'sentences.js'));
const { squadReport } = await import(path.join(root, 'dist', 'tasks', 'index.js'));

const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const occurrences = (text, word) => (text.match(new RegExp(`\\b${escape(word)}\\b`, 'g')) ?? []).length;

const items = []; // { doc, id, question, context, answer: {text, start} }
for (const doc of loadCorpus('bundled')) {
  const paragraphs = doc.text.split(/\n/).map((p) => p.replace(/\s+/g, ' ').trim());
  paragraphs.forEach((paragraph, k) => {
    if (paragraph.length < 200 || paragraph.length > 2000) return;
    const sentences = splitSentences(paragraph)
      .map((s) => s.trim())
      .filter((s) => s.split(' ').length >= 8);
    if (sentences.length === 0) return;
    const sentence = sentences[Math.floor(hashUnit(`${doc.id}/${k}`) * sentences.length)];
    const words = sentence.split(' ').map((w) => w.replace(/^[^\w]+|[^\w]+$/g, ''));
    const candidates = words
      .slice(1)
      .filter((w) => (/^[A-Z][a-z]+$/.test(w) || /^\d+$/.test(w)) && occurrences(paragraph, w) === 1);
    if (candidates.length === 0) return;
    const answer = candidates[Math.floor(hashUnit(`${doc.id}/${k}/answer`) * candidates.length)];
    const sentenceStart = paragraph.indexOf(sentence);
    const inSentence = new RegExp(`\\b${escape(answer)}\\b`).exec(sentence).index;
    const question = sentence.slice(0, inSentence) + '___' + sentence.slice(inSentence + answer.length);
    items.push({
      doc: doc.id,
      id: `${doc.id}/p${k}`,
      question,
      context: paragraph,
      answer: { text: answer, answer_start: sentenceStart + inSentence },
    });
  });
}

const splitOf = (id) => {
  const u = hashUnit(`split/${id}`);
  return u < 0.7 ? 'train' : u < 0.85 ? 'dev' : 'test';
};
const bySplit = { train: [], dev: [], test: [] };
for (const item of items) bySplit[splitOf(item.id)].push(item);
const datasets = {};
for (const [split, list] of Object.entries(bySplit)) {
  const qas = [];
  list.forEach((item, i) => {
    qas.push({
      context: item.context,
      qa: { id: item.id, question: item.question, answers: [item.answer], is_impossible: false },
    });
    // The unanswerable twin: the next paragraph of another document that lacks the answer.
    for (let step = 1; step < list.length; step++) {
      const other = list[(i + step) % list.length];
      if (other.doc === item.doc || other.context.toLowerCase().includes(item.answer.text.toLowerCase())) continue;
      qas.push({
        context: other.context,
        qa: { id: `${item.id}/unanswerable`, question: item.question, answers: [], is_impossible: true },
      });
      break;
    }
  });
  const paragraphs = qas.map(({ context, qa }) => ({ context, qas: [qa] }));
  datasets[split] = { version: 'v2.0', data: [{ title: `paratrain cloze (${split})`, paragraphs }] };
  fs.mkdirSync(o.out, { recursive: true });
  fs.writeFileSync(path.join(o.out, `${split}.json`), JSON.stringify(datasets[split]) + '\n');
}

// Baselines on the test split: "no answer" everywhere, and string matching (the context sentence
// sharing most words with the question; below half of them shared, no answer; else the words of
// that sentence where the question has its blank).
const questions = datasets.test.data[0].paragraphs.map((p) => ({ context: p.context, ...p.qas[0] }));
const noAnswer = squadReport(
  questions.map((q) => ({ id: q.id, answers: q.answers.map((a) => a.text), prediction: '' })),
);
const lower = (s) => s.toLowerCase().match(/\w+/g) ?? [];
const matching = squadReport(
  questions.map((q) => {
    const [before, after] = q.question.split('___');
    let best = { shared: 0, sentence: '' };
    for (const sentence of splitSentences(q.context)) {
      const words = new Set(lower(sentence));
      const shared = lower(q.question).filter((w) => words.has(w)).length;
      if (shared > best.shared) best = { shared, sentence };
    }
    let prediction = '';
    if (best.shared >= lower(q.question).length / 2) {
      const head = lower(before).slice(-1)[0];
      const tail = lower(after)[0];
      const words = best.sentence.match(/\w+/g) ?? [];
      const i =
        head === undefined ? 0 : words.findIndex((w, j) => w.toLowerCase() === head && j + 1 < words.length) + 1;
      const candidate = words[i] ?? '';
      prediction = tail !== undefined && candidate.toLowerCase() === tail ? '' : candidate;
    }
    return { id: q.id, answers: q.answers.map((a) => a.text), prediction };
  }),
);
const summary = {
  out: o.out,
  questions: Object.fromEntries(
    Object.entries(datasets).map(([k, d]) => [
      k,
      {
        answerable: d.data[0].paragraphs.filter((p) => !p.qas[0].is_impossible).length,
        unanswerable: d.data[0].paragraphs.filter((p) => p.qas[0].is_impossible).length,
      },
    ]),
  ),
  baselines: {
    noAnswer: { exact: noAnswer.exact, f1: noAnswer.f1 },
    stringMatching: { exact: matching.exact, f1: matching.f1, hasAns: matching.hasAns, noAns: matching.noAns },
  },
};
fs.writeFileSync(path.join(o.out, 'baseline.json'), JSON.stringify(summary, null, 2) + '\n');
process.stdout.write(
  o.json
    ? JSON.stringify(summary) + '\n'
    : `wrote ${o.out}/{train,dev,test}.json: ${JSON.stringify(summary.questions)}; test EM/F1: no answer ` +
        `${noAnswer.exact.toFixed(1)}/${noAnswer.f1.toFixed(1)}, string matching ${matching.exact.toFixed(1)}/${matching.f1.toFixed(1)}\n`,
);
