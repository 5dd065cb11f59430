// rendezvous.ts — the checks of a round's rendezvous, as the coordinator applies them to what
// arrives: may this launcher join, may this worker register, do all workers run rank 0's config
// and build. Each answer is a message that names the process (rank or node, host, pid) and says
// what to change. (Who is missing when time runs out: liveness.ts.)
import { describeWho, type JobFailure } from './failure';
import type { AgentHello, Register } from '../control/messages';

type Failure = Omit<JobFailure, 'atUnixMs'>;

interface JobShape {
  nnodes: number;
  nprocPerNode: number;
}

/**
 * A refusal: `reason` for node 0's log and failure.json (it names the process and the holder of
 * what it asked for); `reply` for the peer, which has not joined and may be anyone who can reach the
 * port: it says what to change, and never carries the job id, the round, pids, hosts or hashes.
 */
export interface Refusal {
  reason: string;
  reply: string;
}

/**
 * Why a launcher may not join: started with another layout than node 0 (fatal: the job cannot
 * run), a node rank outside the job, or a node rank already taken (the job goes on).
 */
export function agentHelloProblem(
  h: AgentHello,
  job: JobShape,
  holder: AgentHello | undefined,
): (Refusal & { fatal: boolean }) | undefined {
  const who = `the launcher of node ${h.nodeRank} (host ${h.host}, pid ${h.pid})`;
  if (h.nnodes !== job.nnodes || h.nprocPerNode !== job.nprocPerNode) {
    const what =
      `was started with --nnodes ${h.nnodes} --nproc-per-node ${h.nprocPerNode}, node 0 with ` +
      `--nnodes ${job.nnodes} --nproc-per-node ${job.nprocPerNode}; start every node with the same values`;
    return { reason: `${who} ${what}`, reply: `this launcher ${what}`, fatal: true };
  }
  if (h.nodeRank >= job.nnodes) {
    const what = `node rank ${h.nodeRank} is outside --nnodes ${job.nnodes} (node ranks are 0..${job.nnodes - 1})`;
    return { reason: `${who}: ${what}`, reply: what, fatal: false };
  }
  if (holder)
    return {
      reason:
        `${who}: node rank ${h.nodeRank} has already joined from host ${holder.host} (pid ${holder.pid}); give each ` +
        `node its own --node-rank`,
      reply: `node rank ${h.nodeRank} has already joined; give each node its own --node-rank`,
      fatal: false,
    };
  return undefined;
}

/**
 * Why a worker may not register: another job, another round (a stale worker of an earlier
 * attempt), a rank already taken, a rank that does not fit the world, or a rendezvous that closed.
 */
export function registrationProblem(
  r: Register,
  ctx: JobShape & { jobId: string; round: number; open: boolean; holder: Register | undefined },
): Refusal | undefined {
  const who = describeWho({ rank: r.rank, host: r.host, pid: r.pid });
  if (r.jobId !== ctx.jobId)
    return {
      reason: `${who} belongs to another job (${r.jobId || 'no job id'}; this job is ${ctx.jobId})`,
      reply: 'this worker belongs to another job',
    };
  if (r.round !== ctx.round) {
    const which = r.round < ctx.round ? 'an earlier' : 'another';
    return {
      reason: `${who} is a worker from ${which} round (${r.round}; this is round ${ctx.round})`,
      reply: `this worker is from ${which} round of the job`,
    };
  }
  if (ctx.holder)
    return {
      reason: `${who}: rank ${r.rank} is already registered by pid ${ctx.holder.pid} on ${ctx.holder.host}`,
      reply: `rank ${r.rank} is already registered`,
    };
  if (!ctx.open) return { reason: `${who} arrived after the rendezvous closed`, reply: 'the rendezvous has closed' };
  const expected = r.nodeRank * ctx.nprocPerNode + r.localRank;
  if (r.rank >= ctx.nnodes * ctx.nprocPerNode || r.localRank >= ctx.nprocPerNode || r.rank !== expected) {
    const what =
      `rank ${r.rank}, node rank ${r.nodeRank}, local rank ${r.localRank} do not fit a world of ` +
      `${ctx.nnodes} × ${ctx.nprocPerNode}`;
    return { reason: `${who}: ${what}`, reply: what };
  }
  return undefined;
}

/**
 * Every worker must run rank 0's config and build. Checks the worker that just registered
 * (every one registered so far, when that is rank 0) and returns the first that does not.
 */
export function configOrBuildMismatch(
  workers: ReadonlyMap<number, { reg: Register }>,
  rank: number,
): Failure | undefined {
  const zero = workers.get(0)?.reg;
  if (!zero) return undefined;
  const others =
    rank === 0 ? [...workers.values()].map((w) => w.reg).sort((a, b) => a.rank - b.rank) : [workers.get(rank)!.reg];
  for (const w of others) {
    if (w.rank === 0) continue;
    const them = describeWho(w),
      us = describeWho(zero);
    const identity = { rank: w.rank, nodeRank: w.nodeRank, host: w.host, pid: w.pid };
    if (w.configHash !== zero.configHash)
      return {
        code: 'ERR_CONFIG_MISMATCH',
        message:
          `${them} resolved a different config (hash ${w.configHash}) than ${us} (hash ${zero.configHash}); ` +
          `start every node with the same --config file and --set overrides`,
        ...identity,
      };
    if (w.buildHash !== zero.buildHash)
      return {
        code: 'ERR_BUILD_MISMATCH',
        message:
          `${them} runs a different paratrain build (hash ${w.buildHash}) than ${us} (hash ${zero.buildHash}); ` +
          `install the same commit and rebuild (npm run build) on every node`,
        ...identity,
      };
  }
  return undefined;
}
