// Fine-tuning end to end through the command line: a tiny BERT pretrained for a few steps, then
// fine-tuned from it (model.init) on small labelled files of each task; evaluate, predict and embed
// on the result; the Hugging Face export of a fine-tuned model predicts exactly as the checkpoint;
// TP=2 (and TP=2 × DP=2) fine-tunes like one process; a resumed run continues exactly; bad input stops with a clear message and exit 1.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';

import { freePort } from '../launch/launch-harness';
import { expectClose, launch, paratrain, paratrainOk as ok, stepLines, tiny, tmp } from '../launch/train-harness';

function logRecords(runDir: string): Array<Record<string, unknown>> {
  return fs
    .readFileSync(path.join(runDir, 'log.jsonl'), 'utf8')
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

// ---- small labelled files: the label is decided by a word the text contains -------------------

const GOOD = ['good', 'great', 'fine', 'happy'];
const BAD = ['bad', 'poor', 'sad', 'awful'];
const FILLER = ['the', 'whale', 'ship', 'sea', 'captain', 'was', 'very', 'and', 'of', 'a', 'day', 'night'];

function words(seed: number, n: number): string[] {
  return Array.from({ length: n }, (_, i) => FILLER[(seed * 7 + i * 5) % FILLER.length]);
}

function sentiment(n: number, offset = 0): string {
  return Array.from({ length: n }, (_, k) => {
    const i = k + offset;
    const positive = i % 2 === 0;
    const w = words(i, 4 + (i % 3));
    w.splice(i % w.length, 0, (positive ? GOOD : BAD)[i % 4]);
    return JSON.stringify({ text: w.join(' '), label: positive ? 'pos' : 'neg' });
  }).join('\n');
}

/** CoNLL: capitalised names are B-PER/I-PER, the rest O. */
function tagged(n: number, offset = 0): string {
  const names = [['Ahab'], ['Ishmael'], ['Queequeg', 'Starbuck'], ['Stubb']];
  return Array.from({ length: n }, (_, k) => {
    const i = k + offset;
    const w = words(i, 4).map((x) => `${x} O`);
    const name = names[i % names.length].map((x, j) => `${x} ${j === 0 ? 'B-PER' : 'I-PER'}`);
    w.splice(1 + (i % 3), 0, ...name);
    return w.join('\n');
  }).join('\n\n');
}

/** SQuAD v2.0: "who was the captain" answered by the one name in the context; every third unanswerable. */
function squad(n: number, offset = 0): string {
  const names = ['Ahab', 'Ishmael', 'Starbuck', 'Stubb'];
  const paragraphs = Array.from({ length: n }, (_, k) => {
    const i = k + offset;
    const name = names[i % names.length];
    const before = words(i, 3 + (i % 4)).join(' ');
    const impossible = i % 3 === 2;
    const context = impossible ? `${before} the sea was calm` : `${before} ${name} was the captain of the ship`;
    const start = before.length + 1;
    return {
      context,
      qas: [
        {
          id: `q${i}`,
          question: 'who was the captain',
          is_impossible: impossible,
          answers: impossible ? [] : [{ text: name, answer_start: start }],
        },
      ],
    };
  });
  return JSON.stringify({ version: 'v2.0', data: [{ title: 'tiny', paragraphs }] });
}

const data = tmp();
const file = (name: string, text: string) => {
  const p = path.join(data, name);
  fs.writeFileSync(p, text + '\n');
  return p;
};
const files = {
  clsTrain: file('cls-train.jsonl', sentiment(64)),
  clsDev: file('cls-dev.jsonl', sentiment(24, 1000)),
  tagTrain: file('tag-train.conll', tagged(48)),
  tagDev: file('tag-dev.conll', tagged(16, 500)),
  qaTrain: file('qa-train.json', squad(48)),
  qaDev: file('qa-dev.json', squad(12, 500)),
};

const pretrained = tmp();
const TASKS = {
  'text-classification': { train: files.clsTrain, dev: files.clsDev },
  'token-classification': { train: files.tagTrain, dev: files.tagDev },
  'question-answering': { train: files.qaTrain, dev: files.qaDev },
} as const;
type Task = keyof typeof TASKS;

/** The tiny model's fine-tuning flags for a task (from the pretrained tiny model). */
function fineTune(task: Task, dir: string, extra: Record<string, string | number> = {}): string[] {
  return tiny('bert', dir, {
    'model.init': path.join(pretrained, 'checkpoints'),
    'model.seq_len': 48,
    'task.name': task,
    'task.train': TASKS[task].train,
    'task.dev': TASKS[task].dev,
    'train.lr': 0.003,
    'train.warmup': 0.1,
    'optimizer.name': 'adamw',
    'train.micro_batch': 8,
    ...extra,
  });
}

beforeAll(() => {
  ok(['train', ...tiny('bert', pretrained, { 'train.steps': 10 })]);
}, 120_000);

describe('text classification', () => {
  const run = tmp();
  beforeAll(() => {
    ok([
      'train',
      ...fineTune('text-classification', run, {
        'train.epochs': 6,
        'train.eval_every': 8,
        'checkpoint.keep_best': 'accuracy',
        'checkpoint.keep': 2,
      }),
    ]);
  }, 120_000);

  it('starts from the pretrained encoder, learns the task, and scores the dev set at each evaluation', () => {
    const records = logRecords(run);
    const init = records.find((r) => r.event === 'init')!;
    expect(init.fresh).toEqual(['classifier.weight', 'classifier.bias']);
    expect(init.dropped).toEqual(expect.arrayContaining(['mlm.decoder.bias', 'nsp.weight']));
    // train.epochs: 6 passes over 64 examples at 8 per step.
    const start = records.find((r) => r.event === 'start')!;
    expect(start.steps).toBe(48);
    const evals = records.filter((r) => r.event === 'eval-task');
    expect(evals.map((r) => r.step)).toEqual([8, 16, 24, 32, 40, 48]);
    const last = evals[evals.length - 1].metrics as Record<string, number>;
    expect(last.accuracy).toBeGreaterThan(0.9);
    // The label list is part of the model: saved with the run's config.
    expect(fs.readFileSync(path.join(run, 'config.yaml'), 'utf8')).toMatch(/labels:\n\s+- neg\n\s+- pos/);
  });

  it('keep_best keeps the checkpoint of the best dev accuracy beside the latest', () => {
    const evals = logRecords(run).filter((r) => r.event === 'eval-task');
    const accuracy = (r: Record<string, unknown>) => (r.metrics as { accuracy: number }).accuracy;
    // The first step reaching the best value (a later tie is not better).
    const top = Math.max(...evals.map(accuracy));
    const bestStep = evals.find((r) => accuracy(r) === top)!.step;
    const root = path.join(run, 'checkpoints');
    const record = JSON.parse(fs.readFileSync(path.join(root, 'best.json'), 'utf8')) as { step: number; value: number };
    expect(record).toMatchObject({ step: bestStep, value: top, metric: 'accuracy' });
    const r = JSON.parse(
      ok(['evaluate', '--checkpoint', path.join(root, 'best'), '--data', files.clsDev, '--json']),
    ) as {
      metrics: { accuracy: number };
    };
    expect(r.metrics.accuracy).toBe(top);
  });

  it('evaluate gives the accuracy the run logged; predict labels new text', () => {
    const ckpt = path.join(run, 'checkpoints');
    const r = JSON.parse(ok(['evaluate', '--checkpoint', ckpt, '--data', files.clsDev, '--json'])) as {
      metrics: { accuracy: number };
      scores: { report: { confusion: number[][]; perClass: Array<{ label: string; support: number }> } };
    };
    const logged = logRecords(run).filter((x) => x.event === 'eval-task');
    expect(r.metrics.accuracy).toBe((logged[logged.length - 1].metrics as { accuracy: number }).accuracy);
    expect(r.scores.report.perClass.map((c) => [c.label, c.support])).toEqual([
      ['neg', 12],
      ['pos', 12],
    ]);
    expect(r.scores.report.confusion.flat().reduce((a, b) => a + b, 0)).toBe(24);
    const text = ok(['evaluate', '--checkpoint', ckpt, '--data', files.clsDev]);
    expect(text).toMatch(/accuracy \d+\.\d\d%/);
    expect(text).toMatch(/confusion \(rows true, columns predicted\)/);
    const p = JSON.parse(
      ok(['predict', '--checkpoint', ckpt, '--json', 'the captain was very good', 'the sea was awful']),
    ) as { predictions: Array<{ label: string; probabilities: Record<string, number> }> };
    expect(p.predictions.map((x) => x.label)).toEqual(['pos', 'neg']);
    for (const x of p.predictions) expect(x.probabilities.pos + x.probabilities.neg).toBeCloseTo(1, 6);
  });

  it('exports as BertForSequenceClassification and, imported back, predicts the same', () => {
    const hf = path.join(tmp(), 'hf');
    ok(['export', '--checkpoint', path.join(run, 'checkpoints'), '--out', hf]);
    const config = JSON.parse(fs.readFileSync(path.join(hf, 'config.json'), 'utf8')) as Record<string, unknown>;
    expect(config.architectures).toEqual(['BertForSequenceClassification']);
    expect(config.id2label).toEqual({ 0: 'neg', 1: 'pos' });
    expect(config.label2id).toEqual({ neg: 0, pos: 1 });
    const back = tmp();
    ok(['import', '--from', hf, '--out', back]);
    const texts = ['the captain was very good', 'the sea was awful', 'a whale and a ship'];
    const a = ok(['predict', '--checkpoint', path.join(run, 'checkpoints'), '--json', ...texts]);
    const b = ok(['predict', '--checkpoint', back, '--json', ...texts]);
    const probs = (s: string) =>
      (JSON.parse(s) as { predictions: Array<{ probabilities: Record<string, number> }> }).predictions.map(
        (x) => x.probabilities,
      );
    // The same weights; the import's seq_len (128, from max_position_embeddings) pads more, which
    // changes only float rounding.
    const [pa, pb] = [probs(a), probs(b)];
    expect(pa.map((p) => p.pos > 0.5)).toEqual([true, false, pa[2].pos > 0.5]);
    pa.forEach((p, i) => {
      expect(Math.abs(p.pos - pb[i].pos)).toBeLessThan(1e-6);
      expect(Math.abs(p.neg - pb[i].neg)).toBeLessThan(1e-6);
    });
  });

  it('embed gives one vector of the hidden size per text, [CLS] or mean-pooled', () => {
    const ckpt = path.join(pretrained, 'checkpoints');
    const cls = JSON.parse(ok(['embed', '--checkpoint', ckpt, '--json', 'the whale', 'the ship'])) as {
      dimension: number;
      vectors: number[][];
    };
    expect(cls.dimension).toBe(32);
    expect(cls.vectors).toHaveLength(2);
    const mean = JSON.parse(ok(['embed', '--checkpoint', ckpt, '--pool', 'mean', '--json', 'the whale'])) as {
      vectors: number[][];
    };
    expect(mean.vectors[0]).not.toEqual(cls.vectors[0]);
    expect(cls.vectors[0]).not.toEqual(cls.vectors[1]);
  });
});

describe('token classification', () => {
  it('tags names (entity F1 on the dev set) and predict returns entities with character offsets', () => {
    const run = tmp();
    ok(['train', ...fineTune('token-classification', run, { 'train.epochs': 8 })]);
    const evals = logRecords(run).filter((r) => r.event === 'eval-task');
    const metrics = evals[evals.length - 1].metrics as Record<string, number>;
    expect(Object.keys(metrics).sort()).toEqual(['f1', 'precision', 'recall', 'token_accuracy']);
    expect(metrics.token_accuracy).toBeGreaterThan(0.9);
    const r = JSON.parse(
      ok(['evaluate', '--checkpoint', path.join(run, 'checkpoints'), '--data', files.tagDev, '--json']),
    ) as { scores: { entities: { perType: Record<string, { support: number }> } } };
    expect(r.scores.entities.perType.PER.support).toBe(16);
    // A gold tag the training data never had is scored as a miss, not refused.
    const unseen = file('tag-unseen.conll', `${tagged(2)}\n\nthe O\nPequod B-SHIP\nsails O`);
    const u = JSON.parse(
      ok(['evaluate', '--checkpoint', path.join(run, 'checkpoints'), '--data', unseen, '--json']),
    ) as {
      unknownTags: number;
      scores: { words: number; entities: { perType: Record<string, { support: number; correct: number }> } };
    };
    expect(u.unknownTags).toBe(1);
    expect(u.scores.entities.perType.SHIP).toMatchObject({ support: 1, correct: 0 });
    const p = JSON.parse(
      ok(['predict', '--checkpoint', path.join(run, 'checkpoints'), '--json', 'the  Ahab was at sea']),
    ) as { predictions: Array<{ tags: Array<{ word: string; start: number }>; entities: unknown[] }> };
    const [first] = p.predictions;
    expect(first.tags.map((t) => [t.word, t.start])).toEqual([
      ['the', 0],
      ['Ahab', 5],
      ['was', 10],
      ['at', 14],
      ['sea', 17],
    ]);
    // Whatever entities it finds are spans of the input at the offsets it gives.
    for (const e of first.entities as Array<{ text: string; start: number; end: number }>)
      expect('the  Ahab was at sea'.slice(e.start, e.end)).toBe(e.text);
  });
});

describe('question answering', () => {
  it('trains on SQuAD v2.0 windows, reports exact match and F1 with HasAns / NoAns, and answers a question', () => {
    const run = tmp();
    ok(['train', ...fineTune('question-answering', run, { 'train.epochs': 6, 'task.max_query_length': 8 })]);
    const r = JSON.parse(
      ok(['evaluate', '--checkpoint', path.join(run, 'checkpoints'), '--data', files.qaDev, '--json']),
    ) as { metrics: Record<string, number>; scores: { squad: { questions: number; hasAns: { questions: number } } } };
    expect(r.scores.squad.questions).toBe(12);
    expect(r.scores.squad.hasAns.questions).toBe(8);
    for (const k of ['exact_match', 'f1', 'has_ans_f1', 'no_ans_f1', 'best_f1'])
      expect(r.metrics[k], k).toBeGreaterThanOrEqual(0);
    const context = 'the whale and a ship Stubb was the captain of the ship';
    const p = JSON.parse(
      ok([
        'predict',
        '--checkpoint',
        path.join(run, 'checkpoints'),
        '--json',
        '--question',
        'who was the captain',
        '--context',
        context,
      ]),
    ) as { predictions: Array<{ answer: string; start: number | null; end: number | null }> };
    const [a] = p.predictions;
    // Whatever it answers is a span of the context at the offsets it gives.
    if (a.start !== null) expect(context.slice(a.start, a.end!)).toBe(a.answer);
    else expect(a.answer).toBe('');
  });
});

describe.each([
  { task: 'text-classification', tp: 2, dp: 1 },
  { task: 'token-classification', tp: 2, dp: 1 },
  { task: 'question-answering', tp: 2, dp: 1 },
  { task: 'text-classification', tp: 2, dp: 2 },
] as const)('$task: TP=$tp × DP=$dp fine-tunes like one process', ({ task, tp, dp }) => {
  it('10 steps of loss and grad norm within 1e-5, and the same dev scores', async () => {
    // DP replicas each take one micro-batch of the global batch: the reference accumulates dp of them.
    const sets = { 'train.steps': 10, 'task.max_query_length': 8 };
    const want = tmp();
    ok(['train', ...fineTune(task, want, { ...sets, 'train.grad_accum': dp })]);
    const dir = tmp();
    const args = fineTune(task, dir, { ...sets, 'parallel.tensor': tp });
    const r = launch(['--nproc-per-node', String(tp * dp), '--master-port', String(await freePort()), ...args]);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expectClose(stepLines(dir), stepLines(want));
    const scores = (d: string) => logRecords(d).find((x) => x.event === 'eval-task')!.metrics as Record<string, number>;
    const [got, ref] = [scores(dir), scores(want)];
    expect(Object.keys(got).sort()).toEqual(Object.keys(ref).sort());
    for (const k of Object.keys(ref)) expect(Math.abs(got[k] - ref[k]), k).toBeLessThan(1e-6);
  });
});

describe('resume', () => {
  it('a fine-tuning run resumed from its step-5 checkpoint continues exactly as the run that went on', () => {
    const sets = { 'train.schedule': 'constant', 'train.warmup': 0, 'checkpoint.every': 5, 'model.dropout': 0.1 };
    const through = tmp();
    ok(['train', ...fineTune('token-classification', through, { ...sets, 'train.steps': 10 })]);
    const resumed = tmp();
    ok(['train', ...fineTune('token-classification', resumed, { ...sets, 'train.steps': 5 })]);
    ok(['train', ...fineTune('token-classification', resumed, { ...sets, 'train.steps': 10 }), '--resume', 'auto']);
    const tail = (d: string) =>
      stepLines(d)
        .filter((l) => l.step > 5)
        .map(({ step, loss, grad_norm }) => ({ step, loss, grad_norm }));
    expect(tail(resumed)).toEqual(tail(through));
    expect(tail(through)).toHaveLength(5);
  });
});

describe('bad input stops with a clear message and exit 1', () => {
  const run = () => tmp();
  it('a dev label the training data does not have', () => {
    const dev = file('cls-dev-bad.jsonl', `${sentiment(3)}\n{"text": "the sea", "label": "neutral"}`);
    const r = paratrain(['train', ...fineTune('text-classification', run(), { 'task.dev': dev, 'train.steps': 2 })]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cls-dev-bad\.jsonl:4: unknown label 'neutral'; the model's labels are 'neg', 'pos'/);
  });

  it('checkpoint.keep_best naming a metric the task does not report, before any step', () => {
    const r = paratrain([
      'train',
      ...fineTune('token-classification', run(), { 'checkpoint.keep_best': 'accuracy', 'train.steps': 2 }),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/keep_best accuracy is not a metric of token-classification; it reports token_accuracy/);
    expect(r.stdout + r.stderr).not.toMatch(/"step":1,/);
  });

  it('an empty training file', () => {
    const empty = file('empty.jsonl', '');
    const r = paratrain(['train', ...fineTune('text-classification', run(), { 'task.train': empty })]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/empty\.jsonl/);
  });

  it('a SQuAD answer_start that does not match its text', () => {
    const bad = squad(2).replace('"answer_start":', '"answer_start": 1, "x":');
    const r = paratrain([
      'train',
      ...fineTune('question-answering', run(), { 'task.train': file('qa-bad.json', bad) }),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/qa-bad\.json.*answer/);
  });

  it('a pretraining checkpoint given to predict, and a task on GPT', () => {
    const r = paratrain(['predict', '--checkpoint', path.join(pretrained, 'checkpoints'), 'the whale']);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/\[ERR_NO_TASK_HEAD\].*pretraining checkpoint: it has no task head/);
    const g = paratrain([
      'train',
      ...tiny('gpt', run(), { 'task.name': 'text-classification', 'task.train': files.clsTrain }),
    ]);
    expect(g.code).toBe(1);
    expect(g.stderr).toMatch(/fine-tunes an encoder/);
  });
});
