// cli-scratch.ts — the data tests' scratch folder (removed after the file's tests) and the
// `paratrain` command run in it with two threads.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll } from 'vitest';

const root = path.join(__dirname, '..', '..');

export function cliScratch(prefix: string) {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  afterAll(() => fs.rmSync(scratch, { recursive: true, force: true }));
  const paratrain = (args: string[]) => {
    const r = spawnSync(process.execPath, [path.join(root, 'bin', 'paratrain.js'), ...args], {
      encoding: 'utf8',
      cwd: scratch,
      env: { ...process.env, PARATRAIN_NUM_THREADS: '2' },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  return { root, scratch, paratrain };
}
