// liveness.ts — who is late. Every peer may stay silent for a limit that depends on its role and
// phase, and some phases of a round have a deadline (the rendezvous, the ready barrier, a restart,
// a graceful stop). Pure functions over what the coordinator knows: each returns the failure to
// record, naming who is late and what to check, or nothing.
import { describeWho, type JobFailure } from './failure';
import type { AgentHello, Register } from '../control/messages';

type Failure = Omit<JobFailure, 'atUnixMs'>;

export interface LivenessTiming {
  heartbeatTimeoutMs: number;
  firstStepTimeoutMs: number;
}

export interface WatchedWorker {
  reg: Register;
  lastSeenMs: number;
  phase: string;
  steppedOnce: boolean;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The first launcher silent for longer than the heartbeat timeout: its node is lost. */
export function silentAgent(
  agents: Iterable<{ hello: AgentHello; lastSeenMs: number }>,
  now: number,
  t: LivenessTiming,
): (Failure & { nodeRank: number }) | undefined {
  for (const { hello: h, lastSeenMs } of agents) {
    const silent = now - lastSeenMs;
    if (silent > t.heartbeatTimeoutMs)
      return {
        code: 'ERR_HEARTBEAT_TIMEOUT',
        message:
          `the launcher of node ${h.nodeRank} (host ${h.host}, pid ${h.pid}) sent nothing for ${seconds(silent)} ` +
          `(--heartbeat-timeout ${seconds(t.heartbeatTimeoutMs)}); is the node up and reachable?`,
        nodeRank: h.nodeRank,
        host: h.host,
        pid: h.pid,
      };
  }
  return undefined;
}

/**
 * The first worker silent for longer than its limit: --first-step-timeout before its first step
 * (engine setup may block its event loop) and while it saves a checkpoint, else --heartbeat-timeout.
 */
export function silentWorker(workers: Iterable<WatchedWorker>, now: number, t: LivenessTiming): Failure | undefined {
  for (const w of workers) {
    const silent = now - w.lastSeenMs;
    const slowPhase = w.phase === 'save' || (!w.steppedOnce && (w.phase === 'setup' || w.phase === 'first-step'));
    const limit = slowPhase ? t.firstStepTimeoutMs : t.heartbeatTimeoutMs;
    if (silent > limit)
      return {
        code: 'ERR_HEARTBEAT_TIMEOUT',
        message:
          `${describeWho(w.reg)} sent nothing for ${seconds(silent)} in phase '${w.phase}' (limit ${seconds(limit)}, ` +
          `${slowPhase ? '--first-step-timeout' : '--heartbeat-timeout'}); it is hung or unreachable`,
        rank: w.reg.rank,
        nodeRank: w.reg.nodeRank,
        host: w.reg.host,
        pid: w.reg.pid,
      };
  }
  return undefined;
}

/** The rendezvous of a round ran out of time: which nodes never joined, which ranks never registered. */
export function rendezvousTimeout(missingNodes: number[], missingRanks: number[], timeoutMs: number): Failure {
  const parts = [
    missingNodes.length && `node(s) ${missingNodes.join(', ')} never joined (is their paratrain launch running?)`,
    missingRanks.length && `rank(s) ${missingRanks.join(', ')} never registered`,
  ].filter(Boolean);
  return {
    code: 'ERR_RENDEZVOUS_TIMEOUT',
    message: `rendezvous timed out after ${seconds(timeoutMs)}: ${parts.join('; ')}`,
  };
}

/** Workers that did not connect their data plane in time. */
export function readyTimeout(notReady: number[], timeoutMs: number): Failure {
  return {
    code: 'ERR_RENDEZVOUS_TIMEOUT',
    message:
      `rank(s) ${notReady.join(', ')} did not connect their data plane within ${seconds(timeoutMs)} ` +
      `(check --host-addr and that the nodes can reach each other)`,
  };
}

/** Nodes that did not report their workers gone during a restart. */
export function restartTimeout(waitingNodes: number[], round: number, timeoutMs: number): Failure {
  return {
    code: 'ERR_RESTART_TIMEOUT',
    message:
      `node(s) ${waitingNodes.join(', ')} did not report their workers of round ${round} gone within ` +
      `${seconds(timeoutMs)}; a worker may be stuck in the kernel (check its host)`,
  };
}

/** A graceful stop that did not complete: the workers that had not finished, and their phases. */
export function stopTimeout(
  stop: { signal: string; nodeRank: number },
  unfinished: WatchedWorker[],
  timeoutMs: number,
): Failure {
  return {
    code: 'ERR_STOP_TIMEOUT',
    message:
      `the job did not stop within --stop-timeout ${seconds(timeoutMs)} after node ${stop.nodeRank}'s launcher ` +
      `received ${stop.signal}: ${unfinished.map((w) => `rank ${w.reg.rank} (phase '${w.phase}')`).join(', ')} ` +
      `had not saved and finished; see their logs, or raise --stop-timeout`,
  };
}
