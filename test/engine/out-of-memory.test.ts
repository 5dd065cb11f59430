// Running out of memory inside the engine: under an address-space limit (ulimit -v) that the memory
// estimate cannot see, a model it accepts fails with ERR_OUT_OF_MEMORY naming the buffer that did
// not fit, exit 1 and no native crash (a bare std::bad_alloc used to name nothing).
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';

import { bin, root } from '../launch/launch-harness';
import { tiny, tmp } from '../launch/train-harness';

/** `paratrain train` with the address space limited to `limitKiB` (node itself starts in under 1 GiB). */
function trainUnderLimit(limitKiB: number, sets: Record<string, string | number>) {
  const args = ['train', ...tiny('gpt', tmp(), { 'train.steps': 1, ...sets })];
  const quoted = [process.execPath, bin, ...args].map((a) => `'${a}'`).join(' ');
  const r = spawnSync('bash', ['-c', `ulimit -v ${limitKiB} && exec ${quoted}`], {
    cwd: root,
    encoding: 'utf8',
    timeout: 240_000,
  });
  return { code: r.status, signal: r.signal, stderr: r.stderr };
}

function expectOutOfMemory(r: ReturnType<typeof trainUnderLimit>, named: RegExp) {
  expect(r.signal).toBeNull();
  expect(r.stderr).not.toMatch(/terminate called|std::bad_alloc|FATAL ERROR|Aborted|core dumped/);
  expect(r.code).toBe(1);
  expect(r.stderr).toContain('paratrain: error [ERR_OUT_OF_MEMORY]: out of memory allocating ');
  expect(r.stderr).toMatch(named);
  expect(r.stderr).toMatch(/Lower .*parallel.tensor/);
}

describe('an engine larger than the process may allocate', () => {
  // 403M parameters: 1.5 GiB each for parameters and gradients, 3 GiB of moments; the estimate
  // (some 11 GiB with the checkpoint copy) passes on any machine that runs this suite.
  const big = { 'model.layers': 8, 'model.hidden': 2048, 'model.heads': 16, 'model.ffn': 8192 };

  it('names the optimizer moments when parameters and gradients fit but the moments do not', () => {
    const r = trainUnderLimit(5_000_000, big);
    expectOutOfMemory(r, /allocating the optimizer's moments \(3\.0 GiB\)/);
  });

  it('names the parameters when even they do not fit', () => {
    const r = trainUnderLimit(2_200_000, big);
    expectOutOfMemory(r, /allocating the parameters \(1\.5 GiB\)/);
  });

  it("names the checkpoint's host copy when the engine fits but the copy does not (a V8 RangeError)", () => {
    const r = trainUnderLimit(9_500_000, { ...big, 'checkpoint.every': 1 });
    expectOutOfMemory(r, /allocating the checkpoint's host copy of the parameters and moments \(4\.5 GiB\)/);
  });

  it('names the layer whose activations do not fit (a huge micro-batch)', () => {
    const r = trainUnderLimit(3_000_000, {
      'model.hidden': 256,
      'model.heads': 4,
      'model.ffn': 1024,
      'model.seq_len': 256,
      'train.micro_batch': 512,
    });
    expectOutOfMemory(r, /allocating the activations of layer \d+ of 2 \(a request of [\d.]+ MiB\)/);
  });
});
