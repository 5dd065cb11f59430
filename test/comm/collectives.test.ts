// Runs the C++ ring-collective checks (cpp/tests/comm_tests.cpp): ZmqRingCommunicator across 2, 3
// and 4 forked processes over ipc and tcp — every collective against a reference, bitwise-identical
// results on every rank, and the timeout, connect and protocol errors.
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { expect, it } from 'vitest';

it('the zmq ring collectives are correct, identical across ranks, and fail fast', () => {
  const binary = path.join(__dirname, '..', '..', 'build-cmake', 'paratrain_comm_tests');
  const run = spawnSync(binary, { encoding: 'utf8', env: process.env, timeout: 120000 });
  expect(run.error, `cannot run ${binary}: build it with npm run build:native`).toBeUndefined();
  const summary = /^(\d+) passed, (\d+) failed$/m.exec(run.stdout);
  expect(summary, run.stdout + run.stderr).not.toBeNull();
  expect(Number(summary![2]), run.stdout).toBe(0);
  expect(Number(summary![1])).toBeGreaterThanOrEqual(160);
  expect(run.status).toBe(0);
});
