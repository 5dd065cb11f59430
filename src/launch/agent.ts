// agent.ts — a node's half of `paratrain launch`: joins the job at the coordinator, prepares the
// data once for the node, spawns and supervises the node's workers, reports every worker's exit,
// and stops them all when told to (abort, shutdown), when the coordinator goes silent, or when the
// launcher itself is interrupted. Whatever happens, no worker outlives its agent.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type pino from 'pino';

import type { Config } from '../config/schema';
import type { ControlKeys } from '../coordinator/auth';
import { describeExit } from '../coordinator/failure';
import { CoordinatorLink } from '../coordinator/link';
import type { AgentWelcome, ControlMessage } from '../coordinator/messages';
import { allowedCpus, coreSlices } from './core-binding';
import type { LaunchPlan } from './options';
import { prepareRunDataInChild } from './prepare-data';
import { workerEnv } from './worker-env';
import { rankLogName, WorkerProcess } from './worker-process';

export interface AgentOptions {
  plan: LaunchPlan;
  config: Config;
  /** The program each worker runs (dist/worker/main.js unless overridden). */
  workerEntry: string;
  log: pino.Logger;
  /** SIGTERM first, SIGKILL after this long. */
  killGraceMs?: number;
  /** The job's CURVE keys, when the control plane is authenticated. */
  keys?: ControlKeys;
}

export type AgentOutcome = { ok: true } | { ok: false; code: string; message: string };

/** Why supervision ends; the first reason wins. */
type Ending =
  | { kind: 'shutdown' }
  | { kind: 'abort'; reason: string }
  | { kind: 'rejected'; reason: string }
  | { kind: 'coordinator-lost'; silentMs: number }
  | { kind: 'interrupted'; signal: string }
  | { kind: 'failed'; code: string; message: string };

const DEFAULT_KILL_GRACE_MS = 3000;

/** ipc:// paths must fit in ~107 bytes, so the per-job directory lives in a short temp path. */
function ipcDirFor(jobId: string, nodeRank: number): string {
  const tmp = os.tmpdir().length <= 32 ? os.tmpdir() : '/tmp';
  return path.join(tmp, `pt-${jobId.slice(0, 8)}-n${nodeRank}`);
}

export class Agent {
  private readonly plan: LaunchPlan;
  private readonly log: pino.Logger;
  private readonly host = os.hostname();
  private link: CoordinatorLink | undefined;
  private workers: WorkerProcess[] = [];
  private welcome: AgentWelcome | undefined;
  private onWelcome: ((w: AgentWelcome) => void) | undefined;
  private endWith!: (e: Ending) => void;
  private readonly ending: Promise<Ending>;
  private ended = false;
  private ipcDir: string | undefined;

  constructor(private readonly opts: AgentOptions) {
    this.plan = opts.plan;
    this.log = opts.log;
    this.ending = new Promise<Ending>((resolve) => {
      this.endWith = (e) => {
        if (this.ended) return;
        this.ended = true;
        resolve(e);
      };
    });
  }

  /** The launcher got SIGINT/SIGTERM: tell the coordinator, then stop the node's workers. */
  interrupt(signal: string): void {
    if (this.welcome && !this.ended)
      void this.link?.send({
        kind: 'failureReport',
        body: { code: 'ERR_INTERRUPTED', message: `the launcher received ${signal}` },
      });
    this.endWith({ kind: 'interrupted', signal });
  }

  /** A second interrupt: no more grace. */
  killNow(): void {
    for (const w of this.workers) w.kill('SIGKILL');
  }

  async run(): Promise<AgentOutcome> {
    try {
      const end = await this.supervise();
      return await this.windDown(end);
    } finally {
      await this.stopWorkers();
      if (this.ipcDir) fs.rmSync(this.ipcDir, { recursive: true, force: true });
      await this.link?.close();
    }
  }

  private async supervise(): Promise<Ending> {
    const { plan } = this;
    const link = (this.link = new CoordinatorLink({
      address: `tcp://${plan.masterAddr}:${plan.masterPort}`,
      identity: `agent/n${plan.nodeRank}`,
      phase: 'prepare',
      heartbeatIntervalMs: plan.heartbeatIntervalMs,
      heartbeatTimeoutMs: plan.heartbeatTimeoutMs,
      onMessage: (m) => this.onMessage(m),
      onSilence: (silentMs) => this.endWith({ kind: 'coordinator-lost', silentMs }),
      onWarning: (w) => this.log.warn(w),
      keys: this.opts.keys,
    }));

    const welcomed = new Promise<AgentWelcome>((resolve) => (this.onWelcome = resolve));
    void link.send({
      kind: 'agentHello',
      body: {
        nodeRank: plan.nodeRank,
        host: this.host,
        nprocPerNode: plan.nprocPerNode,
        nnodes: plan.nnodes,
        pid: process.pid,
      },
    });
    let timer: NodeJS.Timeout | undefined;
    const unanswered = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), plan.rendezvousTimeoutMs);
    });
    const first = await Promise.race([welcomed, this.ending, unanswered]);
    clearTimeout(timer);
    if (first === 'timeout')
      return {
        kind: 'failed',
        code: 'ERR_MASTER_UNREACHABLE',
        message:
          `no answer from the coordinator at ${link.address} within ${plan.rendezvousTimeoutMs / 1000} s. Check that ` +
          `node 0's \`paratrain launch\` is running, that --master-addr/--master-port (or MASTER_ADDR/MASTER_PORT) ` +
          `name it, and that the port is open between the nodes` +
          (this.opts.keys ? '; and that every node has the same --auth-key-file' : ''),
      };
    if ('kind' in first) return first;
    const welcome = (this.welcome = first);
    link.setTiming(welcome);
    this.log.info(
      { jobId: welcome.jobId, round: welcome.round, node: plan.nodeRank, nnodes: plan.nnodes },
      `node ${plan.nodeRank} joined job ${welcome.jobId}`,
    );

    const preparation = prepareRunDataInChild(JSON.stringify(this.opts.config));
    const prepared = await Promise.race([preparation.done.then(() => 'ready' as const), this.ending]).catch(
      (err: Error) => ({ kind: 'failed' as const, code: 'ERR_DATA_PREPARE', message: err.message }),
    );
    if (prepared !== 'ready') {
      preparation.cancel();
      if (prepared.kind === 'failed') void link.send({ kind: 'failureReport', body: prepared });
      return prepared;
    }

    this.spawnWorkers(welcome);
    link.phase = 'supervise';
    return this.ending;
  }

  private spawnWorkers(welcome: AgentWelcome): void {
    const { plan, config } = this.opts;
    const logDir = path.join(config.run.dir, 'logs');
    fs.mkdirSync(logDir, { recursive: true });
    this.ipcDir = ipcDirFor(welcome.jobId, plan.nodeRank);
    fs.mkdirSync(this.ipcDir, { recursive: true, mode: 0o700 });
    const configJson = JSON.stringify(config);
    const cpus = plan.bindCores ? allowedCpus() : undefined;
    const cpuLists = cpus ? coreSlices(cpus, plan.nprocPerNode) : undefined;
    for (let localRank = 0; localRank < plan.nprocPerNode; localRank++) {
      const rank = plan.nodeRank * plan.nprocPerNode + localRank;
      const env = workerEnv({
        plan,
        localRank,
        welcome,
        configJson,
        ipcDir: this.ipcDir,
        agentPid: process.pid,
        cores: cpus ? cpus.length : os.availableParallelism(),
        base: process.env,
      });
      const logFile = path.join(logDir, rankLogName(rank));
      const w = new WorkerProcess(rank, localRank, this.opts.workerEntry, env, logFile, cpuLists?.[localRank]);
      this.workers.push(w);
      this.log.info(
        { rank, pid: w.pid, log: logFile, ...(cpuLists ? { cpus: cpuLists[localRank] } : {}) },
        `started rank ${rank} (pid ${w.pid})${cpuLists ? ` on cores ${cpuLists[localRank]}` : ''}`,
      );
      void w.ended.then((end) => {
        const lastLines = w.lastLines();
        const how = describeExit(end.exitCode ?? undefined, end.signal ?? undefined);
        const level = end.exitCode === 0 ? 'info' : 'warn';
        this.log[level]({ rank, pid: w.pid, exitCode: end.exitCode, signal: end.signal }, `rank ${rank} ${how}`);
        void this.link?.send({
          kind: 'workerExited',
          body: {
            rank,
            localRank,
            pid: w.pid,
            exitCode: end.exitCode ?? undefined,
            signal: end.signal ?? '',
            lastLines,
          },
        });
      });
    }
  }

  private onMessage(m: ControlMessage): void {
    switch (m.kind) {
      case 'agentWelcome':
        this.onWelcome?.(m.body);
        return;
      case 'reject':
        return this.endWith({ kind: 'rejected', reason: m.body.reason });
      case 'abort':
        return this.endWith({ kind: 'abort', reason: m.body.reason });
      case 'shutdown':
        return this.endWith({ kind: 'shutdown' });
    }
  }

  private async windDown(end: Ending): Promise<AgentOutcome> {
    const link = this.link!;
    link.phase = 'stopping';
    // From here on the coordinator may finish and close before us; its silence means nothing.
    link.stopWatchingSilence();
    switch (end.kind) {
      case 'shutdown': {
        // Every worker finished; give them the heartbeat timeout to exit by themselves.
        const exits = await this.waitForWorkers(this.plan.heartbeatTimeoutMs);
        const bad = exits.filter((x) => x.end.exitCode !== 0);
        if (bad.length === 0) return { ok: true };
        return {
          ok: false,
          code: 'ERR_WORKER_EXITED',
          message: bad
            .map(
              (x) =>
                `rank ${x.rank} ${describeExit(x.end.exitCode ?? undefined, x.end.signal ?? undefined)} after finishing`,
            )
            .join('; '),
        };
      }
      case 'abort':
        return { ok: false, code: 'ERR_JOB_ABORTED', message: `the coordinator aborted the job: ${end.reason}` };
      case 'rejected':
        return { ok: false, code: 'ERR_REJECTED', message: `the coordinator refused this node: ${end.reason}` };
      case 'coordinator-lost':
        return {
          ok: false,
          code: 'ERR_COORDINATOR_LOST',
          message:
            `no message from the coordinator at ${link.address} for ${(end.silentMs / 1000).toFixed(1)} s ` +
            `(--heartbeat-timeout ${this.plan.heartbeatTimeoutMs / 1000} s); stopped this node's workers. ` +
            `Node 0's launcher has died or the network between the nodes is down`,
        };
      case 'interrupted':
        return {
          ok: false,
          code: 'ERR_INTERRUPTED',
          message: `interrupted by ${end.signal}; stopped this node's workers`,
        };
      case 'failed':
        return { ok: false, code: end.code, message: end.message };
    }
  }

  private async waitForWorkers(limitMs: number) {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (timer = setTimeout(resolve, limitMs)));
    await Promise.race([Promise.all(this.workers.map((w) => w.ended)), timeout]);
    clearTimeout(timer);
    await this.stopWorkers();
    return Promise.all(this.workers.map(async (w) => ({ rank: w.rank, end: await w.ended })));
  }

  /** SIGTERM to every running worker, SIGKILL to those still running after the grace period. */
  private async stopWorkers(): Promise<void> {
    const running = this.workers.filter((w) => w.isRunning);
    if (running.length === 0) return;
    for (const w of running) w.kill('SIGTERM');
    const timer = setTimeout(
      () => running.forEach((w) => w.kill('SIGKILL')),
      this.opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS,
    );
    await Promise.all(running.map((w) => w.ended));
    clearTimeout(timer);
  }
}
