// messages.ts — the control-plane messages (proto/control.proto) as TypeScript types: what the
// coordinator, the agents and the workers say to each other. wire.ts turns them into frames.

/** Where one data-plane socket of a worker listens. */
export interface DataEndpoints {
  ipc: string;
  tcp: string;
}

export interface GroupEndpoints {
  tp: DataEndpoints;
  dp: DataEndpoints;
}

/** What a worker tells the coordinator about itself (the worker adds job, round and rank). */
export interface WorkerRegistration {
  host: string;
  nodeRank: number;
  localRank: number;
  pid: number;
  device: string;
  endpoints: GroupEndpoints;
  configHash: string;
  buildHash: string;
}

export interface PeerInfo {
  rank: number;
  host: string;
  nodeRank: number;
  endpoints: GroupEndpoints;
}

/** A worker's place in the job: its groups and how to reach their members. */
export interface Assignment {
  jobId: string;
  round: number;
  rank: number;
  worldSize: number;
  tpRank: number;
  tpSize: number;
  dpRank: number;
  dpSize: number;
  /** The TP group in group order (tpPeers[tpRank] is this worker). */
  tpPeers: PeerInfo[];
  /** The DP group in group order (dpPeers[dpRank] is this worker). */
  dpPeers: PeerInfo[];
  /** The checkpoint step directory to load, verified by the coordinator; '' = start at step 0. */
  resumeDir: string;
  /** Restarts of the job so far (= round). */
  restartCount: number;
}

/** A figure with a name: a head's loss or another metric. */
export interface NamedValue {
  name: string;
  value: number;
}

export interface StepReport {
  step: number;
  totalSteps: number;
  /** The objective: Σ weight·loss. */
  loss: number;
  /** Each head's loss (mlm, nsp, sop, lm, rtd, ...), in the model's head order. */
  losses: NamedValue[];
  /** Other figures the heads report (e.g. rtd_accuracy). */
  metrics: NamedValue[];
  gradNorm: number;
  lr: number;
  tokensPerS: number;
  stepMs: number;
  skipped: boolean;
  consumedSamples: number;
  evalLoss?: number;
}

export type WorkerPhase = 'setup' | 'first-step' | 'train' | 'eval' | 'save';
export type AgentPhase = 'prepare' | 'supervise' | 'restarting' | 'stopping';

export interface AgentHello {
  nodeRank: number;
  host: string;
  nprocPerNode: number;
  nnodes: number;
  pid: number;
}

export interface AgentWelcome {
  jobId: string;
  round: number;
  worldSize: number;
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  firstStepTimeoutMs: number;
  rendezvousTimeoutMs: number;
}

export interface Register extends WorkerRegistration {
  jobId: string;
  round: number;
  rank: number;
}

export interface WorkerExited {
  rank: number;
  localRank: number;
  pid: number;
  /** Absent when a signal ended the process. */
  exitCode?: number;
  /** '' when the process exited by itself. */
  signal: string;
  lastLines: string[];
  /** The round the worker was started for. */
  round: number;
}

export interface FailureReport {
  code: string;
  message: string;
}

/** Training complete (stopped false), or saved and stopped on a stop request at `step`. */
export interface Finish {
  stopped: boolean;
  step: number;
}

export interface Shutdown {
  reason: string;
  /** Stopped before the workers started: the agent stops them, their exits are expected. */
  stopWorkers: boolean;
}

/** A launcher's signal: a checkpoint (stop false, SIGUSR2) or a graceful stop (SIGTERM, SIGUSR1). */
export interface StopRequest {
  signal: string;
  stop: boolean;
}

export interface SaveRequest {
  stop: boolean;
  reason: string;
}

export interface SaveCommitted {
  step: number;
  /** '' on error. */
  dir: string;
  /** '' on success. */
  error: string;
}

type Empty = Record<string, never>;

/** Every message body by its name in the Envelope's oneof. */
export interface MessageBodies {
  agentHello: AgentHello;
  agentWelcome: AgentWelcome;
  register: Register;
  assignment: Assignment;
  reject: { reason: string };
  ready: Empty;
  start: Empty;
  heartbeat: { phase: string };
  stepReport: StepReport;
  workerExited: WorkerExited;
  failureReport: FailureReport;
  finish: Finish;
  finishAck: Empty;
  abort: { reason: string };
  shutdown: Shutdown;
  restart: { round: number; reason: string };
  agentStopped: { round: number };
  stopRequest: StopRequest;
  saveRequest: SaveRequest;
  /** An encoded ShardReport (src/checkpoint/sharded.ts). */
  shardSaved: { report: Uint8Array };
  saveCommitted: SaveCommitted;
}

export type MessageKind = keyof MessageBodies;

/** One decoded frame: which message it is and its body. */
export type ControlMessage = { [K in MessageKind]: { kind: K; body: MessageBodies[K] } }[MessageKind];

/** Builds a message with its kind checked against its body. */
export function message<K extends MessageKind>(kind: K, body: MessageBodies[K]): ControlMessage {
  return { kind, body } as ControlMessage;
}

/** How a process ended, in words: "was killed by SIGKILL", "exited with code 3". */
export function describeExit(exitCode: number | undefined, signal: string | undefined): string {
  if (signal) return `was killed by ${signal}`;
  return `exited with code ${exitCode ?? 'unknown'}`;
}
