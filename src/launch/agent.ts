// agent.ts — a node's half of `paratrain launch`: joins the job at the coordinator, prepares the
// data once for the node, spawns and supervises the node's workers, reports every worker's exit,
// restarts them in a new round when the coordinator says so, forwards the launcher's save/stop
// signals, and stops them all when told to (abort, shutdown), when the coordinator goes silent, or
// when the launcher itself is interrupted. Whatever happens, no worker outlives its agent.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type pino from 'pino';

import type { Config } from '../config/schema';
import { writeJobSecret, type ControlKeys } from '../control/auth';
import { describeExit } from '../control/messages';
import { CoordinatorLink } from '../control/link';
import type { AgentWelcome, ControlMessage } from '../control/messages';
import { allowedCpus, coreSlices, gpuCoreSlices, gpuLocalCpus, gpusOfWorkers } from './core-binding';
import { countGpus } from './gpus';
import type { LaunchPlan } from './options';
import { prepareRunDataInChild } from './prepare-data';
import { threadsPerWorker, workerEnv } from './worker-env';
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
  /** The secret the launcher made for a single-node job: written for the workers into the ipc directory. */
  madeSecret?: Buffer;
}

/** ok: the job finished or stopped (`note` says how, as the coordinator put it). */
export type AgentOutcome = { ok: true; note?: string } | { ok: false; code: string; message: string };

/** Why supervision ends; the first reason wins. */
type Ending =
  | { kind: 'shutdown'; reason: string; stopWorkers: boolean }
  | { kind: 'stopped-before-joining'; signal: string }
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

/**
 * The job's sockets and key go in this directory: it must be a real directory of this user that
 * nobody else can enter (mkdir leaves one that already existed as it was).
 */
function requirePrivateDir(dir: string): void {
  const st = fs.lstatSync(dir);
  const mine = process.getuid === undefined || st.uid === process.getuid();
  if (!st.isDirectory() || !mine || (st.mode & 0o077) !== 0)
    throw new Error(
      `${dir} is not a private directory of this user (someone else made it, or it is open to others); ` +
        `remove it and start again`,
    );
}

export class Agent {
  private readonly plan: LaunchPlan;
  private readonly log: pino.Logger;
  private readonly host = os.hostname();
  private link: CoordinatorLink | undefined;
  private workers: WorkerProcess[] = [];
  /** The latest welcome: the job, and the round the node's workers run (or will run) in. */
  private welcome: AgentWelcome | undefined;
  private onWelcome: ((w: AgentWelcome) => void) | undefined;
  /** Data prepared: workers may be spawned. */
  private prepared = false;
  /** Restarting: the old round's workers are being stopped, or the welcome of this round is awaited. */
  private awaitingRound: number | undefined;
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

  /**
   * The launcher received a signal that asks for a checkpoint (stop false) or a graceful stop:
   * forwarded to the coordinator, which asks every worker. A launcher that has not joined yet has
   * nothing to save: a stop ends it at once.
   */
  requestSave(signal: string, stop: boolean): void {
    if (this.ended) return;
    if (this.welcome) {
      void this.link?.send({ kind: 'stopRequest', body: { signal, stop } });
      return;
    }
    if (stop) this.endWith({ kind: 'stopped-before-joining', signal });
    else this.log.warn(`ignored ${signal}: this node has not joined the job yet, there is nothing to save`);
  }

  /**
   * --bind-cores: the cores of each worker. The CUDA engine's workers get the cores of their GPU's
   * NUMA node where the machine says which (nvidia-smi's PCI bus ids, the kernel's local_cpulist);
   * otherwise, and on CPU nodes, even slices of the cores this launcher may use.
   */
  private coreLists(cpus: number[], config: Config): string[] {
    if (config.device !== 'cuda') return coreSlices(cpus, this.plan.nprocPerNode);
    const gpus = gpusOfWorkers(this.plan.nprocPerNode, process.env.CUDA_VISIBLE_DEVICES, countGpus({}).count);
    return gpus ? gpuCoreSlices(cpus, gpus, (g) => gpuLocalCpus(g)) : coreSlices(cpus, this.plan.nprocPerNode);
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
    const welcome = first;
    link.setTiming(welcome);
    this.log.info(
      { jobId: welcome.jobId, round: welcome.round, node: plan.nodeRank, nnodes: plan.nnodes },
      `node ${plan.nodeRank} joined job ${welcome.jobId}`,
    );

    // The workers' thread count (worker-env.ts), for the CPU peak the preparation measures.
    const cores = plan.bindCores ? allowedCpus().length : os.availableParallelism();
    const workerThreads = Number(process.env.PARATRAIN_NUM_THREADS) || threadsPerWorker(cores, plan.nprocPerNode);
    const preparation = prepareRunDataInChild(JSON.stringify(this.opts.config), workerThreads);
    // Once per node, whatever the number of rounds.
    const prepared = await Promise.race([preparation.done.then(() => 'ready' as const), this.ending]).catch(
      (err: Error) => ({ kind: 'failed' as const, code: 'ERR_DATA_PREPARE', message: err.message }),
    );
    if (prepared !== 'ready') {
      preparation.cancel();
      if (prepared.kind === 'failed') void link.send({ kind: 'failureReport', body: prepared });
      return prepared;
    }
    this.prepared = true;
    // A restart while preparing: the workers start when the next round's welcome arrives.
    if (this.awaitingRound === undefined) this.spawnWorkers(this.welcome!);
    return this.ending;
  }

  /**
   * The round failed and the job restarts: stop every worker (SIGTERM, then SIGKILL), report each
   * exit, then say so; the welcome of the next round follows and brings new workers.
   */
  private async restartWorkers(round: number, reason: string): Promise<void> {
    const current = this.welcome?.round ?? round;
    if (this.ended || round <= current || this.awaitingRound !== undefined) return;
    this.awaitingRound = round;
    this.link!.phase = 'restarting';
    this.log.warn({ round }, `node ${this.plan.nodeRank}: stopping its workers for round ${round} after ${reason}`);
    await this.stopWorkers();
    if (this.ended) return;
    // The exits went out first (same queue), so the coordinator has them all when it reads this.
    void this.link!.send({ kind: 'agentStopped', body: { round: current } });
  }

  private onNextRound(welcome: AgentWelcome): void {
    if (this.ended || welcome.round !== this.awaitingRound || welcome.jobId !== this.welcome?.jobId) return;
    this.awaitingRound = undefined;
    this.welcome = welcome;
    if (this.prepared) this.spawnWorkers(welcome);
  }

  private spawnWorkers(welcome: AgentWelcome): void {
    const { plan, config } = this.opts;
    this.workers = [];
    // A fresh directory per round: no socket file of the previous round's workers is left in it.
    if (this.ipcDir) fs.rmSync(this.ipcDir, { recursive: true, force: true });
    const logDir = path.join(config.run.dir, 'logs');
    fs.mkdirSync(logDir, { recursive: true });
    this.ipcDir = ipcDirFor(welcome.jobId, plan.nodeRank);
    fs.mkdirSync(this.ipcDir, { recursive: true, mode: 0o700 });
    requirePrivateDir(this.ipcDir);
    // The directory is this user's alone (0700), so is the key in it; it goes when the round ends.
    const madeKeyFile = this.opts.madeSecret ? path.join(this.ipcDir, 'job.key') : undefined;
    if (madeKeyFile) writeJobSecret(madeKeyFile, this.opts.madeSecret!);
    const configJson = JSON.stringify(config);
    const cpus = plan.bindCores ? allowedCpus() : undefined;
    const cpuLists = cpus ? this.coreLists(cpus, config) : undefined;
    for (let localRank = 0; localRank < plan.nprocPerNode; localRank++) {
      const rank = plan.nodeRank * plan.nprocPerNode + localRank;
      const env = workerEnv({
        plan,
        localRank,
        welcome,
        configJson,
        ipcDir: this.ipcDir,
        authKeyFile: plan.authKeyFile ?? madeKeyFile,
        agentPid: process.pid,
        cores: cpus ? cpus.length : os.availableParallelism(),
        base: process.env,
      });
      const logFile = path.join(logDir, rankLogName(rank));
      const w = new WorkerProcess(rank, localRank, this.opts.workerEntry, env, logFile, cpuLists?.[localRank]);
      this.workers.push(w);
      this.log.info(
        { rank, pid: w.pid, log: logFile, ...(cpuLists ? { cpus: cpuLists[localRank] } : {}) },
        `started rank ${rank} (pid ${w.pid}, round ${welcome.round})${cpuLists ? ` on cores ${cpuLists[localRank]}` : ''}`,
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
            round: welcome.round,
          },
        });
      });
    }
    this.link!.phase = 'supervise';
  }

  private onMessage(m: ControlMessage): void {
    switch (m.kind) {
      case 'agentWelcome':
        // Kept at once: a Restart may be read before supervise() resumes.
        if (!this.welcome) this.onWelcome?.((this.welcome = m.body));
        else if (m.body.round > this.welcome.round) this.onNextRound(m.body);
        return;
      case 'restart':
        void this.restartWorkers(m.body.round, m.body.reason);
        return;
      case 'reject':
        return this.endWith({ kind: 'rejected', reason: m.body.reason });
      case 'abort':
        return this.endWith({ kind: 'abort', reason: m.body.reason });
      case 'shutdown':
        return this.endWith({ kind: 'shutdown', reason: m.body.reason, stopWorkers: m.body.stopWorkers });
    }
  }

  private async windDown(end: Ending): Promise<AgentOutcome> {
    const link = this.link!;
    link.phase = 'stopping';
    // From here on the coordinator may finish and close before us; its silence means nothing.
    link.stopWatchingSilence();
    switch (end.kind) {
      case 'stopped-before-joining':
        return { ok: true, note: `stopped on ${end.signal} before this node joined the job (nothing to save)` };
      case 'shutdown': {
        // The job stopped before its workers ran: stop them, however they end.
        if (end.stopWorkers) {
          await this.stopWorkers();
          return { ok: true, note: end.reason };
        }
        // Every worker finished; give them the heartbeat timeout to exit by themselves.
        const exits = await this.waitForWorkers(this.plan.heartbeatTimeoutMs);
        const bad = exits.filter((x) => x.end.exitCode !== 0);
        if (bad.length === 0) return { ok: true, note: end.reason };
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
