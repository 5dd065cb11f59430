// messages.ts — the control-plane messages (proto/control.proto) as the coordinator, the agents and
// the workers handle them: the generated message types (src/proto.ts) as plain data, sub-messages
// complete. wire.ts turns them into frames.
import type { paratrain } from '../generated/proto';
import type { Plain, With } from '../proto';

type pc = typeof paratrain.control;
/** The message type of an Envelope body field: `agentHello` carries an AgentHello. */
type BodyMessage<K extends MessageKind> = InstanceType<pc[Capitalize<K>]>;

/** Where one data-plane socket of a worker listens. */
export type DataEndpoints = Plain<paratrain.control.DataEndpoints>;
export type GroupEndpoints = With<Plain<paratrain.control.GroupEndpoints>, { tp: DataEndpoints; dp: DataEndpoints }>;

export type Register = With<Plain<paratrain.control.Register>, { endpoints: GroupEndpoints }>;
/** What a worker tells the coordinator about itself (the worker adds job, round and rank). */
export type WorkerRegistration = Omit<Register, 'jobId' | 'round' | 'rank'>;

export type PeerInfo = With<Plain<paratrain.control.PeerInfo>, { endpoints: GroupEndpoints }>;
/** A worker's place in the job: its groups (in group order) and how to reach their members. */
export type Assignment = With<Plain<paratrain.control.Assignment>, { tpPeers: PeerInfo[]; dpPeers: PeerInfo[] }>;

/** A figure with a name: a head's loss or another metric. */
export type NamedValue = Plain<paratrain.control.NamedValue>;
export type StepReport = With<Plain<paratrain.control.StepReport>, { losses: NamedValue[]; metrics: NamedValue[] }>;

export type AgentHello = Plain<paratrain.control.AgentHello>;
export type AgentWelcome = Plain<paratrain.control.AgentWelcome>;
export type WorkerExited = Plain<paratrain.control.WorkerExited>;
export type FailureReport = Plain<paratrain.control.FailureReport>;
/** Training complete (stopped false), or saved and stopped on a stop request at `step`. */
export type Finish = Plain<paratrain.control.Finish>;
export type Shutdown = Plain<paratrain.control.Shutdown>;
/** A launcher's signal: a checkpoint (stop false, SIGUSR2) or a graceful stop (SIGTERM, SIGUSR1). */
export type StopRequest = Plain<paratrain.control.StopRequest>;
export type SaveRequest = Plain<paratrain.control.SaveRequest>;
export type SaveCommitted = Plain<paratrain.control.SaveCommitted>;

export type WorkerPhase = 'setup' | 'first-step' | 'train' | 'eval' | 'save';
export type AgentPhase = 'prepare' | 'supervise' | 'restarting' | 'stopping';

/** The name of an Envelope body (the `oneof body` of proto/control.proto). */
export type MessageKind = NonNullable<paratrain.control.Envelope['body']>;

/** Every message body by its name in the Envelope's oneof. */
export type MessageBodies = With<
  { [K in MessageKind]: Plain<BodyMessage<K>> },
  { register: Register; assignment: Assignment; stepReport: StepReport }
>;

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
