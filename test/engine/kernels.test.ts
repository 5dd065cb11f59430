// Runs the C++ kernel checks (cpp/tests/kernel_tests.cpp): every layer's backward against finite
// differences in double precision, and the float GEMM path against a double reference.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { expect, it } from 'vitest';

import { chooseBlasCoreType } from '../../src/engine/native';

it('every CPU kernel passes its finite-difference check', () => {
  chooseBlasCoreType(); // the same OpenBLAS kernels the addon runs
  const binary = path.join(__dirname, '..', '..', 'build-cmake', 'paratrain_kernel_tests');
  const run = spawnSync(binary, { encoding: 'utf8', env: process.env });
  expect(run.error, `cannot run ${binary}: build it with npm run build:native`).toBeUndefined();
  const summary = /^(\d+) passed, (\d+) failed$/m.exec(run.stdout);
  expect(summary, run.stdout + run.stderr).not.toBeNull();
  expect(Number(summary![2]), run.stdout).toBe(0);
  expect(Number(summary![1])).toBeGreaterThanOrEqual(60);
  expect(run.status).toBe(0);
});
