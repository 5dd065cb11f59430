// options.ts — what one `paratrain launch` is asked to do, resolved from (in this order) its flags,
// Slurm's environment, MASTER_ADDR/MASTER_PORT, and the defaults; and the checks that must pass
// before anything is spawned (the node layout, and a tensor-parallel size the model can be split by).
import * as dns from 'node:dns/promises';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';

import type { Config } from '../config/schema';
import { layoutProblems } from '../coordinator/groups';
import { startFreshProblem } from '../train/checkpointing';
import { LaunchError } from './errors';
import { countGpus, type GpuCount } from './gpus';
import { firstHost } from './slurm-hostlist';

/** The command-line flags (strings from commander, or numbers when called from code). */
export interface LaunchFlags {
  nnodes?: string | number;
  nodeRank?: string | number;
  /** A count, or 'gpu': one worker per GPU this node's workers can see. */
  nprocPerNode?: string | number;
  masterAddr?: string;
  masterPort?: string | number;
  hostAddr?: string;
  /** Seconds. */
  heartbeatInterval?: string | number;
  heartbeatTimeout?: string | number;
  firstStepTimeout?: string | number;
  rendezvousTimeout?: string | number;
  /** The job's secret, shared by every node (a single-node job makes its own when none is named). */
  authKeyFile?: string;
  /** --no-auth: run unauthenticated (commander's negation of --auth: auth === false). */
  auth?: boolean;
  /** --no-data-plane-auth: multi-node rings over plain TCP, the control plane still authenticated. */
  dataPlaneAuth?: boolean;
  /** A checkpoint step directory, a checkpoints root, or 'auto' (passed to every worker). */
  resume?: string;
  /** With --resume auto: checkpoints present but none verifies → set them aside, start at step 0. */
  startFresh?: boolean;
  /** Give each worker its own slice of the node's cores (taskset). */
  bindCores?: boolean;
  /** Failed rounds restarted before the job fails (default PARATRAIN_MAX_RESTARTS, else 0). */
  maxRestarts?: string | number;
  /** Seconds a graceful stop (SIGTERM, SIGUSR1) may take before the job is aborted. */
  stopTimeout?: string | number;
  /** Where node 0 writes the job's status (default <run.dir>/status.json). */
  statusFile?: string;
}

export interface LaunchPlan {
  nnodes: number;
  nodeRank: number;
  nprocPerNode: number;
  worldSize: number;
  masterAddr: string;
  masterPort: number;
  /** Where this node's workers bind their tcp data-plane sockets. */
  hostAddr: string;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  firstStepTimeoutMs: number;
  rendezvousTimeoutMs: number;
  /**
   * How the job's sockets are authenticated: with the secret in `authKeyFile` (--auth-key-file or
   * PARATRAIN_AUTH_KEY_FILE), with one the launcher makes for a single-node job ('job'), or not at
   * all (--no-auth, 'off').
   */
  auth: 'file' | 'job' | 'off';
  /** Absolute path of the job's secret when auth is 'file'. */
  authKeyFile?: string;
  /** The rings between nodes are CURVE-authenticated (and so encrypted) with the job's secret. */
  dataPlaneAuth: boolean;
  /** --resume: an absolute checkpoint path, or 'auto'. */
  resume?: string;
  /** --start-fresh (only with --resume auto). */
  startFresh: boolean;
  /** --bind-cores */
  bindCores: boolean;
  /** --max-restarts (or PARATRAIN_MAX_RESTARTS): failed rounds restarted before the job fails. */
  maxRestarts: number;
  /** --stop-timeout */
  stopTimeoutMs: number;
  /** --status-file, absolute; absent = <run.dir>/status.json. */
  statusFile?: string;
  /** Where the node layout came from, for the startup log line. */
  layoutSource: 'flags' | 'slurm' | 'slurm-per-task' | 'defaults';
}

export const LAUNCH_DEFAULTS = {
  nnodes: 1,
  nodeRank: 0,
  nprocPerNode: 1,
  masterAddr: '127.0.0.1',
  masterPort: 29500,
  heartbeatIntervalS: 2,
  heartbeatTimeoutS: 20,
  firstStepTimeoutS: 300,
  rendezvousTimeoutS: 300,
  maxRestarts: 0,
  stopTimeoutS: 120,
} as const;

function optionError(what: string, raw: unknown, expected: string): LaunchError {
  return new LaunchError('ERR_LAUNCH_OPTION', `${what} expects ${expected}, got '${String(raw)}'`);
}

function parseInteger(what: string, raw: string | number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = typeof raw === 'number' ? raw : /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw optionError(
      what,
      raw,
      max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer ${min}..${max}`,
    );
  return n;
}

function parseSeconds(what: string, raw: string | number): number {
  const n = typeof raw === 'number' ? raw : Number(raw);
  if (!Number.isFinite(n) || n <= 0 || (typeof raw === 'string' && raw.trim() === ''))
    throw optionError(what, raw, 'a positive number of seconds');
  return Math.max(1, Math.round(n * 1000));
}

/** An integer from a Slurm variable; SLURM_NTASKS_PER_NODE may read '4(x2)' or '4,2': the first count. */
function slurmInteger(env: NodeJS.ProcessEnv, name: string): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const m = /^(\d+)/.exec(raw);
  if (!m) throw new LaunchError('ERR_LAUNCH_ENV', `${name}='${raw}' is not a number`);
  return Number(m[1]);
}

interface NodeLayout {
  nnodes?: number;
  nodeRank?: number;
  nprocPerNode?: number;
  masterAddr?: string;
  source: 'slurm' | 'slurm-per-task';
}

/**
 * What Slurm says about this launcher. With one task per node (srun --ntasks-per-node=1) each task
 * is a node's agent. When Slurm started one task per rank instead (SLURM_NTASKS > SLURM_NNODES),
 * each task is a one-process agent: its node rank is SLURM_PROCID and there are SLURM_NTASKS of them.
 */
export function slurmLayout(env: NodeJS.ProcessEnv): NodeLayout | undefined {
  if (!env.SLURM_JOB_ID) return undefined;
  const nodelist = env.SLURM_JOB_NODELIST ?? env.SLURM_NODELIST;
  const masterAddr = nodelist ? firstHost(nodelist) : undefined;
  const ntasks = slurmInteger(env, 'SLURM_NTASKS');
  const nnodes = slurmInteger(env, 'SLURM_NNODES') ?? slurmInteger(env, 'SLURM_JOB_NUM_NODES');
  if (ntasks !== undefined && nnodes !== undefined && ntasks > nnodes)
    return {
      nnodes: ntasks,
      nodeRank: slurmInteger(env, 'SLURM_PROCID'),
      nprocPerNode: 1,
      masterAddr,
      source: 'slurm-per-task',
    };
  const gpus = slurmInteger(env, 'SLURM_GPUS_ON_NODE');
  return {
    nnodes,
    nodeRank: slurmInteger(env, 'SLURM_NODEID'),
    nprocPerNode: gpus !== undefined && gpus > 0 ? gpus : slurmInteger(env, 'SLURM_NTASKS_PER_NODE'),
    masterAddr,
    source: 'slurm',
  };
}

/** A host name (RFC 1123 labels) or an IPv4 / IPv6 literal: what may follow tcp:// in an endpoint. */
export function isHostSyntax(host: string): boolean {
  if (net.isIP(host) !== 0) return true;
  if (host.length === 0 || host.length > 253) return false;
  return host
    .replace(/\.$/, '')
    .split('.')
    .every((label) => /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/.test(label));
}

function requireHostSyntax(what: string, host: string): void {
  if (!isHostSyntax(host))
    throw new LaunchError(
      'ERR_LAUNCH_OPTION',
      `${what} '${host}' is not a host name or an IP address (letters, digits, '-' and '.'; or an IPv4/IPv6 literal)`,
    );
}

/**
 * Every address of the plan must resolve before anything is started (the coordinator binds and
 * every launcher connects to --master-addr; workers bind --host-addr): one clear message now
 * instead of a bare EINVAL or a rendezvous that times out.
 */
export async function checkAddressesResolve(plan: LaunchPlan): Promise<void> {
  for (const [what, host] of [
    ['--master-addr', plan.masterAddr],
    ['--host-addr', plan.hostAddr],
  ] as const) {
    if (net.isIP(host) !== 0) continue;
    try {
      await dns.lookup(host);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      throw new LaunchError(
        'ERR_LAUNCH_OPTION',
        `${what} '${host}' does not resolve (${code}); give a name this host can resolve, or an IP address`,
      );
    }
  }
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./.test(host);
}

/** --host-addr; else loopback when the whole job is on loopback; else this host's first external IPv4. */
export function resolveHostAddr(
  flag: string | undefined,
  masterAddr: string,
  interfaces: NodeJS.Dict<os.NetworkInterfaceInfo[]> = os.networkInterfaces(),
): string {
  if (flag) return flag;
  if (isLoopback(masterAddr)) return '127.0.0.1';
  for (const infos of Object.values(interfaces))
    for (const info of infos ?? []) if (info.family === 'IPv4' && !info.internal) return info.address;
  throw new LaunchError(
    'ERR_LAUNCH_OPTION',
    'this host has no external IPv4 address for the data plane; pass --host-addr with the address other nodes can reach',
  );
}

function layoutSource(flags: LaunchFlags, slurm: NodeLayout | undefined): LaunchPlan['layoutSource'] {
  const fromSlurm =
    slurm !== undefined &&
    ((flags.nnodes === undefined && slurm.nnodes !== undefined) ||
      (flags.nodeRank === undefined && slurm.nodeRank !== undefined) ||
      (flags.nprocPerNode === undefined && slurm.nprocPerNode !== undefined));
  if (fromSlurm) return slurm.source;
  const anyFlag = flags.nnodes !== undefined || flags.nodeRank !== undefined || flags.nprocPerNode !== undefined;
  return anyFlag ? 'flags' : 'defaults';
}

/** `--nproc-per-node gpu`: the GPUs this node's workers will see, or a clear error when there are none. */
function workersPerGpu(gpus: GpuCount): number {
  if (gpus.count < 1)
    throw new LaunchError(
      'ERR_LAUNCH_OPTION',
      `--nproc-per-node gpu: this node has no GPU its workers can use (${gpus.source}); ` +
        'run on a GPU node, check nvidia-smi and CUDA_VISIBLE_DEVICES, or give a number of workers',
    );
  return gpus.count;
}

export function resolveLaunchPlan(
  flags: LaunchFlags,
  env: NodeJS.ProcessEnv = process.env,
  interfaces?: NodeJS.Dict<os.NetworkInterfaceInfo[]>,
  gpus: () => GpuCount = () => countGpus(env),
): LaunchPlan {
  const slurm = slurmLayout(env);
  const nnodes =
    flags.nnodes !== undefined ? parseInteger('--nnodes', flags.nnodes, 1) : (slurm?.nnodes ?? LAUNCH_DEFAULTS.nnodes);
  const nodeRank =
    flags.nodeRank !== undefined
      ? parseInteger('--node-rank', flags.nodeRank, 0)
      : (slurm?.nodeRank ?? LAUNCH_DEFAULTS.nodeRank);
  const nprocPerNode =
    flags.nprocPerNode === 'gpu'
      ? workersPerGpu(gpus())
      : flags.nprocPerNode !== undefined
        ? parseInteger('--nproc-per-node', flags.nprocPerNode, 1)
        : (slurm?.nprocPerNode ?? LAUNCH_DEFAULTS.nprocPerNode);
  if (nodeRank >= nnodes)
    throw new LaunchError(
      'ERR_LAUNCH_OPTION',
      `--node-rank ${nodeRank} is outside --nnodes ${nnodes}; node ranks are 0..${nnodes - 1}`,
    );
  const authKeyFile = flags.authKeyFile ?? (env.PARATRAIN_AUTH_KEY_FILE || undefined);
  const auth = authMode(authKeyFile, flags.auth === false, nnodes);
  const masterAddr = flags.masterAddr ?? slurm?.masterAddr ?? env.MASTER_ADDR ?? LAUNCH_DEFAULTS.masterAddr;
  requireHostSyntax(flags.masterAddr !== undefined ? '--master-addr' : 'MASTER_ADDR', masterAddr);
  if (flags.hostAddr !== undefined) requireHostSyntax('--host-addr', flags.hostAddr);
  const masterPort = parseInteger(
    flags.masterPort !== undefined ? '--master-port' : 'MASTER_PORT',
    flags.masterPort ?? env.MASTER_PORT ?? LAUNCH_DEFAULTS.masterPort,
    1,
    65535,
  );
  const heartbeatIntervalMs = parseSeconds(
    '--heartbeat-interval',
    flags.heartbeatInterval ?? LAUNCH_DEFAULTS.heartbeatIntervalS,
  );
  const heartbeatTimeoutMs = parseSeconds(
    '--heartbeat-timeout',
    flags.heartbeatTimeout ?? LAUNCH_DEFAULTS.heartbeatTimeoutS,
  );
  if (heartbeatTimeoutMs <= heartbeatIntervalMs)
    throw new LaunchError(
      'ERR_LAUNCH_OPTION',
      `--heartbeat-timeout (${heartbeatTimeoutMs / 1000} s) must be longer than --heartbeat-interval ` +
        `(${heartbeatIntervalMs / 1000} s); a few intervals is usual`,
    );
  const startFresh = startFreshProblem(flags.resume, flags.startFresh);
  if (startFresh) throw new LaunchError('ERR_LAUNCH_OPTION', startFresh);
  return {
    nnodes,
    nodeRank,
    nprocPerNode,
    worldSize: nnodes * nprocPerNode,
    masterAddr,
    masterPort,
    hostAddr: resolveHostAddr(flags.hostAddr, masterAddr, interfaces),
    heartbeatIntervalMs,
    heartbeatTimeoutMs,
    firstStepTimeoutMs: parseSeconds(
      '--first-step-timeout',
      flags.firstStepTimeout ?? LAUNCH_DEFAULTS.firstStepTimeoutS,
    ),
    rendezvousTimeoutMs: parseSeconds(
      '--rendezvous-timeout',
      flags.rendezvousTimeout ?? LAUNCH_DEFAULTS.rendezvousTimeoutS,
    ),
    auth,
    authKeyFile: auth === 'file' && authKeyFile ? path.resolve(authKeyFile) : undefined,
    dataPlaneAuth: auth !== 'off' && flags.dataPlaneAuth !== false,
    bindCores: !!flags.bindCores,
    maxRestarts: parseInteger(
      flags.maxRestarts !== undefined ? '--max-restarts' : 'PARATRAIN_MAX_RESTARTS',
      flags.maxRestarts ?? (env.PARATRAIN_MAX_RESTARTS || LAUNCH_DEFAULTS.maxRestarts),
      0,
    ),
    stopTimeoutMs: parseSeconds('--stop-timeout', flags.stopTimeout ?? LAUNCH_DEFAULTS.stopTimeoutS),
    statusFile: flags.statusFile ? path.resolve(flags.statusFile) : undefined,
    resume: flags.resume === undefined || flags.resume === 'auto' ? flags.resume : path.resolve(flags.resume),
    startFresh: !!flags.startFresh,
    layoutSource: layoutSource(flags, slurm),
  };
}

/**
 * Authentication is on unless turned off by name: a single-node job makes its own secret (nobody
 * else needs it); the nodes of a multi-node job must share one, which only the user can give them.
 */
function authMode(keyFile: string | undefined, noAuth: boolean, nnodes: number): LaunchPlan['auth'] {
  if (keyFile && noAuth)
    throw new LaunchError(
      'ERR_LAUNCH_OPTION',
      `--no-auth and an auth key file (${keyFile}) contradict each other; give one of them`,
    );
  if (keyFile) return 'file';
  if (noAuth) return 'off';
  if (nnodes === 1) return 'job';
  throw new LaunchError(
    'ERR_AUTH_KEY',
    `a job of ${nnodes} nodes needs one secret shared by every node's launcher: make it once with ` +
      `'head -c 32 /dev/urandom | base64 > job.key; chmod 600 job.key', copy it to every node and pass ` +
      `--auth-key-file job.key (or set PARATRAIN_AUTH_KEY_FILE; scripts/slurm and scripts/k8s do this). ` +
      `On a network you trust, --no-auth runs the job unauthenticated`,
  );
}

/** Everything that makes the job impossible, checked before a single process is started. */
export function checkLaunchPlan(plan: LaunchPlan, config: Config): void {
  const tp = config.parallel.tensor;
  const problems = layoutProblems({ worldSize: plan.worldSize, nprocPerNode: plan.nprocPerNode, tpSize: tp });
  for (const key of ['heads', 'hidden', 'ffn'] as const) {
    const value = config.model[key];
    if (value % tp !== 0)
      problems.push(
        `parallel.tensor = ${tp} does not divide model.${key} = ${value}: each tensor-parallel rank holds ` +
          `model.${key} / parallel.tensor of it; pick a parallel.tensor that divides it`,
      );
  }
  if (problems.length)
    throw new LaunchError(
      'ERR_PARALLEL_LAYOUT',
      `cannot run ${plan.nnodes} node(s) × ${plan.nprocPerNode} process(es) with parallel.tensor = ${tp}:\n  ` +
        problems.join('\n  '),
    );
}
