// The coordinator faces the network: it must survive whatever arrives and refuse what does not
// belong to the job, without breaking the job. Real launchers, real sockets, raw peers.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';

import { decodeMessage, encodeMessage } from '../../src/control/wire';
import { freePort, jobArgs, startLauncher, tmp, waitFor, workerRecords } from '../launch/launch-harness';

const staleRegister = (jobId: string, round: number) =>
  encodeMessage({
    kind: 'register',
    body: {
      jobId,
      round,
      rank: 0,
      host: 'stale-host',
      nodeRank: 0,
      localRank: 0,
      pid: 99999,
      device: 'cpu',
      endpoints: { tp: { ipc: '', tcp: '' }, dp: { ipc: '', tcp: '' } },
      configHash: 'x',
      buildHash: 'y',
    },
  });

/** Sends one frame from a fresh DEALER and returns the first answer (or undefined). */
async function askOnce(port: number, frame: Buffer, waitMs = 3000) {
  const d = new zmq.Dealer({ linger: 0, receiveTimeout: waitMs });
  d.connect(`tcp://127.0.0.1:${port}`);
  try {
    await d.send(frame);
    const [answer] = await d.receive();
    return decodeMessage(answer);
  } catch {
    return undefined;
  } finally {
    d.close();
  }
}

describe('coordinator robustness', () => {
  it('a port already in use is reported as such, naming the flag to change', async () => {
    const port = await freePort();
    const blocker = net.createServer().listen(port, '0.0.0.0');
    await new Promise((r) => blocker.once('listening', r));
    try {
      const r = await startLauncher(jobArgs(tmp(), port)).exited;
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(
        `[ERR_PORT_IN_USE]: port ${port} is already in use on this host; pick another with --master-port`,
      );
    } finally {
      blocker.close();
    }
  });

  it('a worker with another config fails the job naming both ranks and hosts', async () => {
    const dir = tmp();
    const r = await startLauncher(jobArgs(dir, await freePort(), ['--nproc-per-node', '2']), {
      FIXTURE_OTHER_CONFIG_RANK: '1',
    }).exited;
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /\[ERR_CONFIG_MISMATCH\]: rank 1 \(host [^,]+, pid \d+\) resolved a different config \(hash a-different-config\) than rank 0 \(host [^,]+, pid \d+\)/,
    );
    expect(r.stderr).toMatch(/same --config file and --set overrides/);
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'failure.json'), 'utf8'));
    expect(report.rootCause).toMatchObject({ code: 'ERR_CONFIG_MISMATCH', rank: 1 });
  });

  it('launchers started with different layouts are refused', async () => {
    const port = await freePort();
    const dir = tmp();
    const n0 = startLauncher(jobArgs(dir, port, ['--nnodes', '2', '--node-rank', '0', '--nproc-per-node', '2']));
    const n1 = startLauncher(jobArgs(dir, port, ['--nnodes', '2', '--node-rank', '1', '--nproc-per-node', '1']));
    const [r0, r1] = await Promise.all([n0.exited, n1.exited]);
    expect(r0.code).toBe(1);
    expect(r0.stderr).toMatch(
      /\[ERR_LAUNCH_MISMATCH\].*--nnodes 2 --nproc-per-node 1, node 0 with --nnodes 2 --nproc-per-node 2/,
    );
    expect(r1.code).toBe(1);
    expect(r1.stderr).toContain('[ERR_REJECTED]');
  });

  // These three speak to the coordinator from outside the job, which takes --no-auth: by default
  // a peer without the job's key never gets a frame through (exposure.test.ts, auth.test.ts).
  it('stale workers (another job, another round) are refused and the job still finishes', async () => {
    const dir = tmp(),
      out = tmp();
    const port = await freePort();
    const l = startLauncher(jobArgs(dir, port, ['--nproc-per-node', '2', '--no-auth']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '40',
      FIXTURE_STEP_MS: '25',
    });
    await waitFor('the workers', () => workerRecords(out).size === 2);
    const jobId = workerRecords(out).get(0)!.assignment.jobId;

    const otherJob = await askOnce(port, staleRegister('0123456789abcdef', 0));
    expect(otherJob?.kind).toBe('reject');
    expect(otherJob?.body).toMatchObject({ reason: expect.stringMatching(/belongs to another job/) });
    const otherRound = await askOnce(port, staleRegister(jobId, 1));
    expect(otherRound?.body).toEqual({ reason: 'this worker is from another round of the job' });

    const r = await l.exited;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/refused: rank 0 \(host stale-host, pid 99999\) belongs to another job/);
  });

  it('after a restart, a worker of round 0 is refused; the job finishes', async () => {
    const dir = tmp(),
      out = tmp();
    const port = await freePort();
    const l = startLauncher(jobArgs(dir, port, ['--nproc-per-node', '2', '--max-restarts', '1', '--no-auth']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '40',
      FIXTURE_STEP_MS: '25',
      FIXTURE_EXIT_RANK: '1',
      FIXTURE_EXIT_ROUND: '0',
    });
    const round1 = path.join(out, 'round-1');
    await waitFor('round 1', () => fs.existsSync(round1) && workerRecords(round1).size === 2);
    const jobId = workerRecords(round1).get(0)!.assignment.jobId;

    const stale = await askOnce(port, staleRegister(jobId, 0));
    expect(stale?.kind).toBe('reject');
    expect(stale?.body).toEqual({ reason: 'this worker is from an earlier round of the job' });
    const r = await l.exited;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/refused: rank 0 \(host stale-host, pid 99999\) is a worker from an earlier round/);
  });

  it('garbage, oversized frames and malformed messages are dropped; the job finishes', async () => {
    const dir = tmp(),
      out = tmp();
    const port = await freePort();
    const l = startLauncher(jobArgs(dir, port, ['--nproc-per-node', '2', '--no-auth']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '40',
      FIXTURE_STEP_MS: '25',
    });
    await waitFor('the workers', () => workerRecords(out).size === 2);

    // Not ZeroMQ at all: an HTTP request and random bytes on the raw TCP port.
    for (const bytes of [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.from([0xff, 0, 1, 2, 3, 0xfe, 9, 9]),
    ]) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      s.write(bytes);
      await new Promise((r) => setTimeout(r, 100));
      s.destroy();
    }
    // ZeroMQ, but not our messages: garbage, too big, empty, multi-part, a finish from a stranger.
    const d = new zmq.Dealer({ linger: 200 });
    d.connect(`tcp://127.0.0.1:${port}`);
    await d.send(Buffer.from('definitely not protobuf \xff\xff'));
    await d.send(Buffer.alloc(0));
    await d.send([Buffer.from('a'), Buffer.from('b')]);
    await d.send(encodeMessage({ kind: 'finish', body: { stopped: false, step: 0 } }));
    await d.send(Buffer.alloc(2 * 1024 * 1024, 7));
    d.close();

    const r = await l.exited;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/dropped a bad control frame/);
    expect(r.stdout).toMatch(/message from a peer that has not joined/);
  });
});
