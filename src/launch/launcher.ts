// launcher.ts — one `paratrain launch`: resolve and check everything first, then on node 0 start the
// coordinator, then run this node's agent; turn how the job ended into the launcher's result
// (nothing on success; a LaunchError carrying the root-cause report otherwise).
import * as fs from 'node:fs';
import * as path from 'node:path';

import { loadConfig } from '../config/load';
import { loadControlKeys } from '../coordinator/auth';
import { Coordinator, type JobOutcome } from '../coordinator/coordinator';
import { formatReport } from '../coordinator/failure';
import { Agent, type AgentOutcome } from './agent';
import { allowedCpus, coreSlices, requireTaskset } from './core-binding';
import { LaunchError } from './errors';
import { checkLaunchPlan, resolveLaunchPlan, type LaunchFlags } from './options';
import { LauncherView } from './progress';

export interface LaunchOptions extends LaunchFlags {
  /** YAML file or preset name. */
  config: string;
  set?: string[];
  /** The program every worker runs; dist/worker/main.js by default. */
  workerEntry?: string;
}

export function defaultWorkerEntry(): string {
  return path.join(__dirname, '..', 'worker', 'main.js');
}

export async function runLaunch(o: LaunchOptions): Promise<void> {
  const config = loadConfig({ config: o.config, set: o.set });
  const plan = resolveLaunchPlan(o);
  checkLaunchPlan(plan, config);
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
  const keys = plan.authKeyFile ? loadControlKeys(plan.authKeyFile) : undefined;
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

  let coordinator: Coordinator | undefined;
  let agentOutcome: AgentOutcome;
  let jobOutcome: JobOutcome | undefined;
  try {
    if (plan.nodeRank === 0)
      coordinator = await Coordinator.start({
        port: plan.masterPort,
        nnodes: plan.nnodes,
        nprocPerNode: plan.nprocPerNode,
        tpSize,
        heartbeatIntervalMs: plan.heartbeatIntervalMs,
        heartbeatTimeoutMs: plan.heartbeatTimeoutMs,
        firstStepTimeoutMs: plan.firstStepTimeoutMs,
        rendezvousTimeoutMs: plan.rendezvousTimeoutMs,
        runDir: config.run.dir,
        log: view.log.child({ component: 'coordinator' }),
        onEvent: (e) => view.onCoordinatorEvent(e),
        keys,
      });
    const agent = new Agent({ plan, config, workerEntry, keys, log: view.log.child({ component: 'agent' }) });
    let interrupts = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      if (++interrupts > 1) return agent.killNow();
      view.log.warn(`received ${signal}: stopping the job`);
      coordinator?.abort('ERR_INTERRUPTED', `the launcher of node ${plan.nodeRank} received ${signal}`);
      agent.interrupt(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      agentOutcome = await agent.run();
      if (coordinator) {
        // This node is done; the coordinator may still be hearing from the others.
        if (!agentOutcome.ok && agentOutcome.code !== 'ERR_JOB_ABORTED')
          coordinator.abort(agentOutcome.code, `node 0: ${agentOutcome.message}`);
        jobOutcome = await coordinator.done;
      }
      if (agentOutcome.ok && jobOutcome?.ok !== false) view.log.info(`node ${plan.nodeRank}: every worker finished`);
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  } finally {
    await coordinator?.close();
    view.close();
  }

  if (jobOutcome && !jobOutcome.ok) {
    const { report, reportFile } = jobOutcome;
    throw new LaunchError(
      report.rootCause.code,
      `${formatReport(report)}${reportFile ? `\n  report: ${reportFile}` : ''}\n  per-rank logs: ${path.join(config.run.dir, 'logs')}`,
    );
  }
  if (!agentOutcome.ok) throw new LaunchError(agentOutcome.code, agentOutcome.message);
}
