// coordinator.ts — the job's control plane, run by node 0's launcher: a ROUTER socket that every
// agent and worker talks to. It runs the rendezvous (agents join, workers register, groups are
// handed out, a ready/start barrier), watches liveness (heartbeats both ways), collects step
// metrics, and on the first failure aborts the whole job and writes the root-cause report.
// It never trusts what arrives: every frame is size-capped, decoded and verified, and a bad one is
// logged and dropped.
import { randomBytes } from 'node:crypto';
import type pino from 'pino';
import * as zmq from 'zeromq';

import { serverCurveOptions, ZapHandler, type ControlKeys } from './auth';
import { ControlError } from './errors';
import {
  describeExit,
  describeWho,
  FailureLog,
  writeReport,
  type JobFailure,
  type RejectedPeer,
  type RootCauseReport,
} from './failure';
import { placeRank, validateLayout, type ParallelLayout } from './groups';
import type {
  AgentHello,
  ControlMessage,
  MessageBodies,
  MessageKind,
  PeerInfo,
  Register,
  StepReport,
  WorkerExited,
} from './messages';
import { decodeMessage, describeFrame, encodeMessage, MAX_CONTROL_MESSAGE_BYTES, SendQueue } from './wire';

export interface CoordinatorOptions {
  port: number;
  nnodes: number;
  nprocPerNode: number;
  tpSize: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  /** Silence allowed before a worker's first step and while it saves a checkpoint. */
  firstStepTimeoutMs: number;
  rendezvousTimeoutMs: number;
  /** Where failure.json goes. */
  runDir: string;
  log: pino.Logger;
  onEvent?: (e: CoordinatorEvent) => void;
  /** After an abort: how long to wait for the agents' reports of their workers' exits. */
  abortSettleMs?: number;
  /** CURVE keys of the job (--auth-key-file); without them the control plane is unauthenticated. */
  keys?: ControlKeys;
}

/** What the launcher shows while the job runs. */
export type CoordinatorEvent =
  | { type: 'agent-joined'; nodeRank: number; host: string; pid: number }
  | { type: 'worker-registered'; rank: number; host: string; pid: number }
  | { type: 'rejected'; peer: RejectedPeer }
  | { type: 'started'; worldSize: number; tpSize: number; dpSize: number }
  | { type: 'step'; dpRank: number; rank: number; report: StepReport }
  | { type: 'failure'; failure: JobFailure }
  | { type: 'finished' };

export type JobOutcome =
  | { ok: true; jobId: string; round: number; rejected: RejectedPeer[] }
  | { ok: false; report: RootCauseReport; reportFile: string };

/** Where the job is. Liveness is only enforced before the job has finished or been aborted. */
type JobPhase = 'rendezvous' | 'ready' | 'running' | 'finishing' | 'aborting' | 'done';

interface AgentPeer {
  routingId: Buffer;
  hello: AgentHello;
  lastSeenMs: number;
  phase: string;
}

interface WorkerPeer {
  routingId: Buffer;
  reg: Register;
  lastSeenMs: number;
  phase: string;
  steppedOnce: boolean;
  ready: boolean;
  finished: boolean;
}

type Sender = { role: 'agent'; nodeRank: number } | { role: 'worker'; rank: number };

/** Bad frames logged individually before the log switches to a count every BAD_FRAME_LOG_EVERY. */
const BAD_FRAMES_LOGGED = 20;
const BAD_FRAME_LOG_EVERY = 1000;

export class Coordinator {
  readonly jobId = randomBytes(8).toString('hex');
  /** Restart count; a later issue restarts the gang, this field is already in every message. */
  readonly round = 0;
  readonly worldSize: number;
  /** Resolves once the job has finished or failed (and failure.json is written). */
  readonly done: Promise<JobOutcome>;

  private resolveDone!: (o: JobOutcome) => void;
  private phase: JobPhase = 'rendezvous';
  private readonly queue: SendQueue;
  private readonly layout: ParallelLayout;
  private readonly agents = new Map<number, AgentPeer>();
  private readonly workers = new Map<number, WorkerPeer>();
  private readonly senders = new Map<string, Sender>();
  private readonly exits = new Map<number, WorkerExited>();
  /** Nodes whose launcher went silent: nobody will report their workers' exits. */
  private readonly lostNodes = new Set<number>();
  private readonly latestSteps = new Map<number, StepReport>();
  private readonly failures = new FailureLog();
  private readonly rejected: RejectedPeer[] = [];
  private readonly startedMs = Date.now();
  private readyDeadlineMs = 0;
  private settleDeadlineMs = 0;
  private lastTickMs = Date.now();
  private badFrames = 0;
  private timer: NodeJS.Timeout;
  private closed = false;

  private constructor(
    private readonly socket: zmq.Router,
    private readonly opts: CoordinatorOptions,
    private readonly zap: ZapHandler | undefined,
  ) {
    this.worldSize = opts.nnodes * opts.nprocPerNode;
    this.layout = { worldSize: this.worldSize, nprocPerNode: opts.nprocPerNode, tpSize: opts.tpSize };
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.queue = new SendQueue(socket, (err) => opts.log.warn({ err: err.message }, 'control send failed'));
    this.timer = setInterval(() => this.tick(), opts.heartbeatIntervalMs);
    void this.receiveLoop();
  }

  /** Binds tcp://*:port and starts the job's rendezvous. */
  static async start(opts: CoordinatorOptions): Promise<Coordinator> {
    validateLayout({
      worldSize: opts.nnodes * opts.nprocPerNode,
      nprocPerNode: opts.nprocPerNode,
      tpSize: opts.tpSize,
    });
    // The ZAP handler must be listening before the first handshake.
    const zap = opts.keys
      ? await ZapHandler.start(opts.keys, (address) =>
          opts.log.warn({ address }, `refused a control connection from ${address}: it does not hold this job's key`),
        )
      : undefined;
    const socket = new zmq.Router({
      maxMessageSize: MAX_CONTROL_MESSAGE_BYTES,
      linger: 500,
      // A peer that reconnects with its routing id takes over its old connection.
      handover: true,
      ...(opts.keys ? serverCurveOptions(opts.keys) : {}),
    });
    try {
      await socket.bind(`tcp://*:${opts.port}`);
    } catch (err) {
      socket.close();
      zap?.close();
      const e = err as Error & { code?: string };
      if (e.code === 'EADDRINUSE')
        throw new ControlError(
          'ERR_PORT_IN_USE',
          `port ${opts.port} is already in use on this host; pick another with --master-port (and give every node ` +
            `the same one)`,
        );
      throw new ControlError('ERR_COORDINATOR_BIND', `cannot listen on tcp://*:${opts.port}: ${e.message}`);
    }
    return new Coordinator(socket, opts, zap);
  }

  /** Stops the job from outside (the launcher was interrupted); the root cause is this reason. */
  abort(code: string, message: string): void {
    this.fail({ code, message });
  }

  /** Latest step report per data-parallel rank. */
  steps(): ReadonlyMap<number, StepReport> {
    return this.latestSteps;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.finalize();
    clearInterval(this.timer);
    await Promise.race([this.queue.drained(), new Promise((r) => setTimeout(r, 500))]);
    this.closed = true;
    this.socket.close();
    this.zap?.close();
  }

  // ---- receiving -------------------------------------------------------------------------------

  private async receiveLoop(): Promise<void> {
    try {
      for await (const frames of this.socket) this.onFrames(frames);
    } catch (err) {
      if (!this.closed) {
        this.opts.log.error({ err: (err as Error).message }, 'coordinator socket failed');
        this.fail({ code: 'ERR_COORDINATOR_SOCKET', message: `the coordinator's socket failed: ${String(err)}` });
      }
    }
  }

  private onFrames(frames: Buffer[]): void {
    const [routingId, ...body] = frames;
    if (!routingId || body.length !== 1) {
      this.dropFrame(routingId, `${body.length}-part message`);
      return;
    }
    let m: ControlMessage;
    try {
      m = decodeMessage(body[0]);
    } catch (err) {
      this.dropFrame(routingId, `${describeFrame(body[0])}: ${(err as Error).message}`);
      return;
    }
    try {
      this.handle(routingId, m);
    } catch (err) {
      // A handler bug must not take the job's control plane down with it.
      this.opts.log.error({ err: (err as Error).stack, kind: m.kind }, 'control message handler failed');
    }
  }

  private dropFrame(routingId: Buffer | undefined, what: string): void {
    this.badFrames++;
    if (this.badFrames <= BAD_FRAMES_LOGGED || this.badFrames % BAD_FRAME_LOG_EVERY === 0)
      this.opts.log.warn(
        { peer: routingId ? printableId(routingId) : '?', badFrames: this.badFrames },
        `dropped a bad control frame: ${what}`,
      );
  }

  private handle(routingId: Buffer, m: ControlMessage): void {
    const sender = this.senders.get(routingId.toString('hex'));
    if (sender) this.touch(sender);
    switch (m.kind) {
      case 'agentHello':
        return this.onAgentHello(routingId, m.body);
      case 'register':
        return this.onRegister(routingId, m.body);
      case 'heartbeat':
        if (sender) this.peerOf(sender)!.phase = m.body.phase;
        return;
    }
    if (!sender) {
      this.opts.log.warn({ peer: printableId(routingId), kind: m.kind }, 'message from a peer that has not joined');
      return;
    }
    if (sender.role === 'agent') {
      if (m.kind === 'workerExited') return this.onWorkerExited(sender.nodeRank, m.body);
      if (m.kind === 'failureReport') return this.onFailureReport(sender, m.body);
    } else {
      if (m.kind === 'ready') return this.onReady(sender.rank);
      if (m.kind === 'stepReport') return this.onStepReport(sender.rank, m.body);
      if (m.kind === 'failureReport') return this.onFailureReport(sender, m.body);
      if (m.kind === 'finish') return this.onFinish(sender.rank);
    }
    this.opts.log.warn({ peer: printableId(routingId), kind: m.kind }, `unexpected ${m.kind} from a ${sender.role}`);
  }

  private touch(sender: Sender): void {
    const peer = this.peerOf(sender);
    if (peer) peer.lastSeenMs = Date.now();
  }

  private peerOf(sender: Sender): AgentPeer | WorkerPeer | undefined {
    return sender.role === 'agent' ? this.agents.get(sender.nodeRank) : this.workers.get(sender.rank);
  }

  // ---- rendezvous ------------------------------------------------------------------------------

  private onAgentHello(routingId: Buffer, h: AgentHello): void {
    const key = routingId.toString('hex');
    const existing = this.agents.get(h.nodeRank);
    if (existing && existing.routingId.equals(routingId)) return this.sendWelcome(routingId); // a repeated hello
    const who = `the launcher of node ${h.nodeRank} (host ${h.host}, pid ${h.pid})`;
    if (h.nnodes !== this.opts.nnodes || h.nprocPerNode !== this.opts.nprocPerNode) {
      const reason =
        `${who} was started with --nnodes ${h.nnodes} --nproc-per-node ${h.nprocPerNode}, node 0 with ` +
        `--nnodes ${this.opts.nnodes} --nproc-per-node ${this.opts.nprocPerNode}; start every node with the same values`;
      this.reject(routingId, { reason, host: h.host, pid: h.pid });
      this.fail({ code: 'ERR_LAUNCH_MISMATCH', message: reason, nodeRank: h.nodeRank, host: h.host, pid: h.pid });
      return;
    }
    if (h.nodeRank >= this.opts.nnodes)
      return this.reject(routingId, {
        reason: `${who}: node rank ${h.nodeRank} is outside --nnodes ${this.opts.nnodes} (node ranks are 0..${this.opts.nnodes - 1})`,
        host: h.host,
        pid: h.pid,
      });
    if (existing)
      return this.reject(routingId, {
        reason:
          `${who}: node rank ${h.nodeRank} has already joined from host ${existing.hello.host} (pid ` +
          `${existing.hello.pid}); give each node its own --node-rank`,
        host: h.host,
        pid: h.pid,
      });
    if (this.phase !== 'rendezvous')
      return this.reject(routingId, { reason: `${who} arrived after the rendezvous closed`, host: h.host, pid: h.pid });
    this.agents.set(h.nodeRank, { routingId, hello: h, lastSeenMs: Date.now(), phase: 'prepare' });
    this.senders.set(key, { role: 'agent', nodeRank: h.nodeRank });
    this.sendWelcome(routingId);
    this.opts.log.info({ nodeRank: h.nodeRank, host: h.host, pid: h.pid }, `node ${h.nodeRank} joined`);
    this.emit({ type: 'agent-joined', nodeRank: h.nodeRank, host: h.host, pid: h.pid });
    this.maybeAssign();
  }

  private sendWelcome(routingId: Buffer): void {
    this.send(routingId, 'agentWelcome', {
      jobId: this.jobId,
      round: this.round,
      worldSize: this.worldSize,
      heartbeatIntervalMs: this.opts.heartbeatIntervalMs,
      heartbeatTimeoutMs: this.opts.heartbeatTimeoutMs,
      firstStepTimeoutMs: this.opts.firstStepTimeoutMs,
      rendezvousTimeoutMs: this.opts.rendezvousTimeoutMs,
    });
  }

  private onRegister(routingId: Buffer, r: Register): void {
    const key = routingId.toString('hex');
    const who = describeWho({ rank: r.rank, host: r.host, pid: r.pid });
    const refuse = (reason: string) => this.reject(routingId, { reason, rank: r.rank, host: r.host, pid: r.pid });
    if (r.jobId !== this.jobId)
      return refuse(`${who} belongs to another job (${r.jobId || 'no job id'}; this job is ${this.jobId})`);
    if (r.round !== this.round)
      return refuse(
        `${who} is a worker from ${r.round < this.round ? 'an earlier' : 'another'} round (${r.round}; this is round ${this.round})`,
      );
    const existing = this.workers.get(r.rank);
    if (existing?.routingId.equals(routingId)) return; // a repeated registration
    if (existing)
      return refuse(`${who}: rank ${r.rank} is already registered by pid ${existing.reg.pid} on ${existing.reg.host}`);
    if (this.phase !== 'rendezvous') return refuse(`${who} arrived after the rendezvous closed`);
    const expected = r.nodeRank * this.opts.nprocPerNode + r.localRank;
    if (r.rank >= this.worldSize || r.localRank >= this.opts.nprocPerNode || r.rank !== expected)
      return refuse(
        `${who}: rank ${r.rank}, node rank ${r.nodeRank}, local rank ${r.localRank} do not fit a world of ` +
          `${this.opts.nnodes} × ${this.opts.nprocPerNode}`,
      );
    this.workers.set(r.rank, {
      routingId,
      reg: r,
      lastSeenMs: Date.now(),
      phase: 'setup',
      steppedOnce: false,
      ready: false,
      finished: false,
    });
    this.senders.set(key, { role: 'worker', rank: r.rank });
    this.emit({ type: 'worker-registered', rank: r.rank, host: r.host, pid: r.pid });
    if (this.checkSameBuildAndConfig(r.rank)) this.maybeAssign();
  }

  /** Every worker must run rank 0's config and build; the first that does not fails the job. */
  private checkSameBuildAndConfig(rank: number): boolean {
    const zero = this.workers.get(0);
    if (!zero) return true;
    const others =
      rank === 0 ? [...this.workers.values()].sort((a, b) => a.reg.rank - b.reg.rank) : [this.workers.get(rank)!];
    for (const w of others) {
      if (w.reg.rank === 0) continue;
      const them = describeWho(w.reg),
        us = describeWho(zero.reg);
      if (w.reg.configHash !== zero.reg.configHash) {
        this.fail({
          code: 'ERR_CONFIG_MISMATCH',
          message:
            `${them} resolved a different config (hash ${w.reg.configHash}) than ${us} (hash ${zero.reg.configHash}); ` +
            `start every node with the same --config file and --set overrides`,
          ...identity(w.reg),
        });
        return false;
      }
      if (w.reg.buildHash !== zero.reg.buildHash) {
        this.fail({
          code: 'ERR_BUILD_MISMATCH',
          message:
            `${them} runs a different paratrain build (hash ${w.reg.buildHash}) than ${us} (hash ${zero.reg.buildHash}); ` +
            `install the same commit and rebuild (npm run build) on every node`,
          ...identity(w.reg),
        });
        return false;
      }
    }
    return true;
  }

  private maybeAssign(): void {
    if (this.phase !== 'rendezvous') return;
    if (this.agents.size < this.opts.nnodes || this.workers.size < this.worldSize) return;
    this.phase = 'ready';
    this.readyDeadlineMs = Date.now() + this.opts.rendezvousTimeoutMs;
    for (const w of this.workers.values()) {
      const p = placeRank(w.reg.rank, this.layout);
      this.send(w.routingId, 'assignment', {
        jobId: this.jobId,
        round: this.round,
        rank: p.rank,
        worldSize: this.worldSize,
        tpRank: p.tpRank,
        tpSize: p.tpSize,
        dpRank: p.dpRank,
        dpSize: p.dpSize,
        tpPeers: p.tpGroup.map((r) => this.peerInfo(r)),
        dpPeers: p.dpGroup.map((r) => this.peerInfo(r)),
      });
    }
    this.opts.log.info({ worldSize: this.worldSize }, 'every worker registered; groups assigned');
  }

  private peerInfo(rank: number): PeerInfo {
    const { reg } = this.workers.get(rank)!;
    return { rank, host: reg.host, nodeRank: reg.nodeRank, endpoints: reg.endpoints };
  }

  private onReady(rank: number): void {
    const w = this.workers.get(rank)!;
    w.ready = true;
    if (this.phase !== 'ready' || [...this.workers.values()].some((x) => !x.ready)) return;
    this.phase = 'running';
    for (const x of this.workers.values()) this.send(x.routingId, 'start', {});
    const dpSize = this.worldSize / this.opts.tpSize;
    this.opts.log.info({ worldSize: this.worldSize, tp: this.opts.tpSize, dp: dpSize }, 'every worker ready; started');
    this.emit({ type: 'started', worldSize: this.worldSize, tpSize: this.opts.tpSize, dpSize });
  }

  private reject(routingId: Buffer, peer: Omit<RejectedPeer, 'atUnixMs'>): void {
    const entry = { ...peer, atUnixMs: Date.now() };
    this.rejected.push(entry);
    this.send(routingId, 'reject', { reason: peer.reason });
    this.opts.log.warn({ peer: printableId(routingId) }, `refused: ${peer.reason}`);
    this.emit({ type: 'rejected', peer: entry });
  }

  // ---- running ---------------------------------------------------------------------------------

  private onStepReport(rank: number, report: StepReport): void {
    const w = this.workers.get(rank)!;
    w.steppedOnce = true;
    const dpRank = Math.floor(rank / this.opts.tpSize);
    this.latestSteps.set(dpRank, report);
    this.emit({ type: 'step', dpRank, rank, report });
  }

  private onFinish(rank: number): void {
    const w = this.workers.get(rank)!;
    this.send(w.routingId, 'finishAck', {});
    if (this.phase !== 'running' || w.finished) return;
    w.finished = true;
    if ([...this.workers.values()].some((x) => !x.finished)) return;
    this.phase = 'finishing';
    this.settleDeadlineMs = Date.now() + this.opts.heartbeatTimeoutMs;
    for (const a of this.agents.values()) this.send(a.routingId, 'shutdown', { reason: 'every worker finished' });
    this.opts.log.info('every worker finished');
    this.emit({ type: 'finished' });
    this.maybeSettle();
  }

  private onWorkerExited(nodeRank: number, e: WorkerExited): void {
    const first = nodeRank * this.opts.nprocPerNode;
    if (e.rank < first || e.rank >= first + this.opts.nprocPerNode) {
      this.opts.log.warn(
        { nodeRank, rank: e.rank },
        `node ${nodeRank} reported an exit of rank ${e.rank}, not its own`,
      );
      return;
    }
    this.exits.set(e.rank, e);
    this.failures.addLastLines(e.rank, e.lastLines);
    const w = this.workers.get(e.rank);
    const host = w?.reg.host ?? this.agents.get(nodeRank)?.hello.host;
    const clean = e.exitCode === 0 && !e.signal;
    const how = describeExit(e.exitCode, e.signal || undefined);
    const who = describeWho({ rank: e.rank, host, pid: e.pid });
    const failure = {
      code: 'ERR_WORKER_EXITED',
      rank: e.rank,
      nodeRank,
      host,
      pid: e.pid,
      exitCode: e.exitCode,
      signal: e.signal || undefined,
      lastLines: e.lastLines,
    };
    if (w?.finished || this.phase === 'finishing') {
      if (!clean) this.fail({ ...failure, message: `${who} ${how} after finishing` });
    } else if (this.phase !== 'done') {
      this.fail({ ...failure, message: `${who} ${how}${clean ? ' before finishing' : ''}` });
    }
    this.maybeSettle();
  }

  private onFailureReport(sender: Sender, f: { code: string; message: string }): void {
    const code = f.code || 'ERR_WORKER_FAILED';
    if (sender.role === 'worker') {
      const { reg } = this.workers.get(sender.rank)!;
      this.fail({ code, message: `${describeWho(reg)} reported: ${f.message}`, ...identity(reg) });
    } else {
      const { hello } = this.agents.get(sender.nodeRank)!;
      this.fail({
        code,
        message: `the launcher of node ${hello.nodeRank} (host ${hello.host}) reported: ${f.message}`,
        nodeRank: hello.nodeRank,
        host: hello.host,
        pid: hello.pid,
      });
    }
  }

  // ---- liveness, failure, the end --------------------------------------------------------------

  private tick(): void {
    const now = Date.now();
    // Our own event loop was blocked: peers' heartbeats are sitting unread, so nobody is late.
    const stalled = now - this.lastTickMs > 2 * this.opts.heartbeatIntervalMs;
    this.lastTickMs = now;
    if (this.phase === 'done') return;
    for (const a of this.agents.values()) {
      if (stalled) a.lastSeenMs = now;
      this.send(a.routingId, 'heartbeat', { phase: this.phase });
    }
    for (const w of this.workers.values()) {
      if (stalled) w.lastSeenMs = now;
      if (!this.exits.has(w.reg.rank) && !w.finished) this.send(w.routingId, 'heartbeat', { phase: this.phase });
    }
    if (this.phase === 'rendezvous' || this.phase === 'ready' || this.phase === 'running') this.checkLiveness(now);
    this.maybeSettle();
  }

  private checkLiveness(now: number): void {
    const s = (ms: number) => `${(ms / 1000).toFixed(1)} s`;
    for (const a of this.agents.values()) {
      const silent = now - a.lastSeenMs;
      if (silent > this.opts.heartbeatTimeoutMs) {
        this.lostNodes.add(a.hello.nodeRank);
        return this.fail({
          code: 'ERR_HEARTBEAT_TIMEOUT',
          message:
            `the launcher of node ${a.hello.nodeRank} (host ${a.hello.host}, pid ${a.hello.pid}) sent nothing for ` +
            `${s(silent)} (--heartbeat-timeout ${s(this.opts.heartbeatTimeoutMs)}); is the node up and reachable?`,
          nodeRank: a.hello.nodeRank,
          host: a.hello.host,
          pid: a.hello.pid,
        });
      }
    }
    for (const w of this.workers.values()) {
      if (w.finished || this.exits.has(w.reg.rank)) continue;
      const silent = now - w.lastSeenMs;
      const slowPhase = w.phase === 'save' || (!w.steppedOnce && (w.phase === 'setup' || w.phase === 'first-step'));
      const limit = slowPhase ? this.opts.firstStepTimeoutMs : this.opts.heartbeatTimeoutMs;
      if (silent > limit)
        return this.fail({
          code: 'ERR_HEARTBEAT_TIMEOUT',
          message:
            `${describeWho(w.reg)} sent nothing for ${s(silent)} in phase '${w.phase}' (limit ${s(limit)}, ` +
            `${slowPhase ? '--first-step-timeout' : '--heartbeat-timeout'}); it is hung or unreachable`,
          ...identity(w.reg),
        });
    }
    if (this.phase === 'rendezvous' && now - this.startedMs > this.opts.rendezvousTimeoutMs) {
      const missingNodes = range(this.opts.nnodes).filter((n) => !this.agents.has(n));
      const missingRanks = range(this.worldSize).filter((r) => !this.workers.has(r));
      const parts = [
        missingNodes.length && `node(s) ${missingNodes.join(', ')} never joined (is their paratrain launch running?)`,
        missingRanks.length && `rank(s) ${missingRanks.join(', ')} never registered`,
      ].filter(Boolean);
      return this.fail({
        code: 'ERR_RENDEZVOUS_TIMEOUT',
        message: `rendezvous timed out after ${s(this.opts.rendezvousTimeoutMs)}: ${parts.join('; ')}`,
      });
    }
    if (this.phase === 'ready' && now > this.readyDeadlineMs) {
      const notReady = [...this.workers.values()].filter((w) => !w.ready).map((w) => w.reg.rank);
      return this.fail({
        code: 'ERR_RENDEZVOUS_TIMEOUT',
        message:
          `rank(s) ${notReady.join(', ')} did not connect their data plane within ${s(this.opts.rendezvousTimeoutMs)} ` +
          `(check --host-addr and that the nodes can reach each other)`,
      });
    }
  }

  /** Records a failure; the first one aborts the job. */
  private fail(f: Omit<JobFailure, 'atUnixMs'>): void {
    if (this.phase === 'done') return;
    const isRootCause = this.failures.record(f);
    this.opts.log.error({ code: f.code, rank: f.rank, host: f.host }, f.message);
    if (!isRootCause || this.phase === 'finishing' || this.phase === 'aborting') return;
    this.phase = 'aborting';
    this.settleDeadlineMs = Date.now() + (this.opts.abortSettleMs ?? 5000);
    const reason = `[${f.code}] ${f.message}`;
    for (const a of this.agents.values()) this.send(a.routingId, 'abort', { reason });
    for (const w of this.workers.values()) this.send(w.routingId, 'abort', { reason });
    this.emit({ type: 'failure', failure: this.failures.rootCause! });
    this.maybeSettle();
  }

  /** Once every registered worker's exit is known (or the wait is over), the outcome is final. */
  private maybeSettle(): void {
    if (this.phase !== 'aborting' && this.phase !== 'finishing') return;
    const allExited = [...this.workers.values()].every(
      (w) => this.exits.has(w.reg.rank) || this.lostNodes.has(w.reg.nodeRank),
    );
    if (allExited || Date.now() >= this.settleDeadlineMs) this.finalize();
  }

  private finalize(): void {
    if (this.phase === 'done') return;
    this.phase = 'done';
    clearInterval(this.timer);
    const report = this.failures.report(this.jobId, this.round, this.rejected);
    if (!report) {
      if (this.workers.size === this.worldSize && [...this.workers.values()].every((w) => w.finished))
        return this.resolveDone({ ok: true, jobId: this.jobId, round: this.round, rejected: this.rejected });
      // Closed before the job ended: that is a failure too (the launcher was stopped).
      this.failures.record({
        code: 'ERR_JOB_INCOMPLETE',
        message: 'the coordinator closed before every worker finished',
      });
      return this.finalizeFailure(this.failures.report(this.jobId, this.round, this.rejected)!);
    }
    this.finalizeFailure(report);
  }

  private finalizeFailure(report: RootCauseReport): void {
    let reportFile = '';
    try {
      reportFile = writeReport(this.opts.runDir, report);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'could not write failure.json');
    }
    this.resolveDone({ ok: false, report, reportFile });
  }

  private send<K extends MessageKind>(routingId: Buffer, kind: K, body: MessageBodies[K]): void {
    if (this.closed) return;
    const frame = encodeMessage({ kind, body } as ControlMessage);
    void this.queue.send([routingId, frame], { droppable: kind === 'heartbeat' });
  }

  private emit(e: CoordinatorEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'coordinator event listener failed');
    }
  }
}

function identity(r: Register): Pick<JobFailure, 'rank' | 'nodeRank' | 'host' | 'pid'> {
  return { rank: r.rank, nodeRank: r.nodeRank, host: r.host, pid: r.pid };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** A routing id for logs: ours are readable ("worker/r3/…"); ZeroMQ's own are binary. */
function printableId(id: Buffer): string {
  const s = id.toString('utf8');
  return /^[\x20-\x7e]+$/.test(s) ? s : `0x${id.toString('hex')}`;
}
