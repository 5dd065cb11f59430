#!/usr/bin/env node
// bench-checkpoint.mjs — checkpoint throughput per rank beside the disk's own write bandwidth, and
// how much of a save async mode hides behind training. Every figure comes from real runs of
// `paratrain launch` / `paratrain train` in one invocation:
//   * dd: one writer, then one per rank at once (conv=fsync, like a shard write), MB/s each;
//   * save: every rank's `checkpoint` log records (bytes, write_ms incl. fsync) → MB/s per rank;
//   * load: a resume of the last checkpoint, every rank's `resume` record (read_bytes, read_ms);
//   * hidden share: the step loop's time with no periodic saves (T0), synchronous saves (Ts) and
//     async saves (Ta): 1 − (Ta − T0) / (Ts − T0).
//
//   node scripts/bench-checkpoint.mjs [--config bert-mini] [--tp 2] [--dp 2] [--steps 12] [--every 3]
//        [--threads 1] [--dir /tmp/x] [--json]
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import process from 'node:process';
import { parseArgs } from 'node:util';

const root = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
const bin = path.join(root, 'bin', 'paratrain.js');
const { values: o } = parseArgs({
  options: {
    config: { type: 'string', default: 'bert-mini' },
    tp: { type: 'string', default: '2' },
    dp: { type: 'string', default: '2' },
    steps: { type: 'string', default: '12' },
    every: { type: 'string', default: '3' },
    threads: { type: 'string', default: '1' },
    dir: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const tp = Number(o.tp),
  dp = Number(o.dp),
  ranks = tp * dp,
  steps = Number(o.steps),
  every = Number(o.every);
const work = o.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-bench-ckpt-'));
fs.mkdirSync(work, { recursive: true });
const say = (s) => process.stderr.write(`${s}\n`);
const print = (s) => process.stdout.write(`${s}\n`);

function dd(file, mb) {
  const r = spawnSync('dd', ['if=/dev/zero', `of=${file}`, 'bs=4M', `count=${Math.ceil(mb / 4)}`, 'conv=fsync'], {
    encoding: 'utf8',
  });
  fs.rmSync(file, { force: true });
  const m = /(\d+) bytes.*copied, ([\d.]+) s/.exec(r.stderr);
  if (!m) throw new Error(`dd failed: ${r.stderr}`);
  return Number(m[1]) / 1e6 / Number(m[2]);
}

/** `ranks` dd writers at once (one per rank, like a save), MB/s each. */
function ddParallel(mb) {
  const script = Array.from(
    { length: ranks },
    (_, i) => `dd if=/dev/zero of=${work}/dd-${i} bs=4M count=${Math.ceil(mb / 4)} conv=fsync 2>${work}/dd-${i}.err &`,
  ).join('\n');
  spawnSync('bash', ['-c', `${script}\nwait`]);
  const rates = [];
  for (let i = 0; i < ranks; i++) {
    const m = /(\d+) bytes.*copied, ([\d.]+) s/.exec(fs.readFileSync(`${work}/dd-${i}.err`, 'utf8'));
    rates.push(Number(m[1]) / 1e6 / Number(m[2]));
    fs.rmSync(`${work}/dd-${i}`, { force: true });
  }
  return rates;
}

function run(name, sets, extra = []) {
  const dir = path.join(work, name);
  const all = {
    'train.steps': steps,
    'train.eval_every': 0,
    'train.eval_batches': 1,
    'train.log_every': 1,
    'train.threads': Number(o.threads),
    'parallel.tensor': tp,
    'run.dir': dir,
    ...sets,
  };
  const setArgs = Object.entries(all).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
  const args =
    ranks === 1
      ? [bin, 'train', '--config', o.config, ...setArgs, ...extra]
      : [
          bin,
          'launch',
          '--nproc-per-node',
          String(ranks),
          '--master-port',
          String(29700 + Math.floor(Math.random() * 200)),
          '--config',
          o.config,
          ...setArgs,
          ...extra,
        ];
  const t0 = Date.now();
  const r = spawnSync(process.execPath, args, {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, PARATRAIN_NUM_THREADS: o.threads },
  });
  if (r.status !== 0) throw new Error(`${name} failed:\n${r.stderr.slice(-3000)}`);
  return { dir, wallMs: Date.now() - t0 };
}

/** Every JSON record of every rank (rank 0's log.jsonl, the others' logs/rank-N.log). */
function records(dir) {
  const files = [path.join(dir, 'log.jsonl')];
  const logs = path.join(dir, 'logs');
  if (fs.existsSync(logs))
    for (const f of fs.readdirSync(logs)) if (!f.startsWith('rank-00000')) files.push(path.join(logs, f));
  const out = [];
  for (const f of files)
    for (const line of fs.readFileSync(f, 'utf8').split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line));
      } catch {
        /* not a record */
      }
    }
  return out;
}

/** The step loop's time: elapsed_ms at the last step (the final save and eval come after). */
const loopMs = (dir) =>
  Math.max(
    ...records(dir)
      .filter((r) => typeof r.elapsed_ms === 'number' && r.step === steps)
      .map((r) => r.elapsed_ms),
  );
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

say(`work dir ${work}; ${o.config}, TP ${tp} × DP ${dp}, ${steps} steps, a save every ${every}`);
const sync = run('sync', { 'checkpoint.every': every });
const saves = records(sync.dir).filter((r) => r.event === 'checkpoint');
const perRankMb = saves.map((r) => r.bytes / 1e6);
const saveRates = saves.map((r) => r.bytes / 1e3 / r.write_ms);
const shardMb = median(perRankMb);
say(`save: ${saves.length} shard writes, median ${shardMb.toFixed(1)} MB per rank`);
const ddOne = dd(path.join(work, 'dd-one'), Math.max(64, shardMb * ranks));
const ddEach = ddParallel(Math.max(16, shardMb));

const last = Math.floor(steps / every) * every;
const load = run('load', { 'train.steps': last + 1, 'checkpoint.every': 0 }, [
  '--resume',
  path.join(sync.dir, 'checkpoints', `step-${String(last).padStart(7, '0')}`),
]);
const loads = records(load.dir).filter((r) => r.event === 'resume' && r.read_bytes);
const loadRates = loads.map((r) => r.read_bytes / 1e3 / Math.max(r.read_ms, 1));

const none = run('none', { 'checkpoint.every': 0 });
const asyncRun = run('async', { 'checkpoint.every': every, 'checkpoint.async': true });
const [t0, ts, ta] = [loopMs(none.dir), loopMs(sync.dir), loopMs(asyncRun.dir)];
const hidden = ts > t0 ? 1 - (ta - t0) / (ts - t0) : NaN;

const result = {
  config: o.config,
  layout: { tp, dp },
  steps,
  every,
  shardMbPerRank: shardMb,
  ddOneWriterMBps: ddOne,
  ddPerWriterMBps: median(ddEach),
  saveMBpsPerRank: { median: median(saveRates), min: Math.min(...saveRates), max: Math.max(...saveRates) },
  loadMBpsPerRank: {
    median: median(loadRates),
    min: Math.min(...loadRates),
    max: Math.max(...loadRates),
    cache: 'warm',
  },
  loopMs: { noSaves: t0, sync: ts, async: ta },
  hiddenShare: hidden,
};
if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
else {
  const f = (x) => x.toFixed(0);
  print(`checkpoint benchmark: ${o.config}, TP ${tp} × DP ${dp} (${ranks} ranks), ${f(shardMb)} MB per rank per save`);
  print(`  dd write (conv=fsync):  1 writer ${f(ddOne)} MB/s; ${ranks} at once ${f(median(ddEach))} MB/s each`);
  print(
    `  save per rank:          median ${f(result.saveMBpsPerRank.median)} MB/s (min ${f(result.saveMBpsPerRank.min)}, max ${f(result.saveMBpsPerRank.max)}), fsync included`,
  );
  print(`  load per rank:          median ${f(result.loadMBpsPerRank.median)} MB/s (page cache warm)`);
  print(`  step loop, ${steps} steps: no saves ${f(t0)} ms, sync saves ${f(ts)} ms, async saves ${f(ta)} ms`);
  print(`  share of save time hidden by async: ${(hidden * 100).toFixed(0)}%`);
}
if (!o.dir) fs.rmSync(work, { recursive: true, force: true });
