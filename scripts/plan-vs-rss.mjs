#!/usr/bin/env node
// plan-vs-rss.mjs — checks `paratrain plan`'s fp32 memory against reality: for each preset it runs
// a few real training steps (`paratrain bench`: forward, backward, optimizer on random tokens, in a
// fresh process) and compares the process's peak RSS with the plan's predicted total for the same
// shape, less the trainer's save copy (bench has none). First a tiny model measures the runtime
// (Node.js, the addon and its libraries: its RSS minus its predicted buffers), the figure the plan's
// CPU runtime constant comes from. With --train it also runs `paratrain train` (3 steps on the
// bundled corpus's first 200 documents, the final checkpoint save included) under /usr/bin/time and
// compares that peak RSS with the whole predicted total; the data pipeline (tokenizer, token store)
// is not predicted and comes on top.
// Usage: node scripts/plan-vs-rss.mjs [--train] [preset ...] (after npm run build:ts);
// PARATRAIN_NUM_THREADS (default 2) sets the engine's threads everywhere.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'bin', 'paratrain.js');
const env = { ...process.env, PARATRAIN_NUM_THREADS: process.env.PARATRAIN_NUM_THREADS ?? '2' };
const MiB = 2 ** 20;

// Shapes small enough for a 2-core machine: the presets' own, except gpt2-124m's micro-batch.
const RUNS = {
  tiny: [
    '--config',
    'bert-mini',
    ...['model.layers=1', 'model.hidden=32', 'model.heads=2', 'model.ffn=64', 'model.vocab_size=800'].flatMap((s) => [
      '--set',
      s,
    ]),
    ...['model.seq_len=32', 'train.micro_batch=4'].flatMap((s) => ['--set', s]),
  ],
  'bert-mini': ['--config', 'bert-mini'],
  'gpt-mini': ['--config', 'gpt-mini'],
  'gpt2-124m': ['--config', 'gpt2-124m', '--set', 'train.micro_batch=1'],
};

function paratrain(args) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`paratrain ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const withTrain = process.argv.includes('--train');
const trainCache = fs.mkdtempSync(path.join(os.tmpdir(), 'plan-vs-rss-'));

/** Peak RSS of a short `paratrain train` run, bytes (GNU time's %M, in KiB). */
function trainRss(args) {
  const set = ['train.steps=3', 'train.eval_every=0', 'checkpoint.every=0', 'data.max_documents=200'];
  set.push(`data.cache_dir=${trainCache}`, `run.dir=${fs.mkdtempSync(path.join(trainCache, 'run-'))}`);
  const r = spawnSync(
    '/usr/bin/time',
    ['-f', '%M', process.execPath, bin, 'train', ...args, ...set.flatMap((x) => ['--set', x])],
    {
      cwd: root,
      env,
      encoding: 'utf8',
    },
  );
  if (r.status !== 0) throw new Error(`paratrain train ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return Number(r.stderr.trim().split('\n').pop()) * 1024;
}

function measure(name) {
  const args = RUNS[name];
  if (!args) throw new Error(`unknown run '${name}': ${Object.keys(RUNS).join(', ')}`);
  const plan = paratrain(['plan', ...args, '--json']);
  const layout = plan.layouts[0];
  const bench = paratrain(['bench', ...args, '--steps', '2', '--warmup', '1', '--json']);
  const train = withTrain ? trainRss(args) : undefined;
  const m = layout.memory;
  const engine = layout.totalBytes - m.runtime - m.saveCopy;
  return { name, plan, layout, engine, bench: engine + m.runtime, rss: bench.peak_rss_mb * MiB, train };
}

const tiny = measure('tiny');
const threads = Number(env.PARATRAIN_NUM_THREADS);
process.stdout.write(
  `runtime: the tiny model's peak RSS ${(tiny.rss / MiB).toFixed(0)} MiB − its predicted buffers ` +
    `${(tiny.engine / MiB).toFixed(1)} MiB = ${((tiny.rss - tiny.engine) / MiB).toFixed(0)} MiB of Node.js, the addon and its ` +
    `libraries; the plan assumes ${(tiny.layout.memory.runtime / MiB).toFixed(0)} MiB with ${threads} threads ` +
    `(80 MiB + 32 MiB of OpenBLAS buffer per thread)\n\n` +
    '| preset | shape | params | predicted engine MiB | + runtime = predicted bench MiB | bench peak RSS MiB | error |' +
    (withTrain ? ' + save copy = predicted train MiB | train peak RSS MiB | error |\n' : '\n') +
    '|---|---|---|---|---|---|---|' +
    (withTrain ? '---|---|---|\n' : '\n'),
);
const given = process.argv.slice(2).filter((a) => a !== '--train');
const names = given.length ? given : ['bert-mini', 'gpt-mini', 'gpt2-124m'];
for (const name of names) {
  const r = measure(name);
  const error = (predicted, measured) =>
    `${predicted >= measured ? '+' : ''}${(((predicted - measured) / measured) * 100).toFixed(1)}%`;
  const total = r.layout.totalBytes;
  process.stdout.write(
    `| ${name} | b${r.plan.microBatch} s${r.plan.seqLen} | ${(r.plan.params / 1e6).toFixed(2)}M | ` +
      `${(r.engine / MiB).toFixed(0)} | ${(r.bench / MiB).toFixed(0)} | ${(r.rss / MiB).toFixed(0)} | ` +
      `${error(r.bench, r.rss)} |` +
      (r.train !== undefined
        ? ` ${(total / MiB).toFixed(0)} | ${(r.train / MiB).toFixed(0)} | ${error(total, r.train)} |\n`
        : '\n'),
  );
}
