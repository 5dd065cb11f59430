#!/usr/bin/env node
// plan-vs-rss.mjs — checks `paratrain plan`'s fp32 memory against reality: for each preset it runs
// a few real training steps (`paratrain bench`: forward, backward, optimizer on random tokens, in a
// fresh process) and compares the process's peak RSS with the plan's predicted total for the same
// shape. First a tiny model measures the runtime (Node.js, the addon and its libraries: its RSS
// minus its predicted buffers), the figure the plan's CPU runtime constant comes from.
// Usage: node scripts/plan-vs-rss.mjs [preset ...] (after npm run build:ts); PARATRAIN_NUM_THREADS
// (default 2) sets the engine's threads in both.
import { spawnSync } from 'node:child_process';
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

function measure(name) {
  const args = RUNS[name];
  if (!args) throw new Error(`unknown run '${name}': ${Object.keys(RUNS).join(', ')}`);
  const plan = paratrain(['plan', ...args, '--json']);
  const layout = plan.layouts[0];
  const bench = paratrain(['bench', ...args, '--steps', '2', '--warmup', '1', '--json']);
  return { name, plan, layout, engine: layout.totalBytes - layout.memory.runtime, rss: bench.peak_rss_mb * MiB };
}

const tiny = measure('tiny');
const threads = Number(env.PARATRAIN_NUM_THREADS);
process.stdout.write(
  `runtime: the tiny model's peak RSS ${(tiny.rss / MiB).toFixed(0)} MiB − its predicted buffers ` +
    `${(tiny.engine / MiB).toFixed(1)} MiB = ${((tiny.rss - tiny.engine) / MiB).toFixed(0)} MiB of Node.js, the addon and its ` +
    `libraries; the plan assumes ${(tiny.layout.memory.runtime / MiB).toFixed(0)} MiB with ${threads} threads ` +
    `(80 MiB + 32 MiB of OpenBLAS buffer per thread)\n\n` +
    '| preset | shape | params | predicted engine MiB | + runtime = predicted MiB | measured peak RSS MiB | error |\n' +
    '|---|---|---|---|---|---|---|\n',
);
const names = process.argv.slice(2).length ? process.argv.slice(2) : ['bert-mini', 'gpt-mini', 'gpt2-124m'];
for (const name of names) {
  const r = measure(name);
  const predicted = r.layout.totalBytes;
  process.stdout.write(
    `| ${name} | b${r.plan.microBatch} s${r.plan.seqLen} | ${(r.plan.params / 1e6).toFixed(2)}M | ` +
      `${(r.engine / MiB).toFixed(0)} | ${(predicted / MiB).toFixed(0)} | ${(r.rss / MiB).toFixed(0)} | ` +
      `${(((predicted - r.rss) / r.rss) * 100).toFixed(1)}% |\n`,
  );
}
