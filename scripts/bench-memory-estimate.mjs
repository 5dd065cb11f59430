#!/usr/bin/env node
// bench-memory-estimate.mjs — the engine's memory estimate (src/engine/memory.ts) beside what a real
// engine allocates: for each config, a fresh process builds the engine and reports how much its
// resident memory grew, against the estimate without the checkpoint copy (which the trainer, not
// the engine, allocates). Needs the TypeScript build (npm run build:ts).
//
//   node scripts/bench-memory-estimate.mjs [--config bert-mini] [--set key=value ...] [--json]
//   node scripts/bench-memory-estimate.mjs --suite     # the configs measured in docs/configuration.md
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const dist = (...p) => JSON.stringify(path.join(root, 'dist', ...p));

function measure(config, sets) {
  const program = `
    const { loadConfig } = require(${dist('config', 'load.js')});
    const { estimateEngineMemory } = require(${dist('engine', 'memory.js')});
    const { createEngine } = require(${dist('engine', 'engine.js')});
    const c = loadConfig({ config: ${JSON.stringify(config)}, set: ${JSON.stringify([...sets, 'train.threads=1'])} });
    const e = estimateEngineMemory(c);
    const before = process.memoryUsage().rss;
    createEngine(c).initParams(1);
    process.stdout.write(JSON.stringify({ estimated: e.total - e.checkpointCopy, allocated: process.memoryUsage().rss - before }));`;
  const r = spawnSync(process.execPath, ['-e', program], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${config} ${sets.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout);
}

const args = process.argv.slice(2);
const json = args.includes('--json');
const runs = args.includes('--suite')
  ? [
      ['bert-mini', []],
      ['bert-mini', ['train.micro_batch=32', 'model.seq_len=256']],
      ['bert-mini', ['model.layers=8', 'model.hidden=512', 'model.heads=8', 'model.ffn=2048']],
      ['gpt-mini', []],
      ['electra-mini', []],
    ]
  : [
      [
        args.includes('--config') ? args[args.indexOf('--config') + 1] : 'bert-mini',
        args.flatMap((a, i) => (a === '--set' ? [args[i + 1]] : [])),
      ],
    ];
const results = runs.map(([config, sets]) => ({ config, sets, ...measure(config, sets) }));
if (json) process.stdout.write(JSON.stringify(results, null, 2) + '\n');
else
  for (const r of results)
    process.stdout.write(
      `${[r.config, ...r.sets].join(' ')}: estimated ${(r.estimated / 1e6).toFixed(0)} MB, allocated ` +
        `${(r.allocated / 1e6).toFixed(0)} MB (${(r.allocated / r.estimated).toFixed(2)})\n`,
    );
