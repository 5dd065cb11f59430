// Control frames: what is sent decodes to the same message; anything else is refused with a
// WireError (never a crash): garbage, oversized frames, another protocol version, empty envelopes.
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';

import { FailureLog, formatReport } from '../../src/coordinator/failure';
import type { ControlMessage } from '../../src/control/messages';
import {
  decodeMessage,
  encodeMessage,
  MAX_CONTROL_MESSAGE_BYTES,
  PROTOCOL_VERSION,
  SendQueue,
  WireError,
} from '../../src/control/wire';

const endpoints = {
  tp: { ipc: 'ipc:///tmp/pt-x/tp-0', tcp: 'tcp://10.0.0.1:40000' },
  dp: { ipc: 'ipc:///tmp/pt-x/dp-0', tcp: 'tcp://10.0.0.1:40001' },
};

type Endpoints = typeof endpoints & { tp: { ncclId?: Uint8Array }; dp: { ncclId?: Uint8Array } };

const register = (e: Endpoints, device = 'cpu'): ControlMessage => ({
  kind: 'register',
  body: {
    jobId: 'abc',
    round: 0,
    rank: 9,
    host: 'gpu02',
    nodeRank: 1,
    localRank: 1,
    pid: 7,
    device,
    endpoints: e,
    configHash: 'c',
    buildHash: 'b',
  },
});

// Rank 1 of a TP group of two (peers' endpoints as given) and a DP group of one.
const assignment = (tp: [Endpoints, Endpoints], dp: Endpoints): ControlMessage => ({
  kind: 'assignment',
  body: {
    jobId: 'abc',
    round: 0,
    rank: 1,
    worldSize: 2,
    tpRank: 1,
    tpSize: 2,
    dpRank: 0,
    dpSize: 1,
    tpPeers: [
      { rank: 0, host: 'a', nodeRank: 0, endpoints: tp[0] },
      { rank: 1, host: 'a', nodeRank: 0, endpoints: tp[1] },
    ],
    dpPeers: [{ rank: 1, host: 'a', nodeRank: 0, endpoints: dp }],
    resumeDir: '/runs/x/checkpoints/step-0000040',
    restartCount: 1,
  },
});

describe('wire', () => {
  it('carries a group leader’s NCCL unique id (parallel.comm nccl) through register and assignment', () => {
    const id = Uint8Array.from({ length: 128 }, (_, i) => (i * 37 + 11) % 256);
    const none = { ipc: '', tcp: '' };
    const leader = { tp: { ...none, ncclId: id }, dp: none };
    const back = decodeMessage(encodeMessage(register(leader, 'cuda')));
    if (back.kind !== 'register') throw new Error(back.kind);
    expect(Buffer.from(back.body.endpoints.tp.ncclId!)).toEqual(Buffer.from(id));
    expect(back.body.endpoints.dp.ncclId).toBeUndefined(); // not this worker's group to lead
    const got = decodeMessage(encodeMessage(assignment([leader, { tp: none, dp: none }], leader)));
    if (got.kind !== 'assignment') throw new Error(got.kind);
    expect(Buffer.from(got.body.tpPeers[0].endpoints.tp.ncclId!)).toEqual(Buffer.from(id));
    expect(got.body.tpPeers[1].endpoints.tp.ncclId).toBeUndefined();
  });

  it('round-trips every kind of message', () => {
    const messages: ControlMessage[] = [
      { kind: 'agentHello', body: { nodeRank: 1, host: 'gpu02', nprocPerNode: 8, nnodes: 2, pid: 42 } },
      register(endpoints),
      assignment([endpoints, endpoints], endpoints),
      {
        kind: 'stepReport',
        body: {
          step: 3,
          totalSteps: 10,
          loss: 7.5,
          losses: [
            { name: 'mlm', value: 7 },
            { name: 'nsp', value: 0.5 },
          ],
          metrics: [],
          gradNorm: 1.25,
          lr: 1e-4,
          tokensPerS: 1234.5,
          stepMs: 88,
          skipped: false,
          consumedSamples: 2 ** 40,
          evalLoss: 7.25,
        },
      },
      {
        kind: 'workerExited',
        body: { rank: 3, localRank: 1, pid: 9, signal: 'SIGKILL', lastLines: ['a', 'b'], round: 2 },
      },
      {
        kind: 'workerExited',
        body: { rank: 3, localRank: 1, pid: 9, exitCode: 0, signal: '', lastLines: [], round: 0 },
      },
      { kind: 'ready', body: {} },
      { kind: 'abort', body: { reason: 'rank 3 died' } },
      { kind: 'finish', body: { stopped: true, step: 120 } },
      { kind: 'shutdown', body: { reason: 'stopped at step 120 on SIGUSR1', stopWorkers: false } },
      { kind: 'restart', body: { round: 1, reason: '[ERR_WORKER_EXITED] rank 3 …' } },
      { kind: 'agentStopped', body: { round: 0 } },
      { kind: 'stopRequest', body: { signal: 'SIGUSR1', stop: true } },
      { kind: 'saveRequest', body: { stop: false, reason: 'the launcher of node 0 received SIGUSR2' } },
      { kind: 'shardSaved', body: { report: Buffer.from([0, 1, 2, 255]) } },
      { kind: 'saveCommitted', body: { step: 120, dir: '/runs/x/checkpoints/step-0000120', error: '' } },
    ];
    for (const m of messages) expect(decodeMessage(encodeMessage(m))).toEqual(m);
  });

  it('an absent eval loss stays absent, an absent exit code too', () => {
    const step = decodeMessage(
      encodeMessage({
        kind: 'stepReport',
        body: {
          step: 1,
          totalSteps: 1,
          loss: 1,
          losses: [{ name: 'lm', value: 1 }],
          metrics: [{ name: 'rtd_accuracy', value: 0.75 }],
          gradNorm: 1,
          lr: 1,
          tokensPerS: 1,
          stepMs: 1,
          skipped: true,
          consumedSamples: 4,
        },
      }),
    );
    expect(step.body).not.toHaveProperty('evalLoss');
    const exited = decodeMessage(
      encodeMessage({
        kind: 'workerExited',
        body: { rank: 0, localRank: 0, pid: 1, signal: 'SIGTERM', lastLines: [], round: 0 },
      }),
    );
    expect(exited.body).not.toHaveProperty('exitCode');
  });

  it('refuses garbage, oversized frames, empty envelopes and other protocol versions', () => {
    const bad = [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]),
      Buffer.alloc(MAX_CONTROL_MESSAGE_BYTES + 1),
      Buffer.alloc(0),
    ];
    const root = protobuf.loadSync(path.join(__dirname, '..', '..', 'proto', 'control.proto'));
    const T = root.lookupType('paratrain.control.Envelope');
    bad.push(Buffer.from(T.encode(T.fromObject({ protocol: PROTOCOL_VERSION + 1, ready: {} })).finish()));
    bad.push(Buffer.from(T.encode(T.fromObject({ protocol: PROTOCOL_VERSION })).finish()));
    for (const frame of bad) expect(() => decodeMessage(frame)).toThrow(WireError);
    expect(() => decodeMessage(bad[4])).toThrow(
      new RegExp(`protocol version ${PROTOCOL_VERSION + 1}, expected ${PROTOCOL_VERSION}`),
    );
  });

  it('the send queue keeps one send in flight and its order', async () => {
    let inFlight = 0,
      most = 0;
    const sent: string[] = [];
    const socket = {
      async send(frames: Buffer | Buffer[]) {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((r) => setTimeout(r, 2));
        sent.push(String(frames));
        inFlight--;
      },
    };
    const q = new SendQueue(socket as never);
    await Promise.all(['a', 'b', 'c', 'd'].map((s) => q.send(Buffer.from(s))));
    expect(sent).toEqual(['a', 'b', 'c', 'd']);
    expect(most).toBe(1);
  });

  it('a failed send is reported and does not stop the queue', async () => {
    const errors: string[] = [];
    let calls = 0;
    const socket = {
      async send() {
        if (++calls === 1) throw new Error('socket closed');
      },
    };
    const q = new SendQueue(socket as never, (e) => errors.push(e.message));
    await q.send(Buffer.from('x'));
    await q.send(Buffer.from('y'));
    expect(errors).toEqual(['socket closed']);
    expect(calls).toBe(2);
  });
});

describe('failure report', () => {
  it('keeps the first failure as the root cause and the rest as consequences', () => {
    const log = new FailureLog();
    expect(
      log.record({ code: 'ERR_WORKER_EXITED', message: 'rank 3 was killed by SIGKILL', rank: 3, lastLines: ['x'] }),
    ).toBe(true);
    expect(log.record({ code: 'ERR_WORKER_EXITED', message: 'rank 0 was killed by SIGTERM', rank: 0 })).toBe(false);
    const report = log.report('job', 0, [])!;
    expect(report.rootCause).toMatchObject({ rank: 3, code: 'ERR_WORKER_EXITED' });
    expect(report.consequences.map((f) => f.rank)).toEqual([0]);
    const text = formatReport(report);
    expect(text).toMatch(/Root cause \[ERR_WORKER_EXITED\]: rank 3 was killed by SIGKILL/);
    expect(text).toMatch(/\| x/);
    expect(text).toMatch(/consequences/);
    expect(text).not.toMatch(/restart/);
    expect(formatReport(log.report('job', 2, [])!)).toMatch(/job job \(round 2\) failed after 2 restarts\. Root cause/);
  });
});
