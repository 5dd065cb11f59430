// launcher.ts — one `paratrain launch`: resolve and check everything first, then on node 0 start the
// coordinator, then run this node's agent; turn signals into a save, a graceful stop or an abort;
// turn how the job ended into the launcher's result (nothing when it finished or stopped; a
// LaunchError carrying the root-cause report otherwise) and, on node 0, into status.json.
import * as fs from 'node:fs';
import * as path from 'node:path';

import { loadConfig } from '../config/load';
import { resolveTask } from '../tasks/task-run';
import { deriveControlKeys, loadJobSecret, newJobSecret } from '../control/auth';
import { Coordinator, describeStop, type JobOutcome } from '../coordinator/coordinator';
import { checkEngineMemory } from '../engine/memory';
import { formatReport } from '../coordinator/failure';
import { removeUncommittedShards } from '../checkpoint';
import { checkpointRoot } from '../train/checkpointing';
import { checkRunDir } from '../train/run-dir';
import { startDashboard, type Dashboard } from '../dashboard/server';
import { startMetricsServer, type MetricsServer } from '../metrics/prometheus';
import { Agent, type AgentOutcome } from './agent';
import { allowedCpus, coreSlices, requireTaskset } from './core-binding';
import { LaunchError } from './errors';
import { checkAddressesResolve, checkLaunchPlan, resolveLaunchPlan, slurmLayout, type LaunchFlags } from './options';
import { LauncherView } from './progress';
import { statusOf, writeLaunchStatus } from './status';

/**
 * What a signal asks of the launcher. SIGINT aborts at once (Ctrl-C); SIGTERM and SIGUSR1 (Slurm's
 * warning before the time limit) ask for a graceful stop: every worker saves a checkpoint, then
 * the job ends; SIGUSR2 asks for a checkpoint and training goes on. A second SIGINT or SIGTERM
 * kills the workers at once.
 */
const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGUSR1', 'SIGUSR2'] as const;

export interface LaunchOptions extends LaunchFlags {
  /** YAML file or preset name. */
  config: string;
  set?: string[];
  /** The program every worker runs; dist/worker/main.js by default. */
  workerEntry?: string;
  /** Node 0 serves the run's live dashboard there (docs/dashboard.md). */
  dashboard?: { host: string; port: number };
  /** Node 0 serves the job's Prometheus metrics there (/metrics). */
  metrics?: { host: string; port: number };
}

export function defaultWorkerEntry(): string {
  return path.join(__dirname, '..', 'worker', 'main.js');
}

export async function runLaunch(o: LaunchOptions): Promise<void> {
  const loaded = loadConfig({ config: o.config, set: o.set });
  // The CUDA engine: one worker per GPU unless told otherwise (Slurm's GPUs per node count as told).
  const perGpu = loaded.device === 'cuda' && o.nprocPerNode === undefined && !slurmLayout(process.env)?.nprocPerNode;
  const plan = resolveLaunchPlan(perGpu ? { ...o, nprocPerNode: 'gpu' } : o);
  checkLaunchPlan(plan, loaded);
  checkRunDir(loaded.run.dir);
  // A fine-tuning job's labels and steps are settled once here, and every worker gets them.
  const config = await resolveTask(loaded, plan.worldSize / loaded.parallel.tensor);
  checkEngineMemory(config, { processes: plan.nprocPerNode });
  await checkAddressesResolve(plan);
  const workerEntry = path.resolve(o.workerEntry ?? defaultWorkerEntry());
  if (!fs.existsSync(workerEntry))
    throw new LaunchError(
      'ERR_WORKER_ENTRY',
      `the worker program ${workerEntry} does not exist; build paratrain first (npm run build)`,
    );

  if (plan.bindCores) {
    requireTaskset();
    coreSlices(allowedCpus(), plan.nprocPerNode); // enough cores for one each, or a clear error now
  }
  // The secret every process of the job authenticates with (docs/security.md): the user's, or one
  // made now for a single-node job, which the agent hands its workers in the job's private directory.
  const jobSecret =
    plan.auth === 'file' ? loadJobSecret(plan.authKeyFile!) : plan.auth === 'job' ? newJobSecret() : undefined;
  const keys = jobSecret ? deriveControlKeys(jobSecret) : undefined;
  const tpSize = config.parallel.tensor;
  const view = new LauncherView({
    runDir: config.run.dir,
    nodeRank: plan.nodeRank,
    totalSteps: config.train.steps,
    dpSize: plan.worldSize / tpSize,
    logEvery: config.train.log_every,
  });
  view.log.info(
    { ...plan },
    `launching node ${plan.nodeRank} of ${plan.nnodes} with ${plan.nprocPerNode} worker(s); coordinator ` +
      `tcp://${plan.masterAddr}:${plan.masterPort}`,
  );
  if (plan.auth === 'off')
    view.log.warn(
      { event: 'auth-off' },
      `AUTHENTICATION IS OFF (--no-auth): anything that reaches tcp://${plan.masterAddr}:${plan.masterPort} or ` +
        `this node's data-plane ports can join, disturb or stop this job and read its traffic. Use it only on ` +
        `a network you trust; --auth-key-file turns it on`,
    );
  else if (!plan.dataPlaneAuth && plan.nnodes > 1)
    view.log.warn(
      { event: 'data-plane-auth-off' },
      `the rings between nodes run over plain TCP (--no-data-plane-auth): anything that reaches this node's ` +
        `data-plane ports can disturb the job and read its gradients; the control plane keeps its key`,
    );

  const statusFile = plan.statusFile ?? path.join(config.run.dir, 'status.json');
  let coordinator: Coordinator | undefined;
  let agentOutcome: AgentOutcome;
  let jobOutcome: JobOutcome | undefined;
  let dashboard: Dashboard | undefined;
  let metrics: MetricsServer | undefined;
  try {
    // Node 0 holds rank 0's log.jsonl and the coordinator's lines: the page of the whole job.
    if (o.dashboard && plan.nodeRank === 0) {
      dashboard = await startDashboard({ runDir: config.run.dir, ...o.dashboard, wait: true, portFlag: '--dashboard' });
      view.log.info({ event: 'dashboard', url: dashboard.url }, `dashboard of this job at ${dashboard.url}`);
    }
    if (o.metrics && plan.nodeRank === 0) {
      metrics = await startMetricsServer({ runDir: config.run.dir, ...o.metrics, portFlag: '--metrics-port' });
      view.log.info({ event: 'metrics', url: metrics.url }, `Prometheus metrics of this job at ${metrics.url}`);
    }
    if (plan.nodeRank === 0) {
      coordinator = await Coordinator.start({
        masterAddr: plan.masterAddr,
        port: plan.masterPort,
        nnodes: plan.nnodes,
        nprocPerNode: plan.nprocPerNode,
        tpSize,
        heartbeatIntervalMs: plan.heartbeatIntervalMs,
        heartbeatTimeoutMs: plan.heartbeatTimeoutMs,
        firstStepTimeoutMs: plan.firstStepTimeoutMs,
        rendezvousTimeoutMs: plan.rendezvousTimeoutMs,
        runDir: config.run.dir,
        checkpointRoot: checkpointRoot(config),
        keep: config.checkpoint.keep,
        resume: plan.resume,
        startFresh: plan.startFresh,
        maxRestarts: plan.maxRestarts,
        stopTimeoutMs: plan.stopTimeoutMs,
        log: view.log.child({ component: 'coordinator' }),
        onEvent: (e) => view.onCoordinatorEvent(e),
        keys,
      });
      writeLaunchStatus(statusFile, {
        state: 'running',
        jobId: coordinator.jobId,
        restarts: 0,
        step: null,
        checkpoint: null,
        updatedAt: new Date().toISOString(),
      });
    }
    const agent = new Agent({
      plan,
      config,
      workerEntry,
      keys,
      madeSecret: plan.auth === 'job' ? jobSecret : undefined,
      log: view.log.child({ component: 'agent' }),
    });
    let ending: 'stop' | 'abort' | undefined;
    const onSignal = (signal: NodeJS.Signals) => {
      const stop = signal === 'SIGTERM' || signal === 'SIGUSR1';
      if (signal === 'SIGUSR2') {
        if (ending) return;
        view.log.info(`received ${signal}: asking every worker to save a checkpoint`);
        if (coordinator) coordinator.requestSave({ signal, stop: false, nodeRank: 0 });
        else agent.requestSave(signal, false);
      } else if (ending && (signal === 'SIGINT' || signal === 'SIGTERM')) {
        view.log.warn(`received ${signal} again: killing this node's workers now`);
        coordinator?.abort('ERR_INTERRUPTED', `the launcher of node ${plan.nodeRank} received ${signal} again`);
        agent.interrupt(signal);
        agent.killNow();
      } else if (ending) {
        view.log.warn(`received ${signal}: the job is already stopping`);
      } else if (stop) {
        ending = 'stop';
        view.log.warn(
          `received ${signal}: every worker saves a checkpoint, then the job stops (within --stop-timeout ` +
            `${plan.stopTimeoutMs / 1000} s; SIGINT aborts at once)`,
        );
        if (coordinator) coordinator.requestSave({ signal, stop: true, nodeRank: 0 });
        else agent.requestSave(signal, true);
      } else {
        ending = 'abort';
        view.log.warn(`received ${signal}: stopping the job`);
        coordinator?.abort('ERR_INTERRUPTED', `the launcher of node ${plan.nodeRank} received ${signal}`);
        agent.interrupt(signal);
      }
    };
    for (const s of SIGNALS) process.on(s, onSignal);
    try {
      agentOutcome = await agent.run();
      if (coordinator) {
        // This node is done; the coordinator may still be hearing from the others.
        if (!agentOutcome.ok && agentOutcome.code !== 'ERR_JOB_ABORTED')
          coordinator.abort(agentOutcome.code, `node 0: ${agentOutcome.message}`);
        jobOutcome = await coordinator.done;
      }
      if (jobOutcome?.ok && jobOutcome.stopped) view.log.warn(describeStop(jobOutcome.stopped, jobOutcome.checkpoint));
      else if (agentOutcome.ok && jobOutcome?.ok !== false)
        view.log.info(`node ${plan.nodeRank}: ${agentOutcome.note ?? 'every worker finished'}`);
    } finally {
      for (const s of SIGNALS) process.off(s, onSignal);
    }
  } finally {
    if (coordinator) {
      await coordinator.close();
      // Closed, the coordinator has an outcome even when this launcher ended early.
      jobOutcome ??= await coordinator.done;
      try {
        writeLaunchStatus(statusFile, statusOf(jobOutcome));
      } catch (err) {
        view.log.error({ err: (err as Error).message }, `could not write ${statusFile}`);
      }
    }
    await dashboard?.close();
    await metrics?.close();
    view.close();
  }

  if (jobOutcome && !jobOutcome.ok) {
    const { report, reportFile } = jobOutcome;
    // A full disk: the ranks that did write their shard of the failed save leave it behind; node 0
    // removes what no manifest commits, so the space goes back and nothing half-saved stays.
    if (report.rootCause.code === 'ERR_DISK_FULL') {
      const removed = await removeUncommittedShards(checkpointRoot(config)).catch(() => []);
      if (removed.length > 0)
        process.stderr.write(`paratrain: removed ${removed.length} file(s) of the uncommitted save\n`);
    }
    throw new LaunchError(
      report.rootCause.code,
      `${formatReport(report)}${reportFile ? `\n  report: ${reportFile}` : ''}\n  per-rank logs: ${path.join(config.run.dir, 'logs')}`,
    );
  }
  if (!agentOutcome.ok) throw new LaunchError(agentOutcome.code, agentOutcome.message);
}
