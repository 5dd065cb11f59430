// coordinator.ts — the job's state machine, run by node 0's launcher behind the ROUTER every agent
// and worker talks to (router.ts). It runs each round's rendezvous (agents join, workers register,
// the resume checkpoint is chosen, groups are handed out, a ready/start barrier), watches liveness
// (heartbeats both ways), collects step metrics, relays checkpoint commits, turns a launcher's
// signal into a save or a graceful stop, and on a failure either restarts the gang in a new round
// (--max-restarts) or aborts the whole job and writes the root-cause report.
// It never trusts what arrives: the router passes on only verified frames, and a message from a
// peer is judged by who that peer joined as, never by what the message claims.
import { randomBytes } from 'node:crypto';
import type pino from 'pino';

import type { ShardReport } from '../checkpoint';
import type { ControlKeys } from '../control/auth';
import {
  CheckpointRelay,
  describeCommit,
  findResumeCheckpoint,
  type RelayError,
  type ResumePoint,
} from './checkpoints';
import {
  describeWho,
  FailureLog,
  writeReport,
  writeRoundReport,
  type JobFailure,
  type RejectedPeer,
  type RootCauseReport,
} from './failure';
import { placeRank, validateLayout, type ParallelLayout } from './groups';
import { readyTimeout, rendezvousTimeout, restartTimeout, silentAgent, silentWorker, stopTimeout } from './liveness';
import {
  describeExit,
  type AgentHello,
  type ControlMessage,
  type Finish,
  type MessageBodies,
  type MessageKind,
  type PeerInfo,
  type Register,
  type StepReport,
  type WorkerExited,
} from '../control/messages';
import { agentHelloProblem, configOrBuildMismatch, registrationProblem } from './rendezvous';
import { ControlRouter, printableId } from '../control/router';

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
  /** Where failure.json and failures/ go (config.run.dir). */
  runDir: string;
  /** <run.dir>/checkpoints: where checkpoints are committed, and restarts resume from. */
  checkpointRoot: string;
  /** config.checkpoint.keep: committed checkpoints kept (the oldest are pruned). */
  keep: number;
  /** --resume for round 0: 'auto' or an absolute path; absent = start at step 0. */
  resume?: string;
  /** --max-restarts: failed rounds restarted before the job fails (default 0). */
  maxRestarts?: number;
  /** --stop-timeout: how long a graceful stop may take before the job is aborted (default 120 s). */
  stopTimeoutMs?: number;
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
  | { type: 'started'; round: number; worldSize: number; tpSize: number; dpSize: number; resumeStep?: number }
  | { type: 'step'; dpRank: number; rank: number; report: StepReport }
  | { type: 'checkpoint'; step: number; dir: string }
  | { type: 'restarting'; round: number; maxRestarts: number; failure: JobFailure; resumeFrom?: string }
  | { type: 'stopping'; signal: string; nodeRank: number }
  | { type: 'failure'; failure: JobFailure }
  | { type: 'finished' };

/** A graceful stop: who asked, and where it ended. */
export interface StopSummary {
  signal: string;
  /** The node whose launcher received the signal. */
  nodeRank: number;
  /** The step every worker saved and stopped at; absent when the job stopped before training. */
  step?: number;
  /** The checkpoint committed at `step`, when there is one. */
  checkpoint?: string;
}

/** What every outcome says about the job. */
export interface JobSummary {
  jobId: string;
  /** The last round (= restarts). */
  round: number;
  restarts: number;
  /** The last step a worker reported completing, if any. */
  lastStep?: number;
  /** Where `--resume auto` continues: the newest checkpoint this job committed, else the one it resumed from. */
  checkpoint?: string;
  rejected: RejectedPeer[];
}

export type JobOutcome =
  | (JobSummary & { ok: true; stopped?: StopSummary })
  | (JobSummary & { ok: false; report: RootCauseReport; reportFile: string });

/**
 * Where the job is. A round goes rendezvous → assigning (the resume checkpoint is verified) →
 * ready → running, then ends in stopping (a graceful stop) → finishing, or in restarting (the
 * next round's rendezvous follows), or in aborting. Liveness is enforced until finishing/aborting.
 */
type JobPhase =
  'rendezvous' | 'assigning' | 'ready' | 'running' | 'stopping' | 'restarting' | 'finishing' | 'aborting' | 'done';

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
  finish?: Finish;
}

type Sender = { role: 'agent'; nodeRank: number } | { role: 'worker'; rank: number };

const DEFAULT_STOP_TIMEOUT_MS = 120_000;
/** Phases in which worker silence fails the job (or the round). */
const WORKERS_WATCHED: ReadonlySet<JobPhase> = new Set(['rendezvous', 'assigning', 'ready', 'running', 'stopping']);

/**
 * Worker failures that a restart would only repeat: the same checkpoint, config and data give the
 * same error (a checkpoint of another model, a diverging loss, a bad batch).
 */
const REPEATS_ON_RESTART = new Set([
  'ERR_CHECKPOINT_MISMATCH',
  'ERR_TOKENIZER_MISMATCH',
  'ERR_CONFIG',
  'ERR_NAN_LOSS',
  'ERR_BATCH',
]);

export class Coordinator {
  readonly jobId = randomBytes(8).toString('hex');
  readonly worldSize: number;
  /** Resolves once the job has finished, stopped or failed (and failure.json is written). */
  readonly done: Promise<JobOutcome>;

  private resolveDone!: (o: JobOutcome) => void;
  private phase: JobPhase = 'rendezvous';
  private readonly layout: ParallelLayout;
  private readonly agents = new Map<number, AgentPeer>();
  private readonly senders = new Map<string, Sender>();
  /** Nodes whose launcher went silent: nobody will report their workers' exits. */
  private readonly lostNodes = new Set<number>();
  private readonly rejected: RejectedPeer[] = [];
  private readonly maxRestarts: number;

  // The current round: restart count, its workers and what became of them.
  private roundNo = 0;
  private roundStartedMs = Date.now();
  private workers = new Map<number, WorkerPeer>();
  private exits = new Map<number, WorkerExited>();
  private latestSteps = new Map<number, StepReport>();
  private failures = new FailureLog();
  private relay: CheckpointRelay;
  private resumeFrom: ResumePoint | undefined;
  /** Restarting: the agents that have reported every worker of the round gone. */
  private readonly stoppedAgents = new Set<number>();

  // The whole job.
  private firstResume: ResumePoint | undefined;
  private lastCommitted: ResumePoint | undefined;
  private lastStep: number | undefined;
  private stop: { signal: string; nodeRank: number } | undefined;
  /** How the job ends well, once every worker finished (or a stop came before they ran). */
  private ending: { stopped?: StopSummary } | undefined;
  /** Exits that are no failure: the job stopped before its workers ran, and the agents stop them. */
  private exitsExpected = false;

  private readyDeadlineMs = 0;
  /** Deadline of the restart (every agent's workers gone) or of the graceful stop. */
  private phaseDeadlineMs = 0;
  private settleDeadlineMs = 0;
  private lastTickMs = Date.now();
  private timer: NodeJS.Timeout;

  private constructor(
    private readonly router: ControlRouter,
    private readonly opts: CoordinatorOptions,
  ) {
    this.worldSize = opts.nnodes * opts.nprocPerNode;
    this.layout = { worldSize: this.worldSize, nprocPerNode: opts.nprocPerNode, tpSize: opts.tpSize };
    this.maxRestarts = opts.maxRestarts ?? 0;
    this.relay = new CheckpointRelay(this.worldSize);
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.timer = setInterval(() => this.tick(), opts.heartbeatIntervalMs);
    router.listen({
      onMessage: (routingId, m) => this.handle(routingId, m),
      onSocketError: (err) => {
        opts.log.error({ err: err.message }, 'coordinator socket failed');
        this.fail({ code: 'ERR_COORDINATOR_SOCKET', message: `the coordinator's socket failed: ${String(err)}` });
      },
    });
  }

  /** Binds tcp://*:port and starts the job's rendezvous. */
  static async start(opts: CoordinatorOptions): Promise<Coordinator> {
    validateLayout({
      worldSize: opts.nnodes * opts.nprocPerNode,
      nprocPerNode: opts.nprocPerNode,
      tpSize: opts.tpSize,
    });
    return new Coordinator(await ControlRouter.bind(opts.port, opts.keys, opts.log), opts);
  }

  /** The restart count: 0, then one more for every restart of the gang. */
  get round(): number {
    return this.roundNo;
  }

  /** Stops the job from outside (the launcher was interrupted); the root cause is this reason. Never restarted. */
  abort(code: string, message: string): void {
    this.fail({ code, message });
  }

  /**
   * A launcher received a signal: with `stop`, every worker saves a checkpoint and stops (a
   * graceful stop, bounded by --stop-timeout, and no more restarts); without, every worker saves
   * a checkpoint and trains on.
   */
  requestSave(r: { signal: string; stop: boolean; nodeRank: number }): void {
    const who = `the launcher of node ${r.nodeRank} received ${r.signal}`;
    if (!r.stop) {
      if (this.phase !== 'running')
        return this.opts.log.warn(`${who}: no checkpoint requested, the job is not running (phase ${this.phase})`);
      this.opts.log.info(`${who}: every worker saves a checkpoint`);
      for (const w of this.workers.values()) this.send(w.routingId, 'saveRequest', { stop: false, reason: who });
      return;
    }
    if (this.stop) return this.opts.log.info(`${who}: the job is already stopping (on ${this.stop.signal})`);
    if (this.phase === 'finishing' || this.phase === 'aborting' || this.phase === 'done')
      return this.opts.log.info(`${who}: the job is already ending`);
    this.stop = { signal: r.signal, nodeRank: r.nodeRank };
    this.emit({ type: 'stopping', signal: r.signal, nodeRank: r.nodeRank });
    if (this.phase === 'running') {
      this.phase = 'stopping';
      this.phaseDeadlineMs = Date.now() + this.stopTimeoutMs;
      this.opts.log.warn(
        `${who}: every worker saves a checkpoint and stops (--stop-timeout ${seconds(this.stopTimeoutMs)})`,
      );
      for (const w of this.workers.values()) this.send(w.routingId, 'saveRequest', { stop: true, reason: who });
    } else if (this.phase === 'restarting') {
      this.opts.log.warn(`${who}: the restart is called off; the job stops once the failed round's workers are gone`);
    } else {
      this.opts.log.warn(`${who} before every worker was running: stopping the job, there is nothing to save`);
      this.finishJob({ stopped: this.stopSummary(undefined) }, true);
    }
  }

  /** Latest step report per data-parallel rank. */
  steps(): ReadonlyMap<number, StepReport> {
    return this.latestSteps;
  }

  async close(): Promise<void> {
    this.finalize();
    clearInterval(this.timer);
    await this.router.close();
  }

  private get stopTimeoutMs(): number {
    return this.opts.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
  }

  // ---- receiving -------------------------------------------------------------------------------

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
      if (m.kind === 'agentStopped') return this.onAgentStopped(sender.nodeRank, m.body.round);
      if (m.kind === 'stopRequest')
        return this.requestSave({ signal: signalName(m.body.signal), stop: m.body.stop, nodeRank: sender.nodeRank });
    } else {
      if (m.kind === 'ready') return this.onReady(sender.rank);
      if (m.kind === 'stepReport') return this.onStepReport(sender.rank, m.body);
      if (m.kind === 'failureReport') return this.onFailureReport(sender, m.body);
      if (m.kind === 'finish') return this.onFinish(sender.rank, m.body);
      if (m.kind === 'shardSaved') return this.onShardSaved(sender.rank, m.body.report);
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
    const existing = this.agents.get(h.nodeRank);
    if (existing && existing.routingId.equals(routingId)) {
      // A repeated hello; while restarting, the welcome of the next round is still to come.
      if (this.phase !== 'restarting') this.sendWelcome(routingId);
      return;
    }
    const problem = agentHelloProblem(h, this.opts, existing?.hello);
    if (problem) {
      this.reject(routingId, { reason: problem.reason, host: h.host, pid: h.pid });
      if (problem.fatal)
        this.fail({
          code: 'ERR_LAUNCH_MISMATCH',
          message: problem.reason,
          nodeRank: h.nodeRank,
          host: h.host,
          pid: h.pid,
        });
      return;
    }
    // The job stopped before this node joined: it has nothing to save either.
    if (this.phase === 'finishing' && this.ending?.stopped)
      return this.send(routingId, 'shutdown', { reason: describeStop(this.ending.stopped), stopWorkers: true });
    // A node that joins while the gang restarts has no workers to stop; it is welcomed to the next round.
    if (this.phase !== 'rendezvous' && this.phase !== 'restarting')
      return this.reject(routingId, {
        reason: `the launcher of node ${h.nodeRank} (host ${h.host}, pid ${h.pid}) arrived after the rendezvous closed`,
        host: h.host,
        pid: h.pid,
      });
    this.agents.set(h.nodeRank, { routingId, hello: h, lastSeenMs: Date.now(), phase: 'prepare' });
    this.senders.set(routingId.toString('hex'), { role: 'agent', nodeRank: h.nodeRank });
    this.opts.log.info({ nodeRank: h.nodeRank, host: h.host, pid: h.pid }, `node ${h.nodeRank} joined`);
    this.emit({ type: 'agent-joined', nodeRank: h.nodeRank, host: h.host, pid: h.pid });
    if (this.phase === 'restarting') {
      this.stoppedAgents.add(h.nodeRank);
      return this.maybeEndRestart();
    }
    this.sendWelcome(routingId);
    this.maybeAssign();
  }

  private sendWelcome(routingId: Buffer): void {
    this.send(routingId, 'agentWelcome', {
      jobId: this.jobId,
      round: this.roundNo,
      worldSize: this.worldSize,
      heartbeatIntervalMs: this.opts.heartbeatIntervalMs,
      heartbeatTimeoutMs: this.opts.heartbeatTimeoutMs,
      firstStepTimeoutMs: this.opts.firstStepTimeoutMs,
      rendezvousTimeoutMs: this.opts.rendezvousTimeoutMs,
    });
  }

  private onRegister(routingId: Buffer, r: Register): void {
    const existing = this.workers.get(r.rank);
    if (existing?.routingId.equals(routingId)) return; // a repeated registration
    const reason = registrationProblem(r, {
      jobId: this.jobId,
      round: this.roundNo,
      open: this.phase === 'rendezvous',
      nnodes: this.opts.nnodes,
      nprocPerNode: this.opts.nprocPerNode,
      holder: existing?.reg,
    });
    if (reason) return this.reject(routingId, { reason, rank: r.rank, host: r.host, pid: r.pid });
    this.workers.set(r.rank, {
      routingId,
      reg: r,
      lastSeenMs: Date.now(),
      phase: 'setup',
      steppedOnce: false,
      ready: false,
    });
    this.senders.set(routingId.toString('hex'), { role: 'worker', rank: r.rank });
    this.emit({ type: 'worker-registered', rank: r.rank, host: r.host, pid: r.pid });
    const mismatch = configOrBuildMismatch(this.workers, r.rank);
    if (mismatch) return this.fail(mismatch);
    this.maybeAssign();
  }

  /** Every node joined and every worker registered: choose the checkpoint, then hand out the groups. */
  private maybeAssign(): void {
    if (this.phase !== 'rendezvous') return;
    if (this.agents.size < this.opts.nnodes || this.workers.size < this.worldSize) return;
    this.phase = 'assigning';
    void this.assign(this.roundNo);
  }

  private async assign(round: number): Promise<void> {
    let resume: ResumePoint | undefined;
    const spec = round === 0 ? this.opts.resume : 'auto';
    try {
      // Verifying reads every file of the checkpoint: async, so heartbeats keep flowing meanwhile.
      resume = await findResumeCheckpoint(spec, this.opts.checkpointRoot, (dir, reason) =>
        this.opts.log.warn({ dir }, `skipping ${dir}: ${reason}`),
      );
    } catch (err) {
      const e = err as Error & { code?: string };
      if (round === this.roundNo)
        this.fail({
          code: e.code ?? 'ERR_RESUME',
          message:
            `cannot resume from ${spec === 'auto' ? `the newest checkpoint in ${this.opts.checkpointRoot}` : spec}: ` +
            e.message,
        });
      return;
    }
    // A failure or a stop came first.
    if (round !== this.roundNo || this.phase !== 'assigning') return;
    // A restart resumes from the run's newest checkpoint, or else from where round 0 began.
    if (round === 0) this.firstResume = resume;
    else resume ??= this.firstResume;
    this.resumeFrom = resume;
    this.opts.log.info(
      { round, resume: resume?.dir ?? null },
      `round ${round}: ${resume ? `resuming from ${resume.dir} (step ${resume.step})` : 'starting at step 0'}`,
    );
    this.phase = 'ready';
    this.readyDeadlineMs = Date.now() + this.opts.rendezvousTimeoutMs;
    for (const w of this.workers.values()) {
      const p = placeRank(w.reg.rank, this.layout);
      this.send(w.routingId, 'assignment', {
        jobId: this.jobId,
        round: this.roundNo,
        rank: p.rank,
        worldSize: this.worldSize,
        tpRank: p.tpRank,
        tpSize: p.tpSize,
        dpRank: p.dpRank,
        dpSize: p.dpSize,
        tpPeers: p.tpGroup.map((r) => this.peerInfo(r)),
        dpPeers: p.dpGroup.map((r) => this.peerInfo(r)),
        resumeDir: resume?.dir ?? '',
        restartCount: this.roundNo,
      });
    }
    this.opts.log.info({ worldSize: this.worldSize, round }, 'every worker registered; groups assigned');
  }

  private workersByRank(): WorkerPeer[] {
    return [...this.workers.values()].sort((a, b) => a.reg.rank - b.reg.rank);
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
    this.opts.log.info(
      { worldSize: this.worldSize, tp: this.opts.tpSize, dp: dpSize, round: this.roundNo },
      'every worker ready; started',
    );
    this.emit({
      type: 'started',
      round: this.roundNo,
      worldSize: this.worldSize,
      tpSize: this.opts.tpSize,
      dpSize,
      resumeStep: this.resumeFrom?.step,
    });
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
    // A worker of a round that failed may still be stepping until its agent has stopped it.
    if (this.phase !== 'running' && this.phase !== 'stopping') return;
    const w = this.workers.get(rank)!;
    w.steppedOnce = true;
    this.lastStep = report.step;
    const dpRank = Math.floor(rank / this.opts.tpSize);
    this.latestSteps.set(dpRank, report);
    this.emit({ type: 'step', dpRank, rank, report });
  }

  /** One rank's shard of a checkpoint is written; once every rank's is, the step is committed. */
  private onShardSaved(rank: number, bytes: Uint8Array): void {
    const w = this.workers.get(rank)!;
    if (this.phase !== 'running' && this.phase !== 'stopping')
      return this.opts.log.warn(`ignored the checkpoint report of ${describeWho(w.reg)}: the job is ${this.phase}`);
    let complete: ShardReport[] | undefined;
    try {
      complete = this.relay.receive(rank, bytes);
    } catch (err) {
      const e = err as RelayError;
      return this.fail({ code: e.code, message: `${describeWho(w.reg)} ${e.message}`, ...identity(w.reg) });
    }
    if (complete) void this.commit(complete);
  }

  private async commit(reports: ShardReport[]): Promise<void> {
    const round = this.roundNo;
    const step = reports[0].step;
    const current = () => round === this.roundNo && (this.phase === 'running' || this.phase === 'stopping');
    let dir: string;
    try {
      dir = await this.relay.commit(this.opts.checkpointRoot, reports, this.opts.keep);
    } catch (err) {
      const e = err as RelayError;
      // A save of a round that has ended already failed with it.
      if (round !== this.roundNo) return this.opts.log.error({ step, round }, e.message);
      if (current())
        for (const w of this.workers.values())
          this.send(w.routingId, 'saveCommitted', { step, dir: '', error: e.message });
      return this.fail({ code: e.code, message: e.message });
    }
    // Committed is committed, even when the round has failed meanwhile: a restart resumes from it.
    if (!this.lastCommitted || step >= this.lastCommitted.step) this.lastCommitted = { dir, step };
    this.opts.log.info({ step, dir, round }, describeCommit(dir, reports));
    this.emit({ type: 'checkpoint', step, dir });
    if (current())
      for (const w of this.workers.values()) this.send(w.routingId, 'saveCommitted', { step, dir, error: '' });
  }

  private onFinish(rank: number, f: Finish): void {
    const w = this.workers.get(rank)!;
    this.send(w.routingId, 'finishAck', {});
    if ((this.phase !== 'running' && this.phase !== 'stopping') || w.finish) return;
    w.finish = f;
    const all = this.workersByRank();
    if (all.some((x) => !x.finish)) return;
    const stopped = all.filter((x) => x.finish!.stopped);
    if (stopped.length === 0) return this.finishJob({}, false);
    const steps = [...new Set(stopped.map((x) => x.finish!.step))];
    if (!this.stop || stopped.length < all.length || steps.length > 1)
      return this.fail({
        code: 'ERR_STOP_MISMATCH',
        message:
          `the workers did not stop together: ${all.map((x) => `rank ${x.reg.rank} ${x.finish!.stopped ? `stopped at step ${x.finish!.step}` : 'finished'}`).join(', ')}` +
          `${this.stop ? '' : ' (no stop was requested)'}; every rank must stop at the same step (a bug in the worker)`,
      });
    this.finishJob({ stopped: this.stopSummary(steps[0]) }, false);
  }

  private stopSummary(step: number | undefined): StopSummary {
    const committed = step !== undefined && this.lastCommitted?.step === step ? this.lastCommitted.dir : undefined;
    return { ...this.stop!, ...(step !== undefined ? { step } : {}), ...(committed ? { checkpoint: committed } : {}) };
  }

  /** Every worker finished (or stopped), or the job stopped before they ran: the agents wind down. */
  private finishJob(ending: { stopped?: StopSummary }, stopWorkers: boolean): void {
    this.ending = ending;
    this.exitsExpected = stopWorkers;
    this.phase = 'finishing';
    this.settleDeadlineMs = Date.now() + this.opts.heartbeatTimeoutMs;
    const reason = ending.stopped
      ? describeStop(ending.stopped, this.lastCommitted?.dir ?? this.resumeFrom?.dir)
      : 'every worker finished';
    for (const a of this.agents.values()) this.send(a.routingId, 'shutdown', { reason, stopWorkers });
    this.opts.log.info(reason);
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
    // A worker of an earlier round: its exit was accounted for when that round ended.
    if (e.round !== this.roundNo) return;
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
    if (this.exitsExpected) {
      // The job stopped before its workers ran; the agents stop them.
    } else if (w?.finish || this.phase === 'finishing') {
      if (!clean) this.fail({ ...failure, message: `${who} ${how} after finishing` });
    } else if (this.phase !== 'done') {
      this.fail({ ...failure, message: `${who} ${how}${clean ? ' before finishing' : ''}` }, { restartable: true });
    }
    this.maybeSettle();
  }

  private onFailureReport(sender: Sender, f: { code: string; message: string }): void {
    const code = f.code || 'ERR_WORKER_FAILED';
    if (sender.role === 'worker') {
      const { reg } = this.workers.get(sender.rank)!;
      this.fail(
        { code, message: `${describeWho(reg)} reported: ${f.message}`, ...identity(reg) },
        { restartable: !REPEATS_ON_RESTART.has(code) },
      );
    } else {
      // What a launcher reports (it was interrupted, its data could not be prepared) a restart cannot mend.
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

  // ---- restarts --------------------------------------------------------------------------------

  /** The round failed and may be restarted: every agent stops its workers, then the next round begins. */
  private beginRestart(f: Omit<JobFailure, 'atUnixMs'>): void {
    this.phase = 'restarting';
    this.phaseDeadlineMs = Date.now() + this.opts.rendezvousTimeoutMs;
    this.stoppedAgents.clear();
    const next = this.roundNo + 1;
    const resumeFrom = this.lastCommitted ?? this.firstResume;
    const reason = `[${f.code}] ${f.message}`;
    this.opts.log.error(
      { round: this.roundNo, restart: next, maxRestarts: this.maxRestarts, code: f.code },
      `restarting the job (restart ${next} of ${this.maxRestarts}) after ${reason}; resuming from ` +
        (resumeFrom ? resumeFrom.dir : 'step 0'),
    );
    for (const a of this.agents.values()) this.send(a.routingId, 'restart', { round: next, reason });
    for (const w of this.workers.values()) this.send(w.routingId, 'abort', { reason });
    this.emit({
      type: 'restarting',
      round: next,
      maxRestarts: this.maxRestarts,
      failure: this.failures.rootCause!,
      resumeFrom: resumeFrom?.dir,
    });
  }

  private onAgentStopped(nodeRank: number, round: number): void {
    if (this.phase !== 'restarting' || round !== this.roundNo)
      return this.opts.log.warn(
        `node ${nodeRank} reported round ${round} stopped; ignored (round ${this.roundNo}, ${this.phase})`,
      );
    this.stoppedAgents.add(nodeRank);
    this.maybeEndRestart();
  }

  /** Once every node's workers are gone: the next round (or, when a stop came meanwhile, the end). */
  private maybeEndRestart(): void {
    if (this.phase !== 'restarting') return;
    if ([...this.agents.keys()].some((n) => !this.stoppedAgents.has(n))) return;
    this.writeRoundFailure();
    if (this.stop) {
      // The failure is on record in failures/; the job itself stops cleanly, to be resumed.
      this.failures = new FailureLog();
      return this.finishJob({ stopped: this.stopSummary(undefined) }, true);
    }
    this.openRound(this.roundNo + 1);
  }

  private openRound(round: number): void {
    for (const w of this.workers.values()) this.senders.delete(w.routingId.toString('hex'));
    this.workers = new Map();
    this.exits = new Map();
    this.latestSteps = new Map();
    this.failures = new FailureLog();
    this.relay = new CheckpointRelay(this.worldSize);
    this.resumeFrom = undefined;
    this.roundNo = round;
    this.roundStartedMs = Date.now();
    this.phase = 'rendezvous';
    this.opts.log.info({ round }, `round ${round}: every node's workers are gone; the nodes start new ones`);
    for (const a of this.agents.values()) this.sendWelcome(a.routingId);
  }

  private writeRoundFailure(): void {
    const report = this.failures.report(this.jobId, this.roundNo, this.rejected);
    if (!report) return;
    try {
      writeRoundReport(this.opts.runDir, report);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, `could not write failures/round-${this.roundNo}.json`);
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
      if (!this.exits.has(w.reg.rank) && !w.finish) this.send(w.routingId, 'heartbeat', { phase: this.phase });
    }
    if (this.phase !== 'finishing' && this.phase !== 'aborting') this.checkLiveness(now);
    this.maybeSettle();
  }

  private checkLiveness(now: number): void {
    const lost = silentAgent(this.agents.values(), now, this.opts);
    if (lost) {
      this.lostNodes.add(lost.nodeRank);
      return this.fail(lost);
    }
    if (WORKERS_WATCHED.has(this.phase)) {
      const running = [...this.workers.values()].filter((w) => !w.finish && !this.exits.has(w.reg.rank));
      const hung = silentWorker(running, now, this.opts);
      if (hung) return this.fail(hung, { restartable: true });
    }
    const late = this.missedDeadline(now);
    if (late) this.fail(late);
  }

  /** The deadline of the phase the round is in, when it has passed. */
  private missedDeadline(now: number): Omit<JobFailure, 'atUnixMs'> | undefined {
    const workers = this.workersByRank();
    switch (this.phase) {
      case 'rendezvous':
        if (now - this.roundStartedMs <= this.opts.rendezvousTimeoutMs) return undefined;
        return rendezvousTimeout(
          range(this.opts.nnodes).filter((n) => !this.agents.has(n)),
          range(this.worldSize).filter((r) => !this.workers.has(r)),
          this.opts.rendezvousTimeoutMs,
        );
      case 'ready':
        if (now <= this.readyDeadlineMs) return undefined;
        return readyTimeout(
          workers.filter((w) => !w.ready).map((w) => w.reg.rank),
          this.opts.rendezvousTimeoutMs,
        );
      case 'restarting':
        if (now <= this.phaseDeadlineMs) return undefined;
        return restartTimeout(
          [...this.agents.keys()].filter((n) => !this.stoppedAgents.has(n)),
          this.roundNo,
          this.opts.rendezvousTimeoutMs,
        );
      case 'stopping':
        if (now <= this.phaseDeadlineMs) return undefined;
        return stopTimeout(
          this.stop!,
          workers.filter((w) => !w.finish),
          this.stopTimeoutMs,
        );
      default:
        return undefined;
    }
  }

  /**
   * Records a failure. The first of a round is its root cause: a restartable one (a worker died,
   * hung or reported a failure) restarts the gang while restarts are left and no stop was asked
   * for; anything else aborts the job. Later ones are consequences, except that one a restart
   * cannot mend (a node lost, an interrupt) turns a restart in progress into an abort.
   */
  private fail(f: Omit<JobFailure, 'atUnixMs'>, opts: { restartable?: boolean } = {}): void {
    if (this.phase === 'done') return;
    const isRootCause = this.failures.record(f);
    this.opts.log.error({ code: f.code, rank: f.rank, host: f.host, round: this.roundNo }, f.message);
    if (this.phase === 'finishing' || this.phase === 'aborting') return;
    if (this.phase === 'restarting' && opts.restartable) return;
    const canRestart = !this.stop && this.roundNo < this.maxRestarts;
    if (isRootCause && opts.restartable && canRestart) return this.beginRestart(f);
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
    const report = this.failures.report(this.jobId, this.roundNo, this.rejected);
    if (report) return this.finalizeFailure(report);
    if (this.ending) return this.resolveDone({ ok: true, ...this.summary(), ...this.ending });
    // Closed before the job ended: that is a failure too (the launcher was stopped).
    this.failures.record({
      code: 'ERR_JOB_INCOMPLETE',
      message: 'the coordinator closed before every worker finished',
    });
    this.finalizeFailure(this.failures.report(this.jobId, this.roundNo, this.rejected)!);
  }

  private finalizeFailure(report: RootCauseReport): void {
    let reportFile = '';
    try {
      reportFile = writeReport(this.opts.runDir, report);
      writeRoundReport(this.opts.runDir, report);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'could not write failure.json');
    }
    this.resolveDone({ ok: false, ...this.summary(), report, reportFile });
  }

  private summary(): JobSummary {
    const checkpoint = (this.lastCommitted ?? this.resumeFrom ?? this.firstResume)?.dir;
    return {
      jobId: this.jobId,
      round: this.roundNo,
      restarts: this.roundNo,
      ...(this.lastStep !== undefined ? { lastStep: this.lastStep } : {}),
      ...(checkpoint ? { checkpoint } : {}),
      rejected: this.rejected,
    };
  }

  private send<K extends MessageKind>(routingId: Buffer, kind: K, body: MessageBodies[K]): void {
    this.router.send(routingId, kind, body);
  }

  private emit(e: CoordinatorEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'coordinator event listener failed');
    }
  }
}

/**
 * How a graceful stop ended, in one line, as every launcher logs it:
 * "stopped at step 120 on SIGUSR1: checkpoint runs/x/checkpoints/step-0000120 committed; continue with `--resume auto`".
 */
export function describeStop(s: StopSummary, newest?: string): string {
  const on = `on ${s.signal}${s.nodeRank !== 0 ? ` (node ${s.nodeRank})` : ''}`;
  const then = 'continue with `--resume auto`';
  if (s.step === undefined) return `stopped ${on} while no worker was training (nothing to save); ${then}`;
  if (s.checkpoint) return `stopped at step ${s.step} ${on}: checkpoint ${s.checkpoint} committed; ${then}`;
  return `stopped at step ${s.step} ${on} without a checkpoint of that step (newest: ${newest ?? 'none'}); ${then}`;
}

function identity(r: Register): Pick<JobFailure, 'rank' | 'nodeRank' | 'host' | 'pid'> {
  return { rank: r.rank, nodeRank: r.nodeRank, host: r.host, pid: r.pid };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** A signal name from the network, for messages only. */
function signalName(s: string): string {
  return /^SIG[A-Z0-9]{1,12}$/.test(s) ? s : 'a signal';
}
