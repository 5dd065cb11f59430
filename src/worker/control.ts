// control.ts — a worker's control client: registers with the coordinator, receives its groups,
// waits at the start barrier, reports steps and failures, says when it has finished, and obeys an
// abort. It heartbeats on its own, and exits the process when the coordinator (or the launcher that
// started it) is gone, so a worker is never left behind.
import { loadControlKeys, type ControlKeys } from '../coordinator/auth';
import { ControlError } from '../coordinator/errors';
import { CoordinatorLink } from '../coordinator/link';
import type {
  Assignment,
  ControlMessage,
  DataEndpoints,
  PeerInfo,
  StepReport,
  WorkerPhase,
  WorkerRegistration,
} from '../coordinator/messages';

export type { Assignment, DataEndpoints, PeerInfo, StepReport, WorkerPhase, WorkerRegistration };

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
  /** reportFailure() calls waiting for the coordinator's answer (its abort). */
  private failureWaiters: Array<() => void> = [];
  private abortCallback: ((reason: string) => void) | undefined;
  private started = false;
  private aborted: string | undefined;
  private parentWatch: NodeJS.Timeout | undefined;

  /** The client for a worker spawned by `paratrain launch` (reads the env it sets); starts heartbeats. */
  static fromEnv(): ControlClient {
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

  /** Says training is done; resolves when the coordinator has recorded it. */
  finish(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.finishWaiter = { resolve, reject };
      void this.link.send({ kind: 'finish', body: {} });
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
      case 'abort':
        return this.onAbortMessage(m.body.reason);
    }
  }

  private onAbortMessage(reason: string): void {
    if (this.aborted !== undefined) return;
    this.aborted = reason;
    for (const done of this.failureWaiters.splice(0)) done();
    const err = new ControlError('ERR_ABORTED', `the job was aborted: ${reason}`);
    for (const w of [this.assignmentWaiter, this.startWaiter, this.finishWaiter]) w?.reject(err);
    this.startWaiter = this.finishWaiter = undefined;
    if (this.abortCallback) this.abortCallback(reason);
    else this.exitNow(`the job was aborted: ${reason}`);
  }

  private exitNow(why: string): never {
    process.stderr.write(`${this.who}: ${why}\n`);
    process.exit(1);
  }
}
