#!/usr/bin/env node
// bench-safetensors-write.mjs — one checkpoint file write (writeSafetensors: chunked writes, sha256
// while writing, temp file, fsync, rename) from a Float32Array, MB/s with fsync included, beside
// sha256 alone and `dd conv=fsync` of the same size. Uses the compiled dist/ (npm run build:ts).
//
//   node scripts/bench-safetensors-write.mjs [--mb 200] [--reps 7] [--dir /tmp/x]
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const { writeSafetensors } = await import(path.join(root, 'dist', 'checkpoint', 'index.js'));
const { values: o } = parseArgs({
  options: {
    mb: { type: 'string', default: '200' },
    reps: { type: 'string', default: '7' },
    dir: { type: 'string' },
  },
});
const n = Math.floor((Number(o.mb) * 1e6) / 4);
const reps = Number(o.reps);
const work = fs.mkdtempSync(path.join(o.dir ?? os.tmpdir(), 'paratrain-bench-st-'));
const data = new Float32Array(n).map((_, i) => Math.sin(i) * 1e-3);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const rates = [];
for (let r = 0; r < reps; r++) {
  const file = path.join(work, 'w.safetensors');
  const t0 = performance.now();
  const w = await writeSafetensors(file, [{ name: 'w', shape: [n], data }], { format: 'paratrain' });
  rates.push(w.sizeBytes / 1e3 / (performance.now() - t0));
  fs.rmSync(file);
}
const t0 = performance.now();
createHash('sha256').update(new Uint8Array(data.buffer)).digest();
const hashRate = (n * 4) / 1e3 / (performance.now() - t0);
const dd = spawnSync(
  'dd',
  ['if=/dev/zero', `of=${path.join(work, 'dd')}`, 'bs=4M', `count=${Math.ceil((n * 4) / 4194304)}`, 'conv=fsync'],
  { encoding: 'utf8' },
);
const m = /(\d+) bytes.*copied, ([\d.]+) s/.exec(dd.stderr);
fs.rmSync(work, { recursive: true, force: true });

const f = (x) => x.toFixed(0);
process.stdout.write(
  `writeSafetensors ${f((n * 4) / 1e6)} MB: median ${f(median(rates))} MB/s (min ${f(Math.min(...rates))}, ` +
    `max ${f(Math.max(...rates))}; ${reps} runs, fsync included)\n` +
    `  sha256 alone ${f(hashRate)} MB/s; dd conv=fsync ${m ? f(Number(m[1]) / 1e6 / Number(m[2])) : '?'} MB/s\n`,
);
