#!/usr/bin/env node
// gpu-compare.mjs — one whole training step of bert-mini and gpt-mini through the CUDA addon against
// the CPU engine, on the same fresh random batch and the same initial weights (both drawn on the
// host by the same code): the loss, the logits, every tensor's gradient and the weights after one
// optimizer step, as ‖cuda − cpu‖ / ‖cpu‖. Dropout stays on (both backends draw the same masks).
// Part of the device run (scripts/gpu-check.sh); prints one JSON line per check and exits 1 when any
// exceeds its tolerance (fp32: 1e-5 on the loss, the logits and all gradients together, 1e-4 on the
// worst single tensor; TF32 is off. bf16 / fp16 GEMMs: 1e-2 on each, the worst tensor too). fp16 runs
// its step at a loss scale of 2^10, divided out of the gradients before they are compared.
//
// Usage: node scripts/gpu-compare.mjs [--models bert-mini,gpt-mini] [--precision fp32|bf16|fp16]
//   CUDA (in that precision) against the fp32 CPU engine. --self-test: CPU against CPU (must be
//   exactly 0; checks this script on a machine without a GPU).
import { createRequire } from 'node:module';
import * as path from 'node:path';
import process from 'node:process';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const dist = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const { loadConfig } = require(path.join(dist, 'config', 'load.js'));
const { createEngine } = require(path.join(dist, 'engine', 'engine.js'));
const { randomBatch } = require(path.join(dist, 'bench', 'bench.js'));

const args = process.argv.slice(2);
const selfTest = args.includes('--self-test');
const modelsArg = args.indexOf('--models');
const models = modelsArg >= 0 ? args[modelsArg + 1].split(',') : ['bert-mini', 'gpt-mini'];
const precisionArg = args.indexOf('--precision');
const precision = precisionArg >= 0 ? args[precisionArg + 1] : 'fp32';
if (!['fp32', 'bf16', 'fp16'].includes(precision)) throw new Error(`--precision ${precision}: use fp32, bf16 or fp16`);
if (selfTest && precision !== 'fp32') throw new Error('--self-test compares fp32 CPU engines only');
const TOL =
  precision === 'fp32' ? { loss: 1e-5, tensor: 1e-4, logits: 1e-5 } : { loss: 1e-2, tensor: 1e-2, logits: 1e-2 };
const lossScale = precision === 'fp16' ? 1024 : 1;

function relErr(a, b) {
  let num = 0,
    den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  return den > 0 ? Math.sqrt(num / den) : Math.sqrt(num);
}

// The worst tensor of a flat array in the engine's layout, and the whole array's error.
function perTensor(table, got, want) {
  let worst = { name: '', err: 0 };
  for (const p of table) {
    const e = relErr(got.subarray(p.offset, p.offset + p.numel), want.subarray(p.offset, p.offset + p.numel));
    if (e > worst.err) worst = { name: p.name, err: e };
  }
  return { whole: relErr(got, want), worst };
}

let failed = 0;
function report(check) {
  check = { precision, ...check };
  const ok = check.err <= check.tol && Number.isFinite(check.err);
  if (!ok) failed++;
  process.stdout.write(JSON.stringify({ ...check, ok }) + '\n');
}

for (const model of models) {
  const c = loadConfig({ config: model, set: ['train.micro_batch=4', 'optimizer.name=adamw'] });
  const reference = createEngine({ ...c, device: 'cpu' });
  let subject;
  try {
    subject = createEngine({ ...c, device: selfTest ? 'cpu' : 'cuda', precision });
  } catch (e) {
    process.stdout.write(
      JSON.stringify({ model, skipped: `${e.code ?? 'Error'}: ${e.message.split('\n')[0]}` }) + '\n',
    );
    process.exitCode = 77;
    continue;
  }
  const table = reference.paramTable();
  for (const e of [reference, subject]) e.initParams(c.train.seed);
  report({ model, check: 'initial weights', err: relErr(subject.getParams(), reference.getParams()), tol: 0 });
  const batch = randomBatch(c, 7);
  const [r, s] = [
    await reference.forwardBackward([batch], { step: 3 }),
    await subject.forwardBackward([batch], { step: 3, lossScale }),
  ];
  report({
    model,
    check: 'loss',
    want: r.loss,
    got: s.loss,
    err: Math.abs(s.loss - r.loss) / Math.abs(r.loss),
    tol: TOL.loss,
  });
  const grads = perTensor(
    table,
    subject.getGrads().map((g) => g / lossScale),
    reference.getGrads(),
  );
  report({ model, check: 'gradients (all)', err: grads.whole, tol: TOL.loss });
  report({ model, check: `gradients (worst: ${grads.worst.name})`, err: grads.worst.err, tol: TOL.tensor });
  const [rl, sl] = [await reference.logits(batch), await subject.logits(batch)];
  report({ model, check: 'logits', err: relErr(sl.logits, rl.logits), tol: TOL.logits });
  await reference.trainStep([batch], { step: 4, lr: 1e-3 });
  await subject.trainStep([batch], { step: 4, lr: 1e-3, lossScale });
  const after = perTensor(table, subject.getParams(), reference.getParams());
  report({
    model,
    check: `weights after an AdamW step (worst: ${after.worst.name})`,
    err: after.worst.err,
    tol: TOL.loss,
  });
  if (selfTest && [grads.whole, after.whole].some((e) => e !== 0)) {
    process.stdout.write(
      JSON.stringify({ model, check: 'self-test: CPU against CPU must agree exactly', ok: false }) + '\n',
    );
    failed++;
  }
}
if (failed > 0) process.exitCode = 1;
