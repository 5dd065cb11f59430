// job.ts — the job's life as a state machine: events in (a message from a peer, a tick of the
// clock, a launcher's signal, the result of choosing a checkpoint or committing one), effects out
// (messages to send, events for the progress view, log lines, work to start, reports to write, the
// outcome). It does no I/O, starts no timers and reads no clock: every event carries `now`, so the
// unit tests drive it with a fake clock and no processes. coordinator.ts is the shell around it.
//
// A round goes rendezvous → assigning (the resume checkpoint is verified) → ready → running, then
// ends in stopping (a graceful stop) → finishing, or in restarting (the next round's rendezvous
// follows), or in aborting; `done` once the outcome is final. Everything a round knows (its
// workers, their exits and step reports, its failures, its checkpoint relay, the deadlines) is one
// Round value, replaced when the next round opens.
import { CheckpointRelay, describeCommit, type RelayError, type ResumePoint } from './checkpoints';
import { describeWho, FailureLog, type JobFailure, type RejectedPeer, type RootCauseReport } from './failure';
import { placeRank, type ParallelLayout } from './groups';
import { readyTimeout, rendezvousTimeout, restartTimeout, silentAgent, silentWorker, stopTimeout } from './liveness';
import { agentHelloProblem, configOrBuildMismatch, registrationProblem } from './rendezvous';
import type { ShardReport } from '../checkpoint';
import { printableId } from '../control/wire';
import {
  describeExit,
  message,
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
import { truncated } from '../text/quoted';

/** What the job needs to know of its launch (node 0's options). */
export interface JobSettings {
  jobId: string;
  nnodes: number;
  nprocPerNode: number;
  tpSize: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  /** Silence allowed before a worker's first step and while it saves a checkpoint. */
  firstStepTimeoutMs: number;
  rendezvousTimeoutMs: number;
  /** <run.dir>/checkpoints: where checkpoints are committed, and restarts resume from. */
  checkpointRoot: string;
  /** --resume for round 0: 'auto' or an absolute path; absent = start at step 0. */
  resume?: string;
  /** --max-restarts: failed rounds restarted before the job fails (default 0). */
  maxRestarts?: number;
  /** --stop-timeout: how long a graceful stop may take before the job is aborted (default 120 s). */
  stopTimeoutMs?: number;
  /** After an abort: how long to wait for the agents' reports of their workers' exits (default 5 s). */
  abortSettleMs?: number;
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

export type JobPhase =
  'rendezvous' | 'assigning' | 'ready' | 'running' | 'stopping' | 'restarting' | 'finishing' | 'aborting' | 'done';

export type JobEvent = { now: number } & (
  | { type: 'message'; from: Buffer; message: ControlMessage }
  | { type: 'tick' }
  /** A launcher received a signal (node 0's directly; another node's arrives as a StopRequest). */
  | { type: 'save-requested'; signal: string; stop: boolean; nodeRank: number }
  /** The launcher was interrupted, or the coordinator's socket failed: never restarted. */
  | { type: 'abort'; code: string; message: string }
  /** The answer to a choose-resume effect. */
  | { type: 'resume-chosen'; round: number; resume?: ResumePoint; error?: { code?: string; message: string } }
  /** The answer to a commit effect. */
  | { type: 'commit-done'; round: number; reports: ShardReport[]; dir?: string; error?: RelayError }
  /** The coordinator closes: the outcome is final now, whatever is still outstanding. */
  | { type: 'close' }
);

/** An event without its time: what the shell (or a test) hands over, `now` added on the way in. */
export type JobEventBody = JobEvent extends infer E ? (E extends unknown ? Omit<E, 'now'> : never) : never;

export type LogLevel = 'info' | 'warn' | 'error';

export type Effect =
  | { type: 'send'; to: Buffer; message: ControlMessage }
  | { type: 'emit'; event: CoordinatorEvent }
  | { type: 'log'; level: LogLevel; fields?: Record<string, unknown>; text: string }
  /** Verify the checkpoint round `round` starts from (async); answer with resume-chosen. */
  | { type: 'choose-resume'; round: number; spec: string | undefined }
  /** Write the manifest of a complete step (async); answer with commit-done. */
  | { type: 'commit'; round: number; reports: ShardReport[] }
  /** A failed round's report, to failures/round-<r>.json. */
  | { type: 'write-round-report'; report: RootCauseReport }
  /** The outcome is final: the heartbeats stop; a failure is written to failure.json. */
  | {
      type: 'end';
      summary: JobSummary;
      result: { ok: true; stopped?: StopSummary } | { ok: false; report: RootCauseReport };
    };

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

/** One round of the job: replaced as a whole when the next round opens. */
class Round {
  readonly workers = new Map<number, WorkerPeer>();
  readonly exits = new Map<number, WorkerExited>();
  readonly latestSteps = new Map<number, StepReport>();
  failures = new FailureLog();
  readonly relay: CheckpointRelay;
  resumeFrom: ResumePoint | undefined;
  /** Restarting: the agents that have reported every worker of the round gone. */
  readonly stoppedAgents = new Set<number>();
  readyDeadlineMs = 0;

  constructor(
    readonly no: number,
    readonly startedMs: number,
    worldSize: number,
  ) {
    this.relay = new CheckpointRelay(worldSize);
  }
}

const DEFAULT_STOP_TIMEOUT_MS = 120_000;
const DEFAULT_ABORT_SETTLE_MS = 5000;
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
  // A full disk stays full: restarting only writes the same partial shards again.
  'ERR_DISK_FULL',
]);

/** Refusals kept for failure.json and the summary; the rest are counted. */
const MAX_REJECTED_KEPT = 100;
/** Refusals logged one by one; then one line per REFUSAL_LOG_EVERY. */
const REFUSALS_LOGGED = 20;
const REFUSAL_LOG_EVERY = 1000;
/** Peer-supplied strings in refusals are cut to these lengths (a host name has at most 253). */
const MAX_HOST_CHARS = 255;
const MAX_REFUSAL_CHARS = 1000;

export class Job {
  readonly worldSize: number;
  private phaseNow: JobPhase = 'rendezvous';
  private readonly layout: ParallelLayout;
  private readonly maxRestarts: number;
  private readonly stopTimeoutMs: number;
  private readonly agents = new Map<number, AgentPeer>();
  private readonly senders = new Map<string, Sender>();
  /** Nodes whose launcher went silent: nobody will report their workers' exits. */
  private readonly lostNodes = new Set<number>();
  private readonly rejected: RejectedPeer[] = [];
  /** Every refusal, also those beyond MAX_REJECTED_KEPT. */
  private refusals = 0;
  private current: Round;

  private firstResume: ResumePoint | undefined;
  private lastCommitted: ResumePoint | undefined;
  private lastStep: number | undefined;
  private stop: { signal: string; nodeRank: number } | undefined;
  /** How the job ends well, once every worker finished (or a stop came before they ran). */
  private ending: { stopped?: StopSummary } | undefined;
  /** Exits that are no failure: the job stopped before its workers ran, and the agents stop them. */
  private exitsExpected = false;
  /** Deadline of the restart (every agent's workers gone) or of the graceful stop. */
  private phaseDeadlineMs = 0;
  private settleDeadlineMs = 0;
  private lastTickMs: number;

  /** The time of the event being handled, and the effects it produced. */
  private now: number;
  private effects: Effect[] = [];

  constructor(
    private readonly s: JobSettings,
    now: number,
  ) {
    this.worldSize = s.nnodes * s.nprocPerNode;
    this.layout = { worldSize: this.worldSize, nprocPerNode: s.nprocPerNode, tpSize: s.tpSize };
    this.maxRestarts = s.maxRestarts ?? 0;
    this.stopTimeoutMs = s.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    this.current = new Round(0, now, this.worldSize);
    this.now = now;
    this.lastTickMs = now;
  }

  get phase(): JobPhase {
    return this.phaseNow;
  }

  /** The restart count: 0, then one more for every restart of the gang. */
  get round(): number {
    return this.current.no;
  }

  /** Latest step report per data-parallel rank. */
  steps(): ReadonlyMap<number, StepReport> {
    return this.current.latestSteps;
  }

  /** The transition: the state moves on by `e`; what the shell must do is returned, in order. */
  handle(e: JobEvent): Effect[] {
    this.now = e.now;
    this.effects = [];
    switch (e.type) {
      case 'message':
        this.onMessage(e.from, e.message);
        break;
      case 'tick':
        this.tick();
        break;
      case 'save-requested':
        this.requestSave(e);
        break;
      case 'abort':
        this.fail({ code: e.code, message: e.message });
        break;
      case 'resume-chosen':
        this.onResumeChosen(e.round, e.resume, e.error);
        break;
      case 'commit-done':
        this.onCommitDone(e.round, e.reports, e.dir, e.error);
        break;
      case 'close':
        this.finalize();
        break;
    }
    return this.effects;
  }

  // ---- effects ---------------------------------------------------------------------------------

  private send<K extends MessageKind>(to: Buffer, kind: K, body: MessageBodies[K]): void {
    this.effects.push({ type: 'send', to, message: message(kind, body) });
  }

  private emit(event: CoordinatorEvent): void {
    this.effects.push({ type: 'emit', event });
  }

  private log(level: LogLevel, text: string, fields?: Record<string, unknown>): void {
    this.effects.push({ type: 'log', level, text, ...(fields ? { fields } : {}) });
  }

  // ---- receiving -------------------------------------------------------------------------------

  private onMessage(routingId: Buffer, m: ControlMessage): void {
    const sender = this.senders.get(routingId.toString('hex'));
    const peer = sender && this.peerOf(sender);
    if (peer) peer.lastSeenMs = this.now;
    switch (m.kind) {
      case 'agentHello':
        return this.onAgentHello(routingId, m.body);
      case 'register':
        return this.onRegister(routingId, m.body);
      case 'heartbeat':
        if (peer) peer.phase = m.body.phase;
        return;
    }
    if (!sender)
      return this.log('warn', 'message from a peer that has not joined', {
        peer: printableId(routingId),
        kind: m.kind,
      });
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
    this.log('warn', `unexpected ${m.kind} from a ${sender.role}`, { peer: printableId(routingId), kind: m.kind });
  }

  private peerOf(sender: Sender): AgentPeer | WorkerPeer | undefined {
    return sender.role === 'agent' ? this.agents.get(sender.nodeRank) : this.current.workers.get(sender.rank);
  }

  /**
   * A launcher received a signal: with `stop`, every worker saves a checkpoint and stops (a
   * graceful stop, bounded by --stop-timeout, and no more restarts); without, every worker saves
   * a checkpoint and trains on.
   */
  private requestSave(r: { signal: string; stop: boolean; nodeRank: number }): void {
    const who = `the launcher of node ${r.nodeRank} received ${r.signal}`;
    const workers = this.current.workers.values();
    if (!r.stop) {
      if (this.phaseNow !== 'running')
        return this.log('warn', `${who}: no checkpoint requested, the job is not running (phase ${this.phaseNow})`);
      this.log('info', `${who}: every worker saves a checkpoint`);
      for (const w of workers) this.send(w.routingId, 'saveRequest', { stop: false, reason: who });
      return;
    }
    if (this.stop) return this.log('info', `${who}: the job is already stopping (on ${this.stop.signal})`);
    if (this.phaseNow === 'finishing' || this.phaseNow === 'aborting' || this.phaseNow === 'done')
      return this.log('info', `${who}: the job is already ending`);
    this.stop = { signal: r.signal, nodeRank: r.nodeRank };
    this.emit({ type: 'stopping', signal: r.signal, nodeRank: r.nodeRank });
    if (this.phaseNow === 'running') {
      this.phaseNow = 'stopping';
      this.phaseDeadlineMs = this.now + this.stopTimeoutMs;
      this.log(
        'warn',
        `${who}: every worker saves a checkpoint and stops (--stop-timeout ${seconds(this.stopTimeoutMs)})`,
      );
      for (const w of workers) this.send(w.routingId, 'saveRequest', { stop: true, reason: who });
    } else if (this.phaseNow === 'restarting') {
      this.log('warn', `${who}: the restart is called off; the job stops once the failed round's workers are gone`);
    } else {
      this.log('warn', `${who} before every worker was running: stopping the job, there is nothing to save`);
      this.finishJob({ stopped: this.stopSummary(undefined) }, true);
    }
  }

  // ---- rendezvous ------------------------------------------------------------------------------

  private onAgentHello(routingId: Buffer, hello: AgentHello): void {
    const h = { ...hello, host: truncated(hello.host, MAX_HOST_CHARS) };
    const existing = this.agents.get(h.nodeRank);
    if (existing && existing.routingId.equals(routingId)) {
      // A repeated hello; while restarting, the welcome of the next round is still to come.
      if (this.phaseNow !== 'restarting') this.sendWelcome(routingId);
      return;
    }
    const problem = agentHelloProblem(h, this.s, existing?.hello);
    if (problem) {
      this.reject(routingId, { reason: problem.reason, host: h.host, pid: h.pid }, problem.reply);
      // During the rendezvous a launcher with another layout means the job cannot run; once it has
      // closed, every node is in and such a hello is a stray (or hostile) peer: refused, not fatal.
      if (problem.fatal && this.phaseNow === 'rendezvous')
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
    if (this.phaseNow === 'finishing' && this.ending?.stopped)
      return this.send(routingId, 'shutdown', { reason: describeStop(this.ending.stopped), stopWorkers: true });
    // A node that joins while the gang restarts has no workers to stop; it is welcomed to the next round.
    if (this.phaseNow !== 'rendezvous' && this.phaseNow !== 'restarting')
      return this.reject(
        routingId,
        {
          reason: `the launcher of node ${h.nodeRank} (host ${h.host}, pid ${h.pid}) arrived after the rendezvous closed`,
          host: h.host,
          pid: h.pid,
        },
        'the rendezvous has closed',
      );
    this.agents.set(h.nodeRank, { routingId, hello: h, lastSeenMs: this.now, phase: 'prepare' });
    this.senders.set(routingId.toString('hex'), { role: 'agent', nodeRank: h.nodeRank });
    this.log('info', `node ${h.nodeRank} joined`, { nodeRank: h.nodeRank, host: h.host, pid: h.pid });
    this.emit({ type: 'agent-joined', nodeRank: h.nodeRank, host: h.host, pid: h.pid });
    if (this.phaseNow === 'restarting') {
      this.current.stoppedAgents.add(h.nodeRank);
      return this.maybeEndRestart();
    }
    this.sendWelcome(routingId);
    this.maybeAssign();
  }

  private sendWelcome(routingId: Buffer): void {
    this.send(routingId, 'agentWelcome', {
      jobId: this.s.jobId,
      round: this.current.no,
      worldSize: this.worldSize,
      heartbeatIntervalMs: this.s.heartbeatIntervalMs,
      heartbeatTimeoutMs: this.s.heartbeatTimeoutMs,
      firstStepTimeoutMs: this.s.firstStepTimeoutMs,
      rendezvousTimeoutMs: this.s.rendezvousTimeoutMs,
    });
  }

  private onRegister(routingId: Buffer, registration: Register): void {
    const r = { ...registration, host: truncated(registration.host, MAX_HOST_CHARS) };
    const workers = this.current.workers;
    const existing = workers.get(r.rank);
    if (existing?.routingId.equals(routingId)) return; // a repeated registration
    const refusal = registrationProblem(r, {
      jobId: this.s.jobId,
      round: this.current.no,
      open: this.phaseNow === 'rendezvous',
      nnodes: this.s.nnodes,
      nprocPerNode: this.s.nprocPerNode,
      holder: existing?.reg,
    });
    if (refusal)
      return this.reject(routingId, { reason: refusal.reason, rank: r.rank, host: r.host, pid: r.pid }, refusal.reply);
    workers.set(r.rank, { routingId, reg: r, lastSeenMs: this.now, phase: 'setup', steppedOnce: false, ready: false });
    this.senders.set(routingId.toString('hex'), { role: 'worker', rank: r.rank });
    this.emit({ type: 'worker-registered', rank: r.rank, host: r.host, pid: r.pid });
    const mismatch = configOrBuildMismatch(workers, r.rank);
    if (mismatch) return this.fail(mismatch);
    this.maybeAssign();
  }

  /** Every node joined and every worker registered: choose the checkpoint, then hand out the groups. */
  private maybeAssign(): void {
    if (this.phaseNow !== 'rendezvous') return;
    if (this.agents.size < this.s.nnodes || this.current.workers.size < this.worldSize) return;
    this.phaseNow = 'assigning';
    const round = this.current.no;
    this.effects.push({ type: 'choose-resume', round, spec: round === 0 ? this.s.resume : 'auto' });
  }

  private onResumeChosen(
    round: number,
    chosen: ResumePoint | undefined,
    error: { code?: string; message: string } | undefined,
  ): void {
    if (error) {
      const spec = round === 0 ? this.s.resume : 'auto';
      if (round === this.current.no)
        this.fail({
          code: error.code ?? 'ERR_RESUME',
          message:
            `cannot resume from ${spec === 'auto' ? `the newest checkpoint in ${this.s.checkpointRoot}` : spec}: ` +
            error.message,
        });
      return;
    }
    // A failure or a stop came first.
    if (round !== this.current.no || this.phaseNow !== 'assigning') return;
    // A restart resumes from the run's newest checkpoint, or else from where round 0 began.
    let resume = chosen;
    if (round === 0) this.firstResume = resume;
    else resume ??= this.firstResume;
    this.current.resumeFrom = resume;
    this.log(
      'info',
      `round ${round}: ${resume ? `resuming from ${resume.dir} (step ${resume.step})` : 'starting at step 0'}`,
      { round, resume: resume?.dir ?? null },
    );
    this.phaseNow = 'ready';
    this.current.readyDeadlineMs = this.now + this.s.rendezvousTimeoutMs;
    for (const w of this.current.workers.values()) {
      const p = placeRank(w.reg.rank, this.layout);
      this.send(w.routingId, 'assignment', {
        jobId: this.s.jobId,
        round,
        rank: p.rank,
        worldSize: this.worldSize,
        tpRank: p.tpRank,
        tpSize: p.tpSize,
        dpRank: p.dpRank,
        dpSize: p.dpSize,
        tpPeers: p.tpGroup.map((r) => this.peerInfo(r)),
        dpPeers: p.dpGroup.map((r) => this.peerInfo(r)),
        resumeDir: resume?.dir ?? '',
        restartCount: round,
      });
    }
    this.log('info', 'every worker registered; groups assigned', { worldSize: this.worldSize, round });
  }

  private workersByRank(): WorkerPeer[] {
    return [...this.current.workers.values()].sort((a, b) => a.reg.rank - b.reg.rank);
  }

  private peerInfo(rank: number): PeerInfo {
    const { reg } = this.current.workers.get(rank)!;
    return { rank, host: reg.host, nodeRank: reg.nodeRank, endpoints: reg.endpoints };
  }

  private onReady(rank: number): void {
    const workers = this.current.workers;
    workers.get(rank)!.ready = true;
    if (this.phaseNow !== 'ready' || [...workers.values()].some((x) => !x.ready)) return;
    this.phaseNow = 'running';
    for (const x of workers.values()) this.send(x.routingId, 'start', {});
    const dpSize = this.worldSize / this.s.tpSize;
    this.log('info', 'every worker ready; started', {
      worldSize: this.worldSize,
      tp: this.s.tpSize,
      dp: dpSize,
      round: this.current.no,
    });
    this.emit({
      type: 'started',
      round: this.current.no,
      worldSize: this.worldSize,
      tpSize: this.s.tpSize,
      dpSize,
      resumeStep: this.current.resumeFrom?.step,
    });
  }

  /**
   * Refuses a peer that has not joined: `peer.reason` (naming it and whoever holds what it asked
   * for) goes to the log and failure.json; the peer itself gets only `reply` (rendezvous.ts Refusal).
   */
  private reject(routingId: Buffer, peer: Omit<RejectedPeer, 'atUnixMs'>, reply: string): void {
    // Bounded, whatever a flood sends: strings a peer supplied are cut, the first MAX_REJECTED_KEPT
    // refusals are kept for failure.json, and the log names the first REFUSALS_LOGGED, then one
    // line per REFUSAL_LOG_EVERY with the count.
    const entry: RejectedPeer = {
      ...peer,
      reason: truncated(peer.reason, MAX_REFUSAL_CHARS),
      ...(peer.host !== undefined ? { host: truncated(peer.host, MAX_HOST_CHARS) } : {}),
      atUnixMs: this.now,
    };
    this.refusals++;
    if (this.rejected.length < MAX_REJECTED_KEPT) this.rejected.push(entry);
    this.send(routingId, 'reject', { reason: truncated(reply, MAX_REFUSAL_CHARS) });
    const n = this.refusals;
    if (n <= REFUSALS_LOGGED) {
      this.log('warn', `refused: ${entry.reason}`, { peer: truncated(printableId(routingId), MAX_HOST_CHARS) });
      this.emit({ type: 'rejected', peer: entry });
    } else if (n % REFUSAL_LOG_EVERY === 0 || n === REFUSALS_LOGGED + 1) {
      this.log(
        'warn',
        `refused ${n} peers so far (logging one line per ${REFUSAL_LOG_EVERY}); the last: ${entry.reason}`,
        {
          refusals: n,
        },
      );
    }
  }

  // ---- running ---------------------------------------------------------------------------------

  private onStepReport(rank: number, report: StepReport): void {
    // A worker of a round that failed may still be stepping until its agent has stopped it.
    if (this.phaseNow !== 'running' && this.phaseNow !== 'stopping') return;
    this.current.workers.get(rank)!.steppedOnce = true;
    this.lastStep = report.step;
    const dpRank = Math.floor(rank / this.s.tpSize);
    this.current.latestSteps.set(dpRank, report);
    this.emit({ type: 'step', dpRank, rank, report });
  }

  /** One rank's shard of a checkpoint is written; once every rank's is, the step is committed. */
  private onShardSaved(rank: number, bytes: Uint8Array): void {
    const w = this.current.workers.get(rank)!;
    if (this.phaseNow !== 'running' && this.phaseNow !== 'stopping')
      return this.log('warn', `ignored the checkpoint report of ${describeWho(w.reg)}: the job is ${this.phaseNow}`);
    let complete: ShardReport[] | undefined;
    try {
      complete = this.current.relay.receive(rank, bytes);
    } catch (err) {
      const e = err as RelayError;
      return this.fail({ code: e.code, message: `${describeWho(w.reg)} ${e.message}`, ...identity(w.reg) });
    }
    if (complete) this.effects.push({ type: 'commit', round: this.current.no, reports: complete });
  }

  private onCommitDone(round: number, reports: ShardReport[], dir: string | undefined, error?: RelayError): void {
    const step = reports[0].step;
    const current = round === this.current.no && (this.phaseNow === 'running' || this.phaseNow === 'stopping');
    if (round === this.current.no) this.current.relay.settle(step, !error);
    if (error || dir === undefined) {
      const e = error!;
      // A save of a round that has ended already failed with it.
      if (round !== this.current.no) return this.log('error', e.message, { step, round });
      if (current)
        for (const w of this.current.workers.values())
          this.send(w.routingId, 'saveCommitted', { step, dir: '', error: e.message });
      return this.fail({ code: e.code, message: e.message });
    }
    // Committed is committed, even when the round has failed meanwhile: a restart resumes from it.
    if (!this.lastCommitted || step >= this.lastCommitted.step) this.lastCommitted = { dir, step };
    this.log('info', describeCommit(dir, reports), { step, dir, round });
    this.emit({ type: 'checkpoint', step, dir });
    if (current)
      for (const w of this.current.workers.values()) this.send(w.routingId, 'saveCommitted', { step, dir, error: '' });
  }

  private onFinish(rank: number, f: Finish): void {
    const w = this.current.workers.get(rank)!;
    this.send(w.routingId, 'finishAck', {});
    if ((this.phaseNow !== 'running' && this.phaseNow !== 'stopping') || w.finish) return;
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
    this.phaseNow = 'finishing';
    this.settleDeadlineMs = this.now + this.s.heartbeatTimeoutMs;
    const reason = ending.stopped
      ? describeStop(ending.stopped, this.lastCommitted?.dir ?? this.current.resumeFrom?.dir)
      : 'every worker finished';
    for (const a of this.agents.values()) this.send(a.routingId, 'shutdown', { reason, stopWorkers });
    this.log('info', reason);
    this.emit({ type: 'finished' });
    this.maybeSettle();
  }

  private onWorkerExited(nodeRank: number, e: WorkerExited): void {
    const first = nodeRank * this.s.nprocPerNode;
    if (e.rank < first || e.rank >= first + this.s.nprocPerNode)
      return this.log('warn', `node ${nodeRank} reported an exit of rank ${e.rank}, not its own`, {
        nodeRank,
        rank: e.rank,
      });
    // A worker of an earlier round: its exit was accounted for when that round ended.
    if (e.round !== this.current.no) return;
    this.current.exits.set(e.rank, e);
    this.current.failures.addLastLines(e.rank, e.lastLines);
    const w = this.current.workers.get(e.rank);
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
    } else if (w?.finish || this.phaseNow === 'finishing') {
      if (!clean) this.fail({ ...failure, message: `${who} ${how} after finishing` });
    } else if (this.phaseNow !== 'done') {
      this.fail({ ...failure, message: `${who} ${how}${clean ? ' before finishing' : ''}` }, { restartable: true });
    }
    this.maybeSettle();
  }

  private onFailureReport(sender: Sender, f: { code: string; message: string }): void {
    const code = f.code || 'ERR_WORKER_FAILED';
    if (sender.role === 'worker') {
      const { reg } = this.current.workers.get(sender.rank)!;
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
    this.phaseNow = 'restarting';
    this.phaseDeadlineMs = this.now + this.s.rendezvousTimeoutMs;
    const next = this.current.no + 1;
    const resumeFrom = this.lastCommitted ?? this.firstResume;
    const reason = `[${f.code}] ${f.message}`;
    this.log(
      'error',
      `restarting the job (restart ${next} of ${this.maxRestarts}) after ${reason}; resuming from ` +
        (resumeFrom ? resumeFrom.dir : 'step 0'),
      { round: this.current.no, restart: next, maxRestarts: this.maxRestarts, code: f.code },
    );
    for (const a of this.agents.values()) this.send(a.routingId, 'restart', { round: next, reason });
    for (const w of this.current.workers.values()) this.send(w.routingId, 'abort', { reason });
    this.emit({
      type: 'restarting',
      round: next,
      maxRestarts: this.maxRestarts,
      failure: this.current.failures.rootCause!,
      resumeFrom: resumeFrom?.dir,
    });
  }

  private onAgentStopped(nodeRank: number, round: number): void {
    if (this.phaseNow !== 'restarting' || round !== this.current.no)
      return this.log(
        'warn',
        `node ${nodeRank} reported round ${round} stopped; ignored (round ${this.current.no}, ${this.phaseNow})`,
      );
    this.current.stoppedAgents.add(nodeRank);
    this.maybeEndRestart();
  }

  /** Once every node's workers are gone: the next round (or, when a stop came meanwhile, the end). */
  private maybeEndRestart(): void {
    if (this.phaseNow !== 'restarting') return;
    if ([...this.agents.keys()].some((n) => !this.current.stoppedAgents.has(n))) return;
    this.writeRoundFailure();
    if (this.stop) {
      // The failure is on record in failures/; the job itself stops cleanly, to be resumed.
      this.current.failures = new FailureLog();
      return this.finishJob({ stopped: this.stopSummary(undefined) }, true);
    }
    this.openRound(this.current.no + 1);
  }

  private openRound(round: number): void {
    for (const w of this.current.workers.values()) this.senders.delete(w.routingId.toString('hex'));
    this.current = new Round(round, this.now, this.worldSize);
    this.phaseNow = 'rendezvous';
    this.log('info', `round ${round}: every node's workers are gone; the nodes start new ones`, { round });
    for (const a of this.agents.values()) this.sendWelcome(a.routingId);
  }

  private writeRoundFailure(): void {
    const report = this.current.failures.report(this.s.jobId, this.current.no, this.rejected);
    if (report) this.effects.push({ type: 'write-round-report', report });
  }

  // ---- liveness, failure, the end --------------------------------------------------------------

  private tick(): void {
    const now = this.now;
    // Our own event loop was blocked: peers' heartbeats are sitting unread, so nobody is late.
    const stalled = now - this.lastTickMs > 2 * this.s.heartbeatIntervalMs;
    this.lastTickMs = now;
    if (this.phaseNow === 'done') return;
    for (const a of this.agents.values()) {
      if (stalled) a.lastSeenMs = now;
      this.send(a.routingId, 'heartbeat', { phase: this.phaseNow });
    }
    for (const w of this.current.workers.values()) {
      if (stalled) w.lastSeenMs = now;
      if (!this.current.exits.has(w.reg.rank) && !w.finish)
        this.send(w.routingId, 'heartbeat', { phase: this.phaseNow });
    }
    if (this.phaseNow !== 'finishing' && this.phaseNow !== 'aborting') this.checkLiveness(now);
    this.maybeSettle();
  }

  private checkLiveness(now: number): void {
    const lost = silentAgent(this.agents.values(), now, this.s);
    if (lost) {
      this.lostNodes.add(lost.nodeRank);
      return this.fail(lost);
    }
    if (WORKERS_WATCHED.has(this.phaseNow)) {
      const running = [...this.current.workers.values()].filter(
        (w) => !w.finish && !this.current.exits.has(w.reg.rank),
      );
      const hung = silentWorker(running, now, this.s);
      if (hung) return this.fail(hung, { restartable: true });
    }
    const late = this.missedDeadline(now);
    if (late) this.fail(late);
  }

  /** The deadline of the phase the round is in, when it has passed. */
  private missedDeadline(now: number): Omit<JobFailure, 'atUnixMs'> | undefined {
    const r = this.current;
    const workers = this.workersByRank();
    switch (this.phaseNow) {
      case 'rendezvous':
        if (now - r.startedMs <= this.s.rendezvousTimeoutMs) return undefined;
        return rendezvousTimeout(
          range(this.s.nnodes).filter((n) => !this.agents.has(n)),
          range(this.worldSize).filter((rank) => !r.workers.has(rank)),
          this.s.rendezvousTimeoutMs,
        );
      case 'ready':
        if (now <= r.readyDeadlineMs) return undefined;
        return readyTimeout(
          workers.filter((w) => !w.ready).map((w) => w.reg.rank),
          this.s.rendezvousTimeoutMs,
        );
      case 'restarting':
        if (now <= this.phaseDeadlineMs) return undefined;
        return restartTimeout(
          [...this.agents.keys()].filter((n) => !r.stoppedAgents.has(n)),
          r.no,
          this.s.rendezvousTimeoutMs,
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
    if (this.phaseNow === 'done') return;
    const isRootCause = this.current.failures.record(f, this.now);
    this.log('error', f.message, { code: f.code, rank: f.rank, host: f.host, round: this.current.no });
    if (this.phaseNow === 'finishing' || this.phaseNow === 'aborting') return;
    if (this.phaseNow === 'restarting' && opts.restartable) return;
    const canRestart = !this.stop && this.current.no < this.maxRestarts;
    if (isRootCause && opts.restartable && canRestart) return this.beginRestart(f);
    this.phaseNow = 'aborting';
    this.settleDeadlineMs = this.now + (this.s.abortSettleMs ?? DEFAULT_ABORT_SETTLE_MS);
    const reason = `[${f.code}] ${f.message}`;
    for (const a of this.agents.values()) this.send(a.routingId, 'abort', { reason });
    for (const w of this.current.workers.values()) this.send(w.routingId, 'abort', { reason });
    this.emit({ type: 'failure', failure: this.current.failures.rootCause! });
    this.maybeSettle();
  }

  /** Once every registered worker's exit is known (or the wait is over), the outcome is final. */
  private maybeSettle(): void {
    if (this.phaseNow !== 'aborting' && this.phaseNow !== 'finishing') return;
    const r = this.current;
    const allExited = [...r.workers.values()].every(
      (w) => r.exits.has(w.reg.rank) || this.lostNodes.has(w.reg.nodeRank),
    );
    if (allExited || this.now >= this.settleDeadlineMs) this.finalize();
  }

  private finalize(): void {
    if (this.phaseNow === 'done') return;
    this.phaseNow = 'done';
    const failures = this.current.failures;
    let report = failures.report(this.s.jobId, this.current.no, this.rejected);
    if (!report && this.ending) {
      this.effects.push({ type: 'end', summary: this.summary(), result: { ok: true, ...this.ending } });
      return;
    }
    if (!report) {
      // Closed before the job ended: that is a failure too (the launcher was stopped).
      failures.record(
        { code: 'ERR_JOB_INCOMPLETE', message: 'the coordinator closed before every worker finished' },
        this.now,
      );
      report = failures.report(this.s.jobId, this.current.no, this.rejected)!;
    }
    this.effects.push({ type: 'end', summary: this.summary(), result: { ok: false, report } });
  }

  private summary(): JobSummary {
    const checkpoint = (this.lastCommitted ?? this.current.resumeFrom ?? this.firstResume)?.dir;
    return {
      jobId: this.s.jobId,
      round: this.current.no,
      restarts: this.current.no,
      ...(this.lastStep !== undefined ? { lastStep: this.lastStep } : {}),
      ...(checkpoint ? { checkpoint } : {}),
      rejected: this.rejected,
    };
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
