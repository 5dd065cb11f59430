// launch-harness.ts — helpers for tests that run real launchers: free ports, a tiny config, a
// launcher process (the fixture launcher runs the fixture worker), and what its workers wrote.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import type { Assignment } from '../../src/worker/control';

export const root = path.join(__dirname, '..', '..');
export const bin = path.join(root, 'bin', 'paratrain.js');
export const fixtureLauncher = path.join(root, 'test', 'fixtures', 'launch', 'launcher.mjs');
const cacheDir = path.join(os.tmpdir(), 'paratrain-launch-test-cache');

export const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-launch-'));

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as net.AddressInfo).port;
      server.close(() => resolve(port));
    });
  });
}

/** A config small enough that preparing its data takes a moment; timing flags fast enough for tests. */
/**
 * The secret the tests' multi-node jobs share (a multi-node launch needs one; a single-node job
 * makes its own). Written once per test process, readable by this user only.
 */
export const sharedKeyFile = (() => {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'paratrain-key-')), 'job.key');
  fs.writeFileSync(file, 'a secret the test nodes share, 32+ bytes\n', { mode: 0o600 });
  return file;
})();

/** A multi-node job's launch flags gain the shared key, unless they say how to authenticate. */
function withNodeKey(args: string[]): string[] {
  const at = args.indexOf('--nnodes');
  const multiNode = at >= 0 && args[at + 1] !== '1';
  const saysAuth = args.includes('--auth-key-file') || args.includes('--no-auth');
  return multiNode && !saysAuth ? [...args, '--auth-key-file', sharedKeyFile] : args;
}

export function jobArgs(runDir: string, port: number, extra: string[] = []): string[] {
  const sets = {
    'model.layers': 1,
    'model.hidden': 32,
    'model.heads': 2,
    'model.ffn': 64,
    'model.vocab_size': 800,
    'model.seq_len': 32,
    'train.micro_batch': 4,
    'train.steps': 3,
    'data.max_documents': 30,
    'data.cache_dir': cacheDir,
    'run.dir': runDir,
  };
  return [
    'launch',
    '--config',
    'bert-mini',
    ...Object.entries(sets).flatMap(([k, v]) => ['--set', `${k}=${v}`]),
    '--master-port',
    String(port),
    '--heartbeat-interval',
    '0.2',
    '--heartbeat-timeout',
    '3',
    '--rendezvous-timeout',
    '60',
    ...withNodeKey(extra),
  ];
}

export interface Launcher {
  proc: ChildProcess;
  output(): { stdout: string; stderr: string };
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>;
}

/** Starts `paratrain launch` with the fixture worker (or the real CLI with `program: bin`). */
export function startLauncher(args: string[], env: NodeJS.ProcessEnv = {}, program = fixtureLauncher): Launcher {
  const proc = spawn(process.execPath, [program, ...args], {
    cwd: root,
    env: { ...process.env, PARATRAIN_NUM_THREADS: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '',
    stderr = '';
  proc.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>(
    (resolve) => proc.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  return { proc, output: () => ({ stdout, stderr }), exited };
}

/** Node 0 and node 1 of one job on loopback: two launchers (the fixture worker by default). */
export async function startTwoNodes(
  dir: string,
  env: NodeJS.ProcessEnv,
  nprocPerNode: number,
  flags: string[] = [],
  port?: number,
): Promise<[Launcher, Launcher]> {
  const master = port ?? (await freePort());
  const args = (node: number) =>
    jobArgs(dir, master, [
      '--nnodes',
      '2',
      '--node-rank',
      String(node),
      '--nproc-per-node',
      String(nprocPerNode),
      ...flags,
    ]);
  return [startLauncher(args(0), env), startLauncher(args(1), env)];
}

/** Runs the real `paratrain` CLI to completion. */
export function paratrain(args: string[]) {
  const r = spawnSync(process.execPath, [bin, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export async function waitFor(what: string, ok: () => boolean, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface WorkerRecord {
  pid: number;
  assignment: Assignment;
  env: Record<string, string>;
}

/** What each fixture worker wrote to FIXTURE_OUT_DIR once it had its assignment. */
export function workerRecords(outDir: string): Map<number, WorkerRecord> {
  const records = new Map<number, WorkerRecord>();
  for (const f of fs.readdirSync(outDir).filter((n) => n.endsWith('.json'))) {
    try {
      records.set(Number(f.slice(0, -5)), JSON.parse(fs.readFileSync(path.join(outDir, f), 'utf8')) as WorkerRecord);
    } catch {
      // being written
    }
  }
  return records;
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
