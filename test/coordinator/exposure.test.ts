// What the coordinator shows a process outside the job: it listens on the master address only
// (loopback for a single-node job), and its refusals name nothing a stranger could use to join —
// no job id, round, pids, hosts or hashes. Real launchers, real sockets, raw peers.
import * as dns from 'node:dns/promises';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import * as zmq from 'zeromq';

import { decodeMessage, encodeMessage } from '../../src/control/wire';
import { listenAddress } from '../../src/coordinator/coordinator';
import { freePort, jobArgs, startLauncher, tmp, waitFor, workerRecords } from '../launch/launch-harness';

const interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = {
  lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true } as os.NetworkInterfaceInfo],
  eth0: [{ address: '10.1.2.3', family: 'IPv4', internal: false } as os.NetworkInterfaceInfo],
};

describe('where the coordinator listens', () => {
  it('the master address when it is this host’s, else every interface with a note', async () => {
    expect(await listenAddress('127.0.0.1', 1, interfaces)).toEqual({ address: '127.0.0.1' });
    expect(await listenAddress('localhost', 1, interfaces)).toEqual({ address: '127.0.0.1' });
    // Two launchers on loopback (the tests' two-node jobs) mean loopback.
    expect(await listenAddress('127.0.0.1', 2, interfaces)).toEqual({ address: '127.0.0.1' });
    expect(await listenAddress('10.1.2.3', 2, interfaces)).toEqual({ address: '10.1.2.3' });
    const service = await listenAddress('10.9.9.9', 2, interfaces);
    expect(service.address).toBe('*');
    expect(service.note).toMatch(/--master-addr 10\.9\.9\.9 \(10\.9\.9\.9\) is not an address of this host/);
    const nowhere = await listenAddress('no-such-host.invalid', 1, interfaces);
    expect(nowhere).toMatchObject({ address: '*', note: expect.stringMatching(/ENOTFOUND/) });
    // A multi-node job's master name that resolves to loopback here (this host's own name in
    // /etc/hosts) would shut the other nodes out: every interface, and a note.
    const own = os.hostname();
    const ownIp = (await dns.lookup(own, { family: 4 })).address;
    if (ownIp.startsWith('127.')) {
      expect(await listenAddress(own, 1, interfaces)).toEqual({ address: ownIp });
      expect(await listenAddress(own, 2, interfaces)).toMatchObject({
        address: '*',
        note: expect.stringMatching(/resolves to loopback on this host, which the other 1 node\(s\) cannot reach/),
      });
    }
  });
});

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.setTimeout(2000, () => (s.destroy(), resolve(false)));
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

/** Sends one frame from a fresh DEALER and returns the first answer (or undefined). */
async function askOnce(port: number, frame: Buffer) {
  const d = new zmq.Dealer({ linger: 0, receiveTimeout: 3000 });
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

const register = (jobId: string, round: number, rank: number) =>
  encodeMessage({
    kind: 'register',
    body: {
      jobId,
      round,
      rank,
      host: 'stranger-host',
      nodeRank: 0,
      localRank: rank,
      pid: 4242,
      device: 'cpu',
      endpoints: { tp: { ipc: '', tcp: '' }, dp: { ipc: '', tcp: '' } },
      configHash: 'x',
      buildHash: 'y',
    },
  });

// With --no-auth: what a stranger who can talk to the coordinator gets out of it (by default a
// stranger cannot even complete the handshake; see the next block).
describe('a running single-node job without authentication, seen from outside it', () => {
  it('listens on loopback only, refuses strangers without naming the job, its processes or hosts, and runs on', async () => {
    const external = Object.values(os.networkInterfaces())
      .flat()
      .find((i) => i?.family === 'IPv4' && !i.internal)?.address;
    const dir = tmp(),
      out = tmp();
    const port = await freePort();
    const l = startLauncher(jobArgs(dir, port, ['--nproc-per-node', '2', '--no-auth']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '60',
      FIXTURE_STEP_MS: '25',
    });
    await waitFor('the workers', () => workerRecords(out).size === 2);
    const records = [...workerRecords(out).values()];
    const jobId = records[0]!.assignment.jobId;

    expect(await canConnect('127.0.0.1', port)).toBe(true);
    if (external) expect(await canConnect(external, port), `tcp://${external}:${port}`).toBe(false);

    const answers = [
      await askOnce(port, register('0123456789abcdef', 0, 0)), // another job
      await askOnce(port, register(jobId, 1, 0)), // another round
      await askOnce(port, register(jobId, 0, 1)), // a rank already taken
      await askOnce(
        port,
        encodeMessage({
          kind: 'agentHello',
          body: { nodeRank: 0, host: 'stranger-host', nprocPerNode: 2, nnodes: 1, pid: 4242 },
        }),
      ), // a node rank already taken
    ];
    expect(answers.map((a) => a?.kind)).toEqual(['reject', 'reject', 'reject', 'reject']);
    const replies = answers.map((a) => (a?.body as { reason: string }).reason);
    expect(replies).toEqual([
      'this worker belongs to another job',
      'this worker is from another round of the job',
      'rank 1 is already registered',
      'node rank 0 has already joined; give each node its own --node-rank',
    ]);
    // After the rendezvous, a launcher with another layout is refused; the job is not touched.
    const stray = await askOnce(
      port,
      encodeMessage({
        kind: 'agentHello',
        body: { nodeRank: 0, host: 'stranger-host', nprocPerNode: 4, nnodes: 3, pid: 4242 },
      }),
    );
    expect(stray?.body).toEqual({
      reason:
        'this launcher was started with --nnodes 3 --nproc-per-node 4, node 0 with --nnodes 1 --nproc-per-node 2; ' +
        'start every node with the same values',
    });
    replies.push((stray?.body as { reason: string }).reason);
    for (const reply of replies) {
      expect(reply).not.toContain(jobId);
      expect(reply).not.toContain(os.hostname());
      for (const r of records) expect(reply).not.toContain(String(r.pid));
    }

    const r = await l.exited;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/AUTHENTICATION IS OFF \(--no-auth\)/);
    // Node 0's own log keeps the whole story.
    expect(r.stdout).toMatch(
      /refused: rank 1 \(host stranger-host, pid 4242\): rank 1 is already registered by pid \d+/,
    );
  });
});

describe('a running single-node job with the default authentication', () => {
  it('gives a stranger nothing: no reply to any frame, the job trains on, the refused handshakes are logged', async () => {
    const dir = tmp(),
      out = tmp();
    const port = await freePort();
    const l = startLauncher(jobArgs(dir, port, ['--nproc-per-node', '2']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '60',
      FIXTURE_STEP_MS: '25',
    });
    await waitFor('the workers', () => workerRecords(out).size === 2);
    const records = [...workerRecords(out).values()];
    const jobId = records[0]!.assignment.jobId;
    // The workers were handed the job's own key, made by the launcher, readable by this user only.
    const keyFile = records[0]!.env.PARATRAIN_AUTH_KEY_FILE!;
    expect(keyFile).toMatch(/job\.key$/);
    expect(fs.statSync(keyFile).mode & 0o077).toBe(0);
    // The attack issue 16 found: a hello claiming node 0 of 2 used to end an unauthenticated job.
    const answers = [
      await askOnce(
        port,
        encodeMessage({
          kind: 'agentHello',
          body: { nodeRank: 0, host: 'stranger-host', nprocPerNode: 2, nnodes: 2, pid: 4242 },
        }),
      ),
      await askOnce(port, register(jobId, 0, 1)),
    ];
    expect(answers).toEqual([undefined, undefined]);
    const r = await l.exited;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/refused a control connection/);
    expect(r.stdout).not.toContain('AUTHENTICATION IS OFF');
    // The round's directory, the key with it, is gone.
    expect(fs.existsSync(keyFile)).toBe(false);
  });
});

describe('a flood of idle connections', () => {
  it('is capped at the door: the launcher keeps file descriptors for its checkpoint commit and report', async () => {
    const dir = tmp(),
      out = tmp();
    const port = await freePort();
    const l = startLauncher(jobArgs(dir, port, ['--nproc-per-node', '2']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '100000',
      FIXTURE_SAVE: 'shard',
    });
    await waitFor('the workers', () => workerRecords(out).size === 2);
    // 400 descriptors for the launcher, then 1500 connections that never say a word: without a
    // cap they would take all of them (issue 16 saw 20,000 end a job with EMFILE at its commit).
    expect(spawnSync('prlimit', ['--pid', String(l.proc.pid), '--nofile=400:400']).status).toBe(0);
    const idle: net.Socket[] = [];
    for (let i = 0; i < 1500; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      idle.push(s);
    }
    await new Promise((r) => setTimeout(r, 2000));
    l.proc.kill('SIGUSR1'); // save a checkpoint, then stop
    const r = await l.exited;
    for (const s of idle) s.destroy();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /refused a control connection from 127\.0\.0\.1: the coordinator holds \d+ connections, its most/,
    );
    const status = JSON.parse(fs.readFileSync(path.join(dir, 'status.json'), 'utf8'));
    expect(status).toMatchObject({ state: 'stopped', checkpoint: expect.stringMatching(/step-\d+$/) });
    expect(fs.existsSync(path.join(status.checkpoint, 'manifest.pb'))).toBe(true);
  });
});

describe('a flood of refused registrations', () => {
  it('keeps the launcher’s log small and the job running to its end', async () => {
    const dir = tmp(),
      out = tmp();
    const port = await freePort();
    const l = startLauncher(jobArgs(dir, port, ['--nproc-per-node', '2', '--no-auth']), {
      FIXTURE_OUT_DIR: out,
      FIXTURE_STEPS: '200',
      FIXTURE_STEP_MS: '25',
    });
    await waitFor('the workers', () => workerRecords(out).size === 2);
    const d = new zmq.Dealer({ linger: 0 });
    d.connect(`tcp://127.0.0.1:${port}`);
    const host = 'h'.repeat(50_000);
    const frame = encodeMessage({
      kind: 'register',
      body: {
        jobId: 'not-this-job',
        round: 0,
        rank: 0,
        host,
        nodeRank: 0,
        localRank: 0,
        pid: 4242,
        device: 'cpu',
        endpoints: { tp: { ipc: '', tcp: '' }, dp: { ipc: '', tcp: '' } },
        configHash: 'x',
        buildHash: 'y',
      },
    });
    for (let i = 0; i < 3000; i++) await d.send(frame);
    d.close();
    const r = await l.exited;
    expect(r.code, r.stderr).toBe(0);
    // 3000 × 50 KB arrived; the log holds 20 refusals with the host cut to 255 characters, then counts.
    expect(r.stdout.length).toBeLessThan(200_000);
    expect(r.stdout).toMatch(/refused \d+ peers so far \(logging one line per 1000\)/);
    expect(r.stdout).not.toContain('h'.repeat(300));
  });
});
