// The data plane of a multi-node job, attacked from outside it (issue 16: one random frame sent to
// a ring port used to kill a job, and big frames into an unread socket grew a worker to 2.8 GB).
// Two real launchers on this host, so every worker listens on TCP for its DP ring (the ranks reach
// each other over ipc, having one host name; tcp+curve traffic itself is cpp/tests/comm_tests.cpp's);
// a stranger without the job's key keeps sending to every one of those ports while they train.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';

import { bin, freePort, sharedKeyFile, startLauncher, type Launcher } from './launch-harness';
import { expectClose, stepLines, tiny, tmp, trainAlone } from './train-harness';

const SETS = { 'parallel.tensor': 2, 'train.steps': 12 };

/** Every descendant of these processes. */
function descendants(pids: number[]): Set<number> {
  const all = new Set<number>();
  const queue = [...pids];
  while (queue.length) {
    const pid = queue.pop()!;
    const children = spawnSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' })
      .stdout.split('\n')
      .filter(Boolean);
    for (const c of children.map(Number))
      if (!all.has(c)) {
        all.add(c);
        queue.push(c);
      }
  }
  return all;
}

/** The TCP ports the workers of these launchers listen on (their ring sockets). */
function workerTcpPorts(launchers: Launcher[]): number[] {
  const workers = descendants(launchers.map((l) => l.proc.pid!));
  const ports: number[] = [];
  for (const line of spawnSync('ss', ['-Hltnp'], { encoding: 'utf8' }).stdout.split('\n')) {
    const pid = /pid=(\d+)/.exec(line)?.[1];
    const port = /127\.0\.0\.1:(\d+)/.exec(line)?.[1];
    if (pid && port && workers.has(Number(pid))) ports.push(Number(port));
  }
  return ports;
}

/** A ring header as the parser expects it (magic, op, call, seq, bytes), and garbage after it. */
function ringLikeFrames(): Buffer[][] {
  const header = Buffer.alloc(32);
  header.writeUInt32LE(0x5054524e, 0);
  header.writeUInt32LE(2, 4); // all-reduce
  header.writeBigUInt64LE(1n, 8);
  return [
    [header, Buffer.alloc(64, 7)],
    [Buffer.from('random'), Buffer.from('two-part frame')],
    [Buffer.alloc(8 * 1024 * 1024, 1)], // bigger than any frame of ours
  ];
}

/** Pushes frames at every port until stopped; returns how many sends were made. */
function attack(ports: number[]): { stop: () => Promise<number> } {
  let running = true;
  let sends = 0;
  const loop = (async () => {
    while (running) {
      // Every port at once: each round reaches every worker within a fraction of a second.
      await Promise.all(
        ports.map(async (port) => {
          const push = new zmq.Push({ linger: 0, sendTimeout: 200 });
          push.connect(`tcp://127.0.0.1:${port}`);
          for (const frames of ringLikeFrames())
            await push.send(frames).then(
              () => sends++,
              () => undefined,
            );
          await new Promise((r) => setTimeout(r, 50));
          push.close();
        }),
      );
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return sends;
    },
  };
}

async function twoNodeJob(dir: string, auth: string[], sets: Record<string, number> = SETS) {
  const port = String(await freePort());
  const node = (rank: number) =>
    startLauncher(
      [
        'launch',
        '--nnodes',
        '2',
        '--node-rank',
        String(rank),
        '--nproc-per-node',
        '2',
        '--master-port',
        port,
        ...auth,
        ...tiny('gpt', dir, sets),
      ],
      {},
      bin,
    );
  const launchers = [node(0), node(1)];
  // The rings are bound before the rendezvous; wait for all four workers' DP listeners (a TP
  // group stays inside its node: ipc only).
  const deadline = Date.now() + 60_000;
  let ports: number[] = [];
  while (Date.now() < deadline && ports.length < 4) {
    await new Promise((r) => setTimeout(r, 100));
    ports = workerTcpPorts(launchers);
  }
  return { launchers, ports };
}

describe('the data plane of a two-node job, with strangers sending to its TCP ports', () => {
  it('authenticated (the default for a job with a key): the job trains on and ends as an undisturbed run', async () => {
    const want = tmp();
    trainAlone(tiny('gpt', want, { 'train.grad_accum': 2, 'train.steps': SETS['train.steps'] }));
    const dir = tmp();
    const { launchers, ports } = await twoNodeJob(dir, ['--auth-key-file', sharedKeyFile]);
    // One TCP listener (the DP ring's) per worker, four workers.
    expect(ports.length).toBe(4);
    const stranger = attack(ports);
    const [r0, r1] = await Promise.all(launchers.map((l) => l.exited));
    const sends = await stranger.stop();
    expect(sends).toBeGreaterThan(0);
    expect([r0.code, r1.code], r0.stderr + r1.stderr).toEqual([0, 0]);
    expectClose(stepLines(dir), stepLines(want));
    // Every attacked worker logs the refusals of its ring: the stranger's address once, then a count.
    const logs = fs.readdirSync(path.join(dir, 'logs')).filter((f) => f.startsWith('rank-'));
    expect(logs.length).toBe(4);
    for (const file of logs) {
      const refusals = fs
        .readFileSync(path.join(dir, 'logs', file), 'utf8')
        .split('\n')
        .filter((line) => line.includes('to the data-parallel ring from'));
      expect(refusals.length, file).toBeGreaterThan(0);
      expect(refusals.join('\n')).toMatch(/ring from (127\.0\.0\.1|unknown): their handshake failed/);
      // Named once per address (127.0.0.1, maybe "unknown"), then one counting line per thousand.
      expect(refusals.length, refusals.join('\n')).toBeLessThanOrEqual(4);
    }
  });

  it('with --no-auth the same stranger breaks the job (the attack is real)', async () => {
    const dir = tmp();
    // Long enough that the job is still training when the first frames land (12 steps can be over
    // by then on a fast machine); a broken job stops at once, so the test stays short.
    const { launchers, ports } = await twoNodeJob(dir, ['--no-auth'], { ...SETS, 'train.steps': 5000 });
    expect(ports.length).toBe(4);
    const stranger = attack(ports);
    const [r0] = await Promise.all(launchers.map((l) => l.exited));
    await stranger.stop();
    expect(r0.code).not.toBe(0);
    expect(r0.stderr).toMatch(/ERR_COMM_(PROTOCOL|CONNECT)/);
  });
});
