// The job's state machine (src/coordinator/job.ts) on its own: events in, effects out, a fake
// clock, no sockets, no processes. Each test walks one transition of the table in
// docs/control-plane.md and checks the phase it ends in and what the coordinator would send.
import { describe, expect, it } from 'vitest';

import { encodeShardReport, type ShardReport } from '../../src/checkpoint';
import { RelayError } from '../../src/coordinator/checkpoints';
import {
  Job,
  type Effect,
  type JobEvent,
  type JobEventBody,
  type JobPhase,
  type JobSettings,
} from '../../src/coordinator/job';
import type { ControlMessage, MessageBodies, MessageKind, Register } from '../../src/control/messages';

const T0 = 1_700_000_000_000;
const HEARTBEAT = 1000;
const TIMEOUT = 10_000;
const RENDEZVOUS = 30_000;

/** Two nodes of one worker each (world 2, TP 1 × DP 2) unless a test asks for more. */
function settings(extra: Partial<JobSettings> = {}): JobSettings {
  return {
    jobId: 'job-1',
    nnodes: 2,
    nprocPerNode: 1,
    tpSize: 1,
    heartbeatIntervalMs: HEARTBEAT,
    heartbeatTimeoutMs: TIMEOUT,
    firstStepTimeoutMs: 2 * TIMEOUT,
    rendezvousTimeoutMs: RENDEZVOUS,
    checkpointRoot: '/run/checkpoints',
    stopTimeoutMs: 60_000,
    abortSettleMs: 5000,
    ...extra,
  };
}

const agentId = (node: number) => Buffer.from(`agent/n${node}`);
const workerId = (rank: number, round = 0) => Buffer.from(`worker/r${rank}/round${round}`);

/** A job driven by hand: `now` is the fake clock, `effects` what the last event produced. */
class Driver {
  readonly job: Job;
  now = T0;
  effects: Effect[] = [];

  constructor(readonly s: JobSettings = settings()) {
    this.job = new Job(s, this.now);
  }

  get phase(): JobPhase {
    return this.job.phase;
  }

  handle(e: JobEventBody): Effect[] {
    this.effects = this.job.handle({ now: this.now, ...e } as JobEvent);
    return this.effects;
  }

  say<K extends MessageKind>(from: Buffer, kind: K, body: MessageBodies[K]): Effect[] {
    return this.handle({ type: 'message', from, message: { kind, body } as ControlMessage });
  }

  advance(ms: number): Effect[] {
    this.now += ms;
    return this.handle({ type: 'tick' });
  }

  hello(node: number): Effect[] {
    return this.say(agentId(node), 'agentHello', {
      nodeRank: node,
      host: `host${node}`,
      nprocPerNode: this.s.nprocPerNode,
      nnodes: this.s.nnodes,
      pid: 100 + node,
    });
  }

  register(rank: number, extra: Partial<Register> = {}): Effect[] {
    const round = extra.round ?? this.job.round;
    return this.say(workerId(rank, round), 'register', registration(this.s, rank, round, extra));
  }

  /** Every node joins, every worker registers: the machine asks for the resume checkpoint. */
  rendezvous(): Effect[] {
    for (let n = 0; n < this.s.nnodes; n++) if (this.job.round === 0) this.hello(n);
    let last: Effect[] = [];
    for (let r = 0; r < this.s.nnodes * this.s.nprocPerNode; r++) last = this.register(r);
    return last;
  }

  /** From nothing to every worker training. */
  running(): void {
    this.rendezvous();
    this.handle({ type: 'resume-chosen', round: this.job.round });
    for (let r = 0; r < this.s.nnodes * this.s.nprocPerNode; r++) this.say(workerId(r, this.job.round), 'ready', {});
    expect(this.phase).toBe('running');
  }

  exited(rank: number, how: { exitCode?: number; signal?: string; round?: number } = {}): Effect[] {
    const node = Math.floor(rank / this.s.nprocPerNode);
    return this.say(agentId(node), 'workerExited', {
      rank,
      localRank: rank % this.s.nprocPerNode,
      pid: 1000 + rank,
      ...('exitCode' in how || how.signal ? {} : { exitCode: 1 }),
      ...(how.exitCode !== undefined ? { exitCode: how.exitCode } : {}),
      signal: how.signal ?? '',
      lastLines: [`last line of rank ${rank}`],
      round: how.round ?? this.job.round,
    });
  }

  /** Every node reports its workers of the round gone. */
  agentsStopped(round = this.job.round): void {
    for (let n = 0; n < this.s.nnodes; n++) this.say(agentId(n), 'agentStopped', { round });
  }
}

function registration(s: JobSettings, rank: number, round: number, extra: Partial<Register> = {}): Register {
  const endpoints = { ipc: `ipc:///tmp/r${rank}`, tcp: `tcp://10.0.0.${rank}:5000` };
  return {
    jobId: s.jobId,
    round,
    rank,
    host: `host${Math.floor(rank / s.nprocPerNode)}`,
    nodeRank: Math.floor(rank / s.nprocPerNode),
    localRank: rank % s.nprocPerNode,
    pid: 1000 + rank,
    device: 'cpu',
    endpoints: { tp: endpoints, dp: endpoints },
    configHash: 'config',
    buildHash: 'build',
    ...extra,
  };
}

type Sent = { to: string; kind: MessageKind; body: unknown };

function sent(effects: Effect[], kind?: MessageKind): Sent[] {
  return effects
    .filter((e): e is Extract<Effect, { type: 'send' }> => e.type === 'send')
    .map((e) => ({ to: e.to.toString(), kind: e.message.kind, body: e.message.body }))
    .filter((m) => kind === undefined || m.kind === kind);
}

function ofType<T extends Effect['type']>(effects: Effect[], type: T): Extract<Effect, { type: T }>[] {
  return effects.filter((e): e is Extract<Effect, { type: T }> => e.type === type);
}

function end(effects: Effect[]): Extract<Effect, { type: 'end' }> {
  const [e] = ofType(effects, 'end');
  expect(e).toBeDefined();
  return e;
}

function failureCode(effects: Effect[]): string {
  const result = end(effects).result;
  if (result.ok) throw new Error('the job did not fail');
  return result.report.rootCause.code;
}

function shard(rank: number, step: number): Uint8Array {
  const r: ShardReport = { step, rank, files: [], tensors: [], bytes: 1000, writeMs: 10 };
  return encodeShardReport(r);
}

describe('rendezvous', () => {
  it('welcomes each node, waits for every worker, then asks for the resume checkpoint (round 0: --resume)', () => {
    const d = new Driver(settings({ resume: 'auto' }));
    expect(sent(d.hello(0), 'agentWelcome')).toEqual([
      {
        to: 'agent/n0',
        kind: 'agentWelcome',
        body: expect.objectContaining({ jobId: 'job-1', round: 0, worldSize: 2, rendezvousTimeoutMs: RENDEZVOUS }),
      },
    ]);
    d.hello(1);
    expect(ofType(d.register(0), 'choose-resume')).toEqual([]);
    expect(d.phase).toBe('rendezvous');
    expect(ofType(d.register(1), 'choose-resume')).toEqual([{ type: 'choose-resume', round: 0, spec: 'auto' }]);
    expect(d.phase).toBe('assigning');
  });

  it('assigning → ready: every worker gets its groups and the checkpoint to load', () => {
    const d = new Driver();
    d.rendezvous();
    const effects = d.handle({
      type: 'resume-chosen',
      round: 0,
      resume: { dir: '/run/checkpoints/step-0000040', step: 40 },
    });
    expect(d.phase).toBe('ready');
    const assignments = sent(effects, 'assignment');
    expect(assignments.map((a) => a.to)).toEqual(['worker/r0/round0', 'worker/r1/round0']);
    expect(assignments[1].body).toMatchObject({
      rank: 1,
      dpRank: 1,
      dpSize: 2,
      tpSize: 1,
      resumeDir: '/run/checkpoints/step-0000040',
      restartCount: 0,
    });
    expect((assignments[1].body as { dpPeers: unknown[] }).dpPeers).toHaveLength(2);
  });

  it('ready → running once every worker is ready: Start to all (a barrier)', () => {
    const d = new Driver();
    d.rendezvous();
    d.handle({ type: 'resume-chosen', round: 0 });
    expect(sent(d.say(workerId(0), 'ready', {}), 'start')).toEqual([]);
    const effects = d.say(workerId(1), 'ready', {});
    expect(d.phase).toBe('running');
    expect(sent(effects, 'start').map((s) => s.to)).toEqual(['worker/r0/round0', 'worker/r1/round0']);
    expect(ofType(effects, 'emit').map((e) => e.event)).toEqual([
      { type: 'started', round: 0, worldSize: 2, tpSize: 1, dpSize: 2, resumeStep: undefined },
    ]);
  });

  it('a rendezvous that times out aborts, naming the node and the rank that never came', () => {
    const d = new Driver(settings({ maxRestarts: 3 }));
    d.hello(0);
    d.register(0);
    d.advance(RENDEZVOUS - 1);
    expect(d.phase).toBe('rendezvous');
    const effects = d.advance(2);
    expect(d.phase).toBe('aborting');
    expect(sent(effects, 'abort').map((s) => s.to)).toEqual(['agent/n0', 'worker/r0/round0']);
    const [failure] = ofType(effects, 'emit').filter((e) => e.event.type === 'failure');
    expect(failure.event).toMatchObject({ failure: { code: 'ERR_RENDEZVOUS_TIMEOUT' } });
    expect(d.exited(0)).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'end' })]));
    expect(d.phase).toBe('done');
  });

  it('a ready barrier that times out aborts', () => {
    const d = new Driver();
    d.rendezvous();
    d.handle({ type: 'resume-chosen', round: 0 });
    d.say(workerId(0), 'ready', {});
    d.advance(RENDEZVOUS + 1);
    expect(d.phase).toBe('aborting');
    d.exited(0);
    expect(failureCode(d.exited(1))).toBe('ERR_RENDEZVOUS_TIMEOUT');
  });

  it('a checkpoint that cannot be resumed fails the job', () => {
    const d = new Driver(settings({ resume: '/nowhere' }));
    d.rendezvous();
    d.handle({ type: 'resume-chosen', round: 0, error: { code: 'ERR_CHECKPOINT_NOT_FOUND', message: 'no such dir' } });
    expect(d.phase).toBe('aborting');
  });

  it('a config that differs from rank 0 fails the job without a restart', () => {
    const d = new Driver(settings({ maxRestarts: 2 }));
    d.hello(0);
    d.hello(1);
    d.register(0);
    d.register(1, { configHash: 'other' });
    expect(d.phase).toBe('aborting');
  });

  it('refuses a worker of another job, a taken rank and a node outside the job, and goes on', () => {
    const d = new Driver();
    d.hello(0);
    expect(sent(d.register(0, { jobId: 'job-2' }), 'reject')).toHaveLength(1);
    d.register(0);
    expect(sent(d.say(Buffer.from('worker/r0/other'), 'register', registration(d.s, 0, 0)), 'reject')).toHaveLength(1);
    const outside = d.say(agentId(5), 'agentHello', { nodeRank: 5, host: 'h5', nprocPerNode: 1, nnodes: 2, pid: 5 });
    expect(sent(outside, 'reject')).toHaveLength(1);
    expect(d.phase).toBe('rendezvous');
  });

  it('a node started with another layout fails the job', () => {
    const d = new Driver();
    const effects = d.say(agentId(1), 'agentHello', { nodeRank: 1, host: 'h1', nprocPerNode: 2, nnodes: 2, pid: 5 });
    expect(sent(effects, 'reject')).toHaveLength(1);
    // No worker has registered, so there are no exits to wait for: the outcome is final at once.
    expect(d.phase).toBe('done');
    expect(failureCode(effects)).toBe('ERR_LAUNCH_MISMATCH');
  });

  it('after the rendezvous, a hello with another layout is refused and the job runs on', () => {
    const d = new Driver();
    d.running();
    const effects = d.say(agentId(9), 'agentHello', { nodeRank: 1, host: 'x', nprocPerNode: 2, nnodes: 2, pid: 5 });
    expect(sent(effects, 'reject')).toHaveLength(1);
    expect(ofType(effects, 'end')).toEqual([]);
    expect(d.phase).toBe('running');
  });

  it('a flood of refusals stays bounded: cut strings, 100 records kept, one log line per 1000', () => {
    const d = new Driver();
    d.hello(0);
    const host = 'h'.repeat(50_000);
    let logged = 0,
      logChars = 0,
      longestReply = 0;
    for (let i = 0; i < 5000; i++) {
      const effects = d.say(
        Buffer.from(`worker/flood/${i}`),
        'register',
        registration(d.s, 0, 0, { jobId: 'x', host }),
      );
      for (const l of ofType(effects, 'log')) {
        logged++;
        logChars += l.text.length;
      }
      for (const m of sent(effects, 'reject'))
        longestReply = Math.max(longestReply, (m.body as { reason: string }).reason.length);
    }
    expect(logged).toBe(20 + 1 + 5); // the first 20, the switch to counting, then at 1000, 2000, …, 5000
    expect(logChars).toBeLessThan(30_000);
    expect(longestReply).toBeLessThan(1100);
    expect(d.phase).toBe('rendezvous');
    const report = (() => {
      const r = end(d.advance(RENDEZVOUS + 1)).result;
      if (r.ok) throw new Error('the rendezvous should have timed out');
      return r.report;
    })();
    expect(report.rejected).toHaveLength(100);
    for (const p of report.rejected) {
      expect(p.host!.length).toBeLessThan(300);
      expect(p.reason.length).toBeLessThan(1100);
    }
  });

  it('a message from a peer that never joined is logged and dropped', () => {
    const d = new Driver();
    const effects = d.say(Buffer.from('stranger'), 'ready', {});
    expect(sent(effects)).toEqual([]);
    expect(ofType(effects, 'log')).toEqual([
      expect.objectContaining({ level: 'warn', text: 'message from a peer that has not joined' }),
    ]);
  });
});

describe('a worker dying', () => {
  const restartable = () => new Driver(settings({ maxRestarts: 1 }));

  it.each<[string, (d: Driver) => void]>([
    ['rendezvous', (d) => (d.hello(0), d.hello(1), d.register(0))],
    ['assigning', (d) => d.rendezvous()],
    ['ready', (d) => (d.rendezvous(), d.handle({ type: 'resume-chosen', round: 0 }))],
    ['running', (d) => d.running()],
  ])('in %s restarts the gang while restarts are left', (phase, reach) => {
    const d = restartable();
    reach(d);
    expect(d.phase).toBe(phase);
    const effects = d.exited(0, { signal: 'SIGKILL' });
    expect(d.phase).toBe('restarting');
    expect(sent(effects, 'restart').map((s) => [s.to, s.body])).toEqual([
      ['agent/n0', expect.objectContaining({ round: 1 })],
      ['agent/n1', expect.objectContaining({ round: 1 })],
    ]);
    expect(ofType(effects, 'emit').map((e) => e.event.type)).toEqual(['restarting']);
  });

  it('while the gang restarts is a consequence: the restart goes on, then round 1 opens', () => {
    const d = restartable();
    d.running();
    d.exited(0);
    d.exited(1);
    expect(d.phase).toBe('restarting');
    d.say(agentId(0), 'agentStopped', { round: 0 });
    const effects = d.say(agentId(1), 'agentStopped', { round: 0 });
    expect(d.phase).toBe('rendezvous');
    expect(d.job.round).toBe(1);
    expect(ofType(effects, 'write-round-report')[0].report).toMatchObject({
      round: 0,
      rootCause: { code: 'ERR_WORKER_EXITED', rank: 0 },
      consequences: [expect.objectContaining({ rank: 1 })],
    });
    expect(sent(effects, 'agentWelcome').map((s) => (s.body as { round: number }).round)).toEqual([1, 1]);
    // Round 1 has a fresh rendezvous: the same ranks register again, for round 1.
    d.register(0);
    expect(ofType(d.register(1), 'choose-resume')).toEqual([{ type: 'choose-resume', round: 1, spec: 'auto' }]);
  });

  it('while stopping aborts: a stop rules out restarts', () => {
    const d = restartable();
    d.running();
    d.handle({ type: 'save-requested', signal: 'SIGTERM', stop: true, nodeRank: 0 });
    expect(d.phase).toBe('stopping');
    d.exited(1);
    expect(d.phase).toBe('aborting');
  });

  it('after finishing with a non-zero code fails the job; with 0 it ends well', () => {
    for (const code of [0, 3]) {
      const d = restartable();
      d.running();
      d.say(workerId(0), 'finish', { stopped: false, step: 0 });
      d.say(workerId(1), 'finish', { stopped: false, step: 0 });
      expect(d.phase).toBe('finishing');
      d.exited(0, { exitCode: 0 });
      const result = end(d.exited(1, { exitCode: code })).result;
      expect(result.ok).toBe(code === 0);
    }
  });

  it('with no restarts left aborts, and the report says how many were used', () => {
    const d = restartable();
    d.running();
    d.exited(0);
    d.exited(1);
    d.agentsStopped(0);
    d.running();
    const effects = d.exited(1, { signal: 'SIGSEGV' });
    expect(d.phase).toBe('aborting');
    expect(sent(effects, 'abort')).toHaveLength(4);
    d.exited(0);
    const result = end(d.effects).result;
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.report).toMatchObject({ round: 1, restarts: 1, rootCause: { rank: 1 } });
  });

  it('reporting a failure a restart would only repeat (ERR_NAN_LOSS) aborts; a ring timeout restarts', () => {
    const a = restartable();
    a.running();
    a.say(workerId(0), 'failureReport', { code: 'ERR_NAN_LOSS', message: 'loss is NaN' });
    expect(a.phase).toBe('aborting');
    const b = restartable();
    b.running();
    b.say(workerId(0), 'failureReport', { code: 'ERR_COLLECTIVE_TIMEOUT', message: 'ring stalled' });
    expect(b.phase).toBe('restarting');
  });
});

describe('liveness', () => {
  it('a worker silent past the heartbeat timeout while training restarts the round', () => {
    const d = new Driver(settings({ maxRestarts: 1 }));
    d.running();
    d.say(workerId(0), 'heartbeat', { phase: 'train' });
    d.say(workerId(0), 'stepReport', stepReport(1));
    d.say(workerId(1), 'stepReport', stepReport(1));
    for (let t = 0; t < TIMEOUT; t += HEARTBEAT) {
      d.say(agentId(0), 'heartbeat', { phase: 'supervise' });
      d.say(agentId(1), 'heartbeat', { phase: 'supervise' });
      d.say(workerId(1), 'heartbeat', { phase: 'train' });
      d.advance(HEARTBEAT);
    }
    expect(d.phase).toBe('running');
    d.say(agentId(0), 'heartbeat', { phase: 'supervise' });
    d.say(agentId(1), 'heartbeat', { phase: 'supervise' });
    d.say(workerId(1), 'heartbeat', { phase: 'train' });
    d.advance(HEARTBEAT);
    expect(d.phase).toBe('restarting');
  });

  it('a silent launcher is a lost node: the job aborts and does not wait for its workers', () => {
    const d = new Driver(settings({ maxRestarts: 1 }));
    d.running();
    for (let t = 0; t <= TIMEOUT; t += HEARTBEAT) {
      d.say(agentId(0), 'heartbeat', { phase: 'supervise' });
      for (const r of [0, 1]) d.say(workerId(r), 'heartbeat', { phase: 'train' });
      d.advance(HEARTBEAT);
    }
    expect(d.phase).toBe('aborting');
    expect(failureCode(d.exited(0))).toBe('ERR_HEARTBEAT_TIMEOUT');
  });

  it('a tick far behind schedule (our own loop was blocked) blames nobody', () => {
    const d = new Driver();
    d.running();
    d.advance(3 * TIMEOUT);
    expect(d.phase).toBe('running');
  });

  it('sends heartbeats to every agent and every worker still running, with the phase', () => {
    const d = new Driver();
    d.running();
    d.say(workerId(1), 'finish', { stopped: false, step: 5 });
    expect(sent(d.advance(HEARTBEAT), 'heartbeat').map((s) => [s.to, s.body])).toEqual([
      ['agent/n0', { phase: 'running' }],
      ['agent/n1', { phase: 'running' }],
      ['worker/r0/round0', { phase: 'running' }],
    ]);
  });
});

describe('restarts', () => {
  it('nodes that do not report their workers gone in time abort the job', () => {
    const d = new Driver(settings({ maxRestarts: 2 }));
    d.running();
    d.exited(0);
    d.say(agentId(0), 'agentStopped', { round: 0 });
    for (let t = 0; t <= RENDEZVOUS; t += HEARTBEAT) {
      for (const n of [0, 1]) d.say(agentId(n), 'heartbeat', { phase: 'restarting' });
      d.advance(HEARTBEAT);
    }
    expect(d.phase).toBe('aborting');
  });

  it('a restart resumes from the newest checkpoint the job committed', () => {
    const d = new Driver(settings({ maxRestarts: 1 }));
    d.running();
    d.say(workerId(0), 'shardSaved', { report: shard(0, 10) });
    const commit = ofType(d.say(workerId(1), 'shardSaved', { report: shard(1, 10) }), 'commit');
    expect(commit.map((c) => c.reports.map((r) => r.rank))).toEqual([[0, 1]]);
    const done = d.handle({
      type: 'commit-done',
      round: 0,
      reports: commit[0].reports,
      dir: '/run/checkpoints/step-10',
    });
    expect(sent(done, 'saveCommitted').map((s) => s.body)).toEqual([
      { step: 10, dir: '/run/checkpoints/step-10', error: '' },
      { step: 10, dir: '/run/checkpoints/step-10', error: '' },
    ]);
    const restart = d.exited(1);
    expect(ofType(restart, 'emit')[0].event).toMatchObject({
      type: 'restarting',
      resumeFrom: '/run/checkpoints/step-10',
    });
  });
});

describe('stops and saves', () => {
  it('running → stopping → finishing → done: every worker saves and stops at one step', () => {
    const d = new Driver();
    d.running();
    const effects = d.handle({ type: 'save-requested', signal: 'SIGUSR1', stop: true, nodeRank: 1 });
    expect(d.phase).toBe('stopping');
    expect(sent(effects, 'saveRequest').map((s) => s.body)).toEqual([
      { stop: true, reason: 'the launcher of node 1 received SIGUSR1' },
      { stop: true, reason: 'the launcher of node 1 received SIGUSR1' },
    ]);
    d.say(workerId(0), 'finish', { stopped: true, step: 12 });
    const finishing = d.say(workerId(1), 'finish', { stopped: true, step: 12 });
    expect(d.phase).toBe('finishing');
    expect(sent(finishing, 'shutdown').map((s) => (s.body as { stopWorkers: boolean }).stopWorkers)).toEqual([
      false,
      false,
    ]);
    d.exited(0, { exitCode: 0 });
    expect(end(d.exited(1, { exitCode: 0 })).result).toEqual({
      ok: true,
      stopped: { signal: 'SIGUSR1', nodeRank: 1, step: 12 },
    });
  });

  it('workers that stop at different steps fail the job', () => {
    const d = new Driver();
    d.running();
    d.handle({ type: 'save-requested', signal: 'SIGTERM', stop: true, nodeRank: 0 });
    d.say(workerId(0), 'finish', { stopped: true, step: 12 });
    d.say(workerId(1), 'finish', { stopped: true, step: 13 });
    expect(d.phase).toBe('aborting');
  });

  it('a stop that does not complete in --stop-timeout aborts', () => {
    const d = new Driver(settings({ stopTimeoutMs: 3 * HEARTBEAT }));
    d.running();
    d.handle({ type: 'save-requested', signal: 'SIGTERM', stop: true, nodeRank: 0 });
    for (let i = 0; i < 4; i++) {
      for (const n of [0, 1]) d.say(agentId(n), 'heartbeat', { phase: 'stopping' });
      for (const r of [0, 1]) d.say(workerId(r), 'heartbeat', { phase: 'save' });
      d.advance(HEARTBEAT);
    }
    expect(d.phase).toBe('aborting');
  });

  it('a stop before the workers run ends the job at once; the agents stop the workers, a late node too', () => {
    const d = new Driver();
    d.hello(0);
    d.register(0);
    const effects = d.handle({ type: 'save-requested', signal: 'SIGTERM', stop: true, nodeRank: 0 });
    expect(d.phase).toBe('finishing');
    expect(sent(effects, 'shutdown')).toEqual([
      { to: 'agent/n0', kind: 'shutdown', body: expect.objectContaining({ stopWorkers: true }) },
    ]);
    expect(sent(d.hello(1), 'shutdown')).toEqual([
      { to: 'agent/n1', kind: 'shutdown', body: expect.objectContaining({ stopWorkers: true }) },
    ]);
    // The exit of a worker the agents stop is expected, not a failure.
    expect(end(d.exited(0, { signal: 'SIGTERM' })).result).toEqual({
      ok: true,
      stopped: { signal: 'SIGTERM', nodeRank: 0 },
    });
  });

  it('a stop during a restart calls the restart off: the job stops once the old workers are gone', () => {
    const d = new Driver(settings({ maxRestarts: 1 }));
    d.running();
    d.exited(0);
    expect(d.phase).toBe('restarting');
    d.handle({ type: 'save-requested', signal: 'SIGTERM', stop: true, nodeRank: 0 });
    expect(d.phase).toBe('restarting');
    d.exited(1);
    d.say(agentId(0), 'agentStopped', { round: 0 });
    const effects = d.say(agentId(1), 'agentStopped', { round: 0 });
    expect(ofType(effects, 'write-round-report')).toHaveLength(1);
    expect(d.phase).toBe('done');
    expect(end(effects).result).toEqual({ ok: true, stopped: { signal: 'SIGTERM', nodeRank: 0 } });
  });

  it('a second stop while stopping is only logged', () => {
    const d = new Driver();
    d.running();
    d.handle({ type: 'save-requested', signal: 'SIGTERM', stop: true, nodeRank: 0 });
    const again = d.handle({ type: 'save-requested', signal: 'SIGUSR1', stop: true, nodeRank: 1 });
    expect(sent(again)).toEqual([]);
    expect(ofType(again, 'log')[0].text).toMatch(/already stopping \(on SIGTERM\)/);
  });

  it('a save request during a save is passed on; a shard of another step before the commit fails the job', () => {
    const d = new Driver();
    d.running();
    expect(
      sent(d.handle({ type: 'save-requested', signal: 'SIGUSR2', stop: false, nodeRank: 0 }), 'saveRequest'),
    ).toHaveLength(2);
    d.say(workerId(0), 'shardSaved', { report: shard(0, 20) });
    // The workers are saving step 20: another request goes to them as well (they finish one save first).
    expect(
      sent(d.handle({ type: 'save-requested', signal: 'SIGUSR2', stop: false, nodeRank: 1 }), 'saveRequest'),
    ).toHaveLength(2);
    expect(d.phase).toBe('running');
    d.say(workerId(0), 'shardSaved', { report: shard(0, 30) });
    expect(d.phase).toBe('aborting');
    d.exited(0);
    expect(failureCode(d.exited(1))).toBe('ERR_CHECKPOINT_INTERLEAVED');
  });

  it('a save request while not running is only logged', () => {
    const d = new Driver();
    d.hello(0);
    const effects = d.handle({ type: 'save-requested', signal: 'SIGUSR2', stop: false, nodeRank: 0 });
    expect(sent(effects)).toEqual([]);
    expect(d.phase).toBe('rendezvous');
  });

  it('a commit that fails tells every worker, then aborts', () => {
    const d = new Driver(settings({ maxRestarts: 1 }));
    d.running();
    d.say(workerId(0), 'shardSaved', { report: shard(0, 10) });
    const [commit] = ofType(d.say(workerId(1), 'shardSaved', { report: shard(1, 10) }), 'commit');
    const error = new RelayError(
      'ERR_CHECKPOINT_COMMIT',
      'the checkpoint of step 10 could not be committed: disk full',
    );
    const effects = d.handle({ type: 'commit-done', round: 0, reports: commit.reports, error });
    expect(sent(effects, 'saveCommitted').map((s) => (s.body as { error: string }).error)).toEqual([
      error.message,
      error.message,
    ]);
    expect(d.phase).toBe('aborting');
  });
});

describe("a stale round's messages", () => {
  function inRound1(): Driver {
    const d = new Driver(settings({ maxRestarts: 2 }));
    d.running();
    d.exited(0);
    d.exited(1);
    d.agentsStopped(0);
    expect(d.job.round).toBe(1);
    return d;
  }

  it('a registration of round 0 is refused; an exit report of round 0 is not blamed on round 1', () => {
    const d = inRound1();
    expect(sent(d.register(0, { round: 0 }), 'reject')).toHaveLength(1);
    d.register(0);
    expect(d.exited(1, { round: 0 })).toEqual([]);
    expect(d.phase).toBe('rendezvous');
  });

  it('a late agentStopped, a resume choice and a worker of round 0 change nothing', () => {
    const d = inRound1();
    expect(sent(d.say(agentId(0), 'agentStopped', { round: 0 }))).toEqual([]);
    d.rendezvous();
    expect(d.phase).toBe('assigning');
    expect(d.handle({ type: 'resume-chosen', round: 0, resume: { dir: '/old', step: 1 } })).toEqual([]);
    expect(d.phase).toBe('assigning');
    // A worker of round 0 is no longer a known peer.
    expect(sent(d.say(workerId(0, 0), 'ready', {}))).toEqual([]);
  });

  it("round 0's commit that ends during round 1 still counts as the newest checkpoint, but is not announced", () => {
    const d = new Driver(settings({ maxRestarts: 2 }));
    d.running();
    d.say(workerId(0), 'shardSaved', { report: shard(0, 10) });
    const [commit] = ofType(d.say(workerId(1), 'shardSaved', { report: shard(1, 10) }), 'commit');
    d.exited(0);
    d.exited(1);
    d.agentsStopped(0);
    const effects = d.handle({
      type: 'commit-done',
      round: 0,
      reports: commit.reports,
      dir: '/run/checkpoints/step-10',
    });
    expect(sent(effects)).toEqual([]);
    expect(ofType(effects, 'emit')[0].event).toEqual({ type: 'checkpoint', step: 10, dir: '/run/checkpoints/step-10' });
    d.rendezvous();
    d.handle({ type: 'resume-chosen', round: 1 });
    d.exited(0);
    expect(ofType(d.effects, 'emit')[0].event).toMatchObject({ resumeFrom: '/run/checkpoints/step-10' });
  });
});

describe('the end', () => {
  it('every worker finished: Shutdown to the agents, the outcome once every exit is known', () => {
    const d = new Driver();
    d.running();
    d.say(workerId(0), 'stepReport', stepReport(7));
    expect(sent(d.say(workerId(0), 'finish', { stopped: false, step: 7 }), 'finishAck')).toHaveLength(1);
    d.say(workerId(1), 'finish', { stopped: false, step: 7 });
    expect(d.phase).toBe('finishing');
    d.exited(0, { exitCode: 0 });
    expect(end(d.exited(1, { exitCode: 0 }))).toEqual({
      type: 'end',
      summary: { jobId: 'job-1', round: 0, restarts: 0, lastStep: 7, rejected: [] },
      result: { ok: true },
    });
  });

  it('an abort from the launcher is never restarted', () => {
    const d = new Driver(settings({ maxRestarts: 3 }));
    d.running();
    d.handle({ type: 'abort', code: 'ERR_INTERRUPTED', message: 'SIGINT' });
    expect(d.phase).toBe('aborting');
  });

  it('exits not reported within the settle time: the outcome is final anyway', () => {
    const d = new Driver();
    d.running();
    d.handle({ type: 'abort', code: 'ERR_INTERRUPTED', message: 'SIGINT' });
    expect(failureCode(d.advance(6000))).toBe('ERR_INTERRUPTED');
  });

  it('closing before the job ended is a failure of its own (ERR_JOB_INCOMPLETE)', () => {
    const d = new Driver();
    d.running();
    expect(failureCode(d.handle({ type: 'close' }))).toBe('ERR_JOB_INCOMPLETE');
    expect(d.handle({ type: 'tick' })).toEqual([]);
  });
});

function stepReport(step: number): MessageBodies['stepReport'] {
  return {
    step,
    totalSteps: 100,
    loss: 2,
    losses: [{ name: 'mlm', value: 2 }],
    metrics: [],
    gradNorm: 1,
    lr: 1e-4,
    tokensPerS: 1000,
    stepMs: 10,
    skipped: false,
    consumedSamples: step * 8,
  };
}
