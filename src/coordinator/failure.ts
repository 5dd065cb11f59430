// failure.ts — the root-cause report of a failed job: the FIRST failure (rank, host, pid, exit code
// or signal, its last log lines), then what followed it. Once one rank dies, its peers time out,
// get aborted and die too; only the first failure says what to fix, so it is kept apart.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** One thing that went wrong, with whatever is known about who it happened to. */
export interface JobFailure {
  code: string;
  message: string;
  atUnixMs: number;
  rank?: number;
  nodeRank?: number;
  host?: string;
  pid?: number;
  exitCode?: number;
  signal?: string;
  lastLines?: string[];
}

/** A peer the coordinator refused without failing the job (a stale worker, a duplicate). */
export interface RejectedPeer {
  reason: string;
  atUnixMs: number;
  rank?: number;
  host?: string;
  pid?: number;
}

export interface RootCauseReport {
  jobId: string;
  /** The round that failed; rounds before it failed too and were restarted (failures/round-<r>.json). */
  round: number;
  /** Restarts of the job before this round (= round). */
  restarts: number;
  rootCause: JobFailure;
  /** Failures after the root cause, mostly brought on by it (the abort, broken rings). */
  consequences: JobFailure[];
  rejected: RejectedPeer[];
}

/** Failures in the order the coordinator learned of them. */
export class FailureLog {
  private readonly failures: JobFailure[] = [];

  /** Records a failure; true when it is the first (the root cause). */
  record(f: Omit<JobFailure, 'atUnixMs'>, atUnixMs = Date.now()): boolean {
    this.failures.push({ ...f, atUnixMs });
    return this.failures.length === 1;
  }

  /**
   * A root cause found by the coordinator itself (a missed heartbeat, a failure report) has no
   * output of the rank; the agent's report of that rank's exit brings its last lines.
   */
  addLastLines(rank: number, lastLines: string[]): void {
    const root = this.failures[0];
    if (root && root.rank === rank && !root.lastLines?.length) root.lastLines = lastLines;
  }

  get rootCause(): JobFailure | undefined {
    return this.failures[0];
  }

  report(jobId: string, round: number, rejected: RejectedPeer[]): RootCauseReport | undefined {
    const [rootCause, ...consequences] = this.failures;
    return rootCause && { jobId, round, restarts: round, rootCause, consequences, rejected: [...rejected] };
  }
}

/** "rank 1 (host gpu01, pid 4242)", or as much of it as is known. */
export function describeWho(f: Pick<JobFailure, 'rank' | 'nodeRank' | 'host' | 'pid'>): string {
  const where = [f.host && `host ${f.host}`, f.pid !== undefined && `pid ${f.pid}`].filter(Boolean).join(', ');
  const who = f.rank !== undefined ? `rank ${f.rank}` : f.nodeRank !== undefined ? `node ${f.nodeRank}` : 'the job';
  return where ? `${who} (${where})` : who;
}

/** The report as the launcher prints it on stderr. */
export function formatReport(r: RootCauseReport): string {
  const lines: string[] = [];
  const c = r.rootCause;
  const after = r.restarts > 0 ? ` after ${r.restarts} restart${r.restarts === 1 ? '' : 's'}` : '';
  lines.push(`job ${r.jobId} (round ${r.round}) failed${after}. Root cause [${c.code}]: ${c.message}`);
  if (c.lastLines?.length) {
    lines.push(`  last lines of ${describeWho(c)}:`);
    for (const l of c.lastLines) lines.push(`    | ${l}`);
  }
  if (r.consequences.length) {
    lines.push(`  then (consequences):`);
    for (const f of r.consequences) lines.push(`    - [${f.code}] ${f.message}`);
  }
  for (const p of r.rejected) lines.push(`  refused along the way: ${p.reason}`);
  return lines.join('\n');
}

/** Writes <runDir>/failure.json (the job's end) and returns its path. */
export function writeReport(runDir: string, r: RootCauseReport): string {
  fs.mkdirSync(runDir, { recursive: true });
  const file = path.join(runDir, 'failure.json');
  fs.writeFileSync(file, JSON.stringify(r, null, 2) + '\n');
  return file;
}

/** Writes <runDir>/failures/round-<r>.json (every failed round, restarted or not) and returns its path. */
export function writeRoundReport(runDir: string, r: RootCauseReport): string {
  const dir = path.join(runDir, 'failures');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `round-${r.round}.json`);
  fs.writeFileSync(file, JSON.stringify(r, null, 2) + '\n');
  return file;
}
