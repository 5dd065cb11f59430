// worker-env.ts — the environment a worker starts with: torchrun's names (RANK, LOCAL_RANK,
// WORLD_SIZE, TORCHELASTIC_RESTART_COUNT, ...) plus what paratrain's worker needs (job, round,
// config, data-plane address, timeouts, its share of the cores). The worker reads it with
// ControlClient.fromEnv(); what to resume from comes later, in its Assignment.
import type { AgentWelcome } from '../control/messages';
import type { LaunchPlan } from './options';

export interface WorkerEnvInput {
  plan: LaunchPlan;
  localRank: number;
  welcome: AgentWelcome;
  /** The resolved config, as JSON. */
  configJson: string;
  ipcDir: string;
  /** The job's secret for the worker (the user's file, or the one made for a single-node job). */
  authKeyFile?: string;
  agentPid: number;
  /** Cores on this node (os.availableParallelism()). */
  cores: number;
  /** The launcher's own environment, passed through. */
  base: NodeJS.ProcessEnv;
}

/** Each worker gets an equal share of the node's cores, unless the user fixed the count. */
/** glibc malloc serves blocks up to 16 MiB from the heap and keeps up to 64 MiB of free heap. */
export const DATA_PLANE_MALLOC_TUNABLES = 'glibc.malloc.mmap_threshold=16777216:glibc.malloc.trim_threshold=67108864';

export function threadsPerWorker(cores: number, nprocPerNode: number): number {
  return Math.max(1, Math.floor(cores / nprocPerNode));
}

export function workerEnv(i: WorkerEnvInput): NodeJS.ProcessEnv {
  const { plan, welcome } = i;
  const threads = i.base.PARATRAIN_NUM_THREADS || String(threadsPerWorker(i.cores, plan.nprocPerNode));
  const env: NodeJS.ProcessEnv = {
    ...i.base,
    RANK: String(plan.nodeRank * plan.nprocPerNode + i.localRank),
    LOCAL_RANK: String(i.localRank),
    WORLD_SIZE: String(plan.worldSize),
    LOCAL_WORLD_SIZE: String(plan.nprocPerNode),
    NODE_RANK: String(plan.nodeRank),
    MASTER_ADDR: plan.masterAddr,
    MASTER_PORT: String(plan.masterPort),
    PARATRAIN_JOB_ID: welcome.jobId,
    PARATRAIN_ROUND: String(welcome.round),
    // Every round after the first is a restart of the whole gang.
    PARATRAIN_RESTART_COUNT: String(welcome.round),
    TORCHELASTIC_RESTART_COUNT: String(welcome.round),
    PARATRAIN_CONFIG: i.configJson,
    // A single-node job's rings are all on this host, over ipc: no TCP listener that nothing would
    // connect to (and anything on the host could). '' binds none (src/worker/main.ts).
    PARATRAIN_HOST_ADDR: plan.nnodes === 1 ? '' : plan.hostAddr,
    // Whether those TCP rings are CURVE-authenticated with the job's key (src/worker/main.ts).
    PARATRAIN_DATA_PLANE_AUTH: plan.dataPlaneAuth ? '1' : '0',
    PARATRAIN_IPC_DIR: i.ipcDir,
    // Node 0's timing (from the welcome), so every process of the job uses the same limits.
    PARATRAIN_HEARTBEAT_INTERVAL_MS: String(welcome.heartbeatIntervalMs),
    PARATRAIN_HEARTBEAT_TIMEOUT_MS: String(welcome.heartbeatTimeoutMs),
    PARATRAIN_FIRST_STEP_TIMEOUT_MS: String(welcome.firstStepTimeoutMs),
    PARATRAIN_RENDEZVOUS_TIMEOUT_MS: String(welcome.rendezvousTimeoutMs),
    PARATRAIN_AGENT_PID: String(i.agentPid),
    PARATRAIN_NUM_THREADS: threads,
    OMP_NUM_THREADS: threads,
    // Data-plane messages are 512 KiB; glibc would mmap and unmap each one (page faults on every
    // message). Serving them from the heap makes large all-reduces 1.5–2.5× faster
    // (docs/collectives.md). The user's own setting wins.
    GLIBC_TUNABLES: i.base.GLIBC_TUNABLES || DATA_PLANE_MALLOC_TUNABLES,
  };
  // The coordinator chooses the checkpoint (Assignment.resumeDir); never one inherited.
  delete env.PARATRAIN_RESUME;
  // The job's key file; never one inherited that the launcher did not use.
  if (i.authKeyFile) env.PARATRAIN_AUTH_KEY_FILE = i.authKeyFile;
  else delete env.PARATRAIN_AUTH_KEY_FILE;
  return env;
}
