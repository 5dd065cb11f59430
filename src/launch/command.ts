// command.ts — the `paratrain launch` command line (torchrun's flags), handed to runLaunch.
import type { Command } from 'commander';

import { parseListenAddress } from '../dashboard/listen-address';
import { runLaunch, type LaunchOptions } from './launcher';
import { START_FRESH_HELP } from '../train/checkpointing';
import { LAUNCH_DEFAULTS } from './options';

const collect = (value: string, previous: string[]) => [...previous, value];

interface LaunchCommandOptions {
  config: string;
  set: string[];
  nnodes?: string;
  nodeRank?: string;
  nprocPerNode?: string;
  masterAddr?: string;
  masterPort?: string;
  hostAddr?: string;
  heartbeatInterval?: string;
  heartbeatTimeout?: string;
  firstStepTimeout?: string;
  rendezvousTimeout?: string;
  authKeyFile?: string;
  auth?: boolean;
  dataPlaneAuth?: boolean;
  resume?: string;
  startFresh?: boolean;
  bindCores?: boolean;
  maxRestarts?: string;
  stopTimeout?: string;
  statusFile?: string;
  dashboard?: string;
  metricsPort?: string;
}

/**
 * Adds `launch` to the CLI. `overrides` lets a program embedding the launcher (the tests) run
 * another worker program.
 */
export function registerLaunchCommand(program: Command, overrides: Pick<LaunchOptions, 'workerEntry'> = {}): void {
  const d = LAUNCH_DEFAULTS;
  program
    .command('launch')
    .description('run a distributed job: start one launcher per node (torchrun conventions); see docs/launching.md')
    .requiredOption('-c, --config <file|preset>', 'YAML config or preset name (configs/)')
    .option('-s, --set <key=value>', 'override a config key (repeatable)', collect, [])
    .option('--nnodes <n>', `number of nodes (default ${d.nnodes}, or SLURM_NNODES)`)
    .option('--node-rank <r>', `this node's rank, 0..nnodes-1 (default ${d.nodeRank}, or SLURM_NODEID)`)
    .option(
      '--nproc-per-node <k|gpu>',
      `workers on this node, or 'gpu' for one per GPU (default ${d.nprocPerNode}; device: cuda one per GPU; ` +
        "or Slurm's GPUs/tasks per node)",
    )
    .option('--master-addr <host>', `node 0's address (default MASTER_ADDR, Slurm's first node, or ${d.masterAddr})`)
    .option('--master-port <port>', `the coordinator's port on node 0 (default MASTER_PORT or ${d.masterPort})`)
    .option('--host-addr <addr>', "address this node's workers bind their data-plane sockets to")
    .option('--heartbeat-interval <s>', `seconds between heartbeats (default ${d.heartbeatIntervalS})`)
    .option('--heartbeat-timeout <s>', `silence that counts as a failure, seconds (default ${d.heartbeatTimeoutS})`)
    .option(
      '--first-step-timeout <s>',
      `silence allowed before a worker's first step and while it saves, seconds (default ${d.firstStepTimeoutS})`,
    )
    .option('--rendezvous-timeout <s>', `time for the whole job to gather, seconds (default ${d.rendezvousTimeoutS})`)
    .option(
      '--auth-key-file <file>',
      "the job's secret, the same file on every node: authenticates the control and data planes " +
        '(default PARATRAIN_AUTH_KEY_FILE; a single-node job makes its own; a multi-node job needs one)',
    )
    .option(
      '--no-auth',
      'run the job unauthenticated: anyone who reaches its ports can talk to it (trusted networks only)',
    )
    .option(
      '--no-data-plane-auth',
      'rings between nodes over plain TCP, faster than CURVE but unauthenticated (the control plane keeps ' +
        'its key); give every node the same choice',
    )
    .option('--bind-cores', "run each worker on its own slice of this node's cores (taskset); default: no binding")
    .option('--resume <path|auto>', "resume from a checkpoint directory, a checkpoints root, or 'auto'")
    .option('--start-fresh', START_FRESH_HELP)
    .option(
      '--max-restarts <n>',
      `restart the whole job up to n times after a failure, from its newest checkpoint (default PARATRAIN_MAX_RESTARTS or ${d.maxRestarts})`,
    )
    .option(
      '--stop-timeout <s>',
      `seconds a graceful stop (SIGTERM, SIGUSR1: save a checkpoint, then stop) may take (default ${d.stopTimeoutS})`,
    )
    .option('--status-file <file>', "where node 0 writes the job's state at the end (default <run.dir>/status.json)")
    .option(
      '--dashboard <[host:]port>',
      "node 0 serves the job's live dashboard (loopback unless a host is named; docs/dashboard.md)",
    )
    .option(
      '--metrics-port <[host:]port>',
      "node 0 serves the job's gauges and counters for Prometheus at /metrics (loopback unless a host is named)",
    )
    .action(async (o: LaunchCommandOptions) => {
      const dashboard = o.dashboard === undefined ? undefined : parseListenAddress('--dashboard', o.dashboard);
      const metrics = o.metricsPort === undefined ? undefined : parseListenAddress('--metrics-port', o.metricsPort);
      await runLaunch({ ...o, dashboard, metrics, ...overrides });
    });
}
