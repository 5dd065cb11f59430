// control.ts — a worker's control client: registers with the coordinator, receives its groups (and
// the checkpoint to resume from), waits at the start barrier, reports steps and failures, hears save
// and stop requests, reports its checkpoint shards and learns when a step is committed, says when it
// has finished (or stopped), and obeys an abort. It heartbeats on its own, and exits the process when
// the coordinator (or the launcher that started it) is gone, so a worker is never left behind.
import { encodeShardReport, type ShardReport } from '../checkpoint';
import { loadControlKeys, type ControlKeys } from '../control/auth';
import { ControlError } from '../control/errors';
import { CoordinatorLink } from '../control/link';
import type {
  Assignment,
  ControlMessage,
  DataEndpoints,
  PeerInfo,
  SaveRequest,
  StepReport,
  WorkerPhase,
  WorkerRegistration,
} from '../control/messages';

export type { Assignment, DataEndpoints, PeerInfo, SaveRequest, StepReport, WorkerPhase, WorkerRegistration };

export interface ControlClientOptions {
  masterAddr: string;
  masterPort: number;
  jobId: string;
  round: number;
  rank: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  /** How long register() waits for the whole job to gather. */
  rendezvousTimeoutMs: number;
  /** The launcher that spawned this worker; when it is gone, so is the worker. */
  agentPid?: number;
  /** The job's CURVE keys (PARATRAIN_AUTH_KEY_FILE), when the control plane is authenticated. */
  keys?: ControlKeys;
}

type Waiter<T> = { resolve: (v: T) => void; reject: (e: Error) => void };

function envNumber(name: string, fallback?: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    if (fallback !== undefined) return fallback;
    throw new ControlError('ERR_CONTROL_ENV', `${name} is not set; workers are started by \`paratrain launch\``);
  }
  const n = Number(raw);
  if (!Number.isFinite(n) || n < 0)
    throw new ControlError('ERR_CONTROL_ENV', `${name} must be a non-negative number, got '${raw}'`);
  return n;
}

function envString(name: string): string {
  const v = process.env[name];
  if (!v) throw new ControlError('ERR_CONTROL_ENV', `${name} is not set; workers are started by \`paratrain launch\``);
  return v;
}

/** How long reportFailure() waits for the coordinator's answer. */
const REPORT_ANSWER_MS = 3000;

export class ControlClient {
  private readonly link: CoordinatorLink;
  private readonly who: string;
  private assignmentWaiter: Waiter<Assignment> | undefined;
  private startWaiter: Waiter<void> | undefined;
  private finishWaiter: Waiter<void> | undefined;
  /** reportShardSaved() calls waiting for the commit of their step. */
  private readonly commitWaiters = new Map<number, Waiter<{ dir: string }>>();
  private saveCallback: ((r: SaveRequest) => void) | undefined;
  /** Save requests that arrived before onSaveRequest() was called. */
  private unheardSaves: SaveRequest[] = [];
  /** reportFailure() calls waiting for the coordinator's answer (its abort). */
  private failureWaiters: Array<() => void> = [];
  private abortCallback: ((reason: string) => void) | undefined;
  private started = false;
  private aborted: string | undefined;
  private parentWatch: NodeJS.Timeout | undefined;

  /**
   * The client for a worker spawned by `paratrain launch` (reads the env it sets); starts heartbeats.
   * The launcher turns SIGUSR1/SIGUSR2 into save requests; a batch system may signal every process
   * of the job, so the worker ignores them itself (SIGUSR1 would start Node's inspector, SIGUSR2 kill).
   */
  static fromEnv(): ControlClient {
    for (const s of ['SIGUSR1', 'SIGUSR2'] as const) process.on(s, () => {});
    const agentPid = process.env.PARATRAIN_AGENT_PID ? envNumber('PARATRAIN_AGENT_PID') : undefined;
    return new ControlClient({
      masterAddr: envString('MASTER_ADDR'),
      masterPort: envNumber('MASTER_PORT'),
      jobId: envString('PARATRAIN_JOB_ID'),
      round: envNumber('PARATRAIN_ROUND', 0),
      rank: envNumber('RANK'),
      heartbeatIntervalMs: envNumber('PARATRAIN_HEARTBEAT_INTERVAL_MS', 2000),
      heartbeatTimeoutMs: envNumber('PARATRAIN_HEARTBEAT_TIMEOUT_MS', 20000),
      rendezvousTimeoutMs: envNumber('PARATRAIN_RENDEZVOUS_TIMEOUT_MS', 300000),
      agentPid,
      keys: process.env.PARATRAIN_AUTH_KEY_FILE ? loadControlKeys(process.env.PARATRAIN_AUTH_KEY_FILE) : undefined,
    });
  }

  constructor(private readonly opts: ControlClientOptions) {
    this.who = `paratrain worker (rank ${opts.rank}, pid ${process.pid})`;
    this.link = new CoordinatorLink({
      address: `tcp://${opts.masterAddr}:${opts.masterPort}`,
      identity: `worker/r${opts.rank}`,
      phase: 'setup',
      heartbeatIntervalMs: opts.heartbeatIntervalMs,
      heartbeatTimeoutMs: opts.heartbeatTimeoutMs,
      onMessage: (m) => this.onMessage(m),
      onSilence: (ms) =>
        this.exitNow(
          `no message from the coordinator at ${this.link.address} for ${(ms / 1000).toFixed(1)} s ` +
            `(heartbeat timeout ${(opts.heartbeatTimeoutMs / 1000).toFixed(1)} s); exiting so no worker is left behind`,
        ),
      onWarning: (w) => process.stderr.write(`${this.who}: ${w}\n`),
      keys: opts.keys,
    });
    if (opts.agentPid !== undefined) {
      // Reparented means the launcher died (even by SIGKILL): nobody supervises this worker any more.
      this.parentWatch = setInterval(() => {
        if (process.ppid !== opts.agentPid) this.exitNow(`the launcher (pid ${opts.agentPid}) is gone; exiting`);
      }, opts.heartbeatIntervalMs);
      this.parentWatch.unref();
    }
  }

  /** Joins the job; resolves with this worker's groups once every worker has registered. */
  register(r: WorkerRegistration): Promise<Assignment> {
    const { jobId, round, rank } = this.opts;
    return new Promise<Assignment>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.assignmentWaiter = undefined;
        const secs = (this.opts.rendezvousTimeoutMs / 1000).toFixed(1);
        reject(
          this.link.heardFromCoordinator
            ? new ControlError('ERR_RENDEZVOUS_TIMEOUT', `the job did not gather within ${secs} s`)
            : new ControlError(
                'ERR_MASTER_UNREACHABLE',
                `no answer from the coordinator at ${this.link.address} within ${secs} s; check MASTER_ADDR/MASTER_PORT ` +
                  `and that node 0's \`paratrain launch\` is running`,
              ),
        );
      }, this.opts.rendezvousTimeoutMs);
      const done =
        <T>(f: (v: T) => void) =>
        (v: T) => {
          clearTimeout(timer);
          this.assignmentWaiter = undefined;
          f(v);
        };
      this.assignmentWaiter = { resolve: done(resolve), reject: done(reject) };
      void this.link.send({ kind: 'register', body: { ...r, jobId, round, rank } });
    });
  }

  /** Says the data plane is connected; resolves when every worker is (the start barrier). */
  ready(): Promise<void> {
    if (this.started) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.startWaiter = { resolve, reject };
      void this.link.send({ kind: 'ready', body: {} });
    });
  }

  /** The phase heartbeats carry; it picks the timeout the coordinator applies to this worker. */
  setPhase(p: WorkerPhase): void {
    this.link.phase = p;
  }

  /** Queues a step report; never throws. */
  reportStep(r: StepReport): void {
    try {
      if (this.link.phase === 'setup' || this.link.phase === 'first-step') this.link.phase = 'train';
      void this.link.send({ kind: 'stepReport', body: r });
    } catch (err) {
      process.stderr.write(`${this.who}: could not report step ${r.step}: ${(err as Error).message}\n`);
    }
  }

  /** Tells the coordinator why this worker cannot go on (it aborts the job). */
  /**
   * Resolves once the coordinator has answered with its abort (so the report, not this process's
   * exit that usually follows, is the job's root cause), or after a few seconds without an answer.
   */
  reportFailure(code: string, message: string): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(done, REPORT_ANSWER_MS);
      this.failureWaiters.push(done);
      this.link.send({ kind: 'failureReport', body: { code, message } }).catch(done);
    });
  }

  /**
   * Says training is done, or with `stopped` that this worker saved the checkpoint of `step` on a
   * stop request and stops there (every rank must stop at the same step); resolves when the
   * coordinator has recorded it.
   */
  finish(opts: { stopped?: boolean; step?: number } = {}): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.finishWaiter = { resolve, reject };
      void this.link.send({ kind: 'finish', body: { stopped: !!opts.stopped, step: opts.step ?? 0 } });
    });
  }

  /**
   * What to do when the job asks for a checkpoint: save one (stop false) and train on, or save
   * one, wait for its commit, and finish({ stopped: true, step }) (stop true). The ranks agree on
   * the step among themselves. Requests that came before the callback are delivered to it now.
   */
  onSaveRequest(cb: (r: SaveRequest) => void): void {
    this.saveCallback = cb;
    for (const r of this.unheardSaves.splice(0)) cb(r);
  }

  /**
   * Reports this rank's written shard of a checkpoint; resolves with the step directory once the
   * coordinator has every rank's report and has committed the step. Rejects (ControlError) when
   * the commit failed (ERR_CHECKPOINT_COMMIT; the job fails with it) or the job was aborted.
   * At most one save may be in flight: report the next only after this one resolved.
   */
  reportShardSaved(report: ShardReport): Promise<{ dir: string }> {
    if (this.aborted !== undefined)
      return Promise.reject(new ControlError('ERR_ABORTED', `the job was aborted: ${this.aborted}`));
    return new Promise<{ dir: string }>((resolve, reject) => {
      const bytes = encodeShardReport(report);
      this.commitWaiters.set(report.step, { resolve, reject });
      void this.link.send({ kind: 'shardSaved', body: { report: bytes } });
    });
  }

  /** What to do when the job is aborted; without a callback the reason is printed and the process exits 1. */
  onAbort(cb: (reason: string) => void): void {
    this.abortCallback = cb;
    if (this.aborted !== undefined) cb(this.aborted);
  }

  async close(): Promise<void> {
    clearInterval(this.parentWatch);
    this.link.stopWatchingSilence();
    await this.link.close();
  }

  private onMessage(m: ControlMessage): void {
    switch (m.kind) {
      case 'assignment':
        this.assignmentWaiter?.resolve(m.body);
        return;
      case 'reject':
        this.assignmentWaiter?.reject(
          new ControlError('ERR_REJECTED', `the coordinator refused this worker: ${m.body.reason}`),
        );
        return;
      case 'start':
        this.started = true;
        this.startWaiter?.resolve();
        this.startWaiter = undefined;
        return;
      case 'finishAck':
        this.link.stopWatchingSilence();
        this.finishWaiter?.resolve();
        this.finishWaiter = undefined;
        return;
      case 'saveRequest':
        if (this.saveCallback) this.saveCallback(m.body);
        else this.unheardSaves.push(m.body);
        return;
      case 'saveCommitted':
        return this.onSaveCommitted(m.body.step, m.body.dir, m.body.error);
      case 'abort':
        return this.onAbortMessage(m.body.reason);
    }
  }

  private onSaveCommitted(step: number, dir: string, error: string): void {
    const waiter = this.commitWaiters.get(step);
    if (!waiter) return;
    this.commitWaiters.delete(step);
    if (error) waiter.reject(new ControlError('ERR_CHECKPOINT_COMMIT', error));
    else waiter.resolve({ dir });
  }

  private onAbortMessage(reason: string): void {
    if (this.aborted !== undefined) return;
    this.aborted = reason;
    for (const done of this.failureWaiters.splice(0)) done();
    const err = new ControlError('ERR_ABORTED', `the job was aborted: ${reason}`);
    for (const w of [this.assignmentWaiter, this.startWaiter, this.finishWaiter, ...this.commitWaiters.values()])
      w?.reject(err);
    this.startWaiter = this.finishWaiter = undefined;
    this.commitWaiters.clear();
    if (this.abortCallback) this.abortCallback(reason);
    else this.exitNow(`the job was aborted: ${reason}`);
  }

  private exitNow(why: string): never {
    process.stderr.write(`${this.who}: ${why}\n`);
    process.exit(1);
  }
}
