// coordinator.ts — the shell around the job's state machine (job.ts), run by node 0's launcher
// behind the ROUTER every agent and worker talks to (router.ts). It turns what arrives on the
// socket, the heartbeat timer and the launcher's calls into events for the machine, and carries out
// the effects the machine returns: messages to send, log lines, events for the progress view, the
// resume checkpoint to verify and the checkpoints to commit (async; their results come back as
// events), the failure reports to write, and the outcome.
// It never trusts what arrives: the router passes on only verified frames, and the machine judges
// a message by who its peer joined as, never by what the message claims.
import { randomBytes } from 'node:crypto';
import * as dns from 'node:dns/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import type pino from 'pino';

import type { ControlKeys } from '../control/auth';
import type { StepReport } from '../control/messages';
import { ControlRouter } from '../control/router';
import { connectionLimits } from '../control/tcp-front';
import { describeSetAside } from '../checkpoint';
import { commitReports, findResumeCheckpoint, type RelayError } from './checkpoints';
import { writeReport, writeRoundReport, type RootCauseReport } from './failure';
import { validateLayout } from './groups';
import {
  Job,
  type CoordinatorEvent,
  type Effect,
  type JobEvent,
  type JobEventBody,
  type JobSettings,
  type JobSummary,
  type StopSummary,
} from './job';

export { describeStop, type CoordinatorEvent, type JobSummary, type StopSummary } from './job';

/**
 * Where the coordinator listens: the IPv4 address --master-addr resolves to, when it is one of this
 * host's (loopback for a single-node job on 127.0.0.1: nothing off this host can reach the port).
 * Every interface, with a note saying so, when it is not (an address in front of this host, such
 * as a Kubernetes service, or IPv6 only), or when a multi-node job's master name resolves to
 * loopback here (Debian's `127.0.1.1 <hostname>` in /etc/hosts), which the other nodes cannot reach.
 */
export async function listenAddress(
  masterAddr: string,
  nnodes: number,
  interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces(),
): Promise<{ address: string; note?: string }> {
  let ip: string;
  try {
    ip = net.isIPv4(masterAddr) ? masterAddr : (await dns.lookup(masterAddr, { family: 4 })).address;
  } catch (err) {
    const why = (err as NodeJS.ErrnoException).code ?? 'error';
    return {
      address: '*',
      note: `--master-addr ${masterAddr} has no IPv4 address here (${why}): listening on every interface`,
    };
  }
  const everywhere = (why: string) => ({
    address: '*',
    note: `--master-addr ${masterAddr} (${ip}) ${why}: listening on every interface`,
  });
  if (ip.startsWith('127.')) {
    const meantLoopback = net.isIPv4(masterAddr) || masterAddr === 'localhost';
    if (meantLoopback || nnodes === 1) return { address: ip };
    return everywhere(`resolves to loopback on this host, which the other ${nnodes - 1} node(s) cannot reach`);
  }
  const mine = Object.values(interfaces).some((infos) => infos?.some((i) => i.family === 'IPv4' && i.address === ip));
  if (mine) return { address: ip };
  return everywhere('is not an address of this host (a service or NAT address in front of it?)');
}

export interface CoordinatorOptions extends Omit<JobSettings, 'jobId'> {
  /** --master-addr: the coordinator listens on its address only (listenAddress). */
  masterAddr: string;
  port: number;
  /** Where failure.json and failures/ go (config.run.dir). */
  runDir: string;
  /** config.checkpoint.keep: committed checkpoints kept (the oldest are pruned). */
  keep: number;
  log: pino.Logger;
  onEvent?: (e: CoordinatorEvent) => void;
  /** CURVE keys of the job (--auth-key-file); without them the control plane is unauthenticated. */
  keys?: ControlKeys;
  /** --start-fresh: `--resume auto` among checkpoints none of which verifies starts at step 0. */
  startFresh?: boolean;
}

export type JobOutcome =
  | (JobSummary & { ok: true; stopped?: StopSummary })
  | (JobSummary & { ok: false; report: RootCauseReport; reportFile: string });

export class Coordinator {
  readonly jobId = randomBytes(8).toString('hex');
  readonly worldSize: number;
  /** Resolves once the job has finished, stopped or failed (and failure.json is written). */
  readonly done: Promise<JobOutcome>;

  private resolveDone!: (o: JobOutcome) => void;
  private readonly job: Job;
  private readonly timer: NodeJS.Timeout;

  private constructor(
    private readonly router: ControlRouter,
    private readonly opts: CoordinatorOptions,
  ) {
    this.job = new Job({ ...opts, jobId: this.jobId }, Date.now());
    this.worldSize = this.job.worldSize;
    this.done = new Promise((resolve) => (this.resolveDone = resolve));
    this.timer = setInterval(() => this.dispatch({ type: 'tick' }), opts.heartbeatIntervalMs);
    router.listen({
      onMessage: (from, message) => this.dispatch({ type: 'message', from, message }),
      onSocketError: (err) => {
        opts.log.error({ err: err.message }, 'coordinator socket failed');
        this.dispatch({
          type: 'abort',
          code: 'ERR_COORDINATOR_SOCKET',
          message: `the coordinator's socket failed: ${String(err)}`,
        });
      },
    });
  }

  /** Binds tcp://<listenAddress(masterAddr)>:port and starts the job's rendezvous. */
  static async start(opts: CoordinatorOptions): Promise<Coordinator> {
    validateLayout({
      worldSize: opts.nnodes * opts.nprocPerNode,
      nprocPerNode: opts.nprocPerNode,
      tpSize: opts.tpSize,
    });
    const listen = await listenAddress(opts.masterAddr, opts.nnodes);
    if (listen.note) opts.log.warn({ masterAddr: opts.masterAddr }, listen.note);
    const limits = connectionLimits(opts.nnodes, opts.nprocPerNode);
    return new Coordinator(await ControlRouter.bind(listen.address, opts.port, opts.keys, limits, opts.log), opts);
  }

  /** The restart count: 0, then one more for every restart of the gang. */
  get round(): number {
    return this.job.round;
  }

  /** Stops the job from outside (the launcher was interrupted); the root cause is this reason. Never restarted. */
  abort(code: string, message: string): void {
    this.dispatch({ type: 'abort', code, message });
  }

  /**
   * A launcher received a signal: with `stop`, every worker saves a checkpoint and stops (a
   * graceful stop, bounded by --stop-timeout, and no more restarts); without, every worker saves
   * a checkpoint and trains on.
   */
  requestSave(r: { signal: string; stop: boolean; nodeRank: number }): void {
    this.dispatch({ type: 'save-requested', ...r });
  }

  /** Latest step report per data-parallel rank. */
  steps(): ReadonlyMap<number, StepReport> {
    return this.job.steps();
  }

  async close(): Promise<void> {
    this.dispatch({ type: 'close' });
    clearInterval(this.timer);
    await this.router.close();
  }

  /** One event through the machine, now; then its effects, in order. */
  private dispatch(e: JobEventBody): void {
    for (const effect of this.job.handle({ ...e, now: Date.now() } as JobEvent)) this.apply(effect);
  }

  private apply(e: Effect): void {
    const { log } = this.opts;
    switch (e.type) {
      case 'send':
        return this.router.send(e.to, e.message);
      case 'emit':
        return this.emit(e.event);
      case 'log':
        if (e.fields) log[e.level](e.fields, e.text);
        else log[e.level](e.text);
        return;
      case 'choose-resume':
        return void this.chooseResume(e.round, e.spec);
      case 'commit':
        return void this.commit(e.round, e.reports);
      case 'write-round-report':
        try {
          writeRoundReport(this.opts.runDir, e.report);
        } catch (err) {
          log.error({ err: (err as Error).message }, `could not write failures/round-${e.report.round}.json`);
        }
        return;
      case 'end':
        clearInterval(this.timer);
        if (e.result.ok) return this.resolveDone({ ...e.summary, ...e.result });
        return this.resolveDone({ ...e.summary, ...e.result, reportFile: this.writeFailure(e.result.report) });
    }
  }

  /** Verifying reads every file of the checkpoint: async, so heartbeats keep flowing meanwhile. */
  private async chooseResume(round: number, spec: string | undefined): Promise<void> {
    try {
      const { log } = this.opts;
      const resume = await findResumeCheckpoint(spec, this.opts.checkpointRoot, {
        onSkip: (dir, reason) => log.warn({ dir }, `skipping ${dir}: ${reason}`),
        onSetAside: (dir, to, reason) => log.warn({ dir, to }, describeSetAside(dir, to, reason)),
        startFresh: this.opts.startFresh,
      });
      this.dispatch({ type: 'resume-chosen', round, resume });
    } catch (err) {
      const e = err as Error & { code?: string };
      this.dispatch({ type: 'resume-chosen', round, error: { code: e.code, message: e.message } });
    }
  }

  private async commit(round: number, reports: Parameters<typeof commitReports>[1]): Promise<void> {
    try {
      const { dir, upkeepFailures } = await commitReports(this.opts.checkpointRoot, reports, this.opts.keep);
      for (const f of upkeepFailures) this.opts.log.warn({ event: 'checkpoint-upkeep', dir: f.dir }, f.message);
      this.dispatch({ type: 'commit-done', round, reports, dir });
    } catch (err) {
      this.dispatch({ type: 'commit-done', round, reports, error: err as RelayError });
    }
  }

  private writeFailure(report: RootCauseReport): string {
    let reportFile = '';
    try {
      reportFile = writeReport(this.opts.runDir, report);
      writeRoundReport(this.opts.runDir, report);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'could not write failure.json');
    }
    return reportFile;
  }

  private emit(e: CoordinatorEvent): void {
    try {
      this.opts.onEvent?.(e);
    } catch (err) {
      this.opts.log.error({ err: (err as Error).message }, 'coordinator event listener failed');
    }
  }
}
